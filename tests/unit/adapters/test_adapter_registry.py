"""The provider registry: profiles as data, `build_adapter`, prices."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.builders.adapters import adapter_config

from jesus_adapters import (
    PROVIDERS,
    AdapterConfigError,
    Price,
    build_adapter,
    effective_price,
    profile_for,
)
from jesus_adapters.prices import usd
from jesus_adapters.types import MICROS_PER_UNIT

REPO = Path(__file__).resolve().parents[3]

PROVIDERS_NAMED_BY_THE_DESIGN = {"anthropic", "openai", "openai-compatible", "vllm", "llamacpp", "scripted"}


def test_every_provider_of_the_design_has_a_profile() -> None:
    assert set(PROVIDERS) == PROVIDERS_NAMED_BY_THE_DESIGN
    for name, profile in PROVIDERS.items():
        assert profile.name == name
        assert profile.description


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_build_adapter_builds_each_provider(provider: str) -> None:
    adapter = build_adapter(adapter_config(provider, "http://127.0.0.1:9/v1"))

    assert adapter.provider == provider
    assert adapter.model == "test-model"
    await adapter.aclose()


def test_self_hosted_profiles_differ_where_their_servers_do() -> None:
    vllm, llamacpp, openai = PROVIDERS["vllm"], PROVIDERS["llamacpp"], PROVIDERS["openai"]

    assert not vllm.requires_api_key
    assert not llamacpp.requires_api_key
    assert openai.requires_api_key
    assert openai.max_tokens_field != vllm.max_tokens_field
    assert vllm.error_wording.context_too_long != llamacpp.error_wording.context_too_long
    assert vllm.default_base_url is None  # a self-hosted engine has no default address


def test_an_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(AdapterConfigError) as caught:
        build_adapter(adapter_config("bedrock", "http://127.0.0.1:9"))

    message = str(caught.value)
    assert "'bedrock'" in message
    for name in PROVIDERS:
        assert name in message


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_hosted_providers_need_a_key(provider: str) -> None:
    with pytest.raises(AdapterConfigError, match="API key"):
        build_adapter(adapter_config(provider, None, api_key=None))


@pytest.mark.parametrize("provider", ["openai-compatible", "vllm", "llamacpp"])
def test_self_hosted_providers_need_an_endpoint(provider: str) -> None:
    with pytest.raises(AdapterConfigError, match="endpoint URL is required"):
        build_adapter(adapter_config(provider, None))


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1", "ftp://models.internal/v1", "http://"])
def test_an_unusable_endpoint_is_refused(url: str) -> None:
    with pytest.raises(AdapterConfigError, match="not an http"):
        build_adapter(adapter_config("vllm", url))


def test_an_empty_model_name_is_refused() -> None:
    with pytest.raises(AdapterConfigError, match="model name is empty"):
        build_adapter(adapter_config("vllm", "http://127.0.0.1:9/v1", model=""))


def test_the_spec_price_wins_over_the_list_price() -> None:
    listed = PROVIDERS["anthropic"].default_price("claude-haiku-4-5")
    own = Price(input_micros_per_mtok=1, output_micros_per_mtok=2)

    assert listed is not None
    assert effective_price(adapter_config("anthropic", None, model="claude-haiku-4-5", price=own)) == own
    assert (
        effective_price(adapter_config("anthropic", None, model="claude-haiku-4-5", price=Price())) == listed
    )


def test_a_model_without_a_list_price_costs_nothing_by_default() -> None:
    assert effective_price(adapter_config("vllm", None, model="llama-3.1-8b", price=Price())) == Price()


def test_list_prices_are_positive_whole_micros() -> None:
    for profile in PROVIDERS.values():
        for model, price in profile.default_prices.items():
            assert price.input_micros_per_mtok > 0, model
            assert price.output_micros_per_mtok >= price.input_micros_per_mtok, model


@pytest.mark.parametrize(
    ("amount", "micros"),
    [("3", 3 * MICROS_PER_UNIT), ("0.80", 800_000), ("1.25", 1_250_000), ("0.000001", 1), (".5", 500_000)],
)
def test_usd_reads_decimal_strings_exactly(amount: str, micros: int) -> None:
    assert usd(amount, amount) == Price(micros, micros)


def test_usd_refuses_sub_micro_amounts() -> None:
    with pytest.raises(ValueError, match="six decimal places"):
        usd("0.0000001", "1")


def test_profile_for_raises_the_config_error() -> None:
    with pytest.raises(AdapterConfigError):
        profile_for("nope")
    assert profile_for("vllm") is PROVIDERS["vllm"]


def test_a_provider_sdk_is_imported_only_when_an_adapter_of_it_is_built() -> None:
    # A fresh interpreter: this one has imported every SDK already.
    script = """
import sys
from jesus_adapters import AdapterConfig, build_adapter
from jesus_adapters.registry import PROVIDERS
loaded = lambda: sorted(m for m in ("anthropic", "openai") if m in sys.modules)
print(loaded())
build_adapter(AdapterConfig(provider="vllm", model="m", base_url="http://127.0.0.1:9/v1"))
print(loaded())
adapter = build_adapter(AdapterConfig(provider="anthropic", model="m", api_key="k"))
print(loaded(), type(adapter).__name__)
"""
    paths = [str(REPO / "adapters"), str(REPO)]
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": ":".join(paths)},
    )
    assert done.stdout.splitlines() == ["[]", "['openai']", "['anthropic', 'openai'] AnthropicAdapter"]
