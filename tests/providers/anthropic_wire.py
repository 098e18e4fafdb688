"""Anthropic Messages on the wire: message objects, the SSE event sequence, error bodies.

A stream is message_start, then per content block content_block_start, content_block_delta...
(text_delta or input_json_delta), content_block_stop, with a ping after the first block start;
then message_delta (stop reason, cumulative output tokens) and message_stop. Errors are
{"type": "error", "error": {"type", "message"}, "request_id"}, also as an `error` event in a stream.
"""

from __future__ import annotations

import json
from typing import Any

from tests.providers.behaviours import Reply
from tests.providers.request_rules import messages_problem

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def _sse(event: str, payload: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


class AnthropicWire:
    """Renders behaviours as Anthropic Messages answers."""

    path = "/v1/messages"
    base_path = ""  # the SDK appends /v1/messages itself

    def request_problem(self, body: dict[str, Any]) -> str | None:
        """Why the real API would refuse `body` with a 400, or None."""
        return messages_problem(body)

    def default_error_type(self, status: int) -> str:
        return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")

    def error_body(self, status: int, message: str, error_type: str | None, code: str | int | None) -> Any:
        kind = error_type or self.default_error_type(status)
        return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}

    def stream_error_event(self, status: int, message: str, error_type: str | None) -> str:
        kind = error_type or self.default_error_type(status)
        return _sse("error", {"type": "error", "error": {"type": kind, "message": message}})

    def _stop_reason(self, reply: Reply) -> str:
        return reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")

    def _usage(self, reply: Reply, output_tokens: int) -> dict[str, int]:
        return {
            "input_tokens": reply.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }

    def _message(self, request: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": request.get("model", "fake-model"),
            "content": content,
            "stop_reason": None,
            "stop_sequence": None,
        }

    def complete_body(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        """A whole `message` object."""
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            for call in reply.tool_calls
        ]
        body = self._message(request, content) | {"stop_reason": self._stop_reason(reply)}
        if reply.include_usage:
            body["usage"] = self._usage(reply, reply.output_tokens)
        return body

    def stream_events(self, reply: Reply, request: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The SSE events of a streamed answer: (body events, final events)."""
        start = self._message(request, []) | {"usage": self._usage(reply, 1)}
        body = [_sse("message_start", {"type": "message_start", "message": start})]
        index = 0
        if reply.text:
            body.append(
                _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            body.append(_sse("ping", {"type": "ping"}))
            for piece in _pieces(reply.text, reply.chunk_chars):
                delta = {"type": "text_delta", "text": piece}
                body.append(
                    _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
                )
            body.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        for offset, call in enumerate(reply.tool_calls):
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            at = index + offset
            body.append(
                _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": at, "content_block": block},
                )
            )
            for piece in _pieces(json.dumps(call.arguments), reply.chunk_chars):
                delta = {"type": "input_json_delta", "partial_json": piece}
                body.append(
                    _sse("content_block_delta", {"type": "content_block_delta", "index": at, "delta": delta})
                )
            body.append(_sse("content_block_stop", {"type": "content_block_stop", "index": at}))
        message_delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop_reason(reply), "stop_sequence": None},
            "usage": {"output_tokens": reply.output_tokens},
        }
        end = [_sse("message_delta", message_delta), _sse("message_stop", {"type": "message_stop"})]
        return body, end
