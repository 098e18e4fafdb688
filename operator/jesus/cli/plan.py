"""`jesus plan DIR...`: what admission would decide for every AgentRun of a specs tree, before merge.

Validates the specs as `jesus validate` does, then puts each AgentRun through admission as the
operator decides it (`jesus.logic.admission`: route, budgets, then the admission policy, with the
embedded engine by default or an OPA server with --opa-url) and prints the verdict with its reasons,
the run's maximum cost, its route, and each covering Budget's figures after the run. A run that does
not fit a Budget shows WAITING (BudgetExceeded): the operator would hold it until money frees up.
Runs are decided in source order on the running totals of their Budgets: an admitted run holds its
maximum cost before the next is decided, as the operator's ledger would, so two runs that together
overspend a Budget are not both admitted.
Budget figures come from the spec files, or from the cluster's Budget status with --live; which budget
period spending counts in is judged as of the machine's clock, or of --now. Exit status: 0 when every
run would be admitted, 1 when any would not (denied, or waiting) or the specs are invalid, 2 on other
errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jesus.api import Budget, format_micros
from jesus.cli import CommandError, command_parser
from jesus.logic.admission import AdmissionVerdict, Outcome
from jesus.logic.clock import parse_time, system_clock
from jesus.policy import (
    EmbeddedEngine,
    OpaServerEngine,
    PolicyEngine,
    PolicyLoadError,
    default_policy_dir,
)
from jesus.policy.planning import PlannedRun, plan_in_order
from jesus.specs import Severity, SpecPathError, SpecSet, load_specs, validate_specs


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `plan` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument("paths", nargs="+", type=Path, metavar="DIR", help="specs folder or file")
    parser.add_argument(
        "--output", "-o", choices=("text", "json", "markdown"), default="text", help="output format"
    )
    parser.add_argument(
        "--policies",
        type=Path,
        default=None,
        metavar="DIR",
        help="Rego policy folder (default: $JESUS_POLICY_DIR, else ./policies, else the project's)",
    )
    parser.add_argument(
        "--opa-url", default=None, metavar="URL", help="ask this OPA server instead of the embedded engine"
    )
    parser.add_argument(
        "--live",
        action="store_true",
        help="take Budget figures from the cluster's Budget status ($KUBECONFIG or --kubeconfig)",
    )
    parser.add_argument("--kubeconfig", default=None, metavar="FILE", help="kubeconfig for --live")
    parser.add_argument(
        "--now",
        type=_moment,
        default=None,
        metavar="TIME",
        help=(
            "judge the plan as of this RFC 3339 moment (e.g. 2026-11-30T23:59:59Z) instead of the "
            "machine's clock: it decides which budget period spending counts in"
        ),
    )
    parser.set_defaults(handler=run)


def _moment(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class RunVerdict:
    """One planned run and admission's final verdict on it."""

    planned: PlannedRun
    verdict: AdmissionVerdict


def run(args: argparse.Namespace) -> int:
    """Plan the specs and print the verdicts; 0 when all would be admitted, 1 otherwise."""
    try:
        spec_set = load_specs(args.paths)
    except SpecPathError as exc:
        raise CommandError(str(exc)) from exc
    problems = validate_specs(spec_set)
    errors = [p for p in problems if p.severity is Severity.ERROR]
    for problem in problems:
        print(problem.format(), file=sys.stderr)
    if errors:
        print(
            f"{len(errors)} errors in the specs: fix them (see `jesus validate`) before planning",
            file=sys.stderr,
        )
        return 1
    live_budgets = _read_live_budgets(args.kubeconfig) if args.live else None
    now = args.now or system_clock()
    verdicts = asyncio.run(_decide_all(_engine(args), spec_set, now, live_budgets))
    render = {"json": render_json, "markdown": render_markdown}.get(args.output, render_text)
    sys.stdout.write(render(verdicts, spec_set))
    return 1 if any(not v.verdict.admitted for v in verdicts) else 0


