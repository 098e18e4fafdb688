"""`jesus artifacts get` on a run as the cluster or the archive shows it, with `file://` artifacts (the
S3 path is in tests/cluster/test_artifacts.py): digests checked before anything is written, names that
would leave the output folder refused, a run past its retention (injected clock) has none."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jesus.api.objects import content_digest
from jesus.cli import CommandError
from jesus.cli.artifacts import download
from jesus.cli.inspection import ARCHIVE, FoundRun

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def run_listing(artifacts: list[dict[str, Any]], retention: int = 30) -> FoundRun:
    obj = {
        "metadata": {"namespace": "team-a", "name": "r1", "uid": "u1"},
        "spec": {"artifacts": {"retentionDays": retention}},
        "status": {"phase": "Succeeded", "completionTime": "2026-11-30T10:00:00Z", "artifacts": artifacts},
    }
    return FoundRun(obj, ARCHIVE)


def args(out: Path, *only: str) -> argparse.Namespace:
    return argparse.Namespace(output_dir=str(out), artifact=list(only) or None, endpoint=None, bucket=None)


def stored(folder: Path, name: str, content: bytes, digest: bytes | None = None) -> dict[str, Any]:
    path = folder / name
    path.write_bytes(content)
    return {"name": name, "uri": path.as_uri(), "digest": content_digest(digest or content)}


def test_the_listed_artifacts_are_written_with_their_digests_checked(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    listing = [stored(source, "a.md", b"alpha\n"), stored(source, "b.json", b"{}\n")]
    lines = download(run_listing(listing), args(tmp_path / "out"), lambda: NOW)
    alpha, empty = content_digest(b"alpha\n"), content_digest(b"{}\n")
    assert lines == [
        f"Wrote {tmp_path / 'out' / 'a.md'} (6 bytes, {alpha})",
        f"Wrote {tmp_path / 'out' / 'b.json'} (3 bytes, {empty})",
    ]
    assert (tmp_path / "out" / "a.md").read_bytes() == b"alpha\n"
    only = download(run_listing(listing), args(tmp_path / "one", "b.json"), lambda: NOW)
    assert len(only) == 1 and not (tmp_path / "one" / "a.md").exists()


def test_altered_content_is_not_written(tmp_path: Path) -> None:
    listing = [stored(tmp_path, "a.md", b"altered\n", digest=b"alpha\n")]
    with pytest.raises(CommandError, match=r"AgentRun team-a/r1: artifact a.md: stored content has digest"):
        download(run_listing(listing), args(tmp_path / "out"), lambda: NOW)
    assert not (tmp_path / "out" / "a.md").exists()


def test_a_name_that_would_leave_the_folder_is_refused(tmp_path: Path) -> None:
    listing = [stored(tmp_path, "a.md", b"x")]
    listing[0]["name"] = "../escape.md"
    with pytest.raises(CommandError, match=r"artifact name '../escape.md' is not a plain file name"):
        download(run_listing(listing), args(tmp_path / "out"), lambda: NOW)
    assert not (tmp_path / "escape.md").exists()


def test_missing_and_unlisted_artifacts_are_named(tmp_path: Path) -> None:
    listing = [stored(tmp_path, "a.md", b"x")]
    with pytest.raises(CommandError, match=r"lists no artifact nope.md \(it lists: a.md\)"):
        download(run_listing(listing), args(tmp_path / "out", "nope.md"), lambda: NOW)
    with pytest.raises(CommandError, match=r"lists no artifacts \(phase Succeeded\)"):
        download(run_listing([]), args(tmp_path / "out"), lambda: NOW)


def test_past_its_retention_a_run_has_no_artifacts_to_get(tmp_path: Path) -> None:
    listing = [stored(tmp_path, "a.md", b"x")]
    assert download(
        run_listing(listing, retention=1),
        args(tmp_path / "o1"),
        lambda: datetime(2026, 12, 1, 9, 59, 59, tzinfo=UTC),
    )
    with pytest.raises(
        CommandError, match=r"its artifacts expired at 2026-12-01T10:00:00Z \(retention 1 day\(s\)\)"
    ):
        download(
            run_listing(listing, retention=1),
            args(tmp_path / "o2"),
            lambda: datetime(2026, 12, 1, 10, tzinfo=UTC),
        )


def test_s3_artifacts_need_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JESUS_ARTIFACTS_ENDPOINT", raising=False)
    listing = [
        {
            "name": "a.md",
            "uri": "s3://arts/runs/team-a/u1/a1/" + "0" * 64 + ".gz",
            "digest": "sha256:" + "0" * 64,
        }
    ]
    with pytest.raises(
        CommandError, match=r"no S3 server: give --endpoint or set \$JESUS_ARTIFACTS_ENDPOINT"
    ):
        download(run_listing(listing), args(tmp_path / "out"), lambda: NOW)
