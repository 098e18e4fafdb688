"""AgentRun: one agent task, its owner, limits, tools and dependencies, and the record of its run."""

from __future__ import annotations

import enum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from jesus.api.common import (
    ApiModel,
    CommonConditionType,
    Conditions,
    DataClassification,
    LabelValueName,
    LocalObjectReference,
    Money,
    ObjectMeta,
    ObjectName,
    Timestamp,
    Url,
    parse_money,
    present,
)
from jesus.api.objects import DIGEST_PATTERN
from jesus.api.rules import CelRule, ListType

KIND = "AgentRun"
PLURAL = "agentruns"


class AgentRunPhase(enum.StrEnum):
    """Where a run is: Pending, Waiting, Admitted, Running, then Succeeded or Failed; or Denied."""

    PENDING = "Pending"
    WAITING = "Waiting"
    ADMITTED = "Admitted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DENIED = "Denied"

    @property
    def terminal(self) -> bool:
        """Whether the run will not change phase again."""
        return self in (AgentRunPhase.SUCCEEDED, AgentRunPhase.FAILED, AgentRunPhase.DENIED)


class AgentRunConditionType(enum.StrEnum):
    """Condition types of an AgentRun."""

    READY = CommonConditionType.READY.value
    DEPENDENCIES_READY = "DependenciesReady"
    POLICY_ALLOWED = "PolicyAllowed"
    BUDGET_RESERVED = "BudgetReserved"
    ADMITTED = "Admitted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ARCHIVED = "Archived"
    """A finished run's record is in the SQL archive (only when the operator has one; docs/records.md)."""
    REFLECTED = "Reflected"
    """The run's reflection passed LAW-REFLECT-001 (False names the failed items; docs/reflection.md)."""
    ARTIFACTS_DELETED = "ArtifactsDeleted"
    """The run's retention (spec.artifacts.retentionDays) has passed: its stored artifacts are deleted
    and no longer listed (docs/artifacts.md)."""
    QUEUED = "Queued"
    """With Kueue (docs/scheduling.md): True while the runner Job waits for Kueue to admit it, with
    Kueue's reason and message; False once Kueue admitted it."""


class AgentRunReason(enum.StrEnum):
    """Reasons on AgentRun conditions."""

    WAITING_FOR_DEPENDENCIES = "WaitingForDependencies"
    DEPENDENCY_FAILED = "DependencyFailed"
    DEPENDENCIES_SUCCEEDED = "DependenciesSucceeded"
    POLICY_ALLOWED = "PolicyAllowed"
    POLICY_DENIED = "PolicyDenied"
    POLICY_UNAVAILABLE = "PolicyUnavailable"
    BUDGET_RESERVED = "BudgetReserved"
    BUDGET_EXCEEDED = "BudgetExceeded"
    NO_BUDGET = "NoBudget"
    ROUTE_POLICY_NOT_FOUND = "RoutePolicyNotFound"
    ROUTE_POLICY_NOT_APPLICABLE = "RoutePolicyNotApplicable"
    ADMITTED = "Admitted"
    JOB_CREATED = "JobCreated"
    JOB_RUNNING = "JobRunning"
    JOB_SUCCEEDED = "JobSucceeded"
    JOB_FAILED = "JobFailed"
    RETRYING = "Retrying"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    TIMED_OUT = "TimedOut"
    LIMIT_EXCEEDED = "LimitExceeded"
    STOPPED_BY_BUDGET = "StoppedByBudget"
    ARCHIVED = "Archived"
    ARCHIVE_PENDING = "ArchivePending"
    CHECKLIST_PASSED = "ChecklistPassed"
    CHECKLIST_FAILED = "ChecklistFailed"
    QUEUED_IN_KUEUE = "QueuedInKueue"
    RETENTION_EXPIRED = "RetentionExpired"
    """On Running=False while the Job waits in Kueue (the Queued condition has Kueue's reason)."""
    INVALID_QUEUE = "InvalidQueueName"
    PREEMPTED = "Preempted"