def _engine(args: argparse.Namespace) -> PolicyEngine:
    if args.opa_url:
        return OpaServerEngine(args.opa_url)
    directory = args.policies or default_policy_dir()
    try:
        return EmbeddedEngine.from_directory(directory)
    except PolicyLoadError as exc:
        raise CommandError(str(exc)) from exc


async def _decide_all(
    engine: PolicyEngine, spec_set: SpecSet, now: datetime, live_budgets: list[Budget] | None
) -> list[RunVerdict]:
    try:
        decided = await plan_in_order(engine, spec_set, now=now, live_budgets=live_budgets)
        return [RunVerdict(planned, verdict) for planned, verdict in decided]
    finally:
        if isinstance(engine, OpaServerEngine):
            await engine.aclose()


def _read_live_budgets(kubeconfig: str | None) -> list[Budget]:
    try:
        items = asyncio.run(_list_budgets(kubeconfig))
    except Exception as exc:  # any failure to reach the cluster is the user's to fix, not a traceback
        raise CommandError(f"cannot read Budgets from the cluster (--live): {exc}") from exc
    budgets: list[Budget] = []
    for item in items:
        try:
            budgets.append(Budget.model_validate(item))
        except ValueError as exc:
            name = f"{item.get('metadata', {}).get('namespace')}/{item.get('metadata', {}).get('name')}"
            print(f"warning: skipped live Budget {name}: {exc}", file=sys.stderr)
    return budgets


async def _list_budgets(kubeconfig: str | None) -> list[dict[str, Any]]:
    # Imported here so that planning from files never needs a Kubernetes client configured.
    from jesus.kube import KubeClient

    kube = await KubeClient.connect(kubeconfig)
    return await kube.list("Budget")


# --- rendering -------------------------------------------------------------------------------


def _usd(micros: int) -> str:
    return f"{format_micros(micros)} USD"


def _route_text(document: dict[str, Any]) -> str:
    route = document["route"]
    if not route["found"]:
        return f"{route['name']} (not found)"
    steps = []
    for adapter in document["adapters"]:
        if adapter["found"]:
            steps.append(f"{adapter['name']} ({adapter['provider']} {adapter['model']})")
        else:
            steps.append(f"{adapter['name']} (not found)")
    return f"{route['name']}: " + " -> ".join(steps)


def _budget_text(budget: dict[str, Any]) -> str:
    after = budget["afterRun"]
    used = after["spentMicros"] + after["reservedMicros"]
    left = after["remainingMicros"]
    left_text = f"{_usd(left)} left" if left >= 0 else f"{_usd(-left)} over"
    return (
        f"{budget['namespace']}/{budget['name']} ({budget['scope']}, {budget['period']}): "
        f"{_usd(used)} of {_usd(budget['limitMicros'])} after this run ({after['utilizationPercent']} %), "
        f"{left_text}"
    )


def _cost_text(document: dict[str, Any]) -> str:
    cost = document["run"]["cost"]
    return f"{_usd(cost['maxMicros'])} (bound by limits.{cost['basis']})"


def _verdict_word(verdict: AdmissionVerdict) -> str:
    if verdict.admitted:
        return "ADMITTED"
    if verdict.outcome is Outcome.WAITING:
        return f"WAITING ({verdict.reason})" if verdict.decided else "NO DECISION"
    return "DENIED"


def render_text(verdicts: Sequence[RunVerdict], spec_set: SpecSet) -> str:
    """One block per run, then a summary line."""
    lines: list[str] = []
    for verdict in verdicts:
        planned, decided, document = verdict.planned, verdict.verdict, verdict.planned.policy_input
        where = f"{planned.loaded.file}:{planned.loaded.line}"
        lines.append(f"AgentRun {planned.namespace}/{planned.name} ({where}): {_verdict_word(decided)}")
        lines.extend(f"  reason: {reason}" for reason in decided.reasons)
        lines.extend(f"  warning: {warning}" for warning in decided.warnings)
        lines.append(f"  maximum cost: {_cost_text(document)}")
        lines.append(f"  route: {_route_text(document)}")
        budgets = document["budgets"]
        lines.extend(f"  budget {_budget_text(b)}" for b in budgets)
        if not budgets:
            lines.append("  budget: none covers this run")
        lines.append("")
    lines.append(_summary(verdicts))
    return "\n".join(lines) + "\n"


