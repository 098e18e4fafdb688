"""`jesus run` end to end: specs on disk, the CLI, policy, budgets, router, adapters, tools, record.

Most cases call the CLI's `main` in this process (the same code path as the console script); the
first runs the installed `jesus` command itself, as the README tells a new user to.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.builders.adapters import openai_adapter, scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml
from tests.providers import Reply, serve_openai

from jesus.cli import main

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
JESUS = Path(sys.executable).parent / "jesus"


def write_specs(tmp_path: Path, *objects: dict[str, Any]) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(to_yaml(*objects))
    return path


def run_text(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`jesus run ARGS` in-process: its exit code and what it printed."""
    code = main(["run", *args])
    return code, capsys.readouterr().out


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out = run_text(capsys, *args, "--output", "json")
    return code, json.loads(out)


def test_hello_runs_offline_with_the_installed_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(JESUS), "run", "examples/hello.yaml", "--artifacts", str(tmp_path / "artifacts")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Run hello (namespace default, dry run): Succeeded" in done.stdout
    assert "Hello from Jesus!" in done.stdout
    assert "Policy:    allowed by the embedded engine" in done.stdout
    assert "Traceback" not in done.stderr
    assert (tmp_path / "artifacts" / "result.json").is_file()


def test_the_json_record_has_usage_cost_policy_budget_and_artifacts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    artifacts = tmp_path / "artifacts"
    code, record = run_json(capsys, "examples/hello.yaml", "--artifacts", str(artifacts))
    assert code == 0
    assert record["outcome"] == "Succeeded"
    assert record["usage"] == {"inputTokens": 12, "outputTokens": 10}
    assert record["costMicros"] == 32  # 12 x 1.00 + 10 x 2.00 per million tokens, rounded up
    assert record["policy"]["allowed"] is True
    assert record["budgets"][0]["name"] == "hello-budget"
    assert record["specDigest"].startswith("sha256:")
    stored = json.loads((artifacts / "result.json").read_text())
    assert stored["outcome"] == "Succeeded"
    assert {a["name"] for a in stored["artifacts"]} == {p.name for p in artifacts.iterdir()}


