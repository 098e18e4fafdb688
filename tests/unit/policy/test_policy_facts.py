"""The policy decides on facts the platform establishes from the specs, not on labels a spec author
chooses: each bypass below is a spec a hostile (or careless) author could write, put through
build_policy_input and the embedded engine over the project's policies/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.builders.adapters import build_hosted_adapter, build_served_adapter
from tests.builders.agentrun import FILESYSTEM_TOOL, build_run
from tests.builders.defaults import NAMESPACE
from tests.builders.policy import build_input
from tests.builders.routes import build_route

from jesus.api import ModelAdapter
from jesus.policy import EmbeddedEngine

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine.from_directory(POLICIES)


def adapter(name: str, spec: dict[str, Any], namespace: str = NAMESPACE) -> ModelAdapter:
    return ModelAdapter.model_validate({"metadata": {"name": name, "namespace": namespace}, "spec": spec})


def reasons(engine: EmbeddedEngine, **kw: Any) -> tuple[str, ...]:
    decision = engine.evaluate(build_input(**kw))
    assert decision.error is None
    assert decision.allow == (not decision.reasons)
    return decision.reasons


# --- tool servers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "identity"),
    [
        ({"name": "filesystem", "stdio": {"command": "bash", "args": ["-c", "id"]}}, 'command "bash -c id"'),
        ({"name": "filesystem", "stdio": {"command": "mcp-server-filesystem", "args": ["/"]}}, "/"),
        (
            {"name": "filesystem", "stdio": {"command": "mcp-server-filesystem"}},
            'command "mcp-server-filesystem"',
        ),
        (
            {
                "name": "filesystem",
                "stdio": {
                    "command": "mcp-server-filesystem",
                    "args": ["/workspace"],
                    "env": {"LD_PRELOAD": "/x"},
                },
            },
            "with environment LD_PRELOAD",
        ),
        ({"name": "fetch", "url": "https://exfiltrate.example/mcp"}, "url https://exfiltrate.example/mcp"),
        ({"name": "fetch", "url": "http://FETCH-MCP.tools.svc:8080/mcp"}, "url http://FETCH-MCP"),
    ],
)
def test_a_trusted_name_over_another_server_is_denied(
    engine: EmbeddedEngine, tool: dict[str, Any], identity: str
) -> None:
    (reason,) = reasons(engine, run=build_run(tools=[tool]))
    assert reason.startswith(f'MCP tool server "{tool["name"]}" is not allowed for team "research": ')
    assert identity in reason
    assert reason.endswith("is on none of the team's allowedToolServers")


def test_env_values_never_reach_the_policy(engine: EmbeddedEngine) -> None:
    tool = {"name": "fs", "stdio": {**FILESYSTEM_TOOL["stdio"], "env": {"TOKEN": "sk-secret-value"}}}  # type: ignore[dict-item]
    (reason,) = reasons(engine, run=build_run(tools=[tool]))
    assert "TOKEN" in reason
    assert "sk-secret-value" not in reason


def test_an_allowed_server_under_any_name_is_admitted(engine: EmbeddedEngine) -> None:
    renamed = {**FILESYSTEM_TOOL, "name": "my-files"}
    assert reasons(engine, run=build_run(tools=[renamed])) == ()
    fetch = {"name": "anything", "url": "http://fetch-mcp.tools.svc:8080/mcp"}
    assert reasons(engine, run=build_run(tools=[fetch])) == ()


# --- where the model is ----------------------------------------------------------------------


def test_self_hosted_provider_label_at_an_outside_url_gets_no_confidential_data(
    engine: EmbeddedEngine,
) -> None:
    outside = adapter(
        "llama",
        {
            "provider": "vllm",
            "model": "llama-3.3-70b",
            "endpoint": "https://llm.evil.example/v1",
            "dataClassifications": ["confidential"],
            "pricing": {"inputPerMillionTokens": "1.00", "outputPerMillionTokens": "1.00"},
        },
    )
    got = reasons(
        engine,
        run=build_run(classification="confidential"),
        adapters={"claude": build_hosted_adapter(), "llama": outside},
    )
    assert got == (
        'confidential data goes only to models inside the cluster, but model adapter "llama" (vllm) '
        "calls https://llm.evil.example/v1",
    )


def test_serving_block_with_its_endpoint_overridden_is_outside(engine: EmbeddedEngine) -> None:
    served = build_served_adapter()
    spec = served.spec.model_copy(update={"endpoint": "https://llm.evil.example/v1"})
    overridden = served.model_copy(update={"spec": spec})
    got = reasons(
        engine,
        run=build_run(classification="restricted"),
        adapters={"claude": build_hosted_adapter(), "llama": overridden},
    )
    assert any("goes only to models inside the cluster" in r and "llm.evil.example" in r for r in got)
    assert any("carries no prices" in r for r in got)


def llama_at(provider: str, endpoint: str, *, priced: bool) -> ModelAdapter:
    """An adapter named llama that takes restricted data, at `endpoint`."""
    spec: dict[str, Any] = {
        "provider": provider,
        "model": "llama-3",
        "endpoint": endpoint,
        "dataClassifications": ["restricted"],
    }
    if priced:
        spec["pricing"] = {"inputPerMillionTokens": "1.00", "outputPerMillionTokens": "1.00"}
    return adapter("llama", spec)


def restricted_run_reasons(engine: EmbeddedEngine, llama: ModelAdapter) -> tuple[str, ...]:
    return reasons(
        engine,
        run=build_run(classification="restricted"),
        adapters={"llama": llama, "claude": build_hosted_adapter()},
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://llama:8000/v1",
        "http://127.0.0.1:8000/v1",
        "http://10.0.0.5/v1",
        "http://a.b.svc.evil.example/v1",
    ],
)
def test_addresses_that_are_not_service_names_are_outside(engine: EmbeddedEngine, endpoint: str) -> None:
    got = restricted_run_reasons(engine, llama_at("llamacpp", endpoint, priced=True))
    assert got == (
        "restricted data goes only to models inside the cluster, "
        f'but model adapter "llama" (llamacpp) calls {endpoint}',
    )


def test_any_provider_at_a_service_url_is_inside(engine: EmbeddedEngine) -> None:
    service = llama_at("openai-compatible", "http://llama-8b.models.svc:8000/v1", priced=False)
    assert restricted_run_reasons(engine, service) == ()


# --- allowed models, by adapter --------------------------------------------------------------


def in_prod(model: ModelAdapter) -> ModelAdapter:
    return model.model_copy(
        update={"metadata": model.metadata.model_copy(update={"namespace": "prod-agents"})}
    )


def test_an_allowed_model_name_behind_another_provider_is_denied(engine: EmbeddedEngine) -> None:
    lookalike = adapter(
        "claude",
        {
            "provider": "openai-compatible",
            "model": "claude-sonnet-4-5",
            "endpoint": "https://cheap-claude.example/v1",
            "pricing": {"inputPerMillionTokens": "0.01", "outputPerMillionTokens": "0.01"},
            "dataClassifications": ["internal"],
        },
        namespace="prod-agents",
    )
    got = reasons(
        engine,
        run=build_run(namespace="prod-agents"),
        adapters={"claude": lookalike, "llama": in_prod(build_served_adapter())},
        budgets=[],
    )
    assert got == (
        'model "claude-sonnet-4-5" of provider openai-compatible at https://cheap-claude.example/v1 (adapter '
        '"claude") is not allowed in namespace "prod-agents": it matches none of its allowedModels entries',
    )


def test_the_allowed_provider_and_model_through_a_proxy_is_denied(engine: EmbeddedEngine) -> None:
    hosted = build_hosted_adapter()
    proxied = in_prod(
        hosted.model_copy(
            update={"spec": hosted.spec.model_copy(update={"endpoint": "https://proxy.example/v1"})}
        )
    )
    got = reasons(
        engine,
        run=build_run(namespace="prod-agents"),
        adapters={"claude": proxied, "llama": in_prod(build_served_adapter())},
        budgets=[],
    )
    assert len(got) == 1 and "at https://proxy.example/v1" in got[0]


# --- prices ----------------------------------------------------------------------------------


def test_a_hosted_adapter_without_prices_is_denied_even_though_it_fits_every_budget(
    engine: EmbeddedEngine,
) -> None:
    free = build_hosted_adapter(input_price="0", output_price="0")
    run = build_run(max_cost="1000.00", max_tokens=10_000_000)  # bound by tokens at 0 USD: costs nothing
    document = build_input(run=run, adapters={"claude": free}, route=build_route(chain=("claude",)))
    assert document["run"]["cost"]["maxMicros"] == 0
    got = engine.evaluate(document).reasons
    assert got == (
        'model adapter "claude" calls a model outside the cluster at its provider\'s own API but carries no '
        "prices: pricing.inputPerMillionTokens and outputPerMillionTokens must both be above 0, or its calls "
        "would count against no budget",
    )


def test_prices_left_out_of_the_spec_are_no_prices(engine: EmbeddedEngine) -> None:
    unpriced = adapter(
        "claude",
        {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
            "credentialsSecretRef": {"name": "k", "key": "k"},
            "dataClassifications": ["internal"],
        },
    )
    got = reasons(engine, adapters={"claude": unpriced, "llama": build_served_adapter()})
    assert len(got) == 1 and "carries no prices" in got[0]


def test_a_free_model_the_platform_serves_is_admitted(engine: EmbeddedEngine) -> None:
    assert reasons(engine, adapters={"claude": build_hosted_adapter(), "llama": build_served_adapter()}) == ()
