"""Model adapters for Jesus: one adapter per provider over the official SDKs.

This package never imports `jesus`; the operator, the router and the runner import it.
Build an adapter with `build_adapter(AdapterConfig(...))`; `PROVIDERS` lists the providers.
"""

from typing import TYPE_CHECKING

from jesus_adapters.base import ModelAdapter
from jesus_adapters.errors import AdapterConfigError, AdapterError, ErrorKind
from jesus_adapters.profiles import Capabilities, ErrorWording, ProviderProfile
from jesus_adapters.types import (
    AdapterConfig,
    ChatRequest,
    ChatResponse,
    Message,
    Price,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolSpec,
    Usage,
)

if TYPE_CHECKING:
    from jesus_adapters.registry import PROVIDERS, build_adapter, effective_price, profile_for

# The registry imports every provider SDK (seconds of start-up); callers that only need the types, such
# as the runner in its pod, should not pay for it, so these names load on first use.
_REGISTRY_NAMES = frozenset({"PROVIDERS", "build_adapter", "effective_price", "profile_for"})


def __getattr__(name: str) -> object:
    if name in _REGISTRY_NAMES:
        from jesus_adapters import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PROVIDERS",
    "AdapterConfig",
    "AdapterConfigError",
    "AdapterError",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "ErrorKind",
    "ErrorWording",
    "Message",
    "ModelAdapter",
    "Price",
    "ProviderProfile",
    "StreamDone",
    "StreamEvent",
    "TextDelta",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "build_adapter",
    "effective_price",
    "profile_for",
]
