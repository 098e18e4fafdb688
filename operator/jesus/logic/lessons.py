"""Lessons: which runs are offered which, how a reflection's candidates and reuses become evidence,
and whether a short-term lesson may be promoted to long-term memory (docs/reflection.md#lessons).

Pure: the archive (jesus.records.lessons) stores what these functions decide; `jesus lessons` and the
runner call them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from jesus.api.common import ObjectMeta
from jesus.api.lesson import (
    LESSON_TEXT_LIMIT,
    MIN_REUSES_FOR_LONG_TERM,
    EvidenceArtifact,
    Lesson,
    LessonEvidence,
    LessonMemory,
    LessonScope,
    LessonSpec,
)
from jesus.logic.reflection import Candidate, OfferedLesson, Reflection

# At most this many lessons go into one run's first message, long-term ones first.
MAX_OFFERED = 8
# The runner pod's environment variable with the lessons the operator offers it (JSON: [{id, text}]).
LESSONS_VARIABLE = "JESUS_LESSONS"


def lesson_id(team: str, text: str) -> str:
    """A short-term lesson's id: stable for one team and text, a valid object name (`l-<12 hex>`)."""
    digest = hashlib.sha256(f"{team}\n{' '.join(text.split())}".encode()).hexdigest()
    return f"l-{digest[:12]}"


def applies_to(scope: LessonScope, team: str, labels: Mapping[str, str]) -> bool:
    """Whether a lesson of `scope` is offered to a run of `team` carrying `labels`."""
    if scope.team != team:
        return False
    return all(labels.get(key) == value for key, value in (scope.run_labels or {}).items())


def offer(
    lessons: Iterable[Lesson], team: str, labels: Mapping[str, str], limit: int = MAX_OFFERED
) -> tuple[OfferedLesson, ...]:
    """The lessons a run is offered: those whose scope matches, long-term first, then by id."""
    matching = [lesson for lesson in lessons if applies_to(lesson.spec.scope, team, labels)]
    matching.sort(
        key=lambda lesson: (lesson.spec.memory != LessonMemory.LONG_TERM, lesson.metadata.name or "")
    )
    seen: set[str] = set()
    offered: list[OfferedLesson] = []
    for lesson in matching:
        name = lesson.metadata.name or ""
        if name and name not in seen:
            seen.add(name)
            offered.append(OfferedLesson(name, lesson.spec.text))
    return tuple(offered[:limit])


def lessons_json(lessons: Sequence[OfferedLesson]) -> str:
    """Offered lessons as the runner pod reads them (`LESSONS_VARIABLE`)."""
    return json.dumps([{"id": lesson.id, "text": lesson.text} for lesson in lessons], sort_keys=True)


def parse_lessons(text: str | None) -> tuple[tuple[OfferedLesson, ...], str | None]:
    """The lessons in `LESSONS_VARIABLE`, and what was wrong with it (None: nothing). Malformed entries
    are dropped, never guessed at; at most `MAX_OFFERED`, each id and text within a Lesson's limits."""
    if not text:
        return (), None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return (), f"{LESSONS_VARIABLE} is not JSON"
    if not isinstance(value, list):
        return (), f"{LESSONS_VARIABLE} is not a list"
    lessons = [
        OfferedLesson(entry["id"], entry["text"])
        for entry in value
        if isinstance(entry, dict)
        and isinstance(entry.get("id"), str)
        and isinstance(entry.get("text"), str)
        and 0 < len(entry["id"]) <= 253
        and 0 < len(entry["text"]) <= LESSON_TEXT_LIMIT
    ]
    dropped = len(value) - len(lessons)
    problem = f"{LESSONS_VARIABLE}: {dropped} malformed lesson(s) left out" if dropped else None
    if len(lessons) > MAX_OFFERED:
        problem = f"{LESSONS_VARIABLE}: {len(lessons)} lessons, only the first {MAX_OFFERED} offered"
    return tuple(lessons[:MAX_OFFERED]), problem


@dataclass(frozen=True)
class RunOrigin:
    """The run a reflection came from: who it belongs to, and the artifacts it left (their `name`,
    `digest` and `uri`, as a run record lists them)."""

    run: str
    namespace: str
    team: str
    artifacts: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class LearnedFromRun:
    """What one checked reflection adds to short-term memory: new lessons, and reuses of offered ones."""

    candidates: tuple[Lesson, ...] = ()
    reuses: tuple[tuple[str, LessonEvidence], ...] = ()  # (lesson id, the run as evidence)
    team: str = ""
    """The team of the run: a reuse counts only for that team's lessons."""
    problem: str | None = None
    """Why a reflection that passed teaches nothing (its block is not the documented shape)."""


