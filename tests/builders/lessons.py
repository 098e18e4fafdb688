"""Lesson objects for the tests of which lessons runs are offered."""

from __future__ import annotations

from typing import Any

from jesus.api import Lesson


def lesson_object(
    name: str, memory: str = "LongTerm", labels: dict[str, str] | None = None, *, team: str = "ml"
) -> Lesson:
    """A lesson of `team` with object `labels`, cited by its origin run and three reuses (as a LongTerm
    one must be)."""
    evidence: list[dict[str, Any]] = [
        {"run": "origin", "role": "Origin", "artifacts": [{"name": "a.md", "digest": "sha256:" + "ab" * 32}]},
        *({"run": f"reuse-{n}", "role": "Reuse", "outcome": "it held"} for n in range(3)),
    ]
    return Lesson.model_validate(
        {
            "metadata": {"name": name, "namespace": "ml", "labels": labels or {}},
            "spec": {
                "text": f"{name}: quote the figures.",
                "scope": {"team": team},
                "evidence": evidence,
                "memory": memory,
            },
        }
    )
