"""Which Lessons runs are offered, as the policy decides (`data.jesus.lessons.decision`,
policies/lessons/offer.rego): on the embedded engine or an OPA server, whichever decides admission.

A lesson is advice, so this fails the safe way round for it: an evaluation that fails withholds the
lesson and says why; a policy without the package has no rules about lessons, and every lesson is
offered. Verdicts are kept for a while per lesson and labels, so a run's start does not wait on them.
"""

from __future__ import annotations

from typing import Any

import httpx

from jesus.api.lesson import Lesson
from jesus.logic.clock import Clock
from jesus.logic.lessons import LESSONS_REF, LessonPolicy, LessonVerdict, lesson_input, verdict_from_values
from jesus.policy.embedded import LESSONS_PATH, EmbeddedEngine, PolicyEvaluationError
from jesus.policy.rego_input import InputConversionError

# How long a verdict is kept: a lesson's labels are part of the key, so only a changed policy waits.
VERDICT_SECONDS = 60.0
_MAX_KEPT = 10_000


class EmbeddedLessonPolicy:
    """The lesson decision of the embedded engine's policy."""

    def __init__(self, engine: EmbeddedEngine) -> None:
        self.engine = engine

    async def verdict(self, lesson: Lesson) -> LessonVerdict:
        try:
            values = self.engine.query(LESSONS_PATH, lesson_input(lesson))
        except (InputConversionError, PolicyEvaluationError) as exc:
            return LessonVerdict(False, (f"evaluating {LESSONS_REF} failed: {exc}",))
        return verdict_from_values(values)


class OpaServerLessonPolicy:
    """The lesson decision of an OPA server's policy, through its Data API."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, timeout_seconds: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.timeout_seconds = timeout_seconds
        self._url = f"{self.base_url}/v1/data/{LESSONS_PATH}?strict-builtin-errors=true"

    async def verdict(self, lesson: Lesson) -> LessonVerdict:
        try:
            response = await self.client.post(
                self._url, json={"input": lesson_input(lesson)}, timeout=self.timeout_seconds
            )
            body: Any = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return LessonVerdict(False, (f"no answer from the OPA server at {self.base_url}: {exc}",))
        if response.status_code != httpx.codes.OK or not isinstance(body, dict):
            return LessonVerdict(
                False, (f"the OPA server at {self.base_url} answered {response.status_code}",)
            )
        return verdict_from_values([body["result"]] if "result" in body else [])


class KeptVerdicts:
    """A LessonPolicy's verdicts kept for `seconds` (on `clock`), per lesson, memory and labels."""

    def __init__(self, policy: LessonPolicy, clock: Clock, seconds: float = VERDICT_SECONDS) -> None:
        self.policy = policy
        self.clock = clock
        self.seconds = seconds
        self._kept: dict[tuple[Any, ...], tuple[float, LessonVerdict]] = {}

    async def verdict(self, lesson: Lesson) -> LessonVerdict:
        key = (
            lesson.metadata.namespace,
            lesson.metadata.name,
            lesson.spec.memory,
            tuple(sorted((lesson.metadata.labels or {}).items())),
        )
        now = self.clock().timestamp()
        kept = self._kept.get(key)
        if kept is not None and now - kept[0] < self.seconds:
            return kept[1]
        verdict = await self.policy.verdict(lesson)
        if len(self._kept) >= _MAX_KEPT:
            self._kept.clear()
        self._kept[key] = (now, verdict)
        return verdict
