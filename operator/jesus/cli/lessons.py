"""`jesus lessons ACTION`: lessons runs learned — list them, record a run's, promote one to long-term memory.

`list` shows the short-term lessons in the archive (and, with --specs, the LongTerm Lessons of the
specs) with their reuse counts. `record RESULT` takes a run's result.json and stores what its
reflection teaches: candidates become short-term lessons, applied lessons count a reuse. `promote ID
--specs DIR` writes the lesson as a LongTerm Lesson YAML into DIR for a pull request, and refuses with
the reasons unless it has at least 3 reuses, every cited artifact is still where it was with its digest,
and the sanitize gate finds nothing in what would be written. The archive is --database, else
$JESUS_ARCHIVE_DATABASE (docs/reflection.md#lessons).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from pydantic import ValidationError

from jesus.cli import CommandError, command_parser
from jesus.cli.archive import open_store

if TYPE_CHECKING:
    from jesus.api import Lesson
    from jesus.logic.lessons import EvidenceCheck
    from jesus.records.artifacts import S3Artifacts
    from jesus.runner.record import RunRecord
    from jesus.specs import LoadedObject


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `lessons` sub-command."""
    parser = command_parser(subparsers, __doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="lessons with their reuse counts")
    listing.add_argument("--database", metavar="URL", help="default: $JESUS_ARCHIVE_DATABASE")
    listing.add_argument("--team", help="only this team's lessons")
    listing.add_argument(
        "--specs", type=Path, action="append", default=[], metavar="DIR", help="LongTerm Lessons"
    )
    listing.add_argument("--output", "-o", choices=("text", "json"), default="text")
    listing.set_defaults(handler=run_list)
    record = actions.add_parser("record", help="store what a run's reflection teaches")
    record.add_argument("result", type=Path, metavar="RESULT", help="the run's result.json")
    record.add_argument("--team", required=True, help="the run's team (its owner.team)")
    record.add_argument("--database", metavar="URL", help="default: $JESUS_ARCHIVE_DATABASE")
    record.set_defaults(handler=run_record)
    promote = actions.add_parser("promote", help="write a short-term lesson as a LongTerm Lesson YAML")
    promote.add_argument("lesson", metavar="ID")
    promote.add_argument("--specs", type=Path, required=True, metavar="DIR", help="where the YAML goes")
    promote.add_argument("--database", metavar="URL", help="default: $JESUS_ARCHIVE_DATABASE")
    promote.set_defaults(handler=run_promote)


def _archived(args: argparse.Namespace, team: str | None = None) -> list[Lesson]:
    from jesus.records import StoreUnavailableError
    from jesus.records.lessons import LessonArchive

    store = open_store(args)

    async def read() -> list[Lesson]:
        try:
            await store.migrate()
            return await LessonArchive(store).lessons(team)
        finally:
            await store.close()

    try:
        return asyncio.run(read())
    except StoreUnavailableError as exc:
        raise CommandError(str(exc)) from exc


def run_list(args: argparse.Namespace) -> int:
    """Print the lessons, short-term from the archive and long-term from --specs, with reuse counts."""
    from jesus.api import Lesson
    from jesus.logic.lessons import reuse_count
    from jesus.specs import SpecPathError, load_specs

    found = _archived(args, args.team) if args.database or not args.specs else []
    if args.specs:
        try:
            spec_set = load_specs(args.specs)
        except SpecPathError as exc:
            raise CommandError(str(exc)) from exc
        found += [
            lesson
            for lesson in spec_set.of_kind(Lesson)
            if args.team is None or lesson.spec.scope.team == args.team
        ]
    if args.output == "json":
        rows = [{**lesson.to_kubernetes(), "reuses": reuse_count(lesson)} for lesson in found]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'ID':<16} {'TEAM':<20} {'MEMORY':<10} {'REUSES':>6}  TEXT")
    for lesson in found:
        text = " ".join(lesson.spec.text.split())
        print(
            f"{lesson.metadata.name or '':<16} {lesson.spec.scope.team:<20} {lesson.spec.memory.value:<10} "
            f"{reuse_count(lesson):>6}  {text[:80]}"
        )
    return 0


