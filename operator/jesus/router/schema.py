"""The wire schema of the router's request bodies as pydantic models: Chat Completions requests (here)
and the admin API's run registration (`jesus.api.registration`, shared with the operator). Every list and
name is bounded; a refusal names the field (ADR 13).

Fields the router does not use (temperature, tool_choice, ...) are ignored in chat requests, as OpenAI
clients send many; the admin API forbids unknown fields, so a misspelt limit is never silently dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

# The registration lives in the API layer, shared with the operator; imported here where callers found it.
from jesus.api.registration import DEFAULT_TOKEN_TTL_SECONDS as DEFAULT_TOKEN_TTL_SECONDS
from jesus.api.registration import MAX_TOKEN_TTL_SECONDS as MAX_TOKEN_TTL_SECONDS
from jesus.api.registration import RunRegistration as RunRegistration
from jesus.api.registration import expect
from jesus.api.registration import invalid as invalid
from jesus.router.bodies import DEFAULT_MAX_JSON_DEPTH, UnsafeJsonError, json_depth, loads_strict

MAX_MESSAGES = 4096
MAX_TOOLS = 512
MAX_TOOL_CALLS = 512
MAX_STOP_SEQUENCES = 16
MAX_TOOL_NAME_LENGTH = 256
MAX_OUTPUT_TOKENS = 10_000_000
DEFAULT_MAX_TOKENS = 1024
ROLES = ("system", "user", "assistant", "tool")


def error_text(error: ValidationError, where: str = "") -> str:
    """The first refusal as `field.path[0]: why` (below `where`), the way the router names fields."""
    first = error.errors(include_url=False)[0]
    path = where
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return f"{path}: {first['msg']}" if path else first["msg"]


def _object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise invalid("an object is required")
    return value


def _list_of(limit: int, *, required: bool = False) -> BeforeValidator:
    """A JSON list (absent or null is empty unless required) of at most `limit` items."""

    def check(value: Any) -> Any:
        if value is None and not required:
            return []
        if not isinstance(value, list) or (required and not value):
            raise invalid(f"a {'non-empty ' if required else ''}list is required")
        if len(value) > limit:
            raise invalid(f"at most {limit} items are allowed")
        return value

    return BeforeValidator(check)


def _optional_text(value: Any) -> Any:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid("a string is required")
    return value


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


ToolName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TOOL_NAME_LENGTH),
    expect(f"required (a string of 1 to {MAX_TOOL_NAME_LENGTH} characters)"),
    Field(default=None, validate_default=True),
]


class WireFunctionCall(_Wire):
    """A tool call's function: its name and arguments (a JSON object, sent as a JSON string)."""

    name: ToolName
    arguments: Any = None

    @field_validator("arguments", mode="before")
    @classmethod
    def _parse_arguments(cls, value: Any) -> Any:
        if not value:
            return {}
        if not isinstance(value, str):
            return value
        if json_depth(value, DEFAULT_MAX_JSON_DEPTH) > DEFAULT_MAX_JSON_DEPTH:
            raise invalid(f"not JSON: nested deeper than {DEFAULT_MAX_JSON_DEPTH} levels")
        try:
            return loads_strict(value)
        except UnsafeJsonError as exc:
            raise invalid(f"refused: {exc}") from None
        except ValueError as exc:
            raise invalid(f"not JSON: {exc}") from None

    @model_validator(mode="after")
    def _arguments_are_an_object(self) -> WireFunctionCall:
        if not isinstance(self.arguments, dict):
            raise invalid("a name and JSON object arguments are required")
        return self


class WireToolCall(_Wire):
    """One tool call of an assistant message."""

    id: Annotated[str, BeforeValidator(_optional_text), Field(max_length=MAX_TOOL_NAME_LENGTH)] = ""
    function: WireFunctionCall

    @model_validator(mode="before")
    @classmethod
    def _has_a_function(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not isinstance(value.get("function"), dict):
            raise invalid("an object with a function is required")
        return value


def _content_text(value: Any) -> str:
    """A message's content as text: a string, or a list of text parts joined."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise invalid("a string or a list of text parts is required")
    parts = []
    for part in value:
        if not (isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)):
            raise invalid("only text parts are supported")
        parts.append(part["text"])
    return "".join(parts)


class WireMessage(_Wire):
    """One message of a Chat Completions request; `developer` is read as `system`."""

    role: Annotated[
        Literal["system", "user", "assistant", "tool", "developer"],
        expect(f"one of {', '.join(ROLES)} is required"),
        Field(default=None, validate_default=True),
    ]
    content: Annotated[str, BeforeValidator(_content_text)] = ""
    tool_calls: Annotated[tuple[WireToolCall, ...], _list_of(MAX_TOOL_CALLS)] = ()
    tool_call_id: Annotated[str | None, Field(default=None, validate_default=True)]

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        return _object(value)

    @field_validator("tool_call_id", mode="before")
    @classmethod
    def _tool_messages_answer_a_call(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and not isinstance(value, str):
            raise invalid("a string is required")
        if value is None and info.data.get("role") == "tool":
            raise invalid("required on a tool message")
        return value


def _schema_object(value: Any) -> Any:
    if not value:
        return {"type": "object", "properties": {}}
    if not isinstance(value, dict):
        raise invalid("a JSON Schema object is required")
    return value


class WireToolFunction(_Wire):
    """A function tool's name, description and JSON Schema of its parameters."""

    name: ToolName
    description: Annotated[str, BeforeValidator(_optional_text)] = ""
    parameters: Annotated[dict[str, Any], BeforeValidator(_schema_object)] = Field(
        default=None, validate_default=True
    )


class WireTool(_Wire):
    """A tool the model may call; only function tools are supported."""

    type: Literal["function"] = "function"
    function: Annotated[
        WireToolFunction, BeforeValidator(_object), Field(default=None, validate_default=True)
    ]

    @model_validator(mode="before")
    @classmethod
    def _function_tools_only(cls, value: Any) -> Any:
        if not isinstance(value, dict) or value.get("type", "function") != "function":
            raise invalid("only function tools are supported")
        return value


def _stop_sequences(value: Any) -> Any:
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise invalid("a string or a list of strings is required")
    if len(value) > MAX_STOP_SEQUENCES:
        raise invalid(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
    return tuple(value)


class ChatCompletionRequest(_Wire):
    """A Chat Completions request body, as far as the router reads it."""

    messages: Annotated[
        tuple[WireMessage, ...],
        _list_of(MAX_MESSAGES, required=True),
        Field(default=None, validate_default=True),
    ]
    tools: Annotated[tuple[WireTool, ...], _list_of(MAX_TOOLS)] = ()
    max_tokens: Annotated[
        StrictInt,
        Field(ge=1, le=MAX_OUTPUT_TOKENS),
        expect(f"a positive integer is required (at most {MAX_OUTPUT_TOKENS})"),
    ] = DEFAULT_MAX_TOKENS
    stop: Annotated[tuple[str, ...], BeforeValidator(_stop_sequences)] = ()
    stream: Annotated[StrictBool, expect("true or false is required")] = False

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise invalid("the request body must be a JSON object")
        if "max_completion_tokens" in value:
            # The newer name wins, and is read (and refused) as max_tokens.
            value = {**value, "max_tokens": value["max_completion_tokens"]}
        return value
