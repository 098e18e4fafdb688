"""Child objects of an AgentRun, built as plain Kubernetes JSON: the runner Job, its router token
Secret and the runner ServiceAccount. Pure: the reconciler creates them idempotently.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jesus.api.agentrun import AgentRun
from jesus.api.common import LABEL_MANAGED_BY, LABEL_RUN, LABEL_TEAM, LABEL_USER
from jesus.api.objects import JsonObject, bounded_name, owner_reference
from jesus.logic.lessons import LESSONS_VARIABLE, lessons_json
from jesus.logic.placement import RunnerPlacement
from jesus.logic.reflection import OfferedLesson
from jesus.logic.sealing import (
    RUNNER_KEY_FIELD,
    RUNNER_KEY_SECRET,
    RUNNER_KEY_VARIABLE,
    SEALED_TOKEN_VARIABLE,
)
from jesus.logic.serving import GPU_RESOURCE, GPU_TAINT_KEY

LABEL_COMPONENT = "jesus.dev/component"
LABEL_ATTEMPT = "jesus.dev/attempt"
# Where the runner pod mounts its own emptyDir for scratch files (the root filesystem is read-only).
POD_TMP = "/tmp"  # nosec B108
COMPONENT_RUNNER = "runner"
MANAGED_BY = "jesus"
TOKEN_KEY = "token"
TERMINATION_MESSAGE_PATH = "/dev/termination-log"
# The runner needs no Kubernetes API access at all: its service account has no bindings and no token.
RUNNER_SERVICE_ACCOUNT = "jesus-runner"
TIMEOUT_GRACE_SECONDS = 30
ARTIFACT_GRANT_VARIABLE = "JESUS_ARTIFACT_GRANT"


@dataclass(frozen=True)
class RunnerSettings:
    """What the operator's deployment decides for every runner pod."""

    image: str = "jesus/runner:0.1.0"
    command: tuple[str, ...] = ("jesus", "runner")
    router_url: str = "http://jesus-router.jesus-system.svc:8080"
    service_account: str = RUNNER_SERVICE_ACCOUNT
    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    cpu_limit: str = "1"
    memory_limit: str = "1Gi"
    ttl_seconds_after_finished: int = 3600
    environment: tuple[tuple[str, str], ...] = ()
    """Extra variables of every runner container (the operator's `OTEL_*` settings)."""
    placement: RunnerPlacement = field(default_factory=RunnerPlacement)  # nodeSelector, tolerations


def job_name(run_name: str, attempt: int) -> str:
    """The runner Job of attempt `attempt` (1-based); deterministic, so creation is idempotent."""
    return bounded_name(run_name, suffix=f"a{attempt}", limit=52)  # the Job controller adds a pod suffix


def token_secret_name(run_name: str, attempt: int) -> str:
    """The Secret that held the router token of attempt `attempt` in Jobs made before tokens were
    sealed into the Job (`jesus.logic.sealing`); read only to meter such an attempt."""
    return f"{job_name(run_name, attempt)}-token"


def run_labels(run: AgentRun) -> dict[str, str]:
    """Labels every child of `run` carries."""
    name = run.metadata.name or ""
    return {
        LABEL_RUN: bounded_name(name),
        LABEL_TEAM: run.spec.owner.team,
        LABEL_USER: _label_value(run.spec.owner.user),
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def _label_value(value: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in value)[:63].strip("-_.")
    return cleaned or "unknown"


def secret_token(secret: Mapping[str, Any]) -> str | None:
    """The router token a token Secret holds (as the API server returns it, base64 in `data`, or as
    built, in `stringData`); None when it holds none."""
    raw = (secret.get("data") or {}).get(TOKEN_KEY)
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw, validate=True).decode("ascii").strip() or None
        except (ValueError, UnicodeDecodeError):
            return None
    text = (secret.get("stringData") or {}).get(TOKEN_KEY)
    return text if isinstance(text, str) and text else None


