"""Model adapters for Jesus: one adapter per provider over the official SDKs.

This package never imports `jesus`; the operator, the router and the runner import it.
"""

from jesus_adapters.errors import AdapterError, ErrorKind
from jesus_adapters.types import (
    AdapterConfig,
    ChatRequest,
    ChatResponse,
    Message,
    Price,
    StreamEvent,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = [
    "AdapterConfig",
    "AdapterError",
    "ChatRequest",
    "ChatResponse",
    "ErrorKind",
    "Message",
    "Price",
    "StreamEvent",
    "ToolCall",
    "ToolSpec",
    "Usage",
]
