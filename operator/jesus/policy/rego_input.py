"""Handing the input document to rego-cpp: a leaner walk than regopy.Input's, same result.

regopy builds an input node by node through ctypes; its generic walk (isinstance chains, a string
buffer per string, a checked wrapper per call) is about a third of an embedded decision. This walk
calls the same C functions directly, for JSON values only. The conformance test compares decisions
made this way with the OPA server's.

rego-cpp keeps a string as the text between the quotes of a JSON string, so a string handed to it
must be JSON-escaped (regopy.Input does not escape: a quote in a user name would corrupt the input).
"""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable
from typing import Any

from regopy import rego_shared

_lib: Any = rego_shared.rego
_new_input: Callable[[], Any] = rego_shared.rego_new_input
free_input: Callable[[Any], None] = rego_shared.rego_free_input


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _json_text(value: str) -> bytes:
    """The string as it appears between the quotes of a JSON string (UTF-8 left as it is)."""
    if '"' in value or "\\" in value or not value.isprintable():
        return json.dumps(value, ensure_ascii=False)[1:-1].encode()
    return value.encode()


class InputConversionError(ValueError):
    """The document holds something that is not JSON, or rego-cpp refused a value."""


def new_rego_input(document: Any) -> Any:
    """A rego-cpp input handle holding `document` (dicts with str keys, lists, str, int, float, bool,
    None). The caller frees it with `free_input` once the engine no longer needs it."""
    handle = _new_input()
    put_int, put_str, put_bool = _lib.regoInputInt, _lib.regoInputString, _lib.regoInputBoolean
    put_null, put_float = _lib.regoInputNull, _lib.regoInputFloat
    put_item, put_object, put_array = _lib.regoInputObjectItem, _lib.regoInputObject, _lib.regoInputArray

    def put(value: Any) -> None:
        kind = type(value)
        if kind is str:
            failed = put_str(handle, _json_text(value))
        elif kind is bool:
            failed = put_bool(handle, value)
        elif kind is int:
            if not INT64_MIN <= value <= INT64_MAX:
                raise InputConversionError(f"{value} does not fit in 64 bits")
            failed = put_int(handle, value)
        elif kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise InputConversionError(f"object key {key!r} is not a string")
                put_str(handle, _json_text(key))
                put(item)
                put_item(handle)
            failed = put_object(handle, len(value))
        elif kind is list or kind is tuple:
            for item in value:
                put(item)
            failed = put_array(handle, len(value))
        elif value is None:
            failed = put_null(handle)
        elif kind is float:
            failed = put_float(handle, value)
        else:
            raise InputConversionError(f"a {kind.__name__} is not a JSON value")
        if failed:
            raise InputConversionError(f"rego-cpp refused the value {value!r:.80}")

    try:
        put(document)
    except (InputConversionError, ctypes.ArgumentError, OverflowError, RecursionError) as exc:
        free_input(handle)
        raise InputConversionError(str(exc)) from exc
    return handle