def build_runner_service_account(namespace: str, settings: RunnerSettings) -> JsonObject:
    """The runner's ServiceAccount: no token mounted, no role bound."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": settings.service_account,
            "namespace": namespace,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: COMPONENT_RUNNER},
        },
        "automountServiceAccountToken": False,
    }


def build_runner_job(
    run: AgentRun,
    owner: Mapping[str, Any],
    attempt: int,
    settings: RunnerSettings,
    *,
    traceparent: str,
    sealed_token: str,
    lessons: Sequence[OfferedLesson] = (),
    queue_labels: Mapping[str, str] | None = None,
    artifact_grant: str | None = None,
) -> JsonObject:
    """The Job that runs attempt `attempt` of `run`: the runner with the run's spec, the router's URL and
    the run's router token, the lessons it is offered, and no provider credentials and no API access.

    sealed_token: the attempt's router token sealed with the namespace's runner key
    (`jesus.logic.sealing`); the pod opens it with the key from the namespace's `jesus-runner-key`.

    artifact_grant: the attempt's S3 upload grant (`jesus.logic.artifacts.UploadGrant.to_json`): a
    pre-signed policy for its own prefix, no storage credential. Without it the runner writes to the
    pod's artifact directory.

    queue_labels: Kueue's labels (`jesus.logic.queueing.job_labels`); with them the Job is created
    suspended, and Kueue unsuspends it once it admits it against its queue's quota.
    """
    name = run.metadata.name or ""
    labels = {**run_labels(run), LABEL_COMPONENT: COMPONENT_RUNNER, LABEL_ATTEMPT: str(attempt)}
    container = _runner_container(run, attempt, settings, traceparent, sealed_token, lessons)
    if artifact_grant is not None:
        container["env"].insert(-1, {"name": ARTIFACT_GRANT_VARIABLE, "value": artifact_grant})
    queued = {"suspend": True} if queue_labels else {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name, attempt),
            "namespace": run.metadata.namespace,
            "labels": {**labels, **(queue_labels or {})},
            "annotations": {"jesus.dev/traceparent": traceparent},
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": {
            **queued,
            "backoffLimit": 0,  # the operator owns retries, with the run's retry policy
            "activeDeadlineSeconds": run.spec.limits.timeout_seconds + TIMEOUT_GRACE_SECONDS,
            "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.service_account,
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "volumes": [{"name": "artifacts", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                    **_placement(run, settings),
                },
            },
        },
    }


def _placement(run: AgentRun, settings: RunnerSettings) -> JsonObject:
    """The settings' node selector and tolerations; a run that asks for GPUs also tolerates the taint
    GPU nodes carry (as the serving Deployments do)."""
    fields = settings.placement.pod_spec_fields()
    if runner_gpus(run):
        gpu = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
        tolerations = list(fields.get("tolerations", []))
        fields = {**fields, "tolerations": [*tolerations, gpu] if gpu not in tolerations else tolerations}
    return fields


def _runner_container(
    run: AgentRun,
    attempt: int,
    settings: RunnerSettings,
    traceparent: str,
    sealed_token: str,
    lessons: Sequence[OfferedLesson],
) -> JsonObject:
    """The runner container: locked down, told everything through its environment, writing to /artifacts."""
    return {
        "name": "runner",
        "image": settings.image,
        "command": list(settings.command),
        "env": _runner_env(run, attempt, settings, traceparent, sealed_token, lessons),
        "resources": _runner_resources(run, settings),
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},  # with the rest: Pod Security "restricted"
        },
        "volumeMounts": [
            {"name": "artifacts", "mountPath": "/artifacts"},
            {"name": "tmp", "mountPath": POD_TMP},
        ],
    }


def _runner_resources(run: AgentRun, settings: RunnerSettings) -> JsonObject:
    """The settings' requests and limits, overridden by the run's own. GPUs (an extended resource)
    are requested and limited alike, as Kubernetes requires."""
    resources = run.spec.resources
    requests: dict[str, Any] = {"cpu": settings.cpu_request, "memory": settings.memory_request}
    limits: dict[str, Any] = {"cpu": settings.cpu_limit, "memory": settings.memory_limit}
    if resources is not None:
        for target, given in ((requests, resources.requests), (limits, resources.limits)):
            if given is not None:
                target.update(given.model_dump(exclude_none=True, by_alias=True))
    gpus = max(int(requests.pop(GPU_RESOURCE, 0) or 0), int(limits.pop(GPU_RESOURCE, 0) or 0))
    if gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpus)
    return {"requests": requests, "limits": limits}


def runner_gpus(run: AgentRun) -> int:
    """How many GPUs the run's runner asks for (0: none)."""
    return int(_runner_resources(run, RunnerSettings())["limits"].get(GPU_RESOURCE, 0))


def _runner_env(
    run: AgentRun,
    attempt: int,
    settings: RunnerSettings,
    traceparent: str,
    sealed_token: str,
    lessons: Sequence[OfferedLesson],
) -> list[JsonObject]:
    """What the runner reads: the run and its spec, the router's URL, its token (sealed, and the key
    to open it from the namespace's Secret), the lessons it is offered (only when there are some), the
    trace."""
    offered = [{"name": LESSONS_VARIABLE, "value": lessons_json(lessons)}] if lessons else []
    name = run.metadata.name or ""
    spec_json = json.dumps(run.spec.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=True)
    return [
        {"name": "JESUS_RUN_NAMESPACE", "value": run.metadata.namespace},
        {"name": "JESUS_RUN_NAME", "value": name},
        {"name": "JESUS_RUN_UID", "value": run.metadata.uid},
        {"name": "JESUS_ATTEMPT", "value": str(attempt)},
        {"name": "JESUS_RUN_SPEC", "value": spec_json},
        {"name": "JESUS_ROUTER_URL", "value": settings.router_url},
        {"name": SEALED_TOKEN_VARIABLE, "value": sealed_token},
        {
            "name": RUNNER_KEY_VARIABLE,
            "valueFrom": {"secretKeyRef": {"name": RUNNER_KEY_SECRET, "key": RUNNER_KEY_FIELD}},
        },
        {"name": "JESUS_ARTIFACT_DIR", "value": "/artifacts"},
        {"name": "JESUS_TERMINATION_MESSAGE_PATH", "value": TERMINATION_MESSAGE_PATH},
        *offered,
        *({"name": name, "value": value} for name, value in settings.environment),
        {"name": "TRACEPARENT", "value": traceparent},
    ]