def _summary(verdicts: Sequence[RunVerdict]) -> str:
    admitted = sum(1 for v in verdicts if v.verdict.admitted)
    runs = "1 run" if len(verdicts) == 1 else f"{len(verdicts)} runs"
    return f"{runs}: {admitted} admitted, {len(verdicts) - admitted} denied"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(verdicts: Sequence[RunVerdict], spec_set: SpecSet) -> str:
    """A table to post on a pull request, then the reasons and warnings of each run."""
    lines = [
        "### jesus plan",
        "",
        "| AgentRun | Decision | Max cost | Route | Budgets after this run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for verdict in verdicts:
        planned, document = verdict.planned, verdict.planned.policy_input
        mark = "✅" if verdict.verdict.admitted else "❌"
        budgets = "<br>".join(_cell(_budget_text(b)) for b in document["budgets"]) or "none"
        lines.append(
            f"| `{planned.namespace}/{planned.name}` | {mark} {_verdict_word(verdict.verdict).lower()} "
            f"| {_cell(_cost_text(document))} | {_cell(_route_text(document))} | {budgets} |"
        )
    lines.append("")
    for verdict in verdicts:
        decision = verdict.verdict
        if decision.reasons or decision.warnings:
            lines.append(f"**{verdict.planned.namespace}/{verdict.planned.name}**")
            lines.extend(f"- ❌ {_cell(reason)}" for reason in decision.reasons)
            lines.extend(f"- ⚠️ {_cell(warning)}" for warning in decision.warnings)
            lines.append("")
    lines.append(_summary(verdicts))
    return "\n".join(lines) + "\n"


CHAIN_FIELDS = ("name", "found", "provider", "model")


def render_json(verdicts: Sequence[RunVerdict], spec_set: SpecSet) -> str:
    """Everything as one JSON document (money in micro-units and as decimal strings)."""
    runs = []
    for verdict in verdicts:
        planned, decision, document = verdict.planned, verdict.verdict, verdict.planned.policy_input
        runs.append(
            {
                "namespace": planned.namespace,
                "name": planned.name,
                "file": str(planned.loaded.file),
                "line": planned.loaded.line,
                "allowed": decision.admitted,
                "outcome": decision.outcome.value,
                "reason": decision.reason,
                "decided": decision.decided,
                "engine": decision.policy.engine if decision.policy is not None else None,
                "reasons": list(decision.reasons),
                "warnings": list(decision.warnings),
                "maxCostMicros": document["run"]["cost"]["maxMicros"],
                "maxCost": format_micros(document["run"]["cost"]["maxMicros"]),
                "costBasis": document["run"]["cost"]["basis"],
                "route": {
                    "name": document["route"]["name"],
                    "found": document["route"]["found"],
                    "chain": [
                        {k: a.get(k) for k in ("name", "found", "provider", "model")}
                        for a in document["adapters"]
                    ],
                },
                "budgets": [
                    {
                        "namespace": b["namespace"],
                        "name": b["name"],
                        "scope": b["scope"],
                        "period": b["period"],
                        "limitMicros": b["limitMicros"],
                        "afterRun": b["afterRun"],
                    }
                    for b in document["budgets"]
                ],
                "source": document["cluster"]["source"],
            }
        )
    admitted = sum(1 for r in runs if r["allowed"])
    report = {"runs": runs, "admitted": admitted, "denied": len(runs) - admitted}
    return json.dumps(report, indent=2) + "\n"
