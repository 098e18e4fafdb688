"""Invalid specs, one per rule, shared by the unit tests (`jesus validate`) and the cluster tests
(the API server must reject the same object, with the same CEL message or at the same field).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.builders.adapters import llamacpp_adapter, openai_adapter, scripted_adapter, vllm_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.manifest import Obj, drop_field, manifest, set_field
from tests.builders.routes import route_policy


@dataclass(frozen=True)
class InvalidCase:
    """An object that breaks one rule.

    `field` is the dotted path `jesus validate` reports (list indexes as [n]); `message` is a fragment
    of its message. For CEL rules (`cel=True`) the API server answers with the same message; for
    schema rules it names `server_field` (default: `field`) and says `server_message`.
    """

    id: str
    build: Callable[[], Obj]
    field: str
    message: str
    cel: bool = False
    server_message: str = ""
    server_field: str = ""

    @property
    def api_field(self) -> str:
        """The field path as the API server prints it."""
        return self.server_field or self.field


INVALID_CASES: tuple[InvalidCase, ...] = (
    # ModelAdapter
    InvalidCase(
        "adapter-scripted-without-replies",
        lambda: drop_field(scripted_adapter(), "spec.scripted"),
        "spec.scripted",
        "the scripted block is required for provider scripted",
        cel=True,
    ),
    InvalidCase(
        "adapter-openai-without-credentials",
        lambda: drop_field(openai_adapter(), "spec.credentialsSecretRef"),
        "spec.credentialsSecretRef",
        "credentialsSecretRef is required",
        cel=True,
    ),
    InvalidCase(
        "adapter-vllm-without-endpoint",
        lambda: drop_field(vllm_adapter(), "spec.serving"),
        "spec.endpoint",
        "endpoint is required",
        cel=True,
    ),
    InvalidCase(
        "adapter-serving-not-vllm",
        lambda: set_field(
            set_field(vllm_adapter(), "spec.provider", "openai-compatible"), "spec.endpoint", "http://x"
        ),
        "spec.serving",
        "serving runs the model with its engine",
        cel=True,
    ),
    InvalidCase(
        "adapter-vllm-on-cpu",
        lambda: set_field(vllm_adapter(), "spec.serving.gpu.count", 0),
        "spec.serving.gpu.count",
        "vllm needs at least one GPU per replica",
        cel=True,
    ),
    InvalidCase(
        "adapter-vllm-with-threads",
        lambda: set_field(vllm_adapter(), "spec.serving.threads", 8),
        "spec.serving.threads",
        "threads is a llamacpp setting",
        cel=True,
    ),
    InvalidCase(
        "adapter-llamacpp-from-s3",
        lambda: set_field(llamacpp_adapter(), "spec.serving.modelURI", "s3://weights/m.gguf"),
        "spec.serving.modelURI",
        "llamacpp loads models from hf://",
        cel=True,
    ),
    InvalidCase(
        "adapter-reply-text-and-tool-calls",
        lambda: set_field(scripted_adapter(), "spec.scripted.replies.0.toolCalls", [{"name": "search"}]),
        "spec.scripted.replies[0]",
        "exactly one of text, toolCalls or error",
        cel=True,
    ),
    InvalidCase(
        "adapter-unknown-provider",
        lambda: set_field(scripted_adapter(), "spec.provider", "bedrock"),
        "spec.provider",
        "must be one of",
        server_message="Unsupported value",
    ),
    InvalidCase(
        "adapter-price-not-decimal",
        lambda: set_field(scripted_adapter(), "spec.pricing.inputPerMillionTokens", "1.2.3"),
        "spec.pricing.inputPerMillionTokens",
        "decimal amount",
        server_message="should match",
    ),
    InvalidCase(
        "adapter-price-as-number",
        lambda: set_field(scripted_adapter(), "spec.pricing.outputPerMillionTokens", 1.5),
        "spec.pricing.outputPerMillionTokens",
        "in quotes",
        server_message="must be of type string",
    ),
    InvalidCase(
        "adapter-unknown-classification",
        lambda: set_field(scripted_adapter(), "spec.dataClassifications", ["secret"]),
        "spec.dataClassifications[0]",
        "must be one of",
        server_message="Unsupported value",
    ),
    InvalidCase(
        "adapter-gpu-count-past-a-node",
        lambda: set_field(vllm_adapter(), "spec.serving.gpu.count", 17),
        "spec.serving.gpu.count",
        "less than or equal to 16",
        server_message="should be less than or equal to 16",
    ),
    # RoutePolicy
    InvalidCase(
        "route-chain-repeats-adapter",
        lambda: route_policy(adapters=("a", "b", "a")),
        "spec.chain",
        "chain must not list the same adapter twice",
        cel=True,
    ),
    InvalidCase(
        "route-fails-over-on-invalid-request",
        lambda: set_field(route_policy(), "spec.failoverOn", ["RateLimited", "InvalidRequest"]),
        "spec.failoverOn",
        "InvalidRequest (and Authentication, ContentFiltered, ContextTooLong) never fail over",
        cel=True,
    ),
    InvalidCase(
        "route-backoff-initial-above-max",
        lambda: set_field(
            route_policy(),
            "spec.retries",
            {"initialBackoffMilliseconds": 5000, "maxBackoffMilliseconds": 1000},
        ),
        "spec.retries.initialBackoffMilliseconds",
        "initialBackoffMilliseconds must not exceed maxBackoffMilliseconds",
        cel=True,
    ),
    InvalidCase(
        "route-empty-chain",
        lambda: set_field(route_policy(), "spec.chain", []),
        "spec.chain",
        "at least 1 item",
        server_message="should have at least 1 items",
    ),
    InvalidCase(
        "route-attempt-timeout-zero",
        lambda: set_field(route_policy(), "spec.attemptTimeoutSeconds", 0),
        "spec.attemptTimeoutSeconds",
        "greater than or equal to 1",
        server_message="should be greater than or equal to 1",
    ),
    InvalidCase(
        "route-empty-selector",
        lambda: set_field(route_policy(), "spec.selector", {"matchLabels": {}}),
        "spec.selector",
        "a selector needs at least one of matchLabels or matchExpressions",
        cel=True,
    ),
    InvalidCase(
        "route-selector-in-without-values",
        lambda: set_field(
            route_policy(), "spec.selector", {"matchExpressions": [{"key": "tier", "operator": "In"}]}
        ),
        "spec.selector.matchExpressions[0].values",
        "values must be non-empty for In and NotIn",
        cel=True,
    ),
    InvalidCase(
        "route-selector-bad-label-key",
        lambda: set_field(route_policy(), "spec.selector", {"matchLabels": {"tier!": "x"}}),
        "spec.selector.matchLabels.tier!",
        "must match the pattern",
        server_message="keys must be label keys",
        server_field="spec.selector.matchLabels",
    ),
    # Budget
    InvalidCase(
        "budget-two-scopes",
        lambda: budget(scope={"team": "ml", "user": "ada@example.com"}),
        "spec.scope",
        "scope must name exactly one of namespace, team, user or runSelector",
        cel=True,
    ),
    InvalidCase(
        "budget-no-scope",
        lambda: budget(scope={}),
        "spec.scope",
        "scope must name exactly one of namespace, team, user or runSelector",
        cel=True,
    ),
    InvalidCase(
        "budget-thresholds-descending",
        lambda: set_field(budget(), "spec.thresholds", [90, 75]),
        "spec.thresholds",
        "thresholds must be listed in ascending order",
        cel=True,
    ),
    InvalidCase(
        "budget-threshold-above-100",
        lambda: set_field(budget(), "spec.thresholds", [50, 150]),
        "spec.thresholds[1]",
        "less than or equal to 100",
        server_message="should be less than or equal to 100",
    ),
    InvalidCase(
        "budget-threshold-twice",
        lambda: set_field(budget(), "spec.thresholds", [75, 75]),
        "spec.thresholds",
        "duplicate value",
        server_message="Duplicate value",
        server_field="spec.thresholds[1]",
    ),
    InvalidCase(
        "budget-unknown-period",
        lambda: set_field(budget(), "spec.period", "Weekly"),
        "spec.period",
        "must be one of",
        server_message="Unsupported value",
    ),
    InvalidCase(
        "budget-lower-case-currency",
        lambda: set_field(budget(), "spec.currency", "usd"),
        "spec.currency",
        "must match the pattern",
        server_message="should match",
    ),
    InvalidCase(
        "budget-negative-limit",
        lambda: budget(limit="-5.00"),
        "spec.limit",
        "decimal amount",
        server_message="should match",
    ),
    # AgentRun
    InvalidCase(
        "run-depends-on-itself",
        lambda: agent_run(name="loop", depends_on=("loop",)),
        "spec.dependsOn",
        "an AgentRun cannot depend on itself",
        cel=True,
    ),
    InvalidCase(
        "run-tool-with-two-transports",
        lambda: set_field(
            agent_run(),
            "spec.tools",
            [{"name": "git", "stdio": {"command": "mcp-git"}, "url": "http://git:8080/mcp"}],
        ),
        "spec.tools[0]",
        "a tool server needs exactly one of stdio or url",
        cel=True,
    ),
    InvalidCase(
        "run-tool-without-transport",
        lambda: set_field(agent_run(), "spec.tools", [{"name": "git"}]),
        "spec.tools[0]",
        "a tool server needs exactly one of stdio or url",
        cel=True,
    ),
    InvalidCase(
        "run-tools-same-name",
        lambda: set_field(
            agent_run(),
            "spec.tools",
            [{"name": "git", "url": "http://a/mcp"}, {"name": "git", "url": "http://b/mcp"}],
        ),
        "spec.tools",
        "duplicate value",
        server_message="Duplicate value",
        server_field="spec.tools[1]",
    ),
    InvalidCase(
        "run-without-owner",
        lambda: drop_field(agent_run(), "spec.owner"),
        "spec.owner",
        "required field is missing",
        server_message="Required value",
    ),
    InvalidCase(
        "run-unknown-field",
        lambda: set_field(agent_run(), "spec.colour", "blue"),
        "spec.colour",
        "unknown field",
        server_message='unknown field "spec.colour"',
    ),
    InvalidCase(
        "run-team-not-dns-label",
        lambda: set_field(agent_run(), "spec.owner.team", "ML Team"),
        "spec.owner.team",
        "must be a DNS label",
        server_message="should match",
    ),
    InvalidCase(
        "run-priority-too-high",
        lambda: set_field(agent_run(), "spec.priority", 5000),
        "spec.priority",
        "less than or equal to 1000",
        server_message="should be less than or equal to 1000",
    ),
    InvalidCase(
        "run-timeout-as-string",
        lambda: set_field(agent_run(), "spec.limits.timeoutSeconds", "600"),
        "spec.limits.timeoutSeconds",
        "must be a whole number",
        server_message="must be of type integer",
    ),
    InvalidCase(
        "run-tool-url-not-http",
        lambda: set_field(agent_run(), "spec.tools", [{"name": "git", "url": "ftp://git/mcp"}]),
        "spec.tools[0].url",
        "must match the pattern",
        server_message="should match",
    ),
    InvalidCase(
        "run-metadata-typo",
        lambda: set_field(agent_run(), "metadata.lables", {"tier": "batch"}),
        "metadata.lables",
        "unknown field",
        server_message='unknown field "metadata.lables"',
    ),
    InvalidCase(
        "run-label-value-with-space",
        lambda: set_field(agent_run(), "metadata.labels", {"tier": "not batch"}),
        "metadata.labels.tier",
        "a label value is at most 63",
        server_message="Invalid value",
        server_field="metadata.labels",
    ),
    InvalidCase(
        "run-without-max-cost",
        lambda: drop_field(agent_run(), "spec.limits.maxCost"),
        "spec.limits.maxCost",
        "required field is missing",
        server_message="Required value",
    ),
    InvalidCase(
        "run-reflection-unknown",
        lambda: agent_run(reflection="Sometimes"),
        "spec.reflection",
        "must be one of 'Checklist' or 'none'",
        server_message="Unsupported value",
    ),
    # Lesson
    InvalidCase(
        "lesson-long-term-without-reuses",
        lambda: lesson(evidence=[{"run": "r0"}, {"run": "r1", "role": "Reuse"}]),
        "spec.evidence",
        "a LongTerm lesson cites at least 3 runs that reused it (role Reuse)",
        cel=True,
    ),
    InvalidCase(
        "lesson-memory-unknown",
        lambda: lesson(memory="Forever"),
        "spec.memory",
        "must be one of 'ShortTerm' or 'LongTerm'",
        server_message="Unsupported value",
    ),
    InvalidCase(
        "lesson-digest-not-sha256",
        lambda: lesson(
            evidence=[{"run": "r0", "artifacts": [{"name": "a.md", "digest": "md5:0"}]}], memory="ShortTerm"
        ),
        "spec.evidence[0].artifacts[0].digest",
        "must match the pattern",
        server_message="should match",
    ),
)


def lesson(*, evidence: list[Obj] | None = None, memory: str = "LongTerm") -> Obj:
    """A Lesson of team ml; by default LongTerm with an origin and three reuses."""
    cited = (
        evidence
        if evidence is not None
        else [{"run": "r0"}] + [{"run": f"r{n}", "role": "Reuse"} for n in (1, 2, 3)]
    )
    spec: Obj = {"text": "Quote the figures.", "scope": {"team": "ml"}, "evidence": cited, "memory": memory}
    return manifest("Lesson", "lesson", spec)
