"""Short-term memory in the archive: lessons proposed by reflections, and the runs that reused them.

What goes in is decided by `jesus.logic.lessons.learn_from_reflection`; this module only stores and
reads it back as `Lesson` objects (memory ShortTerm). Writing the same run's lessons twice changes
nothing: a lesson's id is stable for its team and text, and a run is evidence for a lesson once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from jesus.api.common import ObjectMeta
from jesus.api.lesson import EvidenceArtifact, Lesson, LessonEvidence, LessonMemory, LessonScope, LessonSpec
from jesus.logic.lessons import LearnedFromRun
from jesus.records.schema import lesson_evidence, lessons
from jesus.records.store import RecordStore, StoreUnavailableError

logger = logging.getLogger(__name__)


@dataclass
class Recorded:
    """What one run's reflection added: new lessons, evidence on existing ones, reuses not recorded."""

    new: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # applied, not the team's in the archive (long-term)


class LessonArchive:
    """The lessons and lesson_evidence tables of one archive."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store

    async def record(self, learned: LearnedFromRun, now: str) -> Recorded:
        """Store a reflection's candidates (with their origin run) and reuses, in one transaction."""
        recorded = Recorded()
        try:
            async with self.store.engine.begin() as connection:
                for lesson in learned.candidates:
                    if await self._insert_lesson(connection, lesson, now):
                        recorded.new.append(lesson.metadata.name or "")
                    for evidence in lesson.spec.evidence:
                        await self._insert_evidence(connection, lesson.metadata.name or "", evidence, now)
                for lesson_id, evidence in learned.reuses:
                    if not await self._exists(connection, lesson_id, learned.team):
                        recorded.unknown.append(lesson_id)
                    elif await self._insert_evidence(connection, lesson_id, evidence, now):
                        recorded.reused.append(lesson_id)
        except DBAPIError as exc:
            raise StoreUnavailableError(
                f"failed to record lessons in {self.store}: {exc.orig or exc}"
            ) from exc
        return recorded

    async def _exists(self, connection: AsyncConnection, lesson_id: str, team: str) -> bool:
        """Whether the archive holds `lesson_id` for `team` (any team's when `team` is empty): a run
        reuses only its own team's lessons, whatever its reflection claims."""
        query = select(lessons.c.id).where(lessons.c.id == lesson_id)
        if team:
            query = query.where(lessons.c.team == team)
        return (await connection.execute(query)).first() is not None

    async def _insert_lesson(self, connection: AsyncConnection, lesson: Lesson, now: str) -> bool:
        spec = lesson.spec
        statement = (sqlite_insert(lessons) if self.store.sqlite else pg_insert(lessons)).values(
            id=lesson.metadata.name,
            namespace=lesson.metadata.namespace or "",
            team=spec.scope.team,
            text=spec.text,
            run_labels=json.dumps(spec.scope.run_labels or {}, sort_keys=True),
            memory=LessonMemory.SHORT_TERM.value,
            created_at=now,
        )
        result = await connection.execute(
            statement.on_conflict_do_nothing(index_elements=["id"]).returning(lessons.c.id)
        )
        return result.first() is not None

    async def _insert_evidence(
        self, connection: AsyncConnection, lesson_id: str, evidence: LessonEvidence, now: str
    ) -> bool:
        table = lesson_evidence
        statement = (sqlite_insert(table) if self.store.sqlite else pg_insert(table)).values(
            lesson_id=lesson_id,
            namespace=evidence.namespace or "",
            run=evidence.run,
            role=evidence.role,
            outcome=evidence.outcome,
            artifacts=json.dumps(
                [a.model_dump(mode="json") for a in evidence.artifacts or []], sort_keys=True
            ),
            recorded_at=now,
        )
        result = await connection.execute(
            statement.on_conflict_do_nothing(index_elements=["lesson_id", "namespace", "run"]).returning(
                table.c.run
            )
        )
        return result.first() is not None

    async def lessons(self, team: str | None = None) -> list[Lesson]:
        """Every short-term lesson (of `team`), each with its evidence, by id."""
        query = select(lessons).order_by(lessons.c.id)
        if team is not None:
            query = query.where(lessons.c.team == team)
        try:
            async with self.store.engine.connect() as connection:
                rows = (await connection.execute(query)).all()
                evidence_rows = (
                    await connection.execute(
                        select(lesson_evidence).order_by(
                            lesson_evidence.c.lesson_id, lesson_evidence.c.recorded_at, lesson_evidence.c.run
                        )
                    )
                ).all()
        except DBAPIError as exc:
            raise StoreUnavailableError(
                f"failed to read lessons from {self.store}: {exc.orig or exc}"
            ) from exc
        evidence: dict[str, list[LessonEvidence]] = {}
        for row in evidence_rows:
            try:
                cited = [EvidenceArtifact.model_validate(a) for a in json.loads(row.artifacts)]
                evidence.setdefault(row.lesson_id, []).append(
                    LessonEvidence(
                        run=row.run,
                        namespace=row.namespace or None,
                        role=row.role,
                        outcome=row.outcome,
                        artifacts=cited or None,
                    )
                )
            except (ValueError, TypeError) as exc:  # an edited row: left out, and said so
                logger.warning(
                    "Skipped lesson evidence lesson=%s run=%s error=%s", row.lesson_id, row.run, exc
                )
        found = []
        for row in rows:
            if not evidence.get(row.id):
                continue
            try:
                found.append(
                    Lesson(
                        metadata=ObjectMeta(name=row.id, namespace=row.namespace or None),
                        spec=LessonSpec(
                            text=row.text,
                            scope=LessonScope(team=row.team, run_labels=json.loads(row.run_labels) or None),
                            evidence=evidence[row.id],
                            memory=LessonMemory.SHORT_TERM,
                        ),
                    )
                )
            except (ValueError, TypeError) as exc:
                logger.warning("Skipped lesson lesson=%r error=%s", row.id[:64], str(exc).splitlines()[0])
        return found

    async def get(self, lesson_id: str) -> Lesson | None:
        """One short-term lesson by id."""
        return next((lesson for lesson in await self.lessons() if lesson.metadata.name == lesson_id), None)
