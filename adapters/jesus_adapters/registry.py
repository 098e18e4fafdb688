"""The provider registry: every provider's profile, as data, and `build_adapter`.

Adding a provider that speaks a known wire protocol is one entry in `PROVIDERS`; nothing else
branches on provider names.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from urllib.parse import urlsplit

from jesus_adapters.base import ModelAdapter
from jesus_adapters.errors import AdapterConfigError
from jesus_adapters.prices import ANTHROPIC_PRICES, OPENAI_PRICES
from jesus_adapters.profiles import AdapterFactory, Capabilities, ErrorWording, ProviderProfile
from jesus_adapters.scripted import ScriptedAdapter
from jesus_adapters.types import AdapterConfig, Price

_OPENAI_WORDING = ErrorWording(
    context_too_long=("context_length_exceeded", "maximum context length", "context window"),
    content_filtered=("content_filter", "content_policy_violation", "content management policy"),
    quota_exhausted=("insufficient_quota",),
)
_VLLM_WORDING = ErrorWording(
    # "This model's maximum context length is 4096 tokens. However, you requested ..."
    context_too_long=("maximum context length", "context length", "please reduce the length"),
)
_LLAMACPP_WORDING = ErrorWording(
    # llama-server: {"error": {"type": "exceed_context_size_error", "message": "the request exceeds the
    # available context size, try increasing it", ...}}; llama-cpp-python's server words it as OpenAI
    # does: "This model's maximum context length is 2048 tokens. However, you requested ..."
    context_too_long=(
        "exceed_context_size",
        "exceeds the available context size",
        "context size",
        "maximum context length",
    ),
)
_ANTHROPIC_WORDING = ErrorWording(
    # "prompt is too long: 208310 tokens > 200000 maximum"
    context_too_long=("prompt is too long", "context window", "context length"),
    content_filtered=("output blocked by content filtering",),
    # "Your credit balance is too low to access the Anthropic API."
    quota_exhausted=("credit balance is too low",),
)
# Any OpenAI-compatible server: the union of the known wordings.
_COMPATIBLE_WORDING = ErrorWording(
    context_too_long=tuple(
        dict.fromkeys(
            _OPENAI_WORDING.context_too_long
            + _VLLM_WORDING.context_too_long
            + _LLAMACPP_WORDING.context_too_long
        )
    ),
    content_filtered=_OPENAI_WORDING.content_filtered,
    quota_exhausted=_OPENAI_WORDING.quota_exhausted,
)


@cache
def _adapter_class(module: str, name: str) -> AdapterFactory:
    factory: AdapterFactory = getattr(importlib.import_module(f"jesus_adapters.{module}"), name)
    return factory


def _on_first_use(module: str, name: str) -> AdapterFactory:
    """The adapter class `name` of `jesus_adapters.<module>`, imported when the first adapter is built:
    each provider SDK costs 40-45 MiB and seconds of start-up, paid only by a process that uses it."""

    def build(config: AdapterConfig, profile: ProviderProfile) -> ModelAdapter:
        return _adapter_class(module, name)(config, profile)

    build.__qualname__ = build.__name__ = name
    return build


_ANTHROPIC = _on_first_use("anthropic_messages", "AnthropicAdapter")
_OPENAI_CHAT = _on_first_use("openai_chat", "OpenAIChatAdapter")

PROVIDERS: Mapping[str, ProviderProfile] = {
    profile.name: profile
    for profile in (
        ProviderProfile(
            name="anthropic",
            factory=_ANTHROPIC,
            description="Anthropic Messages API through the official anthropic SDK",
            capabilities=Capabilities(max_context_tokens=200_000),
            default_base_url="https://api.anthropic.com",
            error_wording=_ANTHROPIC_WORDING,
            default_prices=ANTHROPIC_PRICES,
        ),
        ProviderProfile(
            name="openai",
            factory=_OPENAI_CHAT,
            description="OpenAI Chat Completions through the official openai SDK",
            capabilities=Capabilities(max_context_tokens=128_000),
            default_base_url="https://api.openai.com/v1",
            # Newer OpenAI models reject max_tokens; max_completion_tokens works for all of them.
            max_tokens_field="max_completion_tokens",
            error_wording=_OPENAI_WORDING,
            default_prices=OPENAI_PRICES,
        ),
        ProviderProfile(
            name="openai-compatible",
            factory=_OPENAI_CHAT,
            description="Any server that speaks OpenAI Chat Completions (endpoint URL required)",
            requires_api_key=False,
            error_wording=_COMPATIBLE_WORDING,
        ),
        ProviderProfile(
            name="vllm",
            factory=_OPENAI_CHAT,
            description=(
                "vLLM's OpenAI-compatible server; tool calls need --enable-auto-tool-choice and a "
                "--tool-call-parser"
            ),
            requires_api_key=False,  # only when the server was started with --api-key
            error_wording=_VLLM_WORDING,
        ),
        ProviderProfile(
            name="llamacpp",
            factory=_OPENAI_CHAT,
            description="llama.cpp's llama-server; tool calls need --jinja",
            requires_api_key=False,
            error_wording=_LLAMACPP_WORDING,
        ),
        ProviderProfile(
            name="scripted",
            factory=ScriptedAdapter,
            description="Canned replies for dry runs; no network, usage estimated, priced as if real",
            requires_api_key=False,
            needs_endpoint=False,
        ),
    )
}


def profile_for(provider: str) -> ProviderProfile:
    """The profile of `provider`; `AdapterConfigError` naming the known ones when there is none."""
    try:
        return PROVIDERS[provider]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise AdapterConfigError(f"unknown provider {provider!r} (known providers: {known})") from None


def effective_price(config: AdapterConfig) -> Price:
    """The price to meter `config`'s calls with: its own, else the model's list price, else zero."""
    if config.price != Price():
        return config.price
    return profile_for(config.provider).default_price(config.model) or Price()


def build_adapter(config: AdapterConfig) -> ModelAdapter:
    """Build the adapter for one model endpoint.

    Raises `AdapterConfigError` for an unknown provider, a missing API key where the provider
    needs one, or a missing or unusable endpoint URL.
    """
    profile = profile_for(config.provider)
    where = f"provider {config.provider!r}, model {config.model!r}"
    if not config.model:
        raise AdapterConfigError(f"{where}: model name is empty")
    if profile.requires_api_key and not config.api_key:
        raise AdapterConfigError(f"{where}: an API key is required (apiKey secret reference)")
    base_url = config.base_url or profile.default_base_url
    if profile.needs_endpoint:
        if base_url is None:
            raise AdapterConfigError(f"{where}: an endpoint URL is required")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AdapterConfigError(f"{where}: endpoint URL {base_url!r} is not an http(s) URL")
    return profile.factory(config, profile)
