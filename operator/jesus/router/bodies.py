"""Reading a request body at the router's HTTP boundary, within bounds (ADR 13).

The body is refused by its declared Content-Length before a byte is read, and while it streams in
once it passes the cap, so a client can never make the router hold more than the cap per request.
Its JSON nesting is measured by a cheap bracket scan before `json.loads` can recurse into it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_JSON_DEPTH = 64

# A JSON string, escapes included (the unrolled form, linear in its length): brackets inside one do not nest.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_AS_PARENTHESES = str.maketrans("[{]}", "(())")


@dataclass(frozen=True)
class InputLimits:
    """What the router accepts in one request body."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH


class InputRefusedError(Exception):
    """A request the boundary refuses: the status to answer, a message naming what, and the error code."""

    def __init__(self, status: int, message: str, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def _too_large(limits: InputLimits) -> InputRefusedError:
    return InputRefusedError(
        413, f"the request body is larger than {limits.max_body_bytes} bytes", "PayloadTooLarge"
    )


async def read_body(request: Request, limits: InputLimits) -> bytes:
    """The request's body, refused (413) by Content-Length up front or as soon as it passes the cap."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.strip().isdigit():
            raise InputRefusedError(400, "the Content-Length header is not a number", "InvalidRequest")
        if int(declared) > limits.max_body_bytes:
            raise _too_large(limits)
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limits.max_body_bytes:
            raise _too_large(limits)
        body += chunk
    return bytes(body)


def json_depth(text: str, limit: int) -> int:
    """How deep `text` nests its arrays and objects, counted up to `limit + 1` (enough to refuse it).

    Linear and iterative: strings are removed, the brackets kept, and innermost pairs peeled off one
    level per pass, so a body nested 50 000 deep costs `limit` passes and no recursion. Unbalanced
    brackets count as nesting, as json.loads would recurse into them before it failed.
    """
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text)).translate(_AS_PARENTHESES)
    depth = 0
    while brackets and depth <= limit:
        peeled = brackets.replace("()", "")
        if len(peeled) == len(brackets):
            # Nothing pairs up any more: what is left only opens or closes (e.g. ")))(("); its openers nest.
            return depth + peeled.count("(")
        brackets = peeled
        depth += 1
    return depth if not brackets else limit + 1


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes, limits: InputLimits) -> Any:
    """A body as JSON: UTF-8, no deeper than the limit, no NaN or Infinity; else InputRefusedError (400)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InputRefusedError(400, "the request body is not UTF-8", "InvalidRequest") from None
    if json_depth(text, limits.max_json_depth) > limits.max_json_depth:
        raise InputRefusedError(
            400, f"the request body nests deeper than {limits.max_json_depth} levels", "InvalidRequest"
        )
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and integers past the interpreter's digit limit.
        raise InputRefusedError(400, "the request body is not JSON", "InvalidRequest") from None


def check_media_type(request: Request) -> None:
    """A body that says what it is must say JSON (415 otherwise); one that says nothing is read as JSON."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media_type = declared.partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise InputRefusedError(415, "the request body must be application/json", "UnsupportedMediaType")


async def read_json(request: Request, limits: InputLimits) -> Any:
    """The request's JSON body within `limits`; InputRefusedError (400, 413 or 415) says why not."""
    check_media_type(request)
    return parse_json(await read_body(request, limits), limits)
