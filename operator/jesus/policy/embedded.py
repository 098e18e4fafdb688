"""The embedded policy engine: rego-cpp (regopy) in this process, no server.

Used by `jesus run`, `jesus plan` and pull-request checks. The policy is compiled once into a bundle
with the decision as its only entrypoint; each decision then sets the input and runs the compiled
plan (see docs/adr for why regopy, and docs/policies.md for the Rego it gets wrong).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import regopy
from regopy.rego_shared import rego_output_string, rego_set_input

from jesus.logic.policy_input import PolicyInput
from jesus.policy.decision import (
    DECISION_PATH,
    DECISION_REF,
    Decision,
    PolicyLoadError,
    decision_from_result,
    fail_closed,
)
from jesus.policy.rego_input import InputConversionError, free_input, new_rego_input
from jesus.policy.sources import PolicySource, load_policy_source

ENGINE_NAME = "embedded"
LESSONS_PATH = "jesus/lessons/decision"
_LESSONS_PACKAGE = re.compile(r"^package jesus\.lessons\s*$", re.MULTILINE)


class PolicyEvaluationError(Exception):
    """The policy failed while evaluating (a failing built-in, a conflict); the message says how."""


def has_lessons_policy(source: PolicySource) -> bool:
    """Whether the policy decides which Lessons runs are offered (package jesus.lessons)."""
    return any(_LESSONS_PACKAGE.search(text) for text in source.modules.values())


@contextlib.contextmanager
def _native_stdout_captured() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 1 (rego-cpp prints compile errors there),
    so that it neither corrupts a command's output nor gets lost; the text lands in the yielded list."""
    captured: list[str] = []
    sys.stdout.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(1)
        os.dup2(sink.fileno(), 1)
        try:
            yield captured
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", errors="replace"))


def _error_text(raw: str) -> str:
    # rego-cpp reports a failing built-in (strict mode) as a bare "<error>" with no detail.
    if raw.strip() in ("", "<error>"):
        return "a built-in function failed (run `opa eval` on the same input for the details)"
    return raw


def _new_interpreter() -> Any:
    # regopy carries no type annotations; everything it returns is typed Any from here on.
    return regopy.Interpreter()  # type: ignore[no-untyped-call]


def _compile_error(source: PolicySource, what: str, exc: Exception, printed: str) -> PolicyLoadError:
    detail = printed.strip() or str(exc).strip()
    return PolicyLoadError(f"policy in {source.directory} does not compile ({what}):\n{detail}")


class EmbeddedEngine:
    """Evaluates the admission policy with rego-cpp in this process."""

    name = ENGINE_NAME

    def __init__(self, source: PolicySource) -> None:
        """Compile `source`; raises PolicyLoadError when it does not compile."""
        self.source = source
        builder = _new_interpreter()
        with _native_stdout_captured() as printed:
            try:
                for path, text in source.modules.items():
                    current = path
                    builder.add_module(path, text)
                current = "data"
                builder.add_data_json(json.dumps(source.data))
                current = DECISION_REF
                # The lessons' decision too, where the policy has it (docs/reflection.md).
                self.entrypoints = [DECISION_PATH, *([LESSONS_PATH] if has_lessons_policy(source) else [])]
                bundle = builder.build(None, self.entrypoints)
            except regopy.RegoError as exc:
                error: Exception | None = exc
            else:
                error = None
        if error is not None:
            raise _compile_error(source, current, error, printed[0])
        if not bundle.ok():
            raise _compile_error(source, DECISION_REF, RuntimeError("the bundle did not build"), printed[0])
        self._bundle = bundle
        self._interpreter = _new_interpreter()
        # A built-in that fails (a bad sprintf, a division by zero) is an error, not "undefined": an
        # undefined deny rule would silently admit.
        self._interpreter.strict_built_in_errors = True
        self._lock = threading.Lock()

    @classmethod
    def from_directory(cls, directory: Path) -> EmbeddedEngine:
        """Load and compile the policies under `directory` (e.g. policies/)."""
        return cls(load_policy_source(directory))

    def evaluate(self, policy_input: PolicyInput) -> Decision:
        """The decision for `policy_input`, synchronously (it takes about a millisecond)."""
        try:
            values = self.query(DECISION_PATH, policy_input)
        except InputConversionError as exc:
            return fail_closed(self.name, f"the input document is not JSON: {exc}")
        except PolicyEvaluationError as exc:
            return fail_closed(self.name, f"evaluating {DECISION_REF} failed: {exc}")
        if not values:
            return fail_closed(self.name, f"{DECISION_REF} is undefined (is the admission policy loaded?)")
        if len(values) > 1:
            return fail_closed(self.name, f"{DECISION_REF} gave {len(values)} values, not one")
        return decision_from_result(values[0], self.name)

    def query(self, entrypoint: str, document: Any) -> list[Any]:
        """The values of `entrypoint` (a path such as jesus/admission/decision, one the bundle was built
        with) for the input `document`: none when it is undefined. Raises InputConversionError for a
        document that is not JSON, PolicyEvaluationError when the evaluation fails."""
        if entrypoint not in self.entrypoints:
            return []
        document_handle = new_rego_input(document)
        with self._lock:
            try:
                rego_set_input(self._interpreter._impl, document_handle)
                output: Any = self._interpreter.query_bundle_entrypoint(self._bundle, entrypoint)
                if not output.ok():
                    raise regopy.RegoError(_error_text(rego_output_string(output._impl)))
                return [value for result in output.results for value in result.expressions]
            except (regopy.RegoError, ValueError) as exc:
                # regopy raises ValueError (a JSONDecodeError) when the engine returns an error as text.
                raise PolicyEvaluationError(str(exc).strip()[:500]) from exc
            finally:
                free_input(document_handle)

    async def decide(self, policy_input: PolicyInput) -> Decision:
        """The decision for `policy_input` (evaluated inline: it is faster than a thread hop)."""
        return self.evaluate(policy_input)
