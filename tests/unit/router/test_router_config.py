"""How the router builds its adapters from ModelAdapters: where credentials come from, dry-run
stand-ins, scripted failures in their turn, and errors that name the adapter and the variable to set."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from tests.builders.adapters import openai_adapter, scripted_adapter, vllm_adapter
from tests.builders.manifest import set_field

from jesus.api import ModelAdapter
from jesus.logic.routing import BreakerConfig, RetryPolicy, RoutePlan
from jesus.router import RouteError, Router, RunLedger
from jesus.router.config import (
    EnvironmentCredentials,
    FirstOf,
    MountedSecretCredentials,
    RouterConfigError,
    build_routed_adapters,
    secret_variable,
)
from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.types import ChatRequest, Message

HI = ChatRequest(messages=(Message("user", "hi"),))


def adapter(obj: dict[str, object]) -> ModelAdapter:
    return ModelAdapter.model_validate(obj)


class Nothing:
    def lookup(self, namespace: str, secret: str, key: str, provider: str) -> str | None:
        return None


def test_the_secret_variable_is_the_upper_cased_secret_and_key() -> None:
    assert secret_variable("openai-key", "apiKey") == "OPENAI_KEY_APIKEY"
    assert secret_variable("a.b/c", "d e") == "A_B_C_D_E"


def test_environment_credentials_prefer_the_secret_variable_over_the_provider_one() -> None:
    both = EnvironmentCredentials({"OPENAI_KEY_APIKEY": "from-secret", "OPENAI_API_KEY": "from-provider"})
    assert both.lookup("ns", "openai-key", "apiKey", "openai") == "from-secret"
    provider_only = EnvironmentCredentials({"OPENAI_KEY_APIKEY": "", "OPENAI_API_KEY": "from-provider"})
    assert provider_only.lookup("ns", "openai-key", "apiKey", "openai") == "from-provider"
    assert provider_only.lookup("ns", "vllm-key", "token", "vllm") is None


def test_mounted_secrets_are_read_per_namespace_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "team" / "openai-key").mkdir(parents=True)
    (tmp_path / "team" / "openai-key" / "apiKey").write_text("  sk-mounted\n")
    (tmp_path / "team" / "openai-key" / "empty").write_text("\n")
    mounted = MountedSecretCredentials(tmp_path)
    assert mounted.lookup("team", "openai-key", "apiKey", "openai") == "sk-mounted"
    assert mounted.lookup("other", "openai-key", "apiKey", "openai") is None
    assert mounted.lookup("team", "openai-key", "empty", "openai") is None
    chained = FirstOf((Nothing(), mounted, EnvironmentCredentials({"OPENAI_API_KEY": "env"})))
    assert chained.lookup("team", "openai-key", "apiKey", "openai") == "sk-mounted"
    assert chained.lookup("other", "openai-key", "apiKey", "openai") == "env"
    assert FirstOf((Nothing(),)).lookup("team", "s", "k", "openai") is None


async def test_without_live_a_real_provider_is_a_dry_run_stand_in_priced_like_it() -> None:
    built = build_routed_adapters(
        {"openai": adapter(openai_adapter(namespace="team"))}, live=False, credentials=Nothing()
    )
    assert built.dry_run == ("openai",)
    routed = built.adapters["openai"]
    assert (routed.price.input_micros_per_mtok, routed.price.output_micros_per_mtok) == (400_000, 1_600_000)
    assert routed.rate_limit is not None
    reply = await routed.adapter.complete(HI, timeout_seconds=5)
    assert "dry run: openai model gpt-4.1-mini was not called" in reply.content


def test_live_without_a_credential_names_the_adapter_and_both_variables() -> None:
    with pytest.raises(RouterConfigError) as caught:
        build_routed_adapters(
            {"hosted": adapter(openai_adapter(namespace="team"))}, live=True, credentials=Nothing()
        )
    assert str(caught.value) == (
        "ModelAdapter hosted: no credential for Secret openai-key key apiKey; locally, set "
        "OPENAI_KEY_APIKEY or OPENAI_API_KEY"
    )


def test_live_with_a_credential_builds_the_provider_adapter() -> None:
    built = build_routed_adapters(
        {"hosted": adapter(openai_adapter(namespace="team"))},
        live=True,
        credentials=EnvironmentCredentials({"OPENAI_API_KEY": "sk-test"}),
    )
    assert built.dry_run == ()
    assert (built.adapters["hosted"].adapter.provider, built.adapters["hosted"].adapter.model) == (
        "openai",
        "gpt-4.1-mini",
    )


def test_live_self_hosted_without_an_endpoint_is_refused_naming_the_adapter() -> None:
    # Served by the operator, but not observed yet: no endpoint in the spec nor in the status.
    with pytest.raises(RouterConfigError, match=r"^ModelAdapter local: .*an endpoint URL is required"):
        build_routed_adapters(
            {"local": adapter(vllm_adapter(namespace="team"))}, live=True, credentials=Nothing()
        )


async def test_scripted_failures_come_in_their_turn_and_the_last_one_repeats() -> None:
    script = set_field(
        scripted_adapter(namespace="team"),
        "spec.scripted.replies",
        [
            {"error": {"class": "RateLimited", "message": "slow down"}},
            {"text": "second", "usage": {"inputTokens": 3, "outputTokens": 4}},
            {"error": {"class": "Overloaded"}},
        ],
    )
    built = build_routed_adapters({"s": adapter(script)}, live=False, credentials=Nothing())
    scripted = built.adapters["s"].adapter
    assert (scripted.provider, scripted.model) == ("scripted", "scripted-1")
    with pytest.raises(AdapterError) as first:
        await scripted.complete(HI, timeout_seconds=5)
    assert (first.value.kind, first.value.provider) == (ErrorKind.RATE_LIMITED, "scripted")
    assert str(first.value) == "scripted: RateLimited: slow down"
    reply = await scripted.complete(HI, timeout_seconds=5)
    assert (reply.content, reply.usage.input_tokens, reply.usage.output_tokens) == ("second", 3, 4)
    for _ in range(2):  # a script that ends on an error repeats it
        with pytest.raises(AdapterError) as again:
            [event async for event in scripted.stream(HI, timeout_seconds=5)]
        assert again.value.kind is ErrorKind.OVERLOADED
        assert str(again.value) == "scripted: Overloaded: scripted Overloaded"
    await scripted.aclose()


async def test_a_scripted_stream_without_errors_plays_its_replies() -> None:
    script = set_field(
        scripted_adapter(namespace="team"),
        "spec.scripted.replies",
        [
            {"toolCalls": [{"name": "look", "arguments": {"q": "x"}}]},
            {"error": {"class": "Timeout"}},
            {"text": "done"},
        ],
    )
    scripted = (
        build_routed_adapters({"s": adapter(script)}, live=False, credentials=Nothing()).adapters["s"].adapter
    )
    first = await scripted.complete(HI, timeout_seconds=5)
    assert first.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("look", {"q": "x"})]
    with pytest.raises(AdapterError):
        await scripted.complete(HI, timeout_seconds=5)
    events = [event async for event in scripted.stream(HI, timeout_seconds=5)]
    assert events, "the third turn streams its reply"


def run_call(run: str) -> ChatRequest:
    """HI as the router sends it for one run of namespace team."""
    return replace(HI, metadata={"run": run, "namespace": "team"})


async def test_a_dry_run_never_runs_out_of_replies_for_any_run() -> None:
    built = build_routed_adapters(
        {"openai": adapter(openai_adapter(namespace="team"))}, live=False, credentials=Nothing()
    )
    stand_in = built.adapters["openai"].adapter

    async def many(run: str) -> list[str]:
        return [(await stand_in.complete(run_call(run), timeout_seconds=5)).content for _ in range(100)]

    answers = await asyncio.gather(*(many(f"run-{number}") for number in range(5)))

    assert {len(run_answers) for run_answers in answers} == {100}
    assert all("dry run: openai model gpt-4.1-mini was not called" in text for text in answers[0])


async def test_concurrent_runs_play_a_scripted_model_adapter_each_from_the_start() -> None:
    script = set_field(
        scripted_adapter(namespace="team"),
        "spec.scripted.replies",
        [{"error": {"class": "Overloaded"}}, {"text": "first"}, {"text": "second"}],
    )
    built = build_routed_adapters({"s": adapter(script)}, live=False, credentials=Nothing())
    # Six runs meet their Overloaded turn at once; the breaker is not what this test is about.
    router = Router(
        built.adapters, breaker=BreakerConfig(failure_threshold=100), sleep=lambda _: asyncio.sleep(0)
    )
    plan = RoutePlan(chain=("s",), retry=RetryPolicy(max_retries=1, backoff_base_seconds=0.0))

    async def play(run: str) -> list[str]:
        ledger = RunLedger(run)
        texts = []
        for _ in range(2):
            texts.append((await router.complete(plan, run_call(run), ledger)).response.content)
        with pytest.raises(RouteError) as caught:
            await router.complete(plan, run_call(run), ledger)
        assert "no scripted reply left for call 4 (3 scripted) of run team/" + run in caught.value.reason
        return texts

    played = await asyncio.gather(*(play(f"run-{number}") for number in range(6)))

    # Every run met the Overloaded turn (retried), then its own two replies, then a clear end.
    assert played == [["first", "second"]] * 6
