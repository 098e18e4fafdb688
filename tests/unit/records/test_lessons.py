"""Lessons from reflections to long-term memory: a candidate becomes a short-term lesson in the archive,
three later runs reuse it, and `jesus lessons promote` writes the LongTerm Lesson; promotion is refused
at two reuses, with evidence gone or changed, and with a secret in the text."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.api import Lesson, LessonMemory
from jesus.cli import main
from jesus.logic.lessons import lesson_id
from jesus.records import RecordStore, database_url
from jesus.records.lessons import LessonArchive
from jesus.router.config import EnvironmentCredentials
from jesus.runner.artifacts import DirectoryArtifactStore
from jesus.runner.local import execute_local_run, prepare_local_run, select_run
from jesus.specs import load_specs, load_text, validate_specs

TEAM = "ml"
LESSON_TEXT = "Quote the report's own figures instead of recomputing them."
LESSON = lesson_id(TEAM, LESSON_TEXT)
NOW = "2026-12-01T00:00:00Z"


def reflection(*, offered: list[str], applied: list[str], candidates: list[str]) -> str:
    return json.dumps(
        {
            "goal": "Summarise the input.",
            "outcome": "met",
            "evidence": ["artifact:final-answer.md"],
            "wentWrong": [],
            "escalation": {"needed": False, "why": "a short summary"},
            "lessons": {
                "offered": offered,
                "applied": [{"id": lesson, "outcome": "the figures matched"} for lesson in applied],
            },
            "lessonCandidates": [
                {"text": text, "evidence": ["artifact:final-answer.md"]} for text in candidates
            ],
            "cost": {"tokens": 120, "costMicros": 140, "withinLimits": True},
        }
    )


def run_once(tmp_path: Path, database: str, name: str, script: str) -> Path:
    """One run of team ml, offered the archive's lessons, its artifacts kept; its result.json."""
    answer = {"text": f"{name}: 12 of 15 closed.", "usage": {"inputTokens": 100, "outputTokens": 20}}
    spec_set = load_text(
        to_yaml(
            scripted_adapter(replies=[answer, {"text": script}]),
            route_policy(),
            budget(limit="9.00"),
            agent_run(name, reflection="Checklist"),
        )
    )
    assert not validate_specs(spec_set) or all(p.severity.value != "error" for p in validate_specs(spec_set))
    folder = tmp_path / name

    async def go() -> None:
        store = RecordStore(database_url(database))
        try:
            await store.migrate()
            lessons = await LessonArchive(store).lessons(TEAM)
        finally:
            await store.close()
        prepared = await prepare_local_run(
            spec_set,
            select_run(spec_set, name),
            live=False,
            credentials=EnvironmentCredentials({}),
            policy=None,
            lessons=lessons,
        )
        record = await execute_local_run(prepared, store=DirectoryArtifactStore(folder))
        assert record.reflection is not None and record.reflection["passed"], record.reflection

    asyncio.run(go())
    return folder / "result.json"


def record_run(result: Path, database: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["lessons", "record", str(result), "--team", TEAM, "--database", database]) == 0
    return capsys.readouterr().out


def promote(database: str, specs: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`jesus lessons promote`'s exit code, and what it printed: stdout when it wrote, else its refusal."""
    code = main(["lessons", "promote", LESSON, "--specs", str(specs), "--database", database])
    captured = capsys.readouterr()
    return code, captured.out if code == 0 else captured.err


@pytest.fixture
def sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'archive.db'}"


