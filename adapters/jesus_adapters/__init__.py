"""Model adapters for Jesus: one adapter per provider over the official SDKs.

This package never imports `jesus`; the operator, the router and the runner import it.
Build an adapter with `build_adapter(AdapterConfig(...))`; `PROVIDERS` lists the providers.
"""

from jesus_adapters.base import ModelAdapter
from jesus_adapters.errors import AdapterConfigError, AdapterError, ErrorKind
from jesus_adapters.profiles import Capabilities, ErrorWording, ProviderProfile
from jesus_adapters.registry import PROVIDERS, build_adapter, effective_price, profile_for
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
