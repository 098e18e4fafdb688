"""OpenAI Chat Completions on the wire, with the vLLM and llama.cpp variants.

Dialects differ where the real servers do:
- "openai": errors as {"error": {message, type, param, code}}; streamed usage only when the
  request asks with stream_options.include_usage, in a final chunk with no choices.
- "vllm": errors as a bare {"object": "error", message, type, param, code} with vLLM's
  exception-named types ("BadRequestError"); extra fields (stop_reason, prompt_logprobs).
- "llamacpp": errors as {"error": {code, message, type}} with llama-server's types
  ("exceed_context_size_error"); usage (and timings) on the finishing chunk, asked or not.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from tests.providers.behaviours import Reply
from tests.providers.request_rules import chat_completions_problem

Dialect = Literal["openai", "vllm", "llamacpp"]
DIALECTS: tuple[Dialect, ...] = ("openai", "vllm", "llamacpp")

_ERROR_TYPES: dict[Dialect, dict[int, str]] = {
    "openai": {
        400: "invalid_request_error",
        401: "invalid_request_error",
        403: "invalid_request_error",
        404: "invalid_request_error",
        429: "requests",
        500: "server_error",
        503: "server_error",
    },
    "vllm": {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError"},
    "llamacpp": {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        500: "server_error",
        501: "not_supported_error",
        503: "unavailable_error",
    },
}


def _sse(payload: dict[str, Any] | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


class OpenAIWire:
    """Renders behaviours as OpenAI Chat Completions answers in one dialect."""

    path = "/v1/chat/completions"
    base_path = "/v1"

    def __init__(self, dialect: Dialect = "openai") -> None:
        self.dialect = dialect

    def request_problem(self, body: dict[str, Any]) -> str | None:
        """Why the real server would refuse `body` with a 400, or None."""
        return chat_completions_problem(body)

    def default_error_type(self, status: int) -> str:
        types = _ERROR_TYPES[self.dialect]
        return types.get(status, types[500] if status >= 500 else types[400])

    def error_body(self, status: int, message: str, error_type: str | None, code: str | int | None) -> Any:
        kind = error_type or self.default_error_type(status)
        if self.dialect == "vllm":
            return {"object": "error", "message": message, "type": kind, "param": None, "code": status}
        if self.dialect == "llamacpp":
            return {"error": {"code": status, "message": message, "type": kind}}
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def stream_error_event(self, status: int, message: str, error_type: str | None) -> str:
        kind = error_type or self.default_error_type(status)
        return _sse({"error": {"message": message, "type": kind, "code": status}})

    def _finish_reason(self, reply: Reply) -> str:
        return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

    def _usage(self, reply: Reply) -> dict[str, int]:
        return {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }

    def _envelope(self, request: dict[str, Any], obj: str) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": obj,
            "created": int(time.time()),
            "model": request.get("model", "fake-model"),
        }
        if self.dialect == "llamacpp":
            envelope["system_fingerprint"] = "b0000-fake"
        return envelope

    def complete_body(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        """A whole `chat.completion` object."""
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in reply.tool_calls
            ]
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "finish_reason": self._finish_reason(reply),
            "logprobs": None,
        }
        body = self._envelope(request, "chat.completion") | {"choices": [choice]}
        if self.dialect == "vllm":
            choice["stop_reason"] = None
            body["prompt_logprobs"] = None
        if reply.include_usage:
            body["usage"] = self._usage(reply)
        if self.dialect == "llamacpp":
            body["timings"] = {"prompt_n": reply.input_tokens, "predicted_n": reply.output_tokens}
        return body

    def stream_events(self, reply: Reply, request: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The SSE events of a streamed answer: (body events, final events)."""
        asked_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        envelope = self._envelope(request, "chat.completion.chunk")
        null_usage = {"usage": None} if asked_usage and self.dialect != "llamacpp" else {}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            return envelope | {"choices": [choice]} | null_usage

        body = [_sse(chunk({"role": "assistant", "content": ""}))]
        body += [_sse(chunk({"content": piece})) for piece in _pieces(reply.text, reply.chunk_chars)]
        for index, call in enumerate(reply.tool_calls):
            head = {"index": index, "id": call.id, "type": "function"}
            body.append(
                _sse(chunk({"tool_calls": [head | {"function": {"name": call.name, "arguments": ""}}]}))
            )
            for piece in _pieces(json.dumps(call.arguments), reply.chunk_chars):
                body.append(_sse(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})))
        finish = chunk({}, self._finish_reason(reply))
        end: list[str] = []
        if self.dialect == "llamacpp":
            if reply.include_usage:
                finish |= {"usage": self._usage(reply)}
            finish |= {"timings": {"prompt_n": reply.input_tokens, "predicted_n": reply.output_tokens}}
            end.append(_sse(finish))
        else:
            end.append(_sse(finish))
            if asked_usage and reply.include_usage:
                end.append(_sse(envelope | {"choices": [], "usage": self._usage(reply)}))
        end.append(_sse("[DONE]"))
        return body, end
