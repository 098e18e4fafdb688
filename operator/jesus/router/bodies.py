"""Reading a request body at the router's HTTP boundary, within bounds (ADR 13).

The body is refused by its declared Content-Length before a byte is read, and while it streams in
once it passes the cap, so a client can never make the router hold more than the cap per request.
Its JSON nesting is measured by a cheap bracket scan before `json.loads` can recurse into it. JSON that
parses but is not safe to pass on is refused too: an object that repeats a key (parsers disagree on
which value wins), NaN or Infinity, and a lone surrogate escape (`"\\ud800"`: no SDK can encode it).
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
# A JSON escape of a UTF-16 surrogate; only a text with one can decode to a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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


class UnsafeJsonError(ValueError):
    """JSON that parses but that the router does not pass on; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise UnsafeJsonError("an object in it repeats a key")
    return value


def loads_strict(text: str) -> Any:
    """`text` as JSON, refusing NaN and Infinity (ValueError), and repeated keys and lone surrogates
    (UnsafeJsonError). The caller bounds the depth first (`json_depth`)."""
    value = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)
    if _SURROGATE_ESCAPE.search(text):
        # Surrogate pairs (how ASCII-only encoders write emoji) decode to text; a lone one does not.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise UnsafeJsonError("a string in it holds a lone surrogate escape (\\ud800-\\udfff)") from None
    return value


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
        return loads_strict(text)
    except UnsafeJsonError as exc:
        raise InputRefusedError(400, f"the request body is refused: {exc}", "InvalidRequest") from None
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


def check_content_encoding(request: Request) -> None:
    """A body must come as it is (415 otherwise): the router does not inflate a compressed one, whose
    size on the wire says nothing about its size once inflated."""
    declared = request.headers.get("content-encoding", "identity").strip().lower()
    if declared not in ("", "identity"):
        raise InputRefusedError(
            415, "the request body must not be compressed (no Content-Encoding)", "UnsupportedMediaType"
        )


async def read_json(request: Request, limits: InputLimits) -> Any:
    """The request's JSON body within `limits`; InputRefusedError (400, 413 or 415) says why not."""
    check_media_type(request)
    check_content_encoding(request)
    return parse_json(await read_body(request, limits), limits)
