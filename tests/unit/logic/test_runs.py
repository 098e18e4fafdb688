"""Pure run decisions: dependencies, the runner's result in its termination message, Job outcomes,
retries, and the runner Job's shape."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from tests.builders.agentrun import reconciled_run

from jesus.api.agentrun import AgentRunPhase
from jesus.logic import manifests, runs

OWNER = {"apiVersion": "jesus.dev/v1alpha1", "kind": "AgentRun", "metadata": {"name": "r", "uid": "u-1"}}


def record(calls: int = 1, artifacts: int = 1) -> dict[str, Any]:
    return {
        "outcome": "Succeeded",
        "reason": "done",
        "usage": {"inputTokens": 10 * calls, "outputTokens": 2 * calls},
        "costMicros": 7 * calls,
        "calls": [
            {
                "adapter": "ns/primary",
                "model": "m",
                "inputTokens": 10,
                "outputTokens": 2,
                "costMicros": 7,
                "latencyMs": 12.5,
                "fallbacks": [
                    {"from": "ns/flaky", "to": "ns/primary", "errorClass": "Overloaded", "reason": "503"}
                ],
            }
        ]
        * calls,
        "artifacts": [{"name": f"a{i}", "uri": f"file:///a{i}", "sizeBytes": 3} for i in range(artifacts)]
        + [{"name": "no-uri"}],
    }


@pytest.mark.parametrize(
    ("phases", "ready", "failed", "waiting", "missing"),
    [
        ({"a": AgentRunPhase.SUCCEEDED}, True, (), (), ()),
        ({"a": AgentRunPhase.RUNNING}, False, (), ("a",), ()),
        ({"a": AgentRunPhase.DENIED}, False, ("a",), (), ()),
        ({"a": None}, False, (), (), ("a",)),
    ],
)
def test_dependency_state(
    phases: dict[str, AgentRunPhase | None],
    ready: bool,
    failed: tuple[str, ...],
    waiting: tuple[str, ...],
    missing: tuple[str, ...],
) -> None:
    state = runs.dependency_state(reconciled_run(depends_on=["a"]), phases)
    assert (state.ready, state.failed, state.waiting, state.missing) == (ready, failed, waiting, missing)


def test_the_result_round_trips_through_the_termination_message() -> None:
    result = runs.parse_result(runs.summarize_record(record()))
    assert result is not None
    assert result.succeeded
    assert (result.input_tokens, result.output_tokens, result.cost_micros) == (10, 2, 7)
    assert result.calls[0].adapter == "primary"  # the router's namespace/name key becomes the name
    assert result.calls[0].fallbacks is not None
    assert result.calls[0].fallbacks[0].adapter == "flaky"
    assert result.calls[0].fallbacks[0].error_class == "Overloaded"
    assert [a.name for a in result.artifacts] == ["a0"]  # entries without a URI are left out


def test_a_long_result_keeps_its_totals_within_the_kubelet_limit() -> None:
    text = runs.summarize_record(record(calls=200, artifacts=50))
    assert len(text.encode()) <= runs.TERMINATION_MESSAGE_LIMIT
    data = json.loads(text)
    assert data["costMicros"] == 1400
    assert data["droppedCalls"] == 200 - len(data["calls"])


@pytest.mark.parametrize("message", [None, "", "not json", '{"no": "outcome"}'])
def test_unreadable_results_are_none(message: str | None) -> None:
    assert runs.parse_result(message) is None


def job(condition: str | None) -> dict[str, Any]:
    conditions = (
        [{"type": condition, "status": "True", "reason": "BackoffLimitExceeded"}] if condition else []
    )
    return {"status": {"conditions": conditions}}


def pod(message: str) -> dict[str, Any]:
    return {"status": {"containerStatuses": [{"state": {"terminated": {"exitCode": 1, "message": message}}}]}}


@pytest.mark.parametrize(
    ("obj", "state"),
    [(None, "missing"), (job(None), "active"), (job("Complete"), "succeeded"), (job("Failed"), "failed")],
)
def test_job_states(obj: dict[str, Any] | None, state: str) -> None:
    assert runs.observe_job(obj, []).state == state


def test_a_failed_job_carries_the_runners_result() -> None:
    failed = dict(record(), outcome="ModelFailed")
    observation = runs.observe_job(job("Failed"), [pod(runs.summarize_record(failed))])
    assert observation.result is not None
    assert observation.result.outcome == "ModelFailed"
    assert "BackoffLimitExceeded" in observation.message


def test_retries_back_off_exponentially_until_the_policy_is_spent() -> None:
    run = reconciled_run(retries=2, backoff=10)
    assert [runs.retry_delay(run, n) for n in (1, 2, 3)] == [
        timedelta(seconds=10),
        timedelta(seconds=20),
        None,
    ]


def test_traces_are_stable_per_run_and_distinct_per_attempt() -> None:
    assert runs.trace_id("u-1") == runs.trace_id("u-1")
    first, second = runs.traceparent("u-1", 1), runs.traceparent("u-1", 2)
    assert first.split("-")[1] == second.split("-")[1] == runs.trace_id("u-1")
    assert first != second


def test_runner_job_carries_no_credentials_and_no_api_access() -> None:
    settings = manifests.RunnerSettings()
    built = manifests.build_runner_job(
        reconciled_run(), OWNER, 2, settings, traceparent="00-x-y-01", sealed_token="sealed"
    )
    pod_spec = built["spec"]["template"]["spec"]
    container = pod_spec["containers"][0]
    assert built["metadata"]["name"] == manifests.job_name("r", 2)
    assert built["spec"]["backoffLimit"] == 0
    assert built["spec"]["activeDeadlineSeconds"] > 120
    assert pod_spec["automountServiceAccountToken"] is False
    assert built["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    env = {e["name"]: e for e in container["env"]}
    # The token travels sealed; the key that opens it comes from the namespace's Secret, not the spec.
    assert env["JESUS_ROUTER_TOKEN_SEALED"]["value"] == "sealed"
    assert env["JESUS_RUNNER_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "jesus-runner-key", "key": "key"}
    assert "JESUS_ROUTER_TOKEN" not in env
    assert not [e for name, e in env.items() if ("KEY" in name or "SECRET" in name) and "value" in e]
    assert json.loads(env["JESUS_RUN_SPEC"]["value"])["routePolicyRef"] == {"name": "route"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_long_run_names_still_give_valid_job_names() -> None:
    name = manifests.job_name("x" * 250, 10)
    assert len(name) <= 52
    assert name != manifests.job_name("x" * 249 + "y", 10)


def test_totals_sum_every_call_of_every_attempt() -> None:
    first = runs.parse_result(runs.summarize_record(record(calls=2)))
    second = runs.parse_result(runs.summarize_record(record(calls=3)))
    assert first is not None
    assert second is not None
    summed = runs.totals([*first.calls, *second.calls])
    assert (summed.usage.input_tokens, summed.usage.output_tokens, summed.cost_micros) == (50, 10, 35)


def test_the_runner_job_carries_the_offered_lessons_only_when_there_are_some() -> None:
    from jesus.logic.lessons import LESSONS_VARIABLE, parse_lessons
    from jesus.logic.reflection import OfferedLesson

    settings = manifests.RunnerSettings()
    offered = (OfferedLesson("l-1", "Quote the figures."),)
    built = manifests.build_runner_job(
        reconciled_run(), OWNER, 1, settings, traceparent="t", sealed_token="sealed", lessons=offered
    )
    env = {e["name"]: e.get("value") for e in built["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert parse_lessons(env[LESSONS_VARIABLE]) == (offered, None)
    bare = manifests.build_runner_job(
        reconciled_run(), OWNER, 1, settings, traceparent="t", sealed_token="sealed"
    )
    assert LESSONS_VARIABLE not in {
        e["name"] for e in bare["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_the_result_carries_the_reflection_verdict_and_reads_it_defensively() -> None:
    record = {
        "outcome": "Succeeded",
        "reflection": {"passed": False, "failed": ["evidence"], "items": ["x" * 5000]},
    }
    message = runs.summarize_record(record)
    assert len(message) < 1000, "the items and the reflection stay in the artifacts"
    parsed = runs.parse_result(message)
    assert parsed is not None and parsed.reflection == runs.ReflectionSummary(False, ("evidence",))
    assert parsed.reflection.describe() == "the reflection failed LAW-REFLECT-001 on: evidence"
    assert runs.parse_result(runs.summarize_record({"outcome": "Succeeded"})).reflection is None  # type: ignore[union-attr]


def test_a_token_secret_of_a_job_made_before_sealing_still_gives_its_token_or_none() -> None:
    # Jobs made before tokens were sealed into them are metered from their Secret.
    assert manifests.secret_token({"data": {"token": "anIyLmEuYg=="}}) == "jr2.a.b"
    assert manifests.secret_token({"stringData": {"token": "jr2.a.b"}}) == "jr2.a.b"
    assert manifests.secret_token({"data": {"token": "%%%"}}) is None  # careless: not base64
    assert manifests.secret_token({"data": {}}) is None
    assert manifests.secret_token({}) is None
