"""What a provider can do and how its answers differ, as data.

A `ProviderProfile` is everything the adapters need to know about one provider that is not code:
capabilities, defaults, the request field names it expects, the wording of its errors and its list
prices. The registry (`jesus_adapters.registry.PROVIDERS`) maps provider names to profiles; nothing
branches on a provider's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from jesus_adapters.types import AdapterConfig, Price

if TYPE_CHECKING:
    from jesus_adapters.base import ModelAdapter


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider's endpoint supports.

    `streaming_usage` says whether the endpoint reports usage on a stream when asked
    (`stream_options.include_usage` on OpenAI-style servers); where it does not, the adapter
    estimates usage. `max_context_tokens` is informative (for planning); `None` means the server
    decides (self-hosted engines are started with their own context size).
    """

    tool_calling: bool = True
    streaming: bool = True
    streaming_usage: bool = True
    max_context_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ErrorWording:
    """Lower-case phrases, codes or error types that identify a failure class in an error answer.

    Providers report "context too long" and "content filtered" as plain 400s; these markers tell
    them apart from other invalid requests. Matched as substrings of the error's message, type and
    code, case-insensitively.
    """

    context_too_long: tuple[str, ...] = ()
    content_filtered: tuple[str, ...] = ()
    # A 429 or 400 that no retry can fix (an account out of quota or credit), treated as an
    # authentication failure.
    quota_exhausted: tuple[str, ...] = ()


AdapterFactory = Callable[[AdapterConfig, "ProviderProfile"], "ModelAdapter"]


@dataclass(frozen=True, slots=True)
class ProviderProfile:
    """One provider: how to build its adapter and how its endpoint behaves.

    `factory` builds the adapter (the wire protocol: Anthropic Messages, OpenAI Chat Completions,
    scripted). `max_tokens_field` is the request field that caps the answer's length.
    `default_prices` are list prices per model, used when a ModelAdapter spec gives none.
    """

    name: str
    factory: AdapterFactory
    description: str
    capabilities: Capabilities = field(default_factory=Capabilities)
    default_base_url: str | None = None
    requires_api_key: bool = True
    needs_endpoint: bool = True  # False for adapters that never call out (scripted)
    max_tokens_field: str = "max_tokens"
    error_wording: ErrorWording = field(default_factory=ErrorWording)
    default_prices: Mapping[str, Price] = field(default_factory=dict)

    def default_price(self, model: str) -> Price | None:
        """The list price of `model`, or `None` when this profile does not know it."""
        return self.default_prices.get(model)
