"""RoutePolicy: which adapters serve which runs, in what order, and when to fail over."""

from __future__ import annotations

import enum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from jesus.api.common import (
    ApiModel,
    CommonConditionType,
    Conditions,
    LabelSelector,
    ObjectMeta,
    ObjectName,
    present,
)
from jesus.api.rules import CelRule, ListType
from jesus_adapters.errors import DEFAULT_FAILOVER_KINDS, ERROR_TABLE, ErrorKind

KIND = "RoutePolicy"
PLURAL = "routepolicies"


# The kinds of failure a RoutePolicy names are the adapters' error taxonomy itself, and which of them
# fail over by default comes from the one error table.
ErrorClass = ErrorKind
_ERROR_CLASS_DESCRIPTION = "Why a model call failed; the same names as the adapters' error taxonomy."
FAILOVER_ERROR_CLASSES: tuple[ErrorKind, ...] = DEFAULT_FAILOVER_KINDS
_NEVER_FAIL_OVER = tuple(k.value for k in ErrorKind if ERROR_TABLE[k].stops_at_once)
_NOT_LISTABLE = tuple(
    k.value for k in ErrorKind if k not in FAILOVER_ERROR_CLASSES and k.value not in _NEVER_FAIL_OVER
)


def _words(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


_FAILOVER_CEL_LIST = ", ".join(f"'{e.value}'" for e in FAILOVER_ERROR_CLASSES)
_FAILOVER_ONLY = CelRule(
    rule=f"self.all(e, e in [{_FAILOVER_CEL_LIST}])",
    message=(
        f"failoverOn may list only {_words(tuple(e.value for e in FAILOVER_ERROR_CLASSES))}: "
        f"{_words(_NEVER_FAIL_OVER)} (and {', '.join(_NOT_LISTABLE)}) never fail over, "
        "the next adapter would reject the same request"
    ),
    check=lambda classes: all(e in FAILOVER_ERROR_CLASSES for e in classes),
)


class RoutePolicyConditionType(enum.StrEnum):
    """Condition types of a RoutePolicy."""

    READY = CommonConditionType.READY.value
    ADAPTERS_RESOLVED = "AdaptersResolved"


class RoutePolicyReason(enum.StrEnum):
    """Reasons on RoutePolicy conditions."""

    ALL_ADAPTERS_FOUND = "AllAdaptersFound"
    ADAPTER_NOT_FOUND = "AdapterNotFound"
    ADAPTER_NOT_READY = "AdapterNotReady"
    CHAIN_READY = "ChainReady"
    NO_READY_ADAPTER = "NoReadyAdapter"


class ChainEntry(ApiModel):
    """One step of the fallback chain."""

    adapter_ref: ObjectName
    """Name of a ModelAdapter in the same namespace."""


class Retries(ApiModel):
    """Retries on the same adapter before moving to the next, with exponential backoff."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self.initialBackoffMilliseconds <= self.maxBackoffMilliseconds",
            message="initialBackoffMilliseconds must not exceed maxBackoffMilliseconds",
            check=lambda r: r.initial_backoff_milliseconds <= r.max_backoff_milliseconds,
            field="initialBackoffMilliseconds",
        ),
    )

    max_attempts: Annotated[int, Field(ge=1, le=10)] = 2
    """Attempts per adapter, the first included; 1 means no retry."""
    initial_backoff_milliseconds: Annotated[int, Field(ge=0, le=60_000)] = 500
    """Wait before the first retry; each further retry doubles it."""
    max_backoff_milliseconds: Annotated[int, Field(ge=0, le=300_000)] = 8_000
    """Upper bound of the wait between retries."""


def _chain_unique(chain: list[ChainEntry]) -> bool:
    names = [entry.adapter_ref for entry in chain]
    return len(names) == len(set(names))


class RoutePolicySpec(ApiModel):
    """Desired state of a RoutePolicy."""

    chain: Annotated[
        list[ChainEntry],
        Field(min_length=1, max_length=8),
        CelRule(
            rule="self.all(a, self.filter(b, b.adapterRef == a.adapterRef).size() == 1)",
            message="chain must not list the same adapter twice",
            check=_chain_unique,
        ),
    ]
    """ModelAdapters to try in order: the first serves; the next takes over on an error in failoverOn."""
    failover_on: Annotated[
        list[Annotated[ErrorKind, Field(description=_ERROR_CLASS_DESCRIPTION)]],
        Field(max_length=9),
        ListType.as_set(),
        _FAILOVER_ONLY,
    ] = Field(default_factory=lambda: list(FAILOVER_ERROR_CLASSES))
    """Error classes that move the call to the next adapter once retries are spent; never InvalidRequest."""
    attempt_timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 120
    """Time limit of one attempt on one adapter."""
    retries: Retries = Field(default_factory=Retries)
    """Retries on the same adapter before failing over."""
    failover_deadline_seconds: Annotated[int, Field(ge=1, le=86_400)] | None = None
    """Time limit of one call across all attempts and adapters; unset means attempts alone bound it."""
    selector: LabelSelector | None = None
    """Which AgentRuns (by label) may use this policy; unset means any run that names it."""

    def serves(self, run_labels: dict[str, str]) -> bool:
        """Whether a run with these labels may use this policy."""
        return not present(self.selector) or (self.selector is not None and self.selector.matches(run_labels))


class RoutePolicyStatus(ApiModel):
    """Observed state of a RoutePolicy, written by the operator."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions | None = None
    """Ready and AdaptersResolved."""
    resolved_chain: Annotated[list[ObjectName], Field(max_length=8)] | None = None
    """The chain's adapters that exist and are ready, in order."""


class RoutePolicy(ApiModel):
    """An ordered fallback chain of ModelAdapters, with retry, timeout and failover rules."""

    api_version: Literal["jesus.dev/v1alpha1"] = "jesus.dev/v1alpha1"
    """jesus.dev/v1alpha1"""
    kind: Literal["RoutePolicy"] = "RoutePolicy"
    """RoutePolicy"""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: RoutePolicySpec
    """Desired state."""
    status: RoutePolicyStatus | None = None
    """Observed state; written by the operator only."""
