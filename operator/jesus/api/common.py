"""Shapes every kind shares: the model base, metadata, conditions, references, money, selectors.

Conventions (DESIGN.md): fields are snake_case in Python with camelCase aliases, so
`model_dump(by_alias=True, exclude_none=True)` is the Kubernetes JSON. No floats anywhere: money is a
decimal string in spec and integer micro-units in status; durations are integer `...Seconds`.
"""

from __future__ import annotations

import enum
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from pydantic.alias_generators import to_camel

from jesus.api.rules import VALIDATIONS_KEY, CelRule, ListType

GROUP = "jesus.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "jesus"

# Labels and annotations the platform writes carry the group as prefix.
LABEL_PREFIX = f"{GROUP}/"
LABEL_RUN = f"{GROUP}/run"
LABEL_TEAM = f"{GROUP}/team"
LABEL_USER = f"{GROUP}/user"
LABEL_ADAPTER = f"{GROUP}/adapter"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

MICROS_PER_UNIT = 1_000_000
TOKENS_PER_PRICE_UNIT = 1_000_000  # prices are quoted per million tokens

# --- scalar shapes -----------------------------------------------------------------------------

MONEY_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,6})?$"
_MONEY_RE = re.compile(MONEY_PATTERN)

Money = Annotated[
    str,
    Field(
        pattern=MONEY_PATTERN,
        max_length=19,
    ),
]

CURRENCY_PATTERN = r"^[A-Z]{3}$"
Currency = Annotated[
    str,
    Field(pattern=CURRENCY_PATTERN),
]

# DNS-1123 label: names of objects the platform turns into Jobs, Services and labels.
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# DNS-1123 subdomain: names of custom objects.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

ObjectName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN),
]
LabelValueName = Annotated[
    str,
    Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN),
]

TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
Timestamp = Annotated[
    str,
    Field(pattern=TIMESTAMP_PATTERN, json_schema_extra={"format": "date-time"}),
]

URL_PATTERN = r"^https?://[^\s/$.?#][^\s]*$"
Url = Annotated[
    str,
    Field(pattern=URL_PATTERN, max_length=2048),
]


class MoneyError(ValueError):
    """A money string that is not a non-negative decimal with at most 6 decimal places."""


def parse_money(value: str) -> int:
    """Parse a decimal money string ("3.00", "0.015") into integer micro-units (3_000_000, 15_000).

    Raises MoneyError for anything else: negative numbers, exponents, floats with more than
    6 decimal places, empty strings.
    """
    if not isinstance(value, str) or not _MONEY_RE.match(value):
        raise MoneyError(f'{value!r} is not a decimal amount with at most 6 decimal places, e.g. "3.00"')
    try:
        micros = Decimal(value) * MICROS_PER_UNIT
    except InvalidOperation as exc:  # unreachable after the pattern, kept for safety
        raise MoneyError(f"{value!r} is not a decimal amount") from exc
    return int(micros)


def format_micros(micros: int, *, places: int = 2) -> str:
    """Format integer micro-units as a decimal string with at least `places` decimals ("3.00", "0.0150")."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_UNIT)
    digits = f"{frac:06d}".rstrip("0")
    digits = digits.ljust(places, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


# --- the model base ----------------------------------------------------------------------------


def _add_model_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    """Model-level CEL rules, and defaults built by factories, into the model's JSON Schema.

    pydantic leaves `default_factory` values out of the schema; the API server should apply them too.
    """
    rules: tuple[CelRule, ...] = getattr(cls, "cel_rules", ())
    if rules:
        schema.setdefault(VALIDATIONS_KEY, []).extend(rule.to_schema() for rule in rules)
    properties = schema.get("properties", {})
    for name, info in cls.model_fields.items():
        if info.default_factory is None or info.default_factory_takes_validated_data:
            continue
        key = info.alias if info.alias in properties else name
        if key in properties:
            value = info.default_factory()
            properties[key]["default"] = TypeAdapter(Any).dump_python(
                value, mode="json", by_alias=True, exclude_none=True
            )


class ApiModel(BaseModel):
    """Base of every API shape: camelCase aliases, unknown fields rejected, model-level CEL rules."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        json_schema_extra=_add_model_rules,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _enforce_cel_rules(self) -> Any:
        for rule in type(self).cel_rules:
            rule.enforce(self)
        return self

    def to_kubernetes(self) -> dict[str, Any]:
        """The Kubernetes JSON form: camelCase keys, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def present(value: Any) -> bool:
    """Whether an optional field is set, as CEL's `has()` sees it."""
    return value is not None


# --- metadata ----------------------------------------------------------------------------------