def run_record(args: argparse.Namespace) -> int:
    """Store what the run's reflection teaches; print what was added."""
    from jesus.logic.clock import format_time, system_clock
    from jesus.logic.lessons import RunOrigin, learn_from_reflection
    from jesus.records import StoreUnavailableError
    from jesus.records.lessons import LessonArchive, Recorded

    try:
        result = json.loads(args.result.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"{args.result}: {exc}") from exc
    if not isinstance(result, dict) or not isinstance(result.get("run"), str):
        raise CommandError(f"{args.result}: not a run's result.json (no run)")
    origin = RunOrigin(
        run=result["run"],
        namespace=str(result.get("namespace") or ""),
        team=args.team,
        artifacts=[a for a in result.get("artifacts", []) if isinstance(a, dict)],
    )
    learned = learn_from_reflection(origin, result.get("reflection"))
    if learned.problem:
        raise CommandError(f"{args.result}: reflection: {learned.problem}")
    store = open_store(args)

    async def record() -> Recorded:
        try:
            await store.migrate()
            return await LessonArchive(store).record(learned, format_time(system_clock()))
        finally:
            await store.close()

    try:
        recorded = asyncio.run(record())
    except StoreUnavailableError as exc:
        raise CommandError(str(exc)) from exc
    print(
        f"run {origin.run}: {len(recorded.new)} new lesson(s) {recorded.new}, "
        f"{len(recorded.reused)} reuse(s) {recorded.reused}"
        + (f", not in the archive: {recorded.unknown}" if recorded.unknown else "")
    )
    return 0


def run_promote(args: argparse.Namespace) -> int:
    """Write the LongTerm Lesson, or refuse with every reason; 0 written, 1 refused."""
    from jesus.api.crd import render_yaml
    from jesus.cli.artifacts import store_from_environment
    from jesus.logic.clock import format_time, system_clock
    from jesus.logic.lessons import promoted, promotion_refusals

    lesson = next((found for found in _archived(args) if found.metadata.name == args.lesson), None)
    if lesson is None:
        raise CommandError(f"no short-term lesson {args.lesson!r} in the archive")
    if not args.specs.is_dir():
        raise CommandError(f"--specs {args.specs}: no such folder")
    cited = [(e.run, a) for e in lesson.spec.evidence for a in e.artifacts or []]
    store = store_from_environment() if any((a.uri or "").startswith("s3://") for _, a in cited) else None
    checks = [
        _check_artifact(run, artifact.name, artifact.digest, artifact.uri, store) for run, artifact in cited
    ]
    try:
        text: str | None = render_yaml(
            _without_status(promoted(lesson, format_time(system_clock())).to_kubernetes())
        )
    except ValidationError:  # too few reuses for a LongTerm lesson: refused below, and the text still scanned
        text = None
    refusals = promotion_refusals(lesson, checks, _sanitize(lesson))
    if refusals or text is None:
        print(f"refused to promote lesson {args.lesson}:", file=sys.stderr)
        for reason in refusals:
            print(f"  - {reason}", file=sys.stderr)
        return 1
    target = args.specs / f"{args.lesson}.yaml"
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}: LongTerm Lesson {args.lesson}, for a pull request")
    return 0


