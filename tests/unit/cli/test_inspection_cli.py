"""`jesus get runs`, `jesus describe run` and `jesus logs` over a fake API server and a real SQLite archive:
the cluster's runs and the archive's merged by UID, kubectl's outputs, a pod's log or the archive's
account when the pod is gone, and errors that name the run, the flag or the kubeconfig."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from tests.builders.archived_runs import archive, archived_run

from jesus.api.objects import JsonObject
from jesus.cli import main
from jesus.kube import KubeClient, KubeError
from jesus.records import RecordStore, database_url


class FakeCluster:
    """AgentRuns, the pods of Jobs, and their logs."""

    def __init__(self, runs: list[JsonObject], pods: dict[str, str]) -> None:
        self.runs = runs
        self.pods = pods  # job name -> log
        self.asked_logs: list[tuple[str, str, int | None]] = []

    async def get(self, kind: str, namespace: str | None, name: str) -> JsonObject | None:
        assert kind == "AgentRun"
        return next(
            (
                r
                for r in self.runs
                if (r["metadata"]["namespace"], r["metadata"]["name"]) == (namespace, name)
            ),
            None,
        )

    async def list(self, kind: str, namespace: str | None = None, *, labels: Any = None) -> list[JsonObject]:
        if kind == "AgentRun":
            return [r for r in self.runs if namespace in (None, r["metadata"]["namespace"])]
        assert kind == "Pod" and labels is not None
        job = labels["job-name"]
        if job not in self.pods:
            return []
        return [
            {
                "metadata": {
                    "name": f"{job}-pod",
                    "namespace": namespace,
                    "creationTimestamp": "2026-11-30T10:00:00Z",
                }
            }
        ]

    async def pod_log(
        self, namespace: str, name: str, *, container: str | None = None, tail_lines: int | None = None
    ) -> str:
        self.asked_logs.append((namespace, name, tail_lines))
        return self.pods[name.removesuffix("-pod")]


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'archive.db'}"

    async def fill() -> None:
        store = RecordStore(database_url(url))
        await store.migrate()
        await archive(
            store,
            archived_run("old", completion="2026-11-30T09:00:00Z", calls=2),
            archived_run("both", uid="uid-both", completion="2026-11-30T10:00:00Z"),
            archived_run("elsewhere", namespace="team-b", completion="2026-11-30T11:00:00Z", model="m-large"),
        )
        await store.close()

    asyncio.run(fill())
    return url


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    _, live = archived_run("live", calls=1)
    live["status"] = {
        "phase": "Running",
        "attempts": [{"number": 1, "jobName": "live-1", "outcome": "Running"}],
    }
    _, both = archived_run("both", uid="uid-both", calls=1)
    both["status"]["message"] = "the cluster's copy"
    fake = FakeCluster([live, both], {"live-1": "runner: turn 1\nrunner: turn 2\n"})

    async def connect(cls: type[KubeClient], kubeconfig: str | None = None, **_: Any) -> FakeCluster:
        return fake

    monkeypatch.setattr(KubeClient, "connect", classmethod(connect))
    monkeypatch.delenv("JESUS_ARCHIVE_DATABASE", raising=False)
    return fake


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_get_runs_merges_the_cluster_and_the_archive(
    cluster: FakeCluster, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "get", "runs", "-n", "team-a", "--database", database)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "PHASE", "TEAM", "USER", "COST", "COMPLETED"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["both", "Succeeded"],
        ["live", "Running"],
        ["old", "Succeeded"],
    ]
    assert lines[3].split()[4:] == ["0.003", "2026-11-30T09:00:00Z"]
    code, wide, _ = run_cli(capsys, "get", "runs", "-A", "-o", "wide", "--database", database)
    rows = {line.split()[1]: line.split() for line in wide.splitlines()[1:]}
    assert wide.splitlines()[0].split()[0] == "NAMESPACE"
    assert rows["both"][-2:] == ["cluster", "uid-both"]  # the same UID in both: the cluster's copy
    assert rows["old"][-2] == "archive" and rows["elsewhere"][0] == "team-b"
    assert rows["elsewhere"][-3] == "m-large"
    code, as_json, _ = run_cli(capsys, "get", "runs", "-n", "team-a", "-o", "json", "--database", database)
    listing = json.loads(as_json)
    assert listing["kind"] == "List" and len(listing["items"]) == 3
    code, as_yaml, _ = run_cli(capsys, "get", "runs", "-n", "team-a", "-o", "yaml")
    assert [i["metadata"]["name"] for i in YAML(typ="safe").load(as_yaml)["items"]] == ["both", "live"]


def test_archive_only_needs_no_cluster(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("no cluster may be asked")

    monkeypatch.setattr(KubeClient, "connect", classmethod(refuse))
    code, out, _ = run_cli(capsys, "get", "runs", "-n", "team-b", "--archive-only", "--database", database)
    assert code == 0 and out.splitlines()[1].split()[0] == "elsewhere"
    monkeypatch.delenv("JESUS_ARCHIVE_DATABASE", raising=False)
    code, _, err = run_cli(capsys, "get", "runs", "--archive-only")
    assert code == 2 and "--archive-only needs --database URL or $JESUS_ARCHIVE_DATABASE" in err
    code, out, _ = run_cli(capsys, "get", "runs", "-n", "nobody", "--archive-only", "--database", database)
    assert out == "No runs found in nobody namespace.\n"


def test_describe_reads_the_cluster_then_the_archive_and_names_a_missing_run(
    cluster: FakeCluster, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "describe", "run", "both", "-n", "team-a", "--database", database)
    assert code == 0
    assert "Source:         cluster" in out and "Message:        the cluster's copy" in out
    code, out, _ = run_cli(capsys, "describe", "run", "old", "-n", "team-a", "--database", database)
    assert "Source:         archive" in out
    assert "Cost:           0.003" in out
    assert "primary (RateLimited)" in out  # the fallback of its first call
    assert "team-a/team" in out and "Allowed:      True" in out
    code, _, err = run_cli(capsys, "describe", "run", "nope", "-n", "team-a", "--database", database)
    assert code == 2
    assert err.startswith(
        "error: AgentRun team-a/nope not found in the cluster or the archive sqlite+aiosqlite:///"
    )
    code, _, err = run_cli(capsys, "describe", "run", "nope", "-n", "team-a")
    assert err == "error: AgentRun team-a/nope not found in the cluster\n"
    code, out, _ = run_cli(
        capsys, "describe", "run", "old", "-n", "team-a", "--database", database, "-o", "json"
    )
    assert json.loads(out)["recordVersion"] == 1
    code, _, err = run_cli(capsys, "describe", "budget", "x")
    assert code == 2 and "unknown kind 'budget'" in err


def test_logs_come_from_the_pod_or_from_the_archive_when_it_is_gone(
    cluster: FakeCluster, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "logs", "live", "-n", "team-a", "--tail", "5")
    assert (code, out) == (0, "runner: turn 1\nrunner: turn 2\n")
    assert cluster.asked_logs == [("team-a", "live-1-pod", 5)]
    code, out, _ = run_cli(capsys, "logs", "old", "-n", "team-a", "--database", database)
    assert code == 0
    assert (
        out.splitlines()[0]
        == "# team-a/old: no runner pod; from the archive's record (pod logs are not kept)"
    )
    assert "attempt 1 Succeeded" in out and "call 0: primary failed (RateLimited), fell back" in out
    code, _, err = run_cli(capsys, "logs", "live", "-n", "team-a", "--attempt", "3")
    assert code == 2 and err == "error: AgentRun team-a/live has no attempt 3; its attempts are 1\n"
    code, _, err = run_cli(capsys, "logs", "both", "-n", "team-a")
    assert code == 2 and "the runner pod of attempt 1 (Job both-1) is gone; give --database" in err
    code, _, err = run_cli(capsys, "logs", "live", "-n", "team-a", "--tail", "-1")
    assert code == 2 and "--tail: -1 is negative" in err


def test_an_unreachable_cluster_or_a_refusal_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def unreachable(*_: Any, **__: Any) -> None:
        raise OSError("connection refused")

    monkeypatch.setattr(KubeClient, "connect", classmethod(unreachable))
    code, _, err = run_cli(capsys, "get", "runs", "--kubeconfig", "/nowhere/config")
    assert code == 2
    assert "cannot reach the cluster through /nowhere/config: OSError: connection refused" in err

    class Forbidden(FakeCluster):
        async def list(
            self, kind: str, namespace: str | None = None, *, labels: Any = None
        ) -> list[JsonObject]:
            raise KubeError(403, "Forbidden", 'agentruns.jesus.dev is forbidden: User "x" cannot list')

    async def forbidden(*_: Any, **__: Any) -> FakeCluster:
        return Forbidden([], {})

    monkeypatch.setattr(KubeClient, "connect", classmethod(forbidden))
    code, _, err = run_cli(capsys, "get", "runs", "-n", "team-a")
    assert err.startswith("error: AgentRuns in team-a: the API server answered 403 Forbidden")
    code, _, err = run_cli(capsys, "get", "budgets")
    assert code == 2 and "unknown kind 'budgets'" in err
    code, _, err = run_cli(capsys, "get", "runs", "--limit", "0")
    assert code == 2 and "--limit: 0 is not from 1 to 10000" in err
