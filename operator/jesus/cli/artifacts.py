"""`jesus artifacts get NAME [-n NS] [--artifact FILE] [-o DIR]`: download a run's artifacts, digests checked.

`get` reads the run from the cluster (or, once it is gone there, from the archive: --database or
$JESUS_ARCHIVE_DATABASE), then each artifact its status lists: `s3://` ones from the S3-compatible
server ($JESUS_ARTIFACTS_ENDPOINT, $JESUS_ARTIFACTS_ACCESS_KEY_ID, $JESUS_ARTIFACTS_SECRET_ACCESS_KEY),
`file://` ones (`jesus run`'s directory) from disk. Content whose sha256 is not the one listed is not
written. A run past its retention (spec.artifacts.retentionDays after it finished) has none left.
`sweep` deletes the artifacts of runs whose retention has passed, as the operator does every few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from jesus.cli import CommandError, command_parser
from jesus.cli.inspection import (
    FoundRun,
    add_source_arguments,
    fetch_run,
)
from jesus.logic.artifacts import ARTIFACT_NAME, ArtifactBucket, expires_at, is_expired
from jesus.logic.clock import Clock, format_time, parse_time, system_clock

if TYPE_CHECKING:
    from jesus.records.artifacts import S3Artifacts


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `jesus artifacts get` and `jesus artifacts sweep`."""
    parser = command_parser(subparsers, __doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = actions.add_parser("get", help="download a run's artifacts, digests checked")
    get.add_argument("name", help="the run's name")
    add_source_arguments(get)
    get.add_argument("--artifact", action="append", metavar="FILE", help="only this artifact (repeatable)")
    get.add_argument("--output-dir", "-o", default=".", metavar="DIR", help="where to write (default: .)")
    _add_store_arguments(get)
    get.set_defaults(handler=handle_get)
    sweep = actions.add_parser("sweep", help="delete the artifacts of runs whose retention has passed")
    _add_store_arguments(sweep)
    sweep.add_argument("--now", metavar="TIME", help="judge expiry as of this RFC 3339 moment (default: now)")
    sweep.set_defaults(handler=handle_sweep)


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", help="the S3-compatible server (default: $JESUS_ARTIFACTS_ENDPOINT)")
    parser.add_argument(
        "--bucket", help="the bucket (default: $JESUS_ARTIFACTS_BUCKET, else jesus-artifacts)"
    )


def open_store(args: argparse.Namespace, *, required: bool) -> S3Artifacts | None:
    """The S3 store the flags and environment name; None when none is named and none is required."""
    store = store_from_environment(args.endpoint, args.bucket)
    if store is None and required:
        raise CommandError("no S3 server: give --endpoint or set $JESUS_ARTIFACTS_ENDPOINT")
    return store


def store_from_environment(endpoint: str | None = None, bucket: str | None = None) -> S3Artifacts | None:
    """The S3 store at `endpoint` (else $JESUS_ARTIFACTS_ENDPOINT), bucket `bucket` (else
    $JESUS_ARTIFACTS_BUCKET, else jesus-artifacts), with the credential variables; None without one."""
    from jesus.records.artifacts import ArtifactStoreError, S3Artifacts

    endpoint = endpoint or os.environ.get("JESUS_ARTIFACTS_ENDPOINT")
    if not endpoint:
        return None
    bucket = bucket or os.environ.get("JESUS_ARTIFACTS_BUCKET") or "jesus-artifacts"
    region = os.environ.get("JESUS_ARTIFACTS_REGION", "us-east-1")
    try:
        return S3Artifacts.from_environment(ArtifactBucket(endpoint, bucket, region))
    except ArtifactStoreError as exc:
        raise CommandError(str(exc)) from exc


def handle_get(args: argparse.Namespace) -> int:
    """Write the run's artifacts into --output-dir."""
    for line in asyncio.run(get_artifacts(args)):
        print(line)
    return 0


async def get_artifacts(args: argparse.Namespace) -> list[str]:
    """Download what the run lists; one line per file written."""
    run = await fetch_run(args)
    return await asyncio.to_thread(download, run, args)


def download(run: FoundRun, args: argparse.Namespace, clock: Clock = system_clock) -> list[str]:
    """Fetch, check and write each chosen artifact of `run` (expiry judged by `clock`)."""
    from jesus.api.agentrun import ArtifactRef
    from jesus.records.artifacts import ArtifactStoreError, read_artifact

    where = f"AgentRun {run.namespace}/{run.name}"
    retention = int(((run.obj.get("spec") or {}).get("artifacts") or {}).get("retentionDays", 30))
    completion = run.status.get("completionTime")
    if is_expired(completion, retention, clock()):
        moment = expires_at(completion, retention)
        assert moment is not None
        raise CommandError(
            f"{where}: its artifacts expired at {format_time(moment)} (retention {retention} day(s)) "
            "and are deleted"
        )
    listed = [ArtifactRef.model_validate(a) for a in run.status.get("artifacts") or []]
    wanted = set(args.artifact or [])
    chosen = [a for a in listed if not wanted or a.name in wanted]
    missing = wanted - {a.name for a in chosen}
    if missing:
        names = ", ".join(a.name for a in listed) or "none"
        raise CommandError(f"{where} lists no artifact {', '.join(sorted(missing))} (it lists: {names})")
    if not chosen:
        raise CommandError(f"{where} lists no artifacts (phase {run.status.get('phase', 'Pending')})")
    store = open_store(args, required=any(a.uri.startswith("s3://") for a in chosen))
    target = Path(args.output_dir)
    target.mkdir(parents=True, exist_ok=True)
    lines = []
    for ref in chosen:
        if not ARTIFACT_NAME.match(ref.name):  # a status is written by the operator, but be sure
            raise CommandError(f"{where}: artifact name {ref.name!r} is not a plain file name")
        try:
            content = read_artifact(ref, store)
        except (ArtifactStoreError, ValueError) as exc:
            raise CommandError(f"{where}: {exc}") from exc
        path = target / ref.name
        path.write_bytes(content)
        lines.append(f"Wrote {path} ({len(content)} bytes, {ref.digest})")
    return lines


def handle_sweep(args: argparse.Namespace) -> int:
    """Delete what has expired; one line per run."""
    store = open_store(args, required=True)
    assert store is not None
    try:
        now = parse_time(args.now) if args.now else system_clock()
    except ValueError as exc:
        raise CommandError(f"--now: {exc}") from exc
    from jesus.records.artifacts import ArtifactStoreError

    try:
        markers = store.sweep(now)
    except ArtifactStoreError as exc:
        raise CommandError(str(exc)) from exc
    for marker in markers:
        expired = format_time(marker.moment)
        print(f"Deleted the artifacts of {marker.namespace}/{marker.name} (expired {expired})")
    if not markers:
        print(f"Nothing had expired as of {format_time(now)}")
    return 0