class Owner(ApiModel):
    """Who the run belongs to; budgets and policies decide by it."""

    user: Annotated[str, Field(min_length=1, max_length=253)]
    """The person responsible, e.g. an e-mail address or SSO name."""
    team: LabelValueName
    """The team that pays (a DNS label, e.g. ml-platform)."""


class Task(ApiModel):
    """What the agent is asked to do."""

    instructions: Annotated[str, Field(min_length=1, max_length=65_536)]
    """The instructions, in plain language."""
    inputs: Annotated[dict[str, Annotated[str, Field(max_length=65_536)]], Field(max_length=64)] | None = None
    """Named inputs the instructions refer to; values are strings."""


class StdioServer(ApiModel):
    """An MCP server the runner starts as a child process and talks to over stdio."""

    command: Annotated[str, Field(min_length=1, max_length=1024)]
    """The executable, e.g. python3 or /usr/local/bin/mcp-git."""
    args: Annotated[list[Annotated[str, Field(max_length=4096)]], Field(max_length=64)] | None = None
    """Its arguments."""
    env: Annotated[dict[str, Annotated[str, Field(max_length=4096)]], Field(max_length=64)] | None = None
    """Extra environment variables; put no secrets here."""


def _one_transport(tool: ToolServer) -> bool:
    return present(tool.stdio) != present(tool.url)


class ToolServer(ApiModel):
    """An MCP tool server the run may use: a stdio command or a URL, and which of its tools are allowed."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.stdio) != has(self.url)",
            message="a tool server needs exactly one of stdio or url",
            check=_one_transport,
        ),
    )

    name: LabelValueName
    """Name of the server within this run (a DNS label); its tools keep their own names."""
    stdio: StdioServer | None = None
    """Start the server as a child process of the runner."""
    url: Url | None = None
    """Connect to a running server over streamable HTTP."""
    allowed_tools: (
        Annotated[
            list[Annotated[str, Field(min_length=1, max_length=128)]],
            Field(max_length=128),
            ListType.as_set(),
        ]
        | None
    ) = None
    """Names of the server's tools the model may call; unset allows all of them."""


class RunLimits(ApiModel):
    """Hard limits of one run; the router and the runner stop the run when one is reached."""

    max_cost: Money
    """Most the run may spend; admission reserves this amount against every Budget that covers the run."""
    max_tokens: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    """Most tokens (input plus output, all calls together); unset means only maxCost bounds them."""
    timeout_seconds: Annotated[int, Field(ge=1, le=86_400)] = 600
    """Wall-clock limit of one attempt."""
    max_turns: Annotated[int, Field(ge=1, le=1000)] = 20
    """Most model turns (calls) in the agent loop."""

    @property
    def max_cost_micros(self) -> int:
        """maxCost in micro-units."""
        return parse_money(self.max_cost)


class RetryPolicy(ApiModel):
    """Whether a failed run is tried again as a new Job."""

    max_retries: Annotated[int, Field(ge=0, le=10)] = 0
    """Further attempts after the first fails; 0 means none."""
    backoff_seconds: Annotated[int, Field(ge=0, le=3600)] = 30
    """Wait before each retry."""


class ArtifactPolicy(ApiModel):
    """What happens to the run's artifacts."""

    retention_days: Annotated[int, Field(ge=1, le=3650)] = 30
    """Days the redacted artifacts are kept."""


QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)]


class ResourceList(ApiModel):
    """CPU and memory quantities."""

    cpu: Quantity | None = None
    """CPU, e.g. 500m."""
    memory: Quantity | None = None
    """Memory, e.g. 512Mi."""
    gpu: Annotated[int | None, Field(ge=0, le=64, alias="nvidia.com/gpu")] = None
    """NVIDIA GPUs (`nvidia.com/gpu`), e.g. 1: the runner pod asks for them and tolerates GPU nodes'
    taint; with Kueue they count against the team's GPU quota (docs/scheduling.md)."""