class ObjectMeta(BaseModel):
    """The part of Kubernetes object metadata the platform reads; other fields are kept as they are."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", use_attribute_docstrings=True
    )

    name: Annotated[str, Field(max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)] | None = None
    """The object's name, unique per kind and namespace (DNS-1123 subdomain)."""
    generate_name: str | None = None
    """A prefix from which the API server generates a unique name."""
    namespace: Annotated[str, Field(max_length=63, pattern=DNS_LABEL_PATTERN)] | None = None
    """The namespace; left out in spec files, it is the one `kubectl apply` targets."""
    labels: dict[str, str] | None = None
    """Labels; the platform's own keys start with `jesus.dev/`."""
    annotations: dict[str, str] | None = None
    """Annotations; the platform's own keys start with `jesus.dev/`."""
    uid: str | None = None
    """Set by the API server."""
    resource_version: str | None = None
    """Set by the API server."""
    generation: int | None = None
    """Set by the API server; bumped on every change to spec."""
    creation_timestamp: str | None = None
    """Set by the API server."""

    def to_kubernetes(self) -> dict[str, Any]:
        """The Kubernetes JSON form: camelCase keys, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- conditions --------------------------------------------------------------------------------


class ConditionStatus(enum.StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


_DNS_PREFIX = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
CONDITION_TYPE_PATTERN = rf"^{_DNS_PREFIX}(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(ApiModel):
    """One observation of the object's state, in the shape of metav1.Condition."""

    type: Annotated[str, Field(max_length=316, pattern=CONDITION_TYPE_PATTERN)]
    """The condition type in CamelCase, e.g. Ready or Admitted; unique within the list."""
    status: ConditionStatus
    """True, False or Unknown."""
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this condition was computed from."""
    last_transition_time: Timestamp
    """When the status last changed (not when it was last checked)."""
    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=CONDITION_REASON_PATTERN)]
    """Why the condition has its status, as a CamelCase word, e.g. BudgetExceeded."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """What a person should know, in a sentence."""


Conditions = Annotated[list[Condition], Field(max_length=16), ListType.as_map("type")]


class CommonConditionType(enum.StrEnum):
    """Condition types every kind reports."""

    READY = "Ready"


# --- references --------------------------------------------------------------------------------


class LocalObjectReference(ApiModel):
    """A reference to another object of the expected kind in the same namespace."""

    name: ObjectName
    """The referenced object's name."""


class SecretKeyReference(ApiModel):
    """A key in a Secret in the same namespace; credentials are never written inline."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
    """The Secret's name."""
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
    """The key within the Secret whose value is the credential."""


# --- label selectors ---------------------------------------------------------------------------


class SelectorOperator(enum.StrEnum):
    """How a match expression compares a label with its values."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


LABEL_KEY_PATTERN = rf"^{_DNS_PREFIX}[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
LabelKey = Annotated[str, Field(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN)]
LabelValue = Annotated[str, Field(max_length=63, pattern=r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")]


def _values_fit_operator(expr: LabelSelectorRequirement) -> bool:
    if expr.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN):
        return bool(expr.values)
    return not expr.values


class LabelSelectorRequirement(ApiModel):
    """One label requirement: a key, an operator and (for In and NotIn) values."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule=(
                "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0)"
                " : (!has(self.values) || size(self.values) == 0)"
            ),
            message="values must be non-empty for In and NotIn and empty for Exists and DoesNotExist",
            check=_values_fit_operator,
            field="values",
        ),
    )

    key: LabelKey
    """The label key the requirement applies to."""
    operator: SelectorOperator
    """In, NotIn, Exists or DoesNotExist."""
    values: Annotated[list[LabelValue], Field(max_length=64)] | None = None
    """The values to compare with; required for In and NotIn, empty otherwise."""


class LabelSelector(ApiModel):
    """A Kubernetes label selector; all requirements must match, and an empty selector matches nothing."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule=(
                "(has(self.matchLabels) && size(self.matchLabels) > 0)"
                " || (has(self.matchExpressions) && size(self.matchExpressions) > 0)"
            ),
            message="a selector needs at least one of matchLabels or matchExpressions",
            check=lambda s: bool(s.match_labels) or bool(s.match_expressions),
        ),
    )

    match_labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=32)] | None = None
    """Labels that must all be present with exactly these values."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] | None = None
    """Requirements that must all hold."""

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a set of labels satisfies this selector."""
        if not self.match_labels and not self.match_expressions:
            return False
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        for expr in self.match_expressions or []:
            values = set(expr.values or [])
            if expr.operator is SelectorOperator.IN and labels.get(expr.key) not in values:
                return False
            if expr.operator is SelectorOperator.NOT_IN and labels.get(expr.key) in values:
                return False
            if expr.operator is SelectorOperator.EXISTS and expr.key not in labels:
                return False
            if expr.operator is SelectorOperator.DOES_NOT_EXIST and expr.key in labels:
                return False
        return True


class DataClassification(enum.StrEnum):
    """How sensitive the data of a run is; adapters list the levels they may receive."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


KindName = Literal["AgentRun", "RoutePolicy", "Budget", "ModelAdapter", "Lesson"]
