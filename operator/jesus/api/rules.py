"""Validation rules written once, enforced twice: by pydantic here and by the API server as CEL.

A `CelRule` carries a CEL expression (emitted into the CRD as `x-kubernetes-validations`), the message a
person reads when it fails, and a Python predicate with the same meaning (run by pydantic, so `jesus
validate` and every `model_validate` reject what the API server rejects, with the same words).

Rules sit in two places:
- on a field, as `Annotated[..., CelRule(...)]`: `self` is the field's value and the error points at it;
- on a model, in its `cel_rules` class variable: `self` is the object, and `field` names the child the
  message is about (it becomes the CEL `fieldPath` and the problem's field path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

CEL_ERROR_TYPE = "cel_rule"
VALIDATIONS_KEY = "x-kubernetes-validations"


class _FieldMarker:
    """`Annotated` metadata that pydantic enforces after validation and writes into the JSON schema.

    A subclass says what it enforces (`enforce`) and what it adds to the field's schema (`mark`).
    """

    def enforce(self, value: Any) -> None:
        raise NotImplementedError

    def mark(self, target: JsonSchemaValue) -> None:
        raise NotImplementedError

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        def validate(value: Any) -> Any:
            self.enforce(value)
            return value

        return core_schema.no_info_after_validator_function(validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        self.mark(handler.resolve_ref_schema(json_schema))
        return json_schema


@dataclass(frozen=True)
class CelRule(_FieldMarker):
    """One cross-field rule: CEL for the API server, a predicate for Python, one message for both."""

    rule: str
    message: str
    check: Callable[[Any], bool]
    field: str | None = None

    def to_schema(self) -> dict[str, str]:
        """The rule as one entry of `x-kubernetes-validations`."""
        entry = {"rule": self.rule, "message": self.message}
        if self.field is not None:
            entry["fieldPath"] = f".{self.field}"
        return entry

    def error(self) -> PydanticCustomError:
        """The pydantic error raised when the predicate fails; `field` travels in the context."""
        return PydanticCustomError(CEL_ERROR_TYPE, self.message, {"field": self.field or ""})

    def enforce(self, value: Any) -> None:
        """Raise the rule's error unless `value` satisfies it."""
        if not self.check(value):
            raise self.error()

    def mark(self, target: JsonSchemaValue) -> None:
        """Used as `Annotated` metadata on a field: add the rule to the field's validations."""
        target.setdefault(VALIDATIONS_KEY, []).append(self.to_schema())


@dataclass(frozen=True)
class ListType(_FieldMarker):
    """`x-kubernetes-list-type` for a list field, with the uniqueness the API server enforces for it.

    `ListType.as_set()` makes items unique; `ListType.as_map("type")` makes items unique by key fields.
    """

    keys: tuple[str, ...] = ()

    @classmethod
    def as_set(cls) -> ListType:
        """Items are scalars and unique."""
        return cls()

    @classmethod
    def as_map(cls, *keys: str) -> ListType:
        """Items are objects, unique by the values of `keys` (camelCase field names)."""
        return cls(keys=keys)

    def _key_of(self, item: Any, names: tuple[str, ...]) -> Any:
        return tuple(getattr(item, name) for name in names) if self.keys else item

    def _attributes(self, model: type[Any]) -> tuple[str, ...]:
        """The attribute names of `keys` (given by field name or alias) on `model`, in key order."""
        fields = getattr(model, "model_fields", {})
        return tuple(name for key in self.keys for name, info in fields.items() if key in (name, info.alias))

    def enforce(self, items: list[Any]) -> None:
        """Raise an error naming the first item that repeats another."""
        seen: set[Any] = set()
        names: dict[type[Any], tuple[str, ...]] = {}  # looked up once per item type, not per item
        for item in items:
            model = type(item)
            if model not in names:
                names[model] = self._attributes(model)
            key = self._key_of(item, names[model])
            if key in seen:
                shown = (
                    key
                    if not self.keys
                    else ", ".join(f"{k}={v}" for k, v in zip(self.keys, key, strict=True))
                )
                raise PydanticCustomError("duplicate", "duplicate value: {shown}", {"shown": str(shown)})
            seen.add(key)

    def mark(self, target: JsonSchemaValue) -> None:
        """Write the list type (and a map's keys) into the field's schema."""
        if self.keys:
            target["x-kubernetes-list-type"] = "map"
            target["x-kubernetes-list-map-keys"] = list(self.keys)
        else:
            target["x-kubernetes-list-type"] = "set"
