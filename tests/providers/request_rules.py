"""What the real providers reject: the fakes answer 400 to requests that break these rules.

A fake that accepted anything would let a translation bug pass that the real API refuses. The rules
are the ones the providers document and enforce on every request; each returns the provider's own
kind of message for the first problem, or None.
"""

from __future__ import annotations

from typing import Any


def chat_completions_problem(body: dict[str, Any]) -> str | None:
    """The first rule of Chat Completions that `body` breaks."""
    if not body.get("model"):
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return f"messages[{index}].role: invalid value {role!r}"
        if role == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_calls:
                return (
                    f"messages[{index}]: messages with role 'tool' must be a response to a preceding "
                    "message with 'tool_calls'"
                )
            open_calls.discard(call_id)
            continue
        if open_calls:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                f"each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                f"{', '.join(sorted(open_calls))}"
            )
        if role == "assistant":
            open_calls = {call["id"] for call in message.get("tool_calls") or ()}
            if message.get("content") is None and not open_calls:
                return f"messages[{index}]: an assistant message needs content or tool_calls"
        elif not isinstance(message.get("content"), str | list):
            return f"messages[{index}].content: expected a string or an array"
    if open_calls:
        return f"tool_call_ids without response messages: {', '.join(sorted(open_calls))}"
    return None


def messages_problem(body: dict[str, Any]) -> str | None:
    """The first rule of the Anthropic Messages API that `body` breaks."""
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            return f"{field}: Field required"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    pending_tool_uses: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            return f"messages.{index}.role: Input should be 'user' or 'assistant'"
        blocks = message.get("content")
        if isinstance(blocks, str):
            blocks = [{"type": "text", "text": blocks}]
        if not blocks:
            return f"messages.{index}: all messages must have non-empty content"
        results = {block.get("tool_use_id") for block in blocks if block.get("type") == "tool_result"}
        if role == "user" and results - pending_tool_uses:
            return (
                f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(sorted(str(r) for r in results - pending_tool_uses))}. Each `tool_result` block "
                "must have a corresponding `tool_use` block in the previous message."
            )
        if pending_tool_uses - results:
            return (
                f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {', '.join(sorted(pending_tool_uses - results))}"
            )
        pending_tool_uses = (
            {block["id"] for block in blocks if block.get("type") == "tool_use"}
            if role == "assistant"
            else set()
        )
    return None