def test_a_candidate_is_reused_three_times_then_promoted(
    tmp_path: Path, sqlite: str, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    origin = run_once(
        tmp_path, sqlite, "weekly-1", reflection(offered=[], applied=[], candidates=[LESSON_TEXT])
    )
    assert (
        record_run(origin, sqlite, capsys) == f"run weekly-1: 1 new lesson(s) ['{LESSON}'], 0 reuse(s) []\n"
    )
    script = reflection(offered=[LESSON], applied=[LESSON], candidates=[])
    for number in (2, 3):
        result = run_once(tmp_path, sqlite, f"weekly-{number}", script)
        # The later run was offered the lesson, as quoted data in its first message.
        transcript = json.loads((result.parent / "transcript.json").read_text())
        assert f'<lesson id="{LESSON}">' in transcript[1]["content"]
        assert f"1 reuse(s) ['{LESSON}']" in record_run(result, sqlite, capsys)
    code, out = promote(sqlite, specs, capsys)
    assert code == 1 and "it has 2 reuse(s); promotion needs at least 3" in out
    assert list(specs.iterdir()) == []
    # Recording the same run twice is not a second reuse.
    assert "0 reuse(s) []" in record_run(result, sqlite, capsys)
    record_run(run_once(tmp_path, sqlite, "weekly-4", script), sqlite, capsys)

    assert main(["lessons", "list", "--database", sqlite]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[1].split()[:4] == [LESSON, TEAM, "ShortTerm", "3"]

    code, out = promote(sqlite, specs, capsys)
    assert code == 0, out
    written = specs / f"{LESSON}.yaml"
    assert out == f"wrote {written}: LongTerm Lesson {LESSON}, for a pull request\n"
    spec_set = load_specs([written])
    assert spec_set.problems == []
    (lesson,) = spec_set.of_kind(Lesson)
    assert lesson.spec.memory is LessonMemory.LONG_TERM and lesson.spec.text == LESSON_TEXT
    assert [(e.run, e.role) for e in lesson.spec.evidence] == [
        ("weekly-1", "Origin"),
        ("weekly-2", "Reuse"),
        ("weekly-3", "Reuse"),
        ("weekly-4", "Reuse"),
    ]
    digest = json.loads(origin.read_text())["artifacts"][0]["digest"]
    assert lesson.spec.evidence[0].artifacts[0].digest == digest  # type: ignore[index]
    # Long-term, it is offered from the specs (and listed with them).
    assert main(["lessons", "list", "--specs", str(specs), "--database", sqlite, "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["spec"]["memory"], r["reuses"]) for r in rows] == [("ShortTerm", 3), ("LongTerm", 3)]


def _three_reuses(tmp_path: Path, database: str, capsys: pytest.CaptureFixture[str]) -> Path:
    origin = run_once(
        tmp_path, database, "weekly-1", reflection(offered=[], applied=[], candidates=[LESSON_TEXT])
    )
    record_run(origin, database, capsys)
    script = reflection(offered=[LESSON], applied=[LESSON], candidates=[])
    for number in (2, 3, 4):
        record_run(run_once(tmp_path, database, f"weekly-{number}", script), database, capsys)
    return origin.parent


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda path: path.unlink(), "evidence final-answer.md of run weekly-1 no longer exists"),
        (lambda path: path.write_text("edited"), "evidence final-answer.md of run weekly-1 changed: sha256:"),
    ],
)
def test_promotion_is_refused_when_evidence_is_gone_or_changed(
    tmp_path: Path, sqlite: str, capsys: pytest.CaptureFixture[str], damage: Any, reason: str
) -> None:
    folder = _three_reuses(tmp_path, sqlite, capsys)
    damage(folder / "final-answer.md")
    code, out = promote(sqlite, tmp_path, capsys)
    assert code == 1 and reason in out
    assert not (tmp_path / f"{LESSON}.yaml").exists()


def test_promotion_is_refused_with_a_secret_in_the_lesson_text(
    tmp_path: Path, sqlite: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The runner redacts reflections, so the secret is planted in the archive itself (a redactor that
    # missed it, or an edited row): the sanitize gate is the last check before long-term memory.
    _three_reuses(tmp_path, sqlite, capsys)
    planted = LESSON_TEXT + " Log in with password=Hunter2-Correct-Horse-Battery."

    async def plant() -> None:
        store = RecordStore(database_url(sqlite))
        try:
            async with store.engine.begin() as connection:
                await connection.exec_driver_sql(
                    "UPDATE lessons SET text = ? WHERE id = ?", (planted, LESSON)
                )
        finally:
            await store.close()

    asyncio.run(plant())
    code, out = promote(sqlite, tmp_path, capsys)
    assert code == 1 and "the sanitize gate found" in out and ": secret" in out
    assert "Hunter2" not in out, "the refusal does not repeat the secret"


def test_the_sanitize_gate_scans_what_a_model_wrote_not_the_platforms_names_and_digests(
    tmp_path: Path, sqlite: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A run's name (or a UID or digest in a URI) can hold digits a phone detector matches; the gate
    # reads the lesson's text and its reuses' outcomes, so such a lesson is promoted, and a phone number
    # in an outcome is still found, named by its field.
    _three_reuses(tmp_path, sqlite, capsys)

    async def edit(statement: str, *values: str) -> None:
        store = RecordStore(database_url(sqlite))
        try:
            async with store.engine.begin() as connection:
                await connection.exec_driver_sql(statement, values)
        finally:
            await store.close()

    asyncio.run(edit("UPDATE lesson_evidence SET run = ? WHERE run = ?", "report-2125550187", "weekly-2"))
    code, out = promote(sqlite, tmp_path, capsys)
    assert code == 0, out
    assert "report-2125550187" in (tmp_path / f"{LESSON}.yaml").read_text()
    (tmp_path / f"{LESSON}.yaml").unlink()
    asyncio.run(
        edit("UPDATE lesson_evidence SET outcome = ? WHERE run = ?", "Call me at 212-555-0187.", "weekly-3")
    )
    code, out = promote(sqlite, tmp_path, capsys)
    assert code == 1 and "the sanitize gate found spec.evidence[2].outcome: phone" in out, out
    assert "555-0187" not in out


def test_unknown_lessons_and_bad_results_are_named(
    tmp_path: Path, sqlite: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lessons", "promote", "l-000000000000", "--specs", str(tmp_path), "--database", sqlite]) == 2
    assert "no short-term lesson 'l-000000000000' in the archive" in capsys.readouterr().err
    bad = tmp_path / "result.json"
    bad.write_text("[1, 2]")
    assert main(["lessons", "record", str(bad), "--team", TEAM, "--database", sqlite]) == 2
    assert f"{bad}: not a run's result.json (no run)" in capsys.readouterr().err
    bad.write_text('{"run": "r", "reflection": {"passed": true, "reflection": {"lessonCandidates": [{}]}}}')
    assert main(["lessons", "record", str(bad), "--team", TEAM, "--database", sqlite]) == 2
    assert f"{bad}: reflection: " in capsys.readouterr().err


async def test_the_archive_keeps_lessons_on_both_databases(store: RecordStore) -> None:
    from jesus.logic.lessons import RunOrigin, learn_from_reflection

    block = {
        "passed": True,
        "reflection": json.loads(
            reflection(offered=["l-x"], applied=["l-x"], candidates=[LESSON_TEXT, LESSON_TEXT])
        ),
    }
    artifacts = [
        {"name": "final-answer.md", "digest": "sha256:" + "ab" * 32, "uri": "file:///a/final-answer.md"}
    ]
    learned = learn_from_reflection(RunOrigin("r1", "team-ml", TEAM, artifacts), block)
    archive = LessonArchive(store)
    recorded = await archive.record(learned, NOW)
    assert (recorded.new, recorded.reused, recorded.unknown) == ([LESSON], [], ["l-x"])
    assert await archive.record(learned, NOW) == type(recorded)([], [], ["l-x"])
    (lesson,) = await archive.lessons(TEAM)
    assert lesson.metadata.namespace == "team-ml" and lesson.spec.text == LESSON_TEXT
    assert lesson.spec.evidence[0].artifacts[0].uri == "file:///a/final-answer.md"  # type: ignore[index]
    assert await archive.lessons("other") == []
    failed = {**block, "passed": False}
    nothing = learn_from_reflection(RunOrigin("r2", "", TEAM, artifacts), failed)
    assert (nothing.candidates, nothing.reuses, nothing.problem) == ((), (), None)


async def test_an_archive_at_0001_is_upgraded_with_its_runs_kept(database: str) -> None:
    from tests.builders.records import decision

    from jesus.records.upgrade import current_revision, migrate

    store = RecordStore(database_url(database))
    try:
        await migrate(store.engine, "0001")
        await store.append([decision("u", n=1)], NOW)
        await store.migrate()
        assert await current_revision(store.engine) == "0004"
        assert (await store.verify()).broken is None
        assert await LessonArchive(store).lessons() == []
    finally:
        await store.close()


def test_an_edited_row_is_left_out_not_a_crash_and_cannot_name_a_path(
    tmp_path: Path, sqlite: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def plant() -> None:
        store = RecordStore(database_url(sqlite))
        try:
            await store.migrate()
            async with store.engine.begin() as connection:
                for lesson_id, artifacts in (
                    ("../../evil", "[]"),
                    ("l-aaaaaaaaaaaa", '[{"name": "a", "digest": 5}]'),
                ):
                    await connection.exec_driver_sql(
                        "INSERT INTO lessons VALUES (?, '', 'ml', 'x', '{}', 'ShortTerm', ?)",
                        (lesson_id, NOW),
                    )
                    await connection.exec_driver_sql(
                        "INSERT INTO lesson_evidence VALUES (?, '', 'r', 'Origin', NULL, ?, ?)",
                        (lesson_id, artifacts, NOW),
                    )
        finally:
            await store.close()

    asyncio.run(plant())
    assert main(["lessons", "list", "--database", sqlite]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == []
    assert main(["lessons", "promote", "../../evil", "--specs", str(tmp_path), "--database", sqlite]) == 2
    assert "no short-term lesson '../../evil' in the archive" in capsys.readouterr().err
    assert list(tmp_path.parent.glob("evil*")) == []


async def test_a_run_reuses_only_its_own_teams_lessons(store: RecordStore) -> None:
    # A hostile reflection of another team names this team's lesson id (ids are derived from a team
    # and a text, so a guessed text gives a real id): it is not counted as a reuse.
    from jesus.logic.lessons import RunOrigin, learn_from_reflection

    def block(**fields: list[str]) -> dict[str, object]:
        return {"passed": True, "reflection": json.loads(reflection(**fields))}

    archive = LessonArchive(store)
    origin = learn_from_reflection(
        RunOrigin("r1", "", TEAM, []), block(offered=[], applied=[], candidates=[LESSON_TEXT])
    )
    assert (await archive.record(origin, NOW)).new == [LESSON]
    foreign = learn_from_reflection(
        RunOrigin("r2", "", "web", []), block(offered=[LESSON], applied=[LESSON], candidates=[])
    )
    assert (await archive.record(foreign, NOW)).unknown == [LESSON]
    own = learn_from_reflection(
        RunOrigin("r3", "", TEAM, []), block(offered=[LESSON], applied=[LESSON], candidates=[])
    )
    assert (await archive.record(own, NOW)).reused == [LESSON]
    (lesson,) = await archive.lessons(TEAM)
    assert [(e.run, e.role) for e in lesson.spec.evidence] == [("r1", "Origin"), ("r3", "Reuse")]