class ShortTermMemory:
    """`jesus run --lessons URL`: the team's short-term lessons from the archive before the run, and
    what its reflection teaches into it after."""

    def __init__(self, url: str, loaded: LoadedObject) -> None:
        from jesus.api import AgentRun
        from jesus.records import ArchiveConfigError, DatabaseSetting, RecordStore, database_url

        run = loaded.obj
        assert isinstance(run, AgentRun)
        self.run, self.namespace = run, loaded.namespace
        try:
            self.store = RecordStore(database_url(url, DatabaseSetting("--lessons")))
        except ArchiveConfigError as exc:
            raise CommandError(str(exc)) from exc

    async def offered(self) -> list[Lesson]:
        """The team's short-term lessons (`jesus run` offers those matching the run's labels)."""
        from jesus.records import StoreUnavailableError
        from jesus.records.lessons import LessonArchive

        try:
            await self.store.migrate()
            return await LessonArchive(self.store).lessons(self.run.spec.owner.team)
        except StoreUnavailableError as exc:
            await self.store.close()
            raise CommandError(f"--lessons: {exc}") from exc

    async def learn(self, record: RunRecord) -> list[str]:
        """Record the run's candidates and reuses (said on stderr); the warnings, when it could not."""
        from jesus.logic.clock import format_time, system_clock
        from jesus.logic.lessons import RunOrigin, learn_from_reflection
        from jesus.records import StoreUnavailableError
        from jesus.records.lessons import LessonArchive

        origin = RunOrigin(record.run, self.namespace, self.run.spec.owner.team, record.artifacts)
        learned = learn_from_reflection(origin, record.reflection)
        if learned.problem:
            await self.store.close()
            return [f"lessons were not recorded: {learned.problem}"]
        try:
            recorded = await LessonArchive(self.store).record(learned, format_time(system_clock()))
        except StoreUnavailableError as exc:
            return [f"lessons were not recorded: {exc}"]
        finally:
            await self.store.close()
        for lesson_id in recorded.new:
            print(f"lessons: new short-term lesson {lesson_id}", file=sys.stderr)
        for lesson_id in recorded.reused:
            print(f"lessons: reuse of {lesson_id} recorded", file=sys.stderr)
        return []


def _without_status(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "status"}


def _check_artifact(
    run: str, name: str, digest: str, uri: str | None, store: S3Artifacts | None
) -> EvidenceCheck:
    """What is at the artifact's URI now: a file, or an object of the S3 store (its bucket's only);
    anything that cannot be read counts as gone."""
    from jesus.api.objects import content_digest
    from jesus.logic.artifacts import ArtifactIntegrityError, ArtifactLayoutError, parse_s3_uri
    from jesus.logic.lessons import EvidenceCheck
    from jesus.records.artifacts import ArtifactStoreError

    found: str | None = None
    parsed = urlparse(uri or "")
    if parsed.scheme == "file":
        try:
            found = content_digest(Path(unquote(parsed.path)).read_bytes())
        except OSError:
            found = None
    elif parsed.scheme == "s3" and store is not None:
        try:
            bucket, key = parse_s3_uri(uri or "")
            content = store.fetch(key) if bucket == store.bucket else None
        except (ArtifactLayoutError, ArtifactIntegrityError, ArtifactStoreError):
            content = None
        found = content_digest(content) if content is not None else None
    return EvidenceCheck(run=run, name=name, digest=digest, found_digest=found)


def _sanitize(lesson: Lesson) -> list[str]:
    """The sanitize gate's findings in what a model wrote into the lesson (`field: kind`): its text and
    its reuses' outcomes. What the platform wrote (names, URIs, digests) is not scanned: a UID or a
    digest's digits can read as a phone number, and they carry nothing a run could have leaked."""
    from jesus.redaction import RedactionConfig
    from jesus.redaction.scan import scan

    fields = [("spec.text", lesson.spec.text)] + [
        (f"spec.evidence[{index}].outcome", evidence.outcome)
        for index, evidence in enumerate(lesson.spec.evidence)
        if evidence.outcome
    ]
    redactor = RedactionConfig.from_environ(os.environ, names_default=False).redactor()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "lesson.txt")
        # One field a line (as JSON strings, so a field's own line breaks stay on its line).
        path.write_text("".join(json.dumps(value, ensure_ascii=False) + "\n" for _, value in fields), "utf-8")
        report = scan([path], redactor)
    return [f"{fields[finding.line - 1][0]}: {finding.kind}" for finding in report.findings] + [
        f"not scanned: {item.reason}" for item in report.not_scanned
    ]