def learn_from_reflection(origin: RunOrigin, block: Any) -> LearnedFromRun:
    """What a run's reflection block (`RunRecord.reflection`) teaches: each candidate becomes a
    ShortTerm lesson with this run as its origin; each offered lesson it applied, with its outcome, is
    a reuse by this run.

    A reflection that failed the checklist teaches nothing: its evidence is not trustworthy. In a
    cluster the block comes from the runner pod's `reflection.json`, which the pod could have written
    in any shape: it is held to the reflection's schema (`Reflection`) before anything is learned.
    """
    if block is not None and not isinstance(block, Mapping):
        return LearnedFromRun(
            team=origin.team, problem="the reflection is not LAW-REFLECT-001's shape: not an object"
        )
    if not block or block.get("passed") is not True or not isinstance(block.get("reflection"), Mapping):
        return LearnedFromRun(team=origin.team)
    try:
        # As JSON: strict mode reads an enum's value from JSON text, not from a Python string.
        reflection = Reflection.model_validate_json(json.dumps(block["reflection"]))
        candidates = tuple(_candidate(origin, candidate) for candidate in reflection.lesson_candidates)
    except ValidationError as exc:
        problem = f"the reflection is not LAW-REFLECT-001's shape: {_first_error(exc)}"
        return LearnedFromRun(team=origin.team, problem=problem)
    reuses = []
    for applied in reflection.lessons.applied:
        evidence = LessonEvidence(
            run=origin.run,
            namespace=origin.namespace or None,
            role="Reuse",
            outcome=applied.outcome,
            artifacts=_artifacts(reflection.evidence, origin) or None,
        )
        reuses.append((applied.id, evidence))
    return LearnedFromRun(candidates, tuple(reuses), team=origin.team)


def _candidate(origin: RunOrigin, candidate: Candidate) -> Lesson:
    text = " ".join(candidate.text.split())
    evidence = LessonEvidence(
        run=origin.run,
        namespace=origin.namespace or None,
        role="Origin",
        artifacts=_artifacts(candidate.evidence, origin) or None,
    )
    return Lesson(
        metadata=ObjectMeta(name=lesson_id(origin.team, text), namespace=origin.namespace or None),
        spec=LessonSpec(
            text=text,
            scope=LessonScope(team=origin.team),
            evidence=[evidence],
            memory=LessonMemory.SHORT_TERM,
        ),
    )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "reflection"
    return f"{where}: {error['msg']}"


def _artifacts(references: Sequence[Any], origin: RunOrigin) -> list[EvidenceArtifact]:
    """The artifacts among `references`, by name, digest and where they are. A call or tool result is
    kept in the transcript and the tool results: citing one cites those."""
    stored = {str(a["name"]): a for a in origin.artifacts if a.get("digest")}
    names: list[str] = []
    for reference in map(str, references):
        if reference.startswith("artifact:"):
            names.append(reference.removeprefix("artifact:"))
        elif reference.startswith(("call:", "tool:")):
            names.extend(("transcript.json", "tool-results.json"))
        else:
            names.extend(name for name, a in stored.items() if a["digest"] == reference)
    found: dict[str, EvidenceArtifact] = {}
    for name in names:
        if name in stored and name not in found:
            artifact = stored[name]
            found[name] = EvidenceArtifact(name=name, digest=str(artifact["digest"]), uri=artifact.get("uri"))
    return list(found.values())


def reuse_count(lesson: Lesson) -> int:
    """How many distinct later runs applied the lesson."""
    return len({(e.namespace, e.run) for e in lesson.spec.evidence if e.role == "Reuse"})


@dataclass(frozen=True)
class EvidenceCheck:
    """One cited artifact, and what was found where it should be (None: it is gone)."""

    run: str
    name: str
    digest: str
    found_digest: str | None


def promotion_refusals(
    lesson: Lesson, checks: Sequence[EvidenceCheck], sanitize_findings: Sequence[str]
) -> list[str]:
    """Why `lesson` may not be promoted to long-term memory (empty: it may).

    It needs at least three reuses by distinct runs, every cited artifact present with its digest,
    and a sanitize gate without findings over the text that would be written.
    """
    reasons = []
    reuses = reuse_count(lesson)
    if reuses < MIN_REUSES_FOR_LONG_TERM:
        reasons.append(f"it has {reuses} reuse(s); promotion needs at least {MIN_REUSES_FOR_LONG_TERM}")
    cited = sum(len(e.artifacts or []) for e in lesson.spec.evidence)
    if not cited:
        reasons.append("it cites no artifact as evidence")
    for check in checks:
        if check.found_digest is None:
            reasons.append(f"evidence {check.name} of run {check.run} no longer exists")
        elif check.found_digest != check.digest:
            reasons.append(
                f"evidence {check.name} of run {check.run} changed: "
                f"{check.found_digest} is not {check.digest}"
            )
    reasons.extend(f"the sanitize gate found {finding}" for finding in sanitize_findings)
    return reasons


