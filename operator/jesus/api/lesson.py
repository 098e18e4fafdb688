"""Lesson: something a team's runs learned, with the evidence it rests on (docs/reflection.md#lessons).

A ShortTerm lesson lives in the run archive, proposed by a run's reflection; a LongTerm one is a
reviewed file in the specs repo (`jesus lessons promote` writes it), synced into the cluster. Both are
offered to later runs of the team whose labels match the scope.
"""

from __future__ import annotations

import enum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from jesus.api.common import (
    ApiModel,
    Conditions,
    LabelKey,
    LabelValue,
    LabelValueName,
    ObjectMeta,
    ObjectName,
    Timestamp,
)
from jesus.api.objects import DIGEST_PATTERN
from jesus.api.rules import CelRule, ListType

KIND = "Lesson"
PLURAL = "lessons"
LESSON_TEXT_LIMIT = 1000
# A lesson is applied this often in short-term memory before it may be promoted (issue 18).
MIN_REUSES_FOR_LONG_TERM = 3


class LessonMemory(enum.StrEnum):
    """Where a lesson lives: the archive (ShortTerm) or the reviewed specs repo (LongTerm)."""

    SHORT_TERM = "ShortTerm"
    LONG_TERM = "LongTerm"


class LessonScope(ApiModel):
    """Which runs the lesson is offered to: the team's, and only those carrying all these labels."""

    team: LabelValueName
    """The team whose runs learn from it."""
    run_labels: Annotated[dict[LabelKey, LabelValue], Field(max_length=16)] | None = None
    """Labels a run must carry (all of them, exactly) to be offered it; unset: every run of the team."""


class EvidenceArtifact(ApiModel):
    """An artifact a lesson cites, by name and content digest."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    """File name, e.g. tool-results.json."""
    digest: Annotated[str, Field(pattern=DIGEST_PATTERN)]
    """sha256 of the content; promotion checks it still matches."""
    uri: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    """Where it is stored, as the run's record names it."""


class LessonEvidence(ApiModel):
    """One run the lesson rests on: the run that proposed it, or one that applied it."""

    run: ObjectName
    """The AgentRun's name."""
    namespace: LabelValueName | None = None
    """Its namespace."""
    role: Literal["Origin", "Reuse"] = "Origin"
    """Origin: the run whose reflection proposed it; Reuse: a later run that applied it."""
    outcome: Annotated[str, Field(max_length=1000)] | None = None
    """What came of applying it (reuses)."""
    artifacts: Annotated[list[EvidenceArtifact], Field(max_length=32), ListType.as_map("name")] | None = None
    """Artifacts of that run the lesson cites."""


def _reuses(spec: LessonSpec) -> int:
    return sum(1 for e in spec.evidence if e.role == "Reuse")


class LessonSpec(ApiModel):
    """What was learned, for whom, on what evidence."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self.memory != 'LongTerm' || self.evidence.filter(e, e.role == 'Reuse').size() >= 3",
            message="a LongTerm lesson cites at least 3 runs that reused it (role Reuse)",
            check=lambda spec: (
                spec.memory != LessonMemory.LONG_TERM or _reuses(spec) >= MIN_REUSES_FOR_LONG_TERM
            ),
            field="evidence",
        ),
    )

    text: Annotated[str, Field(min_length=1, max_length=LESSON_TEXT_LIMIT)]
    """The lesson, a sentence or two; offered to runs as quoted notes, never as instructions."""
    scope: LessonScope
    """Which runs it is offered to."""
    evidence: Annotated[list[LessonEvidence], Field(min_length=1, max_length=64)]
    """The runs it rests on; at least one."""
    memory: LessonMemory = LessonMemory.LONG_TERM
    """ShortTerm (the archive) or LongTerm (reviewed, in the specs repo)."""
    promoted_at: Timestamp | None = None
    """When it was promoted to long-term memory."""


class LessonStatus(ApiModel):
    """Observed state (no controller writes it yet: the runner reads the spec)."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions | None = None
    """Conditions, by type."""


class Lesson(ApiModel):
    """A lesson offered to later runs of a team, with the evidence it rests on."""

    api_version: Literal["jesus.dev/v1alpha1"] = "jesus.dev/v1alpha1"
    """jesus.dev/v1alpha1"""
    kind: Literal["Lesson"] = "Lesson"
    """Lesson"""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: LessonSpec
    """What was learned."""
    status: LessonStatus | None = None
    """Observed state."""
