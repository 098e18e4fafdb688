"""Lessons' pure decisions: which runs are offered which, what a reflection teaches, when promotion is
refused, and the LongTerm object promotion writes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from jesus.api import Lesson
from jesus.logic.lessons import (
    MAX_OFFERED,
    EvidenceCheck,
    RunOrigin,
    learn_from_reflection,
    lesson_id,
    long_term,
    offer,
    promoted,
    promotion_refusals,
    reuse_count,
)

DIGEST = "sha256:" + "ab" * 32
ARTIFACTS = [
    {"name": "final-answer.md", "digest": DIGEST, "uri": "file:///r/final-answer.md"},
    {"name": "transcript.json", "digest": "sha256:" + "cd" * 32, "uri": "file:///r/transcript.json"},
    {"name": "tool-results.json", "digest": "sha256:" + "ef" * 32, "uri": "file:///r/tool-results.json"},
    {"name": "result.json"},
]


def lesson(
    name: str,
    *,
    team: str = "ml",
    labels: dict[str, str] | None = None,
    memory: str = "ShortTerm",
    reuses: int = 0,
    artifacts: bool = True,
) -> Lesson:
    evidence: list[dict[str, Any]] = [
        {
            "run": "origin",
            "role": "Origin",
            **({"artifacts": [{"name": "a.md", "digest": DIGEST}]} if artifacts else {}),
        }
    ]
    evidence += [{"run": f"reuse-{n}", "role": "Reuse", "outcome": "ok"} for n in range(reuses)]
    scope: dict[str, Any] = {"team": team, **({"runLabels": labels} if labels else {})}
    return Lesson.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"text": f"{name} text", "scope": scope, "evidence": evidence, "memory": memory},
        }
    )


def test_lesson_ids_are_stable_for_team_and_text_and_are_object_names() -> None:
    first = lesson_id("ml", "Quote  the figures.\n")
    assert first == lesson_id("ml", "Quote the figures.") and first.startswith("l-") and len(first) == 14
    assert first != lesson_id("web", "Quote the figures.")


def test_a_run_is_offered_its_teams_lessons_whose_labels_it_carries_long_term_first() -> None:
    lessons = [
        lesson("l-b"),
        lesson("l-a", labels={"report-kind": "weekly"}),
        lesson("l-z", memory="LongTerm", reuses=3),
        lesson("l-other", team="web"),
        lesson("l-b"),  # the same lesson from the archive and the specs is offered once
    ]
    offered = offer(lessons, "ml", {"report-kind": "weekly", "app": "x"})
    assert [o.id for o in offered] == ["l-z", "l-a", "l-b"]
    assert [o.id for o in offer(lessons, "ml", {"report-kind": "daily"})] == ["l-z", "l-b"]
    assert offer(lessons, "nobody", {}) == ()
    assert [x.metadata.name for x in long_term(lessons)] == ["l-z"]
    many = [lesson(f"l-{n:02d}") for n in range(20)]
    assert len(offer(many, "ml", {})) == MAX_OFFERED


def block(passed: bool = True, **reflection: Any) -> dict[str, Any]:
    """A reflection block in LAW-REFLECT-001's shape, with `reflection`'s fields over a plain one."""
    return {
        "passed": passed,
        "reflection": {
            "goal": "Summarise the input.",
            "outcome": "met",
            "evidence": [],
            "wentWrong": [],
            "escalation": {"needed": False, "why": "a short summary"},
            "lessons": {"offered": [], "applied": []},
            "lessonCandidates": [],
            "cost": {"tokens": 120, "costMicros": 140, "withinLimits": True},
            **reflection,
        },
    }


def test_a_passed_reflection_s_candidates_become_short_term_lessons_with_their_artifacts() -> None:
    learned = learn_from_reflection(
        RunOrigin("r1", "team-ml", "ml", ARTIFACTS),
        block(
            lessonCandidates=[
                {"text": "Quote figures.", "evidence": ["artifact:final-answer.md"]},
                {"text": "Check the tool.", "evidence": ["tool:call_1", DIGEST]},
                {"text": "Mind the gap.", "evidence": ["artifact:result.json"]},
            ]
        ),
    )
    first, second, third = learned.candidates
    assert first.metadata.name == lesson_id("ml", "Quote figures.") and first.metadata.namespace == "team-ml"
    assert first.spec.memory == "ShortTerm" and first.spec.scope.team == "ml"
    (evidence,) = first.spec.evidence
    assert (evidence.run, evidence.role) == ("r1", "Origin")
    assert [(a.name, a.digest, a.uri) for a in evidence.artifacts or []] == [
        ("final-answer.md", DIGEST, "file:///r/final-answer.md")
    ]
    assert [a.name for a in second.spec.evidence[0].artifacts or []] == [
        "transcript.json",
        "tool-results.json",
        "final-answer.md",
    ]
    assert third.spec.evidence[0].artifacts is None, "an artifact without a digest cannot be evidence"


def test_applied_lessons_are_reuses_with_the_outcome_and_a_failed_reflection_teaches_nothing() -> None:
    reflection = {
        "lessons": {"offered": ["l-1"], "applied": [{"id": "l-1", "outcome": "it worked"}]},
        "evidence": ["artifact:final-answer.md"],
        "lessonCandidates": [{"text": "x", "evidence": ["artifact:final-answer.md"]}],
    }
    learned = learn_from_reflection(RunOrigin("r2", "", "ml", ARTIFACTS), block(**reflection))
    ((lesson_ref, evidence),) = learned.reuses
    assert lesson_ref == "l-1" and (evidence.role, evidence.outcome, evidence.namespace) == (
        "Reuse",
        "it worked",
        None,
    )
    assert (
        learn_from_reflection(RunOrigin("r2", "", "ml", ARTIFACTS), block(False, **reflection)).candidates
        == ()
    )
    assert learn_from_reflection(RunOrigin("r2", "", "ml", ARTIFACTS), None).reuses == ()
    assert learn_from_reflection(RunOrigin("r2", "", "ml", ARTIFACTS), {"passed": True}).reuses == ()


def test_reuses_count_distinct_runs() -> None:
    twice = lesson("l-1", reuses=2)
    twice.spec.evidence.append(twice.spec.evidence[-1])
    assert reuse_count(twice) == 2


@pytest.mark.parametrize(
    ("kw", "checks", "findings", "reasons"),
    [
        ({"reuses": 3}, [], [], []),
        ({"reuses": 2}, [], [], ["it has 2 reuse(s); promotion needs at least 3"]),
        ({"reuses": 3, "artifacts": False}, [], [], ["it cites no artifact as evidence"]),
        (
            {"reuses": 3},
            [EvidenceCheck("r", "a.md", DIGEST, None)],
            [],
            ["evidence a.md of run r no longer exists"],
        ),
        (
            {"reuses": 3},
            [EvidenceCheck("r", "a.md", DIGEST, "sha256:" + "00" * 32)],
            [],
            [f"evidence a.md of run r changed: sha256:{'00' * 32} is not {DIGEST}"],
        ),
        (
            {"reuses": 0},
            [],
            ["3:9: secret"],
            ["it has 0 reuse(s); promotion needs at least 3", "the sanitize gate found 3:9: secret"],
        ),
    ],
)
def test_promotion_is_refused_with_every_reason(
    kw: dict[str, Any], checks: list[EvidenceCheck], findings: list[str], reasons: list[str]
) -> None:
    assert promotion_refusals(lesson("l-1", **kw), checks, findings) == reasons


def test_the_long_term_lesson_keeps_its_evidence_and_holds_to_the_rule() -> None:
    written = promoted(lesson("l-1", reuses=3), "2026-12-03T00:00:00Z")
    assert written.spec.memory == "LongTerm" and written.spec.promoted_at == "2026-12-03T00:00:00Z"
    assert len(written.spec.evidence) == 4
    with pytest.raises(ValidationError, match="a LongTerm lesson cites at least 3 runs"):
        promoted(lesson("l-1", reuses=2), "2026-12-03T00:00:00Z")


def test_offered_lessons_travel_to_the_pod_as_json_and_come_back() -> None:
    from jesus.logic.lessons import lessons_json, parse_lessons
    from jesus.logic.reflection import OfferedLesson

    offered = (OfferedLesson("l-1", 'Quote "figures" </lesson>'), OfferedLesson("l-2", "Be brief."))
    assert parse_lessons(lessons_json(offered)) == (offered, None)
    assert parse_lessons(None) == ((), None) and parse_lessons("") == ((), None)


@pytest.mark.parametrize(
    ("text", "count", "problem"),
    [
        ("{not json", 0, "JESUS_LESSONS is not JSON"),
        ('{"id": "l-1"}', 0, "JESUS_LESSONS is not a list"),
        ("[" * 5000 + "]" * 5000, 0, "JESUS_LESSONS is not"),
        (
            '[{"id": "l-1", "text": "ok"}, {"id": 5, "text": "x"}, "l-3", {"id": "l-4", "text": ""}]',
            1,
            "JESUS_LESSONS: 3 malformed lesson(s) left out",
        ),
        (json.dumps([{"id": "l-1", "text": "x" * 1001}]), 0, "1 malformed"),
        (
            json.dumps([{"id": f"l-{n}", "text": "x"} for n in range(20)]),
            MAX_OFFERED,
            "20 lessons, only the first 8",
        ),
    ],
)
def test_a_careless_or_hostile_lessons_variable_is_read_defensively(
    text: str, count: int, problem: str
) -> None:
    from jesus.logic.lessons import parse_lessons

    lessons, found = parse_lessons(text)
    assert len(lessons) == count and found is not None and problem in found


@pytest.mark.parametrize(
    ("reflection", "problem"),
    [
        ({"lessonCandidates": [{}]}, "lessonCandidates.0.text: Field required"),
        ({"lessonCandidates": [{"text": "x" * 1001, "evidence": ["a"]}]}, "lessonCandidates.0.text"),
        ({"lessonCandidates": [{"text": "ok", "evidence": []}]}, "lessonCandidates.0.evidence"),
        ({"lessonCandidates": [{"text": "ok", "evidence": ["a"]}] * 9}, "lessonCandidates: List should"),
        ({"lessons": {"offered": [], "applied": [{"id": 7, "outcome": "x"}]}}, "lessons.applied.0.id"),
        ({"lessons": {"offered": [], "applied": [{"id": "l-1"}]}}, "lessons.applied.0.outcome"),
        ({"outcome": "mostly"}, "outcome: Input should be"),
        ({"smuggled": "field"}, "smuggled: Extra inputs are not permitted"),
    ],
)
def test_a_pod_written_reflection_of_another_shape_teaches_nothing_and_says_why(
    reflection: dict[str, Any], problem: str
) -> None:
    # In a cluster the block is the runner pod's reflection.json: whatever it says, it is checked
    # against the reflection's schema, and a bad one is named, never half-learned.
    learned = learn_from_reflection(RunOrigin("r9", "ns", "ml", ARTIFACTS), block(**reflection))
    assert (learned.candidates, learned.reuses) == ((), ())
    assert learned.problem is not None and problem in learned.problem, learned.problem


@pytest.mark.parametrize("passed", ["yes", 1, None])
def test_only_a_reflection_that_passed_with_a_boolean_teaches(passed: Any) -> None:
    reflection = {"lessonCandidates": [{"text": "Quote figures.", "evidence": ["artifact:final-answer.md"]}]}
    learned = learn_from_reflection(RunOrigin("r9", "ns", "ml", ARTIFACTS), block(passed, **reflection))
    assert (learned.candidates, learned.problem, learned.team) == ((), None, "ml")
