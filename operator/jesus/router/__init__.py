"""The router: walks a run's fallback chain over model adapters, meters usage and cost, and enforces
the run's allowance. In-process (`Router`) for local runs, and an OpenAI-compatible HTTP service
(`jesus router`) for runner pods."""

from jesus.router.core import Router
from jesus.router.ledger import RunLedger
from jesus.router.metrics import RouterMetrics
from jesus.router.records import AttemptRecord, CallRecord, FallbackRecord
from jesus.router.routed import (
    ALLOWANCE_EXCEEDED,
    NO_ADAPTER_AVAILABLE,
    RoutedAdapter,
    RoutedResponse,
    RoutedStreamEnd,
    RouteError,
)

__all__ = [
    "ALLOWANCE_EXCEEDED",
    "NO_ADAPTER_AVAILABLE",
    "AttemptRecord",
    "CallRecord",
    "FallbackRecord",
    "RouteError",
    "RoutedAdapter",
    "RoutedResponse",
    "RoutedStreamEnd",
    "Router",
    "RouterMetrics",
    "RunLedger",
]
