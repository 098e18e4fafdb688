"""The run registration the operator sends the router (POST /admin/v1/runs), shared by both sides.

The operator builds it (`RunRegistration.create`) and the router validates the wire body with it
(`RunRegistration.model_validate`): one model, so the two cannot drift. The wire names are camelCase;
unknown fields are refused, so a misspelt limit is never silently dropped, and a refusal names the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from jesus.api.common import DataClassification

MAX_ALLOWANCE = 2**63 - 1
DEFAULT_TOKEN_TTL_SECONDS = 7 * 24 * 3600
MAX_TOKEN_TTL_SECONDS = DEFAULT_TOKEN_TTL_SECONDS
# Kubernetes object names (DNS-1123 subdomain) and namespaces (DNS-1123 label), as the operator sends them.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = rf"^{_LABEL}(\.{_LABEL})*$"


def invalid(message: str) -> PydanticCustomError:
    """A refusal with `message` (taken literally: braces in it are not a template)."""
    return PydanticCustomError("invalid", "{reason}", {"reason": message})


def expect(message: str) -> WrapValidator:
    """Whatever fails in the field's own type or bounds is reported as `message`."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise invalid(message) from None

    return WrapValidator(check)


def _default_when_null(default: Any) -> BeforeValidator:
    return BeforeValidator(lambda value: default if value is None else value)


KubernetesName = Annotated[
    str,
    StringConstraints(max_length=253, pattern=_SUBDOMAIN),
    expect("a Kubernetes object name is required (lower-case letters, digits, '-' and '.', at most 253)"),
]
Namespace = Annotated[
    str,
    StringConstraints(max_length=63, pattern=rf"^{_LABEL}$"),
    expect("a Kubernetes namespace is required (lower-case letters, digits and '-', at most 63)"),
]
Allowance = Annotated[
    StrictInt | None,
    Field(ge=0, le=MAX_ALLOWANCE),
    expect(f"a non-negative integer (at most {MAX_ALLOWANCE}) is required"),
]


class RunRegistration(BaseModel):
    """POST /admin/v1/runs: the run the operator admitted, its route, classification and allowance."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_alias=True, validate_by_name=False)

    run: Annotated[KubernetesName, Field(default=None, validate_default=True)]
    namespace: Annotated[Namespace, _default_when_null("default")] = "default"
    route_policy: Annotated[KubernetesName, Field(default=None, validate_default=True, alias="routePolicy")]
    data_classification: Annotated[
        DataClassification,
        expect(f"one of {', '.join(c.value for c in DataClassification)} is required"),
        _default_when_null(DataClassification.INTERNAL),
        Field(alias="dataClassification"),
    ] = DataClassification.INTERNAL
    max_tokens: Annotated[Allowance, Field(alias="maxTokens")] = None
    max_cost_micros: Annotated[Allowance, Field(alias="maxCostMicros")] = None
    ttl_seconds: Annotated[
        StrictInt,
        Field(ge=1, le=MAX_TOKEN_TTL_SECONDS),
        expect(f"an integer number of seconds from 1 to {MAX_TOKEN_TTL_SECONDS} is required"),
        _default_when_null(DEFAULT_TOKEN_TTL_SECONDS),
        Field(alias="ttlSeconds"),
    ] = DEFAULT_TOKEN_TTL_SECONDS

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise invalid("the request body must be a JSON object")
        return value

    @classmethod
    def create(
        cls,
        *,
        run: str,
        route_policy: str,
        namespace: str | None = None,
        data_classification: DataClassification = DataClassification.INTERNAL,
        max_tokens: int | None = None,
        max_cost_micros: int | None = None,
        ttl_seconds: int | None = None,
    ) -> RunRegistration:
        """A registration from Python values, validated as the router validates the wire body
        (ValidationError names the field); no namespace means `default`. The wire refuses snake_case
        names, so this is the way in from Python."""
        fields = {
            "run": run,
            "namespace": namespace,
            "route_policy": route_policy,
            "data_classification": data_classification,
            "max_tokens": max_tokens,
            "max_cost_micros": max_cost_micros,
            "ttl_seconds": ttl_seconds,
        }
        return cls.model_validate(fields, by_alias=False, by_name=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON body of POST /admin/v1/runs (camelCase names)."""
        return self.model_dump(mode="json", by_alias=True)


Metered = Annotated[StrictInt, Field(ge=0, le=MAX_ALLOWANCE)]


class MeteredSpend(BaseModel):
    """What the router metered for a run token when it was revoked (DELETE /admin/v1/runs answers
    it): what the token's calls reported (`tokens`, `costMicros`) and the worst case of its calls
    still in flight (`inFlightTokens`, `inFlightCostMicros`), which may yet be charged. The operator
    charges both for an attempt that ended without reporting its calls (preempted, killed)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_alias=True, validate_by_name=True)

    tokens: Metered = 0
    cost_micros: Annotated[Metered, Field(alias="costMicros")] = 0
    in_flight_tokens: Annotated[Metered, Field(alias="inFlightTokens")] = 0
    in_flight_cost_micros: Annotated[Metered, Field(alias="inFlightCostMicros")] = 0

    @property
    def charge_micros(self) -> int:
        """What the attempt is charged: its reported cost and the worst case of what was in flight."""
        return self.cost_micros + self.in_flight_cost_micros

    @property
    def charge_tokens(self) -> int:
        """Its tokens, counted the same way."""
        return self.tokens + self.in_flight_tokens

    def to_wire(self) -> dict[str, Any]:
        """The JSON form (camelCase names)."""
        return self.model_dump(mode="json", by_alias=True)