class RunnerResources(ApiModel):
    """Resources of the runner container; the operator's defaults apply where unset."""

    requests: ResourceList | None = None
    """Requests."""
    limits: ResourceList | None = None
    """Limits."""


class ReflectionMode(enum.StrEnum):
    """Whether the run reflects at its end (LAW-REFLECT-001, docs/reflection.md)."""

    CHECKLIST = "Checklist"
    NONE = "none"


class AgentRunSpec(ApiModel):
    """Desired state of an AgentRun; the operator never writes it."""

    owner: Owner
    """Who the run belongs to."""
    task: Task
    """What the agent is asked to do."""
    route_policy_ref: LocalObjectReference
    """The RoutePolicy that picks the models for this run."""
    data_classification: DataClassification = DataClassification.INTERNAL
    """How sensitive the run's data is; only adapters that accept this classification serve it."""
    tools: Annotated[list[ToolServer], Field(max_length=16), ListType.as_map("name")] | None = None
    """MCP tool servers the run may use."""
    limits: RunLimits
    """Hard limits: cost, tokens, time, turns."""
    depends_on: Annotated[list[ObjectName], Field(max_length=32), ListType.as_set()] | None = None
    """AgentRuns in the same namespace that must succeed before this one starts."""
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    """Retries after a failed attempt."""
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    """Higher runs are admitted first when several wait."""
    artifacts: ArtifactPolicy = Field(default_factory=ArtifactPolicy)
    """What happens to the run's artifacts."""
    resources: RunnerResources | None = None
    """Resources of the runner container."""
    reflection: ReflectionMode = ReflectionMode.CHECKLIST
    """Checklist (the default): one more model call at the end asks for the run's reflection, checked
    against LAW-REFLECT-001 and recorded; none: no reflection."""


class PolicyDecision(ApiModel):
    """What the admission policy decided, and why."""

    allowed: bool
    """Whether the policy admits the run."""
    reasons: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=64)] | None = None
    """Why the run was denied (empty when allowed)."""
    warnings: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=64)] | None = None
    """Concerns that do not deny the run."""
    evaluated_at: Timestamp | None = None
    """When the policy was evaluated."""


class BudgetReservation(ApiModel):
    """Money held for this run against one Budget."""

    namespace: LabelValueName
    """Namespace of the Budget."""
    budget: ObjectName
    """Name of the Budget."""
    amount_micros: Annotated[int, Field(ge=0)]
    """Amount held, in micro-units."""
    settled: bool = False
    """Whether the run's actual cost has been charged and the rest released."""


class Usage(ApiModel):
    """Tokens consumed."""

    input_tokens: Annotated[int, Field(ge=0)] = 0
    """Input (prompt) tokens."""
    output_tokens: Annotated[int, Field(ge=0)] = 0
    """Output (completion) tokens."""


class Fallback(ApiModel):
    """One adapter that failed before another served the call."""

    adapter: ObjectName
    """The ModelAdapter that failed."""
    error_class: Annotated[str, Field(max_length=64)]
    """Its error class, e.g. RateLimited."""


class ModelCall(ApiModel):
    """One model call of the run, as the router metered it."""

    adapter: ObjectName
    """The ModelAdapter that served the call."""
    model: Annotated[str, Field(max_length=256)]
    """The model that served it."""
    fallbacks: Annotated[list[Fallback], Field(max_length=16)] | None = None
    """Adapters that failed first, in order."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens of this call."""
    cost_micros: Annotated[int, Field(ge=0)] = 0
    """Cost of this call, in micro-units."""
    duration_milliseconds: Annotated[int, Field(ge=0)] | None = None
    """Time the call took, retries and fallbacks included."""