def test_a_real_provider_is_replaced_by_a_priced_dry_run_without_live(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    specs = write_specs(
        tmp_path, openai_adapter("gpt"), route_policy("route", ("gpt",)), agent_run(policy="route")
    )
    code, record = run_json(capsys, str(specs), "--artifacts", str(tmp_path / "a"))
    assert code == 0
    assert record["dryRun"] is True
    assert "dry run: ModelAdapters gpt were replaced" in record["warnings"][0]
    assert "was not called" in record["finalAnswer"]
    assert record["calls"][0]["adapter"] == "gpt"
    assert record["costMicros"] > 0, "a dry run is priced with the adapter's real prices"


def test_live_without_a_key_is_refused_with_the_variable_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_KEY_APIKEY", raising=False)
    specs = write_specs(
        tmp_path, openai_adapter("gpt"), route_policy("route", ("gpt",)), agent_run(policy="route")
    )
    code, record = run_json(capsys, str(specs), "--live")
    assert code == 1
    assert record["outcome"] == "InvalidSpec"
    assert "OPENAI_KEY_APIKEY" in record["reason"]
    assert record["calls"] == []


@pytest.fixture
def fake_openai() -> Iterator[str]:
    """A fake OpenAI-compatible server on its own event loop thread; yields its base URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    url: list[str] = []

    async def serve() -> None:
        async with serve_openai(
            default=Reply(text="answer from the live wire", input_tokens=40, output_tokens=8)
        ) as fake:
            url.append(fake.base_url)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(10)
    yield url[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)


def test_live_calls_the_provider_with_the_key_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fake_openai: str
) -> None:
    adapter = openai_adapter("local")
    adapter["spec"] |= {"provider": "openai-compatible", "endpoint": fake_openai}
    monkeypatch.setenv("OPENAI_KEY_APIKEY", "sk-local")
    specs = write_specs(tmp_path, adapter, route_policy("route", ("local",)), agent_run(policy="route"))
    code, record = run_json(capsys, str(specs), "--live", "--artifacts", str(tmp_path / "a"))
    assert code == 0, record
    assert record["dryRun"] is False
    assert record["finalAnswer"] == "answer from the live wire"
    assert record["usage"] == {"inputTokens": 40, "outputTokens": 8}
    # 40 x 0.40 + 8 x 1.60 per million tokens, rounded up
    assert record["costMicros"] == 29


def test_a_failing_primary_falls_back_and_the_summary_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primary = scripted_adapter("primary")
    primary["spec"]["scripted"]["replies"] = [{"error": {"class": "Overloaded", "message": "busy"}}]
    policy = route_policy("route", ("primary", "backup"))
    policy["spec"]["retries"] = {"maxAttempts": 1}
    specs = write_specs(
        tmp_path, primary, scripted_adapter("backup", text="the backup answered"), policy, agent_run()
    )
    code, out = run_text(capsys, str(specs), "--artifacts", str(tmp_path / "a"))
    assert code == 0
    assert "fell back: primary -> backup" in out
    assert "the backup answered" in out


def test_a_spec_that_does_not_validate_is_explained_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = agent_run()
    run["spec"]["limits"]["maxCost"] = "lots"
    specs = write_specs(tmp_path, scripted_adapter(), route_policy(), run)
    code = main(["run", str(specs)])
    captured = capsys.readouterr()
    assert code == 1
    assert "InvalidSpec" in captured.out
    assert f"{specs}:" in captured.out
    assert "spec.limits.maxCost" in captured.out
    assert "Traceback" not in captured.out + captured.err


def test_a_run_over_its_budget_is_refused_before_any_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = write_specs(tmp_path, scripted_adapter(), route_policy(), budget(limit="0.10"), agent_run())
    code, record = run_json(capsys, str(specs))
    assert code == 1
    assert record["outcome"] in {"PolicyDenied", "BudgetExceeded"}
    assert "budget" in record["reason"].lower()
    assert record["calls"] == []


def test_the_policy_denies_a_run_that_may_cost_too_much(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = agent_run()
    run["spec"]["limits"]["maxCost"] = "30.00"
    specs = write_specs(tmp_path, scripted_adapter(), route_policy(), budget(limit="1000.00"), run)
    code, record = run_json(capsys, "--policies", str(REPO / "policies"), str(specs))
    assert code == 1
    assert record["outcome"] == "PolicyDenied"
    assert record["policy"]["allowed"] is False
    assert record["reason"]


def test_without_policies_the_run_warns_that_none_is_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = write_specs(tmp_path, scripted_adapter(), route_policy(), agent_run())
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JESUS_POLICIES", raising=False)
    code, out = run_text(capsys, str(specs))
    assert code == 0
    assert "warning: no policy is configured" in out
    assert "Policy:    not configured" in out


def test_a_token_limit_stops_the_run_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    adapter = scripted_adapter()
    adapter["spec"]["scripted"]["replies"] = [
        {
            "toolCalls": [{"name": "nothing", "arguments": {}}],
            "usage": {"inputTokens": 40, "outputTokens": 20},
        }
    ]
    run = agent_run()
    run["spec"]["limits"]["maxTokens"] = 100
    specs = write_specs(tmp_path, adapter, route_policy(), run)
    code, record = run_json(capsys, str(specs), "--artifacts", str(tmp_path / "a"))
    assert code == 1
    assert record["outcome"] == "LimitExceeded"
    assert "token allowance" in record["reason"]


def test_the_tools_example_calls_the_mcp_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code, record = run_json(capsys, "examples/tools/workspace-run.yaml", "--artifacts", str(tmp_path / "a"))
    assert code == 0, record
    assert [(t["server"], t["tool"], t["isError"]) for t in record["toolCalls"]] == [
        ("filesystem", "list_files", False),
        ("filesystem", "count_words", False),
    ]
    assert "hello.yaml" in record["toolCalls"][0]["result"]
    assert json.loads(record["toolCalls"][1]["result"])["words"] > 0


def test_a_file_with_several_runs_needs_a_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = write_specs(tmp_path, scripted_adapter(), route_policy(), agent_run("one"), agent_run("two"))
    assert main(["run", str(specs)]) == 2
    assert "choose one with --run" in capsys.readouterr().err
    assert main(["run", str(specs), "--run", "two", "--artifacts", str(tmp_path / "a")]) == 0


def test_a_dry_run_of_real_providers_does_not_start_tool_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run = agent_run(policy="route")
    # a server the site data allows (by URL), that no one listens at: starting it would fail the run
    run["spec"]["tools"] = [{"name": "fetch", "url": "http://fetch-mcp.tools.svc:8080/mcp"}]
    specs = write_specs(tmp_path, openai_adapter("gpt"), route_policy("route", ("gpt",)), run)
    code, record = run_json(capsys, str(specs), "--artifacts", str(tmp_path / "a"))
    assert code == 0, record
    assert any("tool servers fetch were not started" in w for w in record["warnings"])
    assert record["toolCalls"] == []
