"""`jesus run FILE`: run one AgentRun end to end in this process, offline unless --live.

Validation, the policy decision, the budget check, routing, tools and the result record, as the
cluster would do them; without --live every ModelAdapter of a real provider is a dry-run stand-in
priced like the real model; with --live, API keys come from the environment (<SECRET>_<KEY>
upper-cased, or the provider's usual variable). Prints the result record. Exits 0 when the run
succeeded, 1 when it was refused or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from jesus.api import format_micros
from jesus.cli import CommandError, command_parser
from jesus.cli.lessons import ShortTermMemory
from jesus.logic.clock import system_clock
from jesus.logic.lessons import LessonPolicy
from jesus.redaction import RedactionConfig, install_log_redaction
from jesus.router.config import EnvironmentCredentials
from jesus.runner.artifacts import DirectoryArtifactStore
from jesus.runner.local import PolicyDecider, execute_local_run, prepare_local_run, select_run
from jesus.runner.record import RunOutcome, RunRecord
from jesus.specs import Severity, SpecPathError, load_specs, validate_specs

POLICY_DIRECTORY_VARIABLE = "JESUS_POLICIES"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `run` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument("file", type=Path, metavar="FILE", help="spec file (or folder) holding the AgentRun")
    parser.add_argument(
        "--specs",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="more spec files or folders (ModelAdapters, RoutePolicies, Budgets); repeatable",
    )
    parser.add_argument(
        "--run", dest="run_name", metavar="NAME", help="which AgentRun, when FILE has several"
    )
    parser.add_argument(
        "--live", action="store_true", help="call the real providers (keys from the environment)"
    )
    parser.add_argument(
        "--policies",
        type=Path,
        metavar="DIR",
        help=f"Rego policies to decide admission (default: ${POLICY_DIRECTORY_VARIABLE}, else ./policies)",
    )
    parser.add_argument(
        "--artifacts",
        type=Path,
        metavar="DIR",
        help="where to write artifacts (default: .jesus/runs/RUN/TIME)",
    )
    parser.add_argument(
        "--lessons",
        metavar="URL",
        help="an archive database: offer the team's short-term lessons, record what the reflection teaches",
    )
    parser.add_argument(
        "--output", "-o", choices=("text", "json"), default="text", help="text (default) or json"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the AgentRun and print its record; 0 when it succeeded."""
    quiet_libraries()
    try:
        spec_set = load_specs([args.file, *args.specs])
    except SpecPathError as exc:
        raise CommandError(str(exc)) from exc
    problems = validate_specs(spec_set)
    errors = [p for p in problems if p.severity is Severity.ERROR]
    if errors:
        declared = sorted(name for kind, _, name in spec_set.declared if kind == "AgentRun")
        record = RunRecord(
            run=args.run_name or ", ".join(declared), namespace="", outcome=RunOutcome.INVALID_SPEC
        )
        record.reason = f"{len(errors)} problem(s) in the specs: " + "; ".join(p.format() for p in errors)
        record.warnings = [p.format() for p in problems if p.severity is Severity.WARNING]
        return _report(record, args.output, problems=[p.format() for p in errors])
    try:
        loaded = select_run(spec_set, args.run_name)
    except ValueError as exc:
        raise CommandError(f"{args.file}: {exc}") from exc
    policy = local_policy_engine(args.policies)
    artifacts = args.artifacts or Path(".jesus") / "runs" / loaded.name / system_clock().strftime(
        "%Y%m%dT%H%M%SZ"
    )

    memory = ShortTermMemory(args.lessons, loaded) if args.lessons else None

    async def go() -> RunRecord:
        prepared = await prepare_local_run(
            spec_set,
            loaded,
            live=args.live,
            credentials=EnvironmentCredentials(),
            policy=policy,
            lessons=await memory.offered() if memory else (),
            lesson_policy=local_lesson_policy(policy),
        )
        record = await execute_local_run(
            prepared, store=None if prepared.refused else DirectoryArtifactStore(artifacts)
        )
        if memory is not None and not prepared.refused:
            record.warnings.extend(await memory.learn(record))
        return record

    record = asyncio.run(go())
    record.warnings[:0] = [p.format() for p in problems if p.severity is Severity.WARNING]
    return _report(record, args.output, artifacts=artifacts if record.artifacts else None)


def local_policy_engine(directory: Path | None) -> PolicyDecider | None:
    """The embedded policy engine over `directory` (or the default one), None when there is none."""
    if directory is None:
        configured = os.environ.get(POLICY_DIRECTORY_VARIABLE)
        directory = Path(configured) if configured else Path("policies")
        if not directory.is_dir():
            return None
    elif not directory.is_dir():
        raise CommandError(f"--policies {directory}: no such directory")
    try:
        from jesus.policy.decision import PolicyLoadError
        from jesus.policy.embedded import EmbeddedEngine
    except ImportError:  # the embedded engine is optional at this layer
        return None
    try:
        engine: PolicyDecider = EmbeddedEngine.from_directory(directory)
    except PolicyLoadError as exc:
        raise CommandError(str(exc)) from exc
    return engine


