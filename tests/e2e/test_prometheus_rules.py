"""The chart's recording rules and alerts (charts/jesus/files/prometheus/rules.yaml) through the pinned
promtool: `check rules` passes, every unit test passes, every alert has a case where it fires and one
where it stays quiet, a wrong expectation fails, every alert links a runbook section that exists, and
the chart renders the very file promtool read, its thresholds set from the chart's values."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from jesus.devcluster import ensure_tool

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "jesus"
RULES = CHART / "files" / "prometheus" / "rules.yaml"
UNIT_TESTS = sorted((RULES.parent / "tests").glob("*.yaml"))
DOC = REPO / "docs" / "observability.md"


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    binary = ensure_tool("promtool")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alerts() -> set[str]:
    return {rule["alert"] for rule in rules() if "alert" in rule}


def test_promtool_checks_the_rule_file() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_every_unit_test_passes() -> None:
    assert UNIT_TESTS, "no promtool unit tests"
    result = promtool("test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts() >= {
        "JesusBudget75PercentUsed",
        "JesusBudget90PercentUsed",
        "JesusBudgetExhausted",
        "JesusHighFallbackRate",
        "JesusProviderErrorRateHigh",
        "JesusAdmissionLatencyBudgetBurnFast",
        "JesusAdmissionLatencyBudgetBurnSlow",
        "JesusOperatorDown",
        "JesusOperatorNotReconciling",
        "JesusRouterDown",
    }
    assert alerts() - fires == set(), "alerts with no case where they fire"
    assert alerts() - quiet == set(), "alerts with no case where they stay quiet"


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    """The unit tests can fail: the 90 % alert expected for the Budget at 80 % is a failure."""
    shutil.copy(RULES, tmp_path / "rules.yaml")
    (tmp_path / "tests").mkdir()
    text = (RULES.parent / "tests" / "budgets.yaml").read_text()
    wrong = text.replace("budget: at-95}", "budget: at-80}", 1)
    assert wrong != text
    (tmp_path / "tests" / "budgets.yaml").write_text(wrong)
    result = promtool("test", "rules", str(tmp_path / "tests" / "budgets.yaml"))
    assert result.returncode != 0
    assert "JesusBudget90PercentUsed" in result.stdout + result.stderr


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_alert_links_a_runbook_section_of_the_docs() -> None:
    anchors = _anchors(DOC.read_text())
    for rule in rules():
        if "alert" not in rule:
            continue
        link = rule["annotations"]["runbook"]
        path, _, anchor = link.partition("#")
        assert path == "docs/observability.md", f"{rule['alert']}: runbook {link}"
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {DOC.name}"


def _rendered(*values: str) -> dict[str, Any]:
    args = ["template", "jesus", str(CHART), "--kube-version=1.34.0"]
    args += ["--api-versions=monitoring.coreos.com/v1/PrometheusRule", "-s", "templates/prometheusrule.yaml"]
    for value in values:
        args += ["--set-json", value]
    result = subprocess.run([str(ensure_tool("helm")), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rendered: dict[str, Any] = yaml.safe_load(result.stdout)
    return rendered


def test_the_chart_renders_the_rule_file_promtool_reads() -> None:
    assert _rendered()["spec"] == yaml.safe_load(RULES.read_text())


def test_chart_values_set_the_marked_thresholds_and_nothing_else(tmp_path: Path) -> None:
    rendered = _rendered(
        "monitoring.alerts.fallbackRateWarning=0.35", "monitoring.alerts.runFailureRateWarning=0.05"
    )
    expected = yaml.safe_load(
        RULES.read_text()
        .replace("> 0.2  # alerts.fallbackRateWarning", "> 0.35  # alerts.fallbackRateWarning")
        .replace("> 0.1  # alerts.runFailureRateWarning", "> 0.05  # alerts.runFailureRateWarning")
    )
    assert rendered["spec"] == expected
    assert rendered["spec"] != yaml.safe_load(RULES.read_text())
    # What the chart renders is a rule file promtool accepts.
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump(rendered["spec"]))
    result = promtool("check", "rules", str(tmp_path / "rendered.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("value", ["1e-3", "0.999"])
def test_a_threshold_in_exponent_or_many_digits_renders_as_given(value: str) -> None:
    rendered = _rendered(f"monitoring.alerts.providerErrorRateWarning={value}")
    [rule] = [
        r
        for g in rendered["spec"]["groups"]
        for r in g["rules"]
        if r.get("alert") == "JesusProviderErrorRateHigh"
    ]
    assert re.search(rf"> {re.escape(str(float(value)))}(\s|$)", rule["expr"]), rule["expr"]
