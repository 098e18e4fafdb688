"""`jesus api --workers N`: the options reach every worker through the environment, the workers share
one cursor key (a cursor one made, another accepts), and a careless worker count is refused by name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.builders.archived_runs import archive, standard_runs

from jesus.cli import main
from jesus.cli.api import CURSOR_KEY_VARIABLE, SETTINGS_VARIABLE, worker_app
from jesus.records import RecordStore


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'archive.db'}"


@pytest.mark.parametrize("workers", ["0", "-3", "65"])
def test_a_worker_count_out_of_range_is_refused_naming_the_option(
    database: str, workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["api", "--local", "--database", database, "--workers", workers]) == 2
    assert f"--workers must be from 1 to 64, not {workers}" in capsys.readouterr().err


def test_a_worker_count_that_is_not_a_number_is_refused(database: str) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["api", "--local", "--database", database, "--workers", "two"])
    assert refused.value.code == 2


def test_a_worker_without_its_settings_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SETTINGS_VARIABLE, raising=False)
    with pytest.raises(Exception, match=SETTINGS_VARIABLE):
        worker_app()


async def test_workers_get_every_option_and_share_one_cursor_key(
    store: RecordStore, database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await archive(store, *standard_runs())
    monkeypatch.delenv(CURSOR_KEY_VARIABLE, raising=False)  # none given: one is made for the workers
    monkeypatch.delenv(SETTINGS_VARIABLE, raising=False)
    served: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.append((app, options)))
    trace = "https://jaeger.example/trace/{traceId}"
    argv = [
        "api", "--local", "--database", database, "--workers", "3", "--trace-url", trace,
        "--refresh-seconds", "9", "--answer-seconds", "3.5", "--artifact-dir", str(tmp_path),
    ]  # fmt: skip
    assert main(argv) == 0
    [(app, options)] = served
    assert app == "jesus.cli.api:worker_app"
    assert (options["factory"], options["workers"]) == (True, 3)
    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    assert (settings["trace_url"], settings["refresh_seconds"], settings["database"]) == (trace, 9, database)
    assert len(os.environ[CURSOR_KEY_VARIABLE]) >= 32

    first, second = worker_app(), worker_app()  # two workers, as uvicorn starts them
    for worker in (first, second):
        assert worker.state.service.answers.seconds == 3.5
        assert worker.state.artifact_root == tmp_path
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(first), base_url="http://api") as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(second), base_url="http://api") as other,
    ):
        cursor = (await one.get("/v1/runs?limit=2")).json()["nextCursor"]
        page = await other.get("/v1/runs", params={"limit": "2", "cursor": cursor})
        assert page.status_code == 200, page.text
        assert [r["name"] for r in page.json()["items"]] == ["a4", "a3"]
    for worker in (first, second):
        await worker.state.service.reader.close()