def local_lesson_policy(engine: PolicyDecider | None) -> LessonPolicy | None:
    """Which lessons the run may be offered, by the same policy that admits it (policies/lessons/)."""
    if engine is None:
        return None
    from jesus.policy.embedded import EmbeddedEngine
    from jesus.policy.lessons import EmbeddedLessonPolicy

    return EmbeddedLessonPolicy(engine) if isinstance(engine, EmbeddedEngine) else None


def quiet_libraries() -> None:
    # A tool server's traceback may quote what it was given: log lines are redacted like the record.
    install_log_redaction(RedactionConfig(names=False).redactor())
    # Tool servers that misbehave make the MCP SDK log tracebacks; the record already explains them.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("mcp", "httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _report(
    record: RunRecord, output: str, *, artifacts: Path | None = None, problems: list[str] | None = None
) -> int:
    try:
        if output == "json":
            json.dump(record.to_dict(), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print("\n".join(summary_lines(record, artifacts=artifacts, problems=problems or [])))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; the run itself is done and recorded.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces stdout for the interpreter's exit
    return 0 if record.outcome.succeeded else 1


def summary_lines(record: RunRecord, *, artifacts: Path | None, problems: list[str]) -> list[str]:
    """A readable summary of a run's record."""
    mode = "dry run" if record.dry_run else "live"
    title = f"Run {record.run or '?'}" + (
        f" (namespace {record.namespace}, {mode})" if record.namespace else ""
    )
    lines = [f"{title}: {record.outcome.value}"]
    if record.reason and not record.outcome.succeeded:
        lines.append(f"  reason: {record.reason if not problems else 'the specs do not validate'}")
    lines.extend(f"  problem: {p}" for p in problems)
    lines.extend(f"  warning: {w}" for w in record.warnings)
    if record.policy is not None or record.outcome is not RunOutcome.INVALID_SPEC:
        lines.append(f"Policy:    {_policy_line(record.policy)}")
    for budget in record.budgets:
        lines.append(
            f"Budget:    {budget['name']}: reserves {budget['reserved']}, then {budget['usedAfter']} of "
            f"{budget['limit']} used ({budget['utilizationPercentAfter']} %)"
            + ("" if budget["admits"] else " - exceeded")
        )
    if record.calls or record.turns:
        lines.append(
            f"Calls:     {len(record.calls)} model call(s), {record.input_tokens} input + "
            f"{record.output_tokens} output tokens, cost {format_micros(record.cost_micros)}"
        )
        for number, call in enumerate(record.calls, 1):
            lines.append("  " + _call_line(number, call))
    if record.tool_calls:
        lines.append(f"Tools:     {len(record.tool_calls)} call(s)")
        for tool in record.tool_calls:
            status = "error" if tool["isError"] else "ok"
            lines.append(f"  {tool['server'] or '-'}.{tool['tool']}: {status} ({tool['latencyMs']:.0f} ms)")
    if record.reflection is not None:
        failed = record.reflection.get("failed") or []
        verdict = "passed" if record.reflection.get("passed") else "failed on " + ", ".join(failed)
        lines.append(f"Reflection: {record.reflection.get('checklist')} {verdict}")
        reasons = [
            (item["item"], item["reason"]) for item in record.reflection["items"] if not item["passed"]
        ]
        rest = {reason for _, reason in reasons[1:]}
        if len(reasons) > 2 and len(rest) == 1:  # a reflection that did not parse, or no reflection at all
            (first, why), (other,) = reasons[0], rest
            lines.append(f"  every item: {why}" if why == other else f"  {first}: {why}")
            if why != other:
                lines.append(f"  the other {len(reasons) - 1} items: {other}")
        else:
            lines.extend(f"  {item}: {reason}" for item, reason in reasons)
    if record.final_answer is not None:
        lines.append("Answer:")
        lines.extend(f"  {line}" for line in record.final_answer.splitlines() or [""])
    if artifacts is not None:
        lines.append(f"Artifacts: {artifacts}")
    if record.spec_digest:
        lines.append(f"Spec:      {record.spec_digest}")
    if record.duration_ms:
        lines.append(f"Time:      {record.duration_ms / 1000:.2f} s, {record.turns} turn(s)")
    return lines


def _policy_line(policy: dict[str, Any] | None) -> str:
    if policy is None:
        return "not configured (no admission policy was checked)"
    verdict = "allowed" if policy["allowed"] else "denied"
    reasons = "; ".join(policy["reasons"])
    return f"{verdict} by the {policy['engine']} engine" + (f": {reasons}" if reasons else "")


def _call_line(number: int, call: dict[str, Any]) -> str:
    where = call.get("adapter") or "no adapter"
    text = f"{number}. {where}"
    if call.get("model"):
        text += f" ({call['model']})"
    if call.get("outcome", "ok") != "ok":
        text += f": {call['outcome']}: {call.get('error')}"
        return text
    attempts = len(call.get("attempts", []))
    fallbacks = call.get("fallbacks", [])
    text += (
        f": {call.get('inputTokens', 0)}+{call.get('outputTokens', 0)} tokens, "
        f"{format_micros(int(call.get('costMicros', 0)))}, {call.get('latencyMs', 0):.0f} ms, "
        f"{attempts} attempt(s)"
    )
    if fallbacks:
        text += ", fell back: " + ", ".join(f"{f['from']} -> {f['to']}" for f in fallbacks)
    return text