def long_term(lessons: Iterable[Lesson]) -> list[Lesson]:
    """The LongTerm lessons among `lessons` (a ShortTerm one in the cluster or the specs is not reviewed
    memory: short-term lessons come from the archive)."""
    return [lesson for lesson in lessons if lesson.spec.memory is LessonMemory.LONG_TERM]


def promoted(lesson: Lesson, promoted_at: str) -> Lesson:
    """The LongTerm Lesson object that promotion writes into the specs repo."""
    spec = lesson.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec.update(memory=LessonMemory.LONG_TERM.value, promotedAt=promoted_at)
    return Lesson(
        metadata=ObjectMeta(name=lesson.metadata.name, namespace=lesson.metadata.namespace),
        spec=LessonSpec.model_validate(spec),  # validated: the CEL rules hold for what is written
    )


# Which lessons runs are offered: the policy's `data.jesus.lessons.decision` for each (policies/lessons/).
LESSON_INPUT_VERSION = "jesus.dev/lesson-input/v1"
LESSONS_REF = "data.jesus.lessons.decision"


@dataclass(frozen=True)
class LessonVerdict:
    """Whether runs may be offered a lesson, and why not."""

    offer: bool
    reasons: tuple[str, ...] = ()


OFFERED = LessonVerdict(True)


class LessonPolicy(Protocol):
    """Decides, lesson by lesson, whether runs are offered it (jesus.policy.lessons implements it)."""

    async def verdict(self, lesson: Lesson) -> LessonVerdict:
        """The policy's verdict on `lesson`; never raises (a failure withholds the lesson, saying why)."""
        ...


def lesson_input(lesson: Lesson) -> dict[str, Any]:
    """The policy's input document for `lesson` (policies/lessons/offer.rego)."""
    return {
        "version": LESSON_INPUT_VERSION,
        "lesson": {
            "name": lesson.metadata.name or "",
            "namespace": lesson.metadata.namespace or "",
            "team": lesson.spec.scope.team,
            "memory": lesson.spec.memory.value,
            "labels": dict(lesson.metadata.labels or {}),
        },
    }


def verdict_from_values(values: Sequence[Any]) -> LessonVerdict:
    """The verdict from what the policy's decision evaluated to. No value: the policy has no rules
    about lessons, and every lesson is offered. Anything but `{offer, reasons}` withholds the lesson:
    a lesson is advice, and leaving it out is always safe."""
    if not values:
        return OFFERED
    if len(values) > 1:
        return LessonVerdict(False, (f"{LESSONS_REF} gave {len(values)} values, not one",))
    value = values[0]
    offer = value.get("offer") if isinstance(value, Mapping) else None
    reasons = value.get("reasons") if isinstance(value, Mapping) else None
    if (
        not isinstance(offer, bool)
        or not isinstance(reasons, list)
        or not all(isinstance(r, str) for r in reasons)
    ):
        return LessonVerdict(False, (f"{LESSONS_REF} is not {{offer: boolean, reasons: [string]}}",))
    if offer and reasons:
        return LessonVerdict(False, (f"{LESSONS_REF} offers the lesson but gives reasons not to",))
    return LessonVerdict(offer, tuple(sorted(reasons)))


async def offered_to_run(
    lessons: Iterable[Lesson], team: str, labels: Mapping[str, str], policy: LessonPolicy | None
) -> tuple[tuple[OfferedLesson, ...], list[str]]:
    """What a run of `team` carrying `labels` is offered among `lessons` (those that match it and that
    `policy` lets runs see; see `offer`), and why each matching one the policy refuses is withheld."""
    kept: list[Lesson] = []
    withheld: list[str] = []
    for lesson in lessons:
        if not applies_to(lesson.spec.scope, team, labels):
            continue
        verdict = OFFERED if policy is None else await policy.verdict(lesson)
        if verdict.offer:
            kept.append(lesson)
        else:
            withheld.append(f"lesson {lesson.metadata.name} withheld: {'; '.join(verdict.reasons)}")
    return offer(kept, team, labels), withheld
