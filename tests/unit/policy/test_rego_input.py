"""The input walk hands rego-cpp exactly the JSON document, and refuses what is not JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import regopy
from tests.builders.policy import build_input

from jesus.policy.rego_input import InputConversionError, free_input, new_rego_input


def echo(document: Any) -> Any:
    """What rego-cpp sees as `input` after the walk."""
    interpreter = regopy.Interpreter()  # type: ignore[no-untyped-call]
    handle = new_rego_input(document)
    try:
        regopy.rego_shared.rego_set_input(interpreter._impl, handle)
        output = interpreter.query("x := input")
    finally:
        free_input(handle)
    return output.results[0].bindings["x"]


@pytest.mark.parametrize(
    "document",
    [
        {"a": 1, "b": [True, False, None], "c": {"d": 'é ünïcode "quoted"'}, "e": -(2**62)},
        [],
        {"nested": [[1, 2], {"k": []}]},
    ],
)
def test_values_arrive_unchanged(document: Any) -> None:
    assert echo(document) == document


def test_a_policy_input_arrives_unchanged() -> None:
    document = build_input()
    assert echo(document) == document


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"a": {1, 2}}, "a set is not a JSON value"),
        ({"a": object()}, "a object is not a JSON value"),
        ({1: "x"}, "object key 1 is not a string"),
        ({"path": Path("/")}, "is not a JSON value"),
        ({"big": 2**70}, "does not fit in 64 bits"),
    ],
)
def test_non_json_values_are_refused(document: Any, message: str) -> None:
    with pytest.raises(InputConversionError, match=message):
        new_rego_input(document)
