"""Prometheus (the pinned build) scrapes the operator and the router while runs go through the cluster
(one served after a fallback, all under a Budget), evaluating the chart's rule file; then every
dashboard panel's query and every recording rule, asked through Prometheus's query API, returns series,
and the figures that matter say what happened (the fallback's adapters, the team's spend, the Budget's
utilisation)."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from tests.builders.adapters import answering_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.manifest import manifest
from tests.builders.routes import failover_route
from tests.cluster.harness import REPO, OperatorWorld, Process, operator_world, wait_for

from jesus.devcluster import ControlPlane, ensure_tool
from jesus.devcluster.controlplane import free_port

RULES = REPO / "charts" / "jesus" / "files" / "prometheus" / "rules.yaml"
DASHBOARDS = sorted((REPO / "charts" / "jesus" / "files" / "dashboards").glob("*.json"))
TEAM = "observed"
# A reviewed lesson, as Argo CD would sync it: the lesson panels count it.
LONG_TERM_LESSON = manifest(
    "Lesson",
    "l-quote-figures",
    {
        "text": "Quote the figures.",
        "scope": {"team": TEAM},
        "evidence": [{"run": "r0"}] + [{"run": f"r{n}", "role": "Reuse"} for n in (1, 2, 3)],
    },
)
OBJECTS = [
    answering_adapter("steady", replies=50),
    answering_adapter("flaky", errors=("Overloaded",)),  # every run's first call fails over
    answering_adapter("backup", replies=50, price="0.50"),
    failover_route("simple", "steady"),
    failover_route("with-fallback", "flaky", "backup"),
    team_budget("observed-daily", TEAM, "10.00"),
    LONG_TERM_LESSON,
]
# Grafana's variables as a person would leave them: all namespaces and teams, a 5-minute rate window
# (the runs happen within it), a 10-minute range.
VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "5m",
    "$__range": "10m",
    "$namespace": ".*",
    "$team": ".*",
}
# Panels and rules that may rightly be empty after this test's runs, and why. Keep it short.
MAY_BE_EMPTY: dict[str, str] = {}


class Prometheus:
    """The pinned Prometheus on 127.0.0.1, scraping the world's operator and router every second."""

    def __init__(self, world: OperatorWorld, workdir: Path) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                # The job names the chart's ServiceMonitor and PodMonitor give, which the alerts read.
                {
                    "job_name": "jesus-operator",
                    "static_configs": [{"targets": [f"127.0.0.1:{world.metrics_port}"]}],
                },
                {
                    "job_name": "jesus-router",
                    "static_configs": [{"targets": [f"127.0.0.1:{world.router_port}"]}],
                },
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process = Process(
            "prometheus",
            [
                str(ensure_tool("prometheus")),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            {},
            workdir / "prometheus.log",
        )

    def get(self, path: str, **params: str) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def targets_up(self) -> bool:
        active = self.get("/api/v1/targets")["data"]["activeTargets"]
        return len(active) == 2 and all(t["health"] == "up" for t in active)


@pytest.fixture(scope="module")
def observed(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """The world, scraped from before its first run, after three runs (two through the fallback)."""
    workdir = tmp_path_factory.mktemp("prometheus")
    with operator_world(control_plane, workdir, "scraped", OBJECTS) as world:
        prometheus = Prometheus(world, workdir)
        prometheus.process.start()
        try:
            wait_for(prometheus.ready, timeout=60, what="Prometheus", describe=prometheus.process.tail)
            wait_for(prometheus.targets_up, timeout=60, what="both targets up", describe=world.describe)
            for name, route in (
                ("plain-1", "simple"),
                ("fallback-1", "with-fallback"),
                ("fallback-2", "with-fallback"),
            ):
                # The first reflects (its model answers in prose: the checklist fails, the run succeeds).
                reflection = "Checklist" if name == "plain-1" else "none"
                world.apply(hello_run(name, team=TEAM, route_name=route, reflection=reflection))
                status = world.wait_phase(name, "Succeeded", "Failed", "Denied", timeout=120)
                assert status["phase"] == "Succeeded", world.describe()
            yield prometheus
        finally:
            prometheus.process.stop()


def _substituted(expr: str) -> str:
    for variable, value in sorted(VARIABLES.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def _expressions() -> dict[str, str]:
    """Every panel query of every dashboard and every recording rule, by where it comes from."""
    found: dict[str, str] = {}
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found[f"{path.stem}: {panel['title']} [{target['refId']}]"] = _substituted(target["expr"])
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                found[f"recording rule {rule['record']}"] = rule["record"]
    return found


def test_prometheus_scrapes_both_targets_and_loads_the_rules(observed: Prometheus) -> None:
    groups = observed.get("/api/v1/rules")["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    in_file = {
        r.get("record") or r.get("alert")
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
    }
    assert loaded == in_file
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"]), groups
    assert {s["metric"]["job"] for s in observed.query("up == 1")} == {"jesus-operator", "jesus-router"}


def test_every_dashboard_query_and_recording_rule_returns_series(observed: Prometheus) -> None:
    expressions = _expressions()
    assert len([k for k in expressions if k.startswith("jesus-operations")]) >= 15
    assert len([k for k in expressions if k.startswith("jesus-cost")]) >= 10
    empty: dict[str, str] = {}

    def all_answer() -> bool:
        empty.clear()
        empty.update({where: expr for where, expr in expressions.items() if not observed.query(expr)})
        return set(empty) <= set(MAY_BE_EMPTY)

    try:
        wait_for(all_answer, timeout=90, what="every query to return series")
    except Exception:  # say which ones, not only that they timed out
        pytest.fail("queries with no series:\n" + "\n".join(f"{w}: {e}" for w, e in empty.items()))
    # A series is not enough: a ratio or quantile over nothing is NaN, which Grafana shows as no data.
    nan_only = {
        where: expr
        for where, expr in expressions.items()
        if (result := observed.query(expr)) and all(s["value"][1] == "NaN" for s in result)
    }
    assert set(nan_only) <= set(MAY_BE_EMPTY), "queries with only NaN:\n" + "\n".join(
        f"{w}: {e}" for w, e in nan_only.items()
    )


def _name(adapter: str) -> str:
    """An adapter's name without the namespace a router watching the cluster puts before it."""
    return adapter.rpartition("/")[2]


def _values(observed: Prometheus, expr: str, label: str) -> dict[str, float]:
    return {s["metric"].get(label, ""): float(s["value"][1]) for s in observed.query(expr)}


def test_the_figures_say_what_happened(observed: Prometheus) -> None:
    wait_for(
        lambda: (
            _values(observed, "sum by (outcome) (jesus_runs_finished_total)", "outcome").get("Succeeded", 0)
            >= 3
        ),
        timeout=30,
        what="three succeeded runs counted",
    )
    pairs = observed.query("jesus_router_fallbacks_total")
    assert {(_name(s["metric"]["from_adapter"]), _name(s["metric"]["to_adapter"])) for s in pairs} == {
        ("flaky", "backup")
    }
    assert sum(float(s["value"][1]) for s in pairs) >= 2
    spend = _values(observed, "sum by (team) (jesus_run_cost_micros_total)", "team")
    assert set(spend) == {TEAM} and spend[TEAM] > 0
    models = _values(observed, "sum by (model) (jesus_run_cost_micros_total)", "model")
    assert set(models) == {"steady-model", "backup-model"}
    utilisation = _values(observed, "namespace_budget:jesus_budget_utilisation:ratio", "budget")
    assert 0 < utilisation["observed-daily"] < 0.75  # three small runs of a 10.00 Budget
    breakers = _values(observed, "jesus_router_breaker_state == 1", "adapter")
    assert {_name(adapter) for adapter in breakers} == {"steady", "flaky", "backup"}
    assert observed.query('jesus_runs{phase="Succeeded"} == 3')
    reflections = _values(observed, "sum by (result) (jesus_reflections_total)", "result")
    assert reflections == {"passed": 0.0, "failed": 1.0}
    assert _values(observed, "sum by (memory) (jesus_lesson_reuses)", "memory") == {"LongTerm": 3.0}
    # No series carries a run's name.
    names = observed.get("/api/v1/labels")["data"]
    assert not set(names) & {"run", "name", "uid", "pod", "job_name", "trace_id"}
    for label in names:
        for value in observed.get(f"/api/v1/label/{label}/values")["data"]:
            assert not re.search(r"plain-1|fallback-[12]", value), f"{label}={value}"
