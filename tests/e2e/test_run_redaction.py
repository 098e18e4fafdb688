"""`jesus run` with a reply that carries a key after a line break and an e-mail at a line start: the
run's record and transcript are valid JSON and hold neither (this crashed with JSONDecodeError when
redaction ran over serialized JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.cli import main

pytestmark = pytest.mark.e2e

KEY = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345"
EMAIL = "grace.hopper@example.com"


def test_a_run_whose_reply_leaks_at_line_starts_keeps_its_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = tmp_path / "run.yaml"
    specs.write_text(
        to_yaml(
            scripted_adapter("scripted", text=f"Done.\n{KEY}\n{EMAIL} asked for it\n+44 20 7946 0958"),
            route_policy("route", ("scripted",)),
            budget("budget"),
            agent_run(policy="route"),
        )
    )
    artifacts = tmp_path / "artifacts"
    code = main(["run", str(specs), "--artifacts", str(artifacts), "--output", "json"])
    out = capsys.readouterr().out
    record = json.loads(out)
    assert code == 0, out
    assert record["finalAnswer"].startswith("Done.\n[REDACTED:anthropic-key]\n[REDACTED:email] asked")
    for path in artifacts.iterdir():
        text = path.read_text()
        if path.suffix == ".json":
            json.loads(text)
        assert KEY not in text, path.name
        assert EMAIL not in text, path.name
        assert "7946 0958" not in text, path.name
    assert KEY not in out
    assert EMAIL not in out
