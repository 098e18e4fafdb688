"""`jesus plan`: decisions, costs, routes and budgets per AgentRun; exit 1 when any run is denied."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from tests.builders.adapters import build_hosted_adapter, build_served_adapter
from tests.builders.agentrun import build_run
from tests.builders.budget import spending_budget
from tests.builders.defaults import NOW
from tests.builders.routes import build_route

from jesus.api import ApiObject, Budget, BudgetPeriod
from jesus.cli import main
from jesus.logic.budget import period_window
from jesus.logic.clock import format_time
from jesus.policy.planning import merge_live_budgets

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NEXT_MONTH = period_window(BudgetPeriod.MONTHLY, NOW).end
assert NEXT_MONTH is not None


def write_specs(folder: Path, objects: Sequence[ApiObject]) -> Path:
    """Write `objects` as one multi-document YAML file (JSON documents are YAML too)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = "\n---\n".join(json.dumps(obj.to_kubernetes(), indent=2) for obj in objects)
    (folder / "specs.yaml").write_text(text + "\n")
    return folder


def standard_objects() -> list[ApiObject]:
    return [build_hosted_adapter(), build_served_adapter(), build_route(), spending_budget(), build_run()]


def plan(capsys: pytest.CaptureFixture[str], *args: str, now: datetime = NOW) -> tuple[int, str, str]:
    """`jesus plan ARGS` judged as of `now` (the builders' moment unless a test moves it)."""
    code = main(["plan", *args, "--policies", str(POLICIES), "--now", format_time(now)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_admitted_run_shows_cost_route_and_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = write_specs(tmp_path / "specs", standard_objects())
    code, out, _ = plan(capsys, str(specs))
    assert code == 0
    assert f"AgentRun research/summarise-tickets ({specs / 'specs.yaml'}:" in out
    assert "ADMITTED" in out
    assert "maximum cost: 3.00 USD (bound by limits.maxCost)" in out
    assert "route: default: claude (anthropic claude-sonnet-4-5) -> llama (vllm llama-3.3-70b)" in out
    assert (
        "budget research/research-monthly (team=research, Monthly): 18.00 USD of 100.00 USD after this run "
        "(18 %), 82.00 USD left"
    ) in out
    assert out.rstrip().endswith("1 run: 1 admitted, 0 denied")


@pytest.mark.parametrize(
    ("now", "after"),
    [
        # The Budget month's last second: its 10.00 spent and 5.00 reserved count, plus this run's 3.00.
        (NEXT_MONTH - timedelta(seconds=1), "18.00 USD"),
        # The first second of the next month: a new period. The spending was last month's; the
        # reservation is still held (its run has not settled), so 5.00 + 3.00.
        (NEXT_MONTH, "8.00 USD"),
        # About 400 days on: a new period again.
        (NOW + timedelta(days=400), "8.00 USD"),
    ],
)
def test_now_decides_which_period_spending_counts_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], now: datetime, after: str
) -> None:
    code, out, _ = plan(capsys, str(write_specs(tmp_path / "specs", standard_objects())), now=now)
    assert code == 0
    assert f"(team=research, Monthly): {after} of 100.00 USD after this run" in out


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-22T04:00:00", "has no timezone offset"),
        ("yesterday", "is not an RFC 3339 timestamp"),
        ("", "is not an RFC 3339 timestamp"),
    ],
)
def test_now_must_be_a_moment_with_an_offset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    specs = write_specs(tmp_path / "specs", standard_objects())
    with pytest.raises(SystemExit) as exited:
        main(["plan", str(specs), "--policies", str(POLICIES), "--now", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--now" in err
    assert message in err


def test_denied_run_exits_1_with_its_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    objects = [*standard_objects()[:-1], build_run(classification="restricted", max_cost="30.00")]
    code, out, _ = plan(capsys, str(write_specs(tmp_path / "specs", objects)))
    assert code == 1
    assert "DENIED" in out
    assert '  reason: maximum cost 30.00 USD exceeds the per-run limit 25.00 USD for team "research"' in out
    assert '  warning: model adapter "claude" does not accept restricted data' in out
    assert out.rstrip().endswith("1 run: 0 admitted, 1 denied")


def test_one_denied_run_among_several_fails_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = [*standard_objects(), build_run(name="greedy", max_cost="90.00")]
    code, out, _ = plan(capsys, str(write_specs(tmp_path / "specs", objects)), "--output", "json")
    assert code == 1
    report = json.loads(out)
    assert (report["admitted"], report["denied"]) == (1, 1)
    by_name = {run["name"]: run for run in report["runs"]}
    assert by_name["summarise-tickets"]["allowed"] is True
    greedy = by_name["greedy"]
    assert greedy["allowed"] is False
    assert greedy["maxCostMicros"] == 90_000_000
    assert greedy["maxCost"] == "90.00"
    assert any('budget "research-monthly"' in reason for reason in greedy["reasons"])
    assert [step["name"] for step in greedy["route"]["chain"]] == ["claude", "llama"]
    # decided after summarise-tickets, which holds its 3.00 first (running totals, as the ledger would)
    assert (
        greedy["budgets"][0]["afterRun"]["remainingMicros"]
        == 100_000_000 - 15_000_000 - 3_000_000 - 90_000_000
    )
    assert greedy["source"] == "specs"


def test_runs_that_together_overspend_a_budget_are_not_all_admitted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 85.00 left; each run fits alone (20.00), four of them do not: the fifth waits, as in the cluster
    runs = [build_run(name=f"run-{i}", max_cost="20.00") for i in range(5)]
    objects = [*standard_objects()[:-1], *runs]
    code, out, _ = plan(capsys, str(write_specs(tmp_path / "specs", objects)), "--output", "json")
    assert code == 1
    report = json.loads(out)
    outcomes = [(run["name"], run["outcome"]) for run in report["runs"]]
    assert outcomes == [*((f"run-{i}", "Admitted") for i in range(4)), ("run-4", "Waiting")]
    left = [run["budgets"][0]["afterRun"]["remainingMicros"] for run in report["runs"]]
    assert left == [65_000_000, 45_000_000, 25_000_000, 5_000_000, -15_000_000]
    assert report["runs"][4]["reason"] == "BudgetExceeded"
    assert "5.00 USD left" in report["runs"][4]["reasons"][0]


def test_a_denied_run_does_not_hold_money_for_the_runs_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the first run is denied by policy (over the 25.00 per-run limit) before holding anything
    objects = [
        *standard_objects()[:-1],
        build_run(name="denied", max_cost="80.00"),
        build_run(name="fits", max_cost="20.00"),
    ]
    code, out, _ = plan(capsys, str(write_specs(tmp_path / "specs", objects)), "--output", "json")
    assert code == 1
    report = json.loads(out)
    assert [(run["name"], run["outcome"]) for run in report["runs"]] == [
        ("denied", "Denied"),
        ("fits", "Admitted"),
    ]
    assert report["runs"][1]["budgets"][0]["afterRun"]["remainingMicros"] == 65_000_000


def test_markdown_is_a_table_with_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    objects = [*standard_objects()[:-1], build_run(max_cost="30.00")]
    code, out, _ = plan(capsys, str(write_specs(tmp_path / "specs", objects)), "-o", "markdown")
    assert code == 1
    assert "| AgentRun | Decision | Max cost | Route | Budgets after this run |" in out
    assert "| `research/summarise-tickets` | ❌ denied | 30.00 USD (bound by limits.maxCost) |" in out
    assert '- ❌ maximum cost 30.00 USD exceeds the per-run limit 25.00 USD for team "research"' in out


def test_invalid_specs_are_reported_and_not_planned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = [build_hosted_adapter(), spending_budget(), build_run()]  # the route is missing
    code, out, err = plan(capsys, str(write_specs(tmp_path / "specs", objects)))
    assert code == 1
    assert out == ""
    assert "RoutePolicy 'default' is not defined" in err
    assert "before planning" in err


def test_broken_policy_is_an_error_not_an_admission(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = Path(shutil.copytree(POLICIES, tmp_path / "policies"))
    (policies / "admission" / "broken.rego").write_text("package jesus.admission\n\ndeny contains x if {\n")
    specs = write_specs(tmp_path / "specs", standard_objects())
    code = main(["plan", str(specs), "--policies", str(policies)])
    captured = capsys.readouterr()
    assert code == 2
    assert "does not compile (admission/broken.rego)" in captured.err
    assert "ADMITTED" not in captured.out


def test_unreachable_opa_server_is_no_decision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = write_specs(tmp_path / "specs", standard_objects())
    code, out, _ = plan(capsys, str(specs), "--opa-url", "http://127.0.0.1:9")
    assert code == 1
    assert "NO DECISION" in out
    assert "the OPA server at http://127.0.0.1:9 is unreachable" in out


def test_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan(capsys, str(tmp_path / "nope"))
    assert code == 2
    assert "no such file or directory" in err


def test_live_budgets_without_a_cluster_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = write_specs(tmp_path / "specs", standard_objects())
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    code, _, err = plan(capsys, str(specs), "--live", "--kubeconfig", str(kubeconfig))
    assert code == 2
    assert "cannot read Budgets from the cluster (--live)" in err


def test_live_figures_replace_the_spec_files_ones() -> None:
    spec_budget = spending_budget(limit="200.00", spent_micros=0, reserved_micros=0)
    live_same = spending_budget(spent_micros=150_000_000, reserved_micros=1_000_000)
    live_other = spending_budget(name="cluster-only", scope={"namespace": "research"})
    merged = merge_live_budgets([spec_budget], [live_same, live_other])
    assert [b.metadata.name for b in merged] == ["research-monthly", "cluster-only"]
    first: Budget = merged[0]
    assert first.spec.limit == "200.00"  # the pull request's spec
    assert first.status is not None
    assert first.status.spent_micros == 150_000_000  # the cluster's spending
