"""The runner as a pod runs it: the run's spec and router token from the environment, the model
through the router over HTTP, the result in the container's termination message for the operator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from opentelemetry import trace

from jesus.api.agentrun import AgentRun, AgentRunSpec, ReflectionMode
from jesus.api.common import ObjectMeta
from jesus.api.objects import spec_digest
from jesus.logic.artifacts import UploadGrant
from jesus.logic.lessons import LESSONS_VARIABLE, parse_lessons
from jesus.logic.manifests import ARTIFACT_GRANT_VARIABLE, TERMINATION_MESSAGE_PATH
from jesus.logic.runs import summarize_record
from jesus.logic.sealing import (
    RUNNER_KEY_SECRET,
    RUNNER_KEY_VARIABLE,
    SEALED_TOKEN_VARIABLE,
    SealError,
    unseal,
)
from jesus.redaction import RedactionConfig, RedactionConfigError
from jesus.runner import spans
from jesus.runner.artifacts import ArtifactStore, DirectoryArtifactStore, S3GrantArtifactStore
from jesus.runner.http_model import RouterHttpModelClient
from jesus.runner.loop import AgentTask, execute_run
from jesus.runner.record import RunOutcome, RunRecord
from jesus.runner.tools import tool_server_specs
from jesus.telemetry import log_fields


class PodEnvironmentError(Exception):
    """The pod's environment lacks what the runner needs; names the variable."""


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name)
    if not value:
        raise PodEnvironmentError(f"environment variable {name} is not set (the operator's Job sets it)")
    return value


def _router_token(environ: Mapping[str, str]) -> str:
    """The run's router token: opened from the sealed one in the Job with the namespace's runner key,
    or as given (a runner started by hand or by `jesus run`)."""
    sealed = environ.get(SEALED_TOKEN_VARIABLE)
    if not sealed:
        return _required(environ, "JESUS_ROUTER_TOKEN")
    key = environ.get(RUNNER_KEY_VARIABLE)
    if not key:
        raise PodEnvironmentError(
            f"environment variable {RUNNER_KEY_VARIABLE} is not set: the Job takes it from the "
            f"namespace's Secret {RUNNER_KEY_SECRET}, which the operator makes"
        )
    try:
        return unseal(key, sealed, key_source=f"${RUNNER_KEY_VARIABLE} (Secret {RUNNER_KEY_SECRET})")
    except SealError as exc:
        raise PodEnvironmentError(str(exc)) from exc


def _write_termination_message(environ: Mapping[str, str], record: RunRecord) -> None:
    path = Path(environ.get("JESUS_TERMINATION_MESSAGE_PATH", TERMINATION_MESSAGE_PATH))
    path.write_text(summarize_record(record.to_dict()))


async def run_pod(environ: Mapping[str, str]) -> int:
    """Execute the run described by `environ`; 0 when it succeeded. The result goes to the
    termination message either way, so the operator can settle what the run spent."""
    namespace = _required(environ, "JESUS_RUN_NAMESPACE")
    name = _required(environ, "JESUS_RUN_NAME")
    attempt = _attempt(environ)
    parent = spans.parent_context(environ)
    span = spans.start_run_span(name, namespace, attempt, parent)
    try:
        # Every line of the run names it; inside its span, the lines carry the span's trace.
        with (
            log_fields(namespace=namespace, run=name, attempt=attempt, trace_id=spans.trace_id_of(parent)),
            trace.use_span(span, end_on_exit=False),
        ):
            record = await _run(environ, namespace, name)
    except BaseException:
        spans.end_run_span(span, "Failed", False, 0)
        raise
    spans.end_run_span(span, record.outcome.value, record.outcome.succeeded, record.turns)
    return 0 if record.outcome.succeeded else 1


def _attempt(environ: Mapping[str, str]) -> int | None:
    value = environ.get("JESUS_ATTEMPT", "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 6 else None


async def _run(environ: Mapping[str, str], namespace: str, name: str) -> RunRecord:
    record = RunRecord(run=name, namespace=namespace)
    try:
        spec = AgentRunSpec.model_validate(json.loads(_required(environ, "JESUS_RUN_SPEC")))
    except (ValueError, PodEnvironmentError) as exc:
        record.outcome, record.reason = RunOutcome.INVALID_SPEC, f"JESUS_RUN_SPEC: {exc}"
        _write_termination_message(environ, record)
        return record
    try:
        redact = RedactionConfig.from_environ(environ).redactor()
    except RedactionConfigError as exc:  # no run without the redaction the site asked for
        record.outcome, record.reason = RunOutcome.INVALID_SPEC, str(exc)
        _write_termination_message(environ, record)
        return record
    run = AgentRun(
        metadata=ObjectMeta(name=name, namespace=namespace, uid=environ.get("JESUS_RUN_UID")), spec=spec
    )
    record.spec_digest = spec_digest(run.to_kubernetes()["spec"])
    lessons, problem = parse_lessons(environ.get(LESSONS_VARIABLE))
    if problem is not None:
        record.warnings.append(problem)
    task = AgentTask(
        run=name,
        namespace=namespace,
        instructions=spec.task.instructions,
        inputs=dict(spec.task.inputs or {}),
        tool_servers=tool_server_specs(run),
        max_turns=spec.limits.max_turns,
        timeout_seconds=float(spec.limits.timeout_seconds),
        spec_digest=record.spec_digest,
        reflection=spec.reflection is ReflectionMode.CHECKLIST,
        offered_lessons=lessons,
        max_tokens=spec.limits.max_tokens,
        max_cost_micros=spec.limits.max_cost_micros,
    )
    model = RouterHttpModelClient(
        _required(environ, "JESUS_ROUTER_URL"),
        _router_token(environ),
        timeout_seconds=float(spec.limits.timeout_seconds),
    )
    store = _artifact_store(environ, record)
    try:
        record = await execute_run(task, model, store=store, record=record, redact=redact)
    finally:
        await model.aclose()
        if isinstance(store, S3GrantArtifactStore):
            store.close()
    _write_termination_message(environ, record)
    return record


def _artifact_store(environ: Mapping[str, str], record: RunRecord) -> ArtifactStore | None:
    """S3 with the operator's upload grant when the Job carries one, else the artifact directory.
    A grant that does not parse leaves the run without artifacts (and says so), never without a run."""
    grant = environ.get(ARTIFACT_GRANT_VARIABLE)
    if grant:
        try:
            return S3GrantArtifactStore(UploadGrant.from_json(grant))
        except ValueError as exc:
            record.warnings.append(f"{ARTIFACT_GRANT_VARIABLE}: {exc}; no artifacts were stored")
            return None
    return DirectoryArtifactStore(Path(environ.get("JESUS_ARTIFACT_DIR", "/artifacts")))
