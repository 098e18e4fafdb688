"""A problem found in a spec: where it is (file, line, object, field) and what is wrong."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Severity(enum.StrEnum):
    """Errors fail validation; warnings are shown and do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, located as precisely as the source allows.

    `kind` and `name` are empty when the problem is not about one object (a file that is not YAML);
    `field` is a path such as `spec.chain[1].adapterRef`, empty when it is about the whole object.
    """

    file: Path
    line: int
    message: str
    kind: str = ""
    name: str = ""
    field: str = ""
    severity: Severity = Severity.ERROR

    @property
    def object_ref(self) -> str:
        """`Kind/name`, or what is known of it."""
        if self.kind and self.name:
            return f"{self.kind}/{self.name}"
        return self.kind or self.name

    def format(self) -> str:
        """`file:line: Kind/name: field.path: message`, leaving out the parts that are unknown."""
        parts = [f"{self.file}:{self.line}"]
        if self.object_ref:
            parts.append(self.object_ref)
        if self.field:
            parts.append(self.field)
        prefix = "warning: " if self.severity is Severity.WARNING else ""
        parts.append(prefix + self.message)
        return ": ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """The problem as a JSON object for `--output json`."""
        return {
            "file": str(self.file),
            "line": self.line,
            "kind": self.kind,
            "name": self.name,
            "field": self.field,
            "message": self.message,
            "severity": self.severity.value,
        }


def format_field_path(path: tuple[str | int, ...]) -> str:
    """`("spec", "chain", 1, "adapterRef")` -> `spec.chain[1].adapterRef`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def sort_key(problem: Problem) -> tuple[str, int, str, str]:
    """Problems in file and line order."""
    return (str(problem.file), problem.line, problem.object_ref, problem.field)
