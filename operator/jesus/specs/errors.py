"""pydantic validation errors as problems: a field path and a message a person understands."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from jesus.api.common import DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN, MONEY_PATTERN, TIMESTAMP_PATTERN
from jesus.api.rules import CEL_ERROR_TYPE
from jesus.specs.source import FieldPath

_PATTERN_MESSAGES = {
    MONEY_PATTERN: 'must be a decimal amount in quotes such as "3.00", with at most 6 decimal places',
    DNS_LABEL_PATTERN: "must be a DNS label: lower-case letters, digits and '-', alphanumeric at both ends",
    DNS_SUBDOMAIN_PATTERN: "must be a DNS name: lower-case letters, digits, '-' and '.', alphanumeric ends",
    TIMESTAMP_PATTERN: "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z",
}


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    given = error.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return _PATTERN_MESSAGES.get(pattern, f"must match the pattern {pattern}")
    if kind == "string_type" and isinstance(given, bool):
        return (
            "must be a string; YAML reads an unquoted yes, no, on, off, y or n as true or false, so quote it"
        )
    if kind == "string_type" and isinstance(given, int | float):
        return f"must be a string; write {given} in quotes"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number; got {given!r}"
    if kind == "bool_type":
        return f"must be true or false; got {given!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping; got {type(given).__name__}"
    if kind == "list_type":
        return f"must be a list; got {type(given).__name__}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', 'one of the allowed values')}"
    if kind == "enum":
        return f"must be one of {ctx.get('expected', 'the allowed values')}; got {given!r}"
    message = str(error["msg"])
    # pydantic's custom errors carry the rule's message as is; others start with a capital
    if kind != CEL_ERROR_TYPE and message[:1].isupper():
        message = message[0].lower() + message[1:]
    return re.sub(r"^value error, ", "", message)


def error_path(error: ErrorDetails) -> FieldPath:
    """The field an error is about, as keys and indexes (pydantic's union and key markers left out)."""
    path: list[str | int] = [
        part for part in error["loc"] if not (isinstance(part, str) and part.startswith("["))
    ]
    if error["type"] == CEL_ERROR_TYPE:
        field = str((error.get("ctx") or {}).get("field") or "")
        if field:
            path.extend(field.split("."))
    return tuple(path)


def describe_validation_error(exc: ValidationError) -> list[tuple[FieldPath, str]]:
    """Each error of `exc` as (field path, message), in the order pydantic found them."""
    return [(error_path(error), _message(error)) for error in exc.errors(include_url=False)]
