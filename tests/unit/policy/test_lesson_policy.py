"""Which lessons runs are offered: the policy's verdict read strictly (a lesson is advice, so anything
odd withholds it), the embedded engine with and without a lessons package, an OPA server that fails,
verdicts kept on an injected clock, and `jesus run` saying what it withheld."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.builders.lessons import lesson_object

from jesus.logic.lessons import OFFERED, LessonVerdict, verdict_from_values
from jesus.policy import EmbeddedEngine
from jesus.policy.lessons import EmbeddedLessonPolicy, KeptVerdicts, OpaServerLessonPolicy

POLICIES = Path(__file__).resolve().parents[3] / "policies"
REF = "data.jesus.lessons.decision"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], OFFERED),
        ([{"offer": True, "reasons": []}], OFFERED),
        ([{"offer": False, "reasons": ["b", "a"]}], LessonVerdict(False, ("a", "b"))),
        (
            [{"offer": "yes", "reasons": []}],
            LessonVerdict(False, (f"{REF} is not {{offer: boolean, reasons: [string]}}",)),
        ),
        (
            [{"offer": False, "reasons": "no"}],
            LessonVerdict(False, (f"{REF} is not {{offer: boolean, reasons: [string]}}",)),
        ),
        (
            [{"offer": False, "reasons": [1]}],
            LessonVerdict(False, (f"{REF} is not {{offer: boolean, reasons: [string]}}",)),
        ),
        ([["offer"]], LessonVerdict(False, (f"{REF} is not {{offer: boolean, reasons: [string]}}",))),
        (
            [{"offer": True, "reasons": ["but"]}],
            LessonVerdict(False, (f"{REF} offers the lesson but gives reasons not to",)),
        ),
        ([OFFERED, OFFERED], LessonVerdict(False, (f"{REF} gave 2 values, not one",))),
    ],
)
def test_anything_but_a_clear_offer_withholds_the_lesson(values: list[Any], expected: LessonVerdict) -> None:
    assert verdict_from_values(values) == expected


def policies_with(
    tmp_path: Path, lessons: Any = None, *, extra: str | None = None, package: bool = True
) -> Path:
    policies = Path(
        shutil.copytree(POLICIES, tmp_path / "policies", ignore=shutil.ignore_patterns("*_test.rego"))
    )
    if not package:
        shutil.rmtree(policies / "lessons")
    if lessons is not None:
        data = json.loads((policies / "data.json").read_text())
        data["jesus"]["config"]["lessons"] = lessons
        (policies / "data.json").write_text(json.dumps(data))
    if extra is not None:
        (policies / "lessons" / "extra.rego").write_text(extra)
    return policies


async def test_the_shipped_policy_offers_every_lesson_until_the_site_says_otherwise(tmp_path: Path) -> None:
    shipped = EmbeddedLessonPolicy(EmbeddedEngine.from_directory(POLICIES))
    assert await shipped.verdict(lesson_object("l-1", "LongTerm")) == OFFERED
    assert await shipped.verdict(lesson_object("l-2", "ShortTerm")) == OFFERED
    strict = EmbeddedLessonPolicy(
        EmbeddedEngine.from_directory(
            policies_with(tmp_path, {"requireLabels": {"jesus.dev/approved": "true"}})
        )
    )
    assert not (await strict.verdict(lesson_object("l-1", "LongTerm"))).offer
    assert (await strict.verdict(lesson_object("l-1", "LongTerm", {"jesus.dev/approved": "true"}))).offer


async def test_a_policy_without_the_lessons_package_offers_every_lesson(tmp_path: Path) -> None:
    engine = EmbeddedEngine.from_directory(policies_with(tmp_path, package=False))
    assert engine.entrypoints == ["jesus/admission/decision"]
    assert await EmbeddedLessonPolicy(engine).verdict(lesson_object("l-1")) == OFFERED


async def test_a_lessons_policy_that_fails_withholds_the_lesson_and_says_why(tmp_path: Path) -> None:
    divide = 'package jesus.lessons\n\nwithhold contains "never" if 1 / count(input.lesson.labels) > 5\n'
    engine = EmbeddedEngine.from_directory(policies_with(tmp_path, extra=divide))
    verdict = await EmbeddedLessonPolicy(engine).verdict(lesson_object("l-1"))
    assert not verdict.offer and verdict.reasons[0].startswith(f"evaluating {REF} failed: ")


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (httpx.Response(500, json={"code": "internal_error"}), "answered 500"),
        (httpx.Response(200, text="not json"), "no answer from the OPA server"),
        (httpx.ConnectError("refused"), "no answer from the OPA server at http://opa.test:8181: refused"),
    ],
)
async def test_an_opa_server_that_fails_withholds_the_lesson(answer: Any, reason: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/data/jesus/lessons/decision"
        assert json.loads(request.content)["input"]["lesson"]["name"] == "l-1"
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        verdict = await OpaServerLessonPolicy("http://opa.test:8181/", client).verdict(lesson_object("l-1"))
    assert not verdict.offer and reason in verdict.reasons[0], verdict


async def test_an_opa_server_without_the_package_offers_the_lesson() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json={}))
    ) as client:
        assert (
            await OpaServerLessonPolicy("http://opa.test:8181", client).verdict(lesson_object("l-1"))
            == OFFERED
        )


async def test_verdicts_are_kept_a_minute_per_lesson_and_labels() -> None:
    asked: list[str] = []

    class Policy:
        async def verdict(self, lesson: Any) -> LessonVerdict:
            asked.append(lesson.metadata.name)
            return LessonVerdict(
                bool(lesson.metadata.labels), ("unlabelled",) if not lesson.metadata.labels else ()
            )

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    kept = KeptVerdicts(Policy(), lambda: now[0])
    unlabelled, labelled = lesson_object("l-1"), lesson_object("l-1", labels={"jesus.dev/approved": "true"})
    assert not (await kept.verdict(unlabelled)).offer
    assert (await kept.verdict(labelled)).offer  # relabelled: another key, asked again at once
    assert not (await kept.verdict(unlabelled)).offer
    assert asked == ["l-1", "l-1"]
    now[0] += timedelta(seconds=60)
    await kept.verdict(unlabelled)
    assert len(asked) == 3


async def test_jesus_run_offers_only_what_the_policy_lets_it_and_says_what_it_withheld(
    tmp_path: Path,
) -> None:
    from tests.builders.adapters import scripted_adapter
    from tests.builders.agentrun import agent_run
    from tests.builders.budget import budget
    from tests.builders.routes import route_policy
    from tests.builders.spec_files import to_yaml

    from jesus.cli.run import local_lesson_policy
    from jesus.router.config import EnvironmentCredentials
    from jesus.runner.local import prepare_local_run, select_run
    from jesus.specs import load_text

    def lesson_spec(name: str, labels: dict[str, str]) -> dict[str, Any]:
        lesson = lesson_object(name, "LongTerm", labels).to_kubernetes()
        del lesson["metadata"]["namespace"]
        return lesson

    spec_set = load_text(
        to_yaml(
            scripted_adapter(text="summary"),
            route_policy(),
            budget(limit="2.00"),
            agent_run(),
            lesson_spec("l-approved", {"jesus.dev/approved": "true"}),
            lesson_spec("l-draft", {}),
        )
    )
    engine = EmbeddedEngine.from_directory(
        policies_with(tmp_path, {"requireLabels": {"jesus.dev/approved": "true"}})
    )
    prepared = await prepare_local_run(
        spec_set,
        select_run(spec_set, None),
        live=False,
        credentials=EnvironmentCredentials({}),
        policy=engine,
        lesson_policy=local_lesson_policy(engine),
        now=datetime(2026, 7, 8, tzinfo=UTC),
    )
    assert not prepared.refused, prepared.record.reason
    assert prepared.task is not None
    assert [lesson.id for lesson in prepared.task.offered_lessons] == ["l-approved"]
    assert (
        "lesson l-draft withheld: LongTerm lesson l-draft lacks the label jesus.dev/approved=true "
        "that the site requires"
    ) in prepared.record.warnings