class AttemptOutcome(enum.StrEnum):
    """How one attempt ended."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class Attempt(ApiModel):
    """One try of the run: one Job."""

    number: Annotated[int, Field(ge=1)]
    """1 for the first attempt."""
    job_name: Annotated[str, Field(max_length=63)]
    """The Job that ran it."""
    outcome: AttemptOutcome = AttemptOutcome.RUNNING
    """Running, Succeeded or Failed."""
    start_time: Timestamp | None = None
    """When the Job started."""
    completion_time: Timestamp | None = None
    """When it finished."""
    message: Annotated[str, Field(max_length=4096)] | None = None
    """Why it failed, when it did."""
    metered_cost_micros: Annotated[int, Field(ge=0)] | None = None
    """For an attempt that ended without reporting its calls (preempted, killed, stopped): what the router
    metered for its token when the operator revoked it, with the worst case of calls still in flight.
    Part of the run's costMicros and charged with it, once."""
    metered_tokens: Annotated[int, Field(ge=0)] | None = None
    """The tokens the router metered for such an attempt, counted the same way."""


class ArtifactRef(ApiModel):
    """A redacted artifact the run produced."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """File name, e.g. result.json."""
    uri: Annotated[str, Field(min_length=1, max_length=2048)]
    """Where it is stored."""
    size_bytes: Annotated[int, Field(ge=0)] | None = None
    """Size in bytes."""
    digest: Annotated[str, Field(pattern=DIGEST_PATTERN)] | None = None
    """sha256 of the content."""


class AgentRunStatus(ApiModel):
    """Observed state and record of the run, written by the operator."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    phase: AgentRunPhase | None = None
    """Pending, Waiting, Admitted, Running, Succeeded, Failed or Denied."""
    conditions: Conditions | None = None
    """DependenciesReady, PolicyAllowed, BudgetReserved, Admitted, Running, Succeeded, Failed."""
    message: Annotated[str, Field(max_length=4096)] | None = None
    """What a person should know about the current phase, in a sentence."""
    policy: PolicyDecision | None = None
    """The admission policy's decision."""
    budget_reservations: (
        Annotated[list[BudgetReservation], Field(max_length=32), ListType.as_map("namespace", "budget")]
        | None
    ) = None
    """Money held against each Budget that covers the run."""
    job_name: Annotated[str, Field(max_length=63)] | None = None
    """The Job of the current (or last) attempt."""
    attempts: Annotated[list[Attempt], Field(max_length=11), ListType.as_map("number")] | None = None
    """Every attempt, first to last."""
    calls: Annotated[list[ModelCall], Field(max_length=1000)] | None = None
    """Model calls in order: which adapter and model served each, and which fallbacks were taken."""
    usage: Usage | None = None
    """Tokens of all calls together."""
    cost_micros: Annotated[int, Field(ge=0)] | None = None
    """Cost of all calls together, in micro-units."""
    trace_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = None
    """OpenTelemetry trace id that covers admission and every model call."""
    artifacts: Annotated[list[ArtifactRef], Field(max_length=100)] | None = None
    """Redacted artifacts the run left."""
    spec_digest: Annotated[str, Field(pattern=DIGEST_PATTERN)] | None = None
    """sha256 of the canonical spec the run executed, so it can be reproduced."""
    start_time: Timestamp | None = None
    """When the first attempt started."""
    completion_time: Timestamp | None = None
    """When the run reached Succeeded or Failed."""


class AgentRun(ApiModel):
    """One agent task, gated by policy and budgets, routed through a RoutePolicy and run as a Job."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule=(
                "!has(self.spec.dependsOn) || !has(self.metadata.name)"
                " || !(self.metadata.name in self.spec.dependsOn)"
            ),
            message="an AgentRun cannot depend on itself",
            check=lambda run: not (run.metadata.name and run.metadata.name in (run.spec.depends_on or [])),
            field="spec.dependsOn",
        ),
    )

    api_version: Literal["jesus.dev/v1alpha1"] = "jesus.dev/v1alpha1"
    """jesus.dev/v1alpha1"""
    kind: Literal["AgentRun"] = "AgentRun"
    """AgentRun"""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: AgentRunSpec
    """Desired state; the operator never writes it."""
    status: AgentRunStatus | None = None
    """Observed state and record of the run; written by the operator only."""
