"""`jesus describe run NAME [-n NS] [-o json|yaml]`: one AgentRun in detail, from the cluster or the archive.

Admission's verdict and reasons, budget holds, every attempt, every model call with its adapter, tokens,
cost and fallbacks, artifacts, conditions. A run the cluster no longer has is read from the archive
(--database, or $JESUS_ARCHIVE_DATABASE): its newest run of that name.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from jesus.api.common import format_micros
from jesus.cli import CommandError, command_parser
from jesus.cli.inspection import (
    FoundRun,
    add_source_arguments,
    cost,
    dump,
    fetch_run,
    table,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `describe` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument("kind", metavar="run", help="what to describe: run (an AgentRun)")
    parser.add_argument("name", help="the run's name")
    add_source_arguments(parser)
    parser.add_argument("--output", "-o", choices=("json", "yaml"), default=None)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Find and print."""
    if args.kind not in ("run", "runs", "agentrun", "agentruns"):
        raise CommandError(
            f"jesus describe: unknown kind {args.kind!r}; only a run (AgentRun) can be described"
        )
    run = asyncio.run(fetch_run(args))
    if args.output:
        print(dump(run.obj, args.output), end="")
    else:
        print(describe(run), end="")
    return 0


def _field(label: str, value: Any) -> str:
    return f"{label + ':':<16}{'-' if value is None or value == '' else value}\n"


def describe(run: FoundRun) -> str:
    """The run as text, in kubectl describe's manner."""
    spec = run.obj.get("spec") or {}
    status = run.status
    metadata = run.obj.get("metadata") or {}
    owner = spec.get("owner") or {}
    usage = status.get("usage") or {}
    out = [
        _field("Name", run.name),
        _field("Namespace", run.namespace),
        _field("UID", metadata.get("uid")),
        _field("Source", run.source),
        _field("Team", owner.get("team")),
        _field("User", owner.get("user")),
        _field("Phase", status.get("phase")),
        _field("Message", status.get("message")),
        _field("Cost", cost(status)),
        _field(
            "Tokens",
            f"{usage.get('inputTokens', 0)} in, {usage.get('outputTokens', 0)} out" if usage else None,
        ),
        _field("Created", metadata.get("creationTimestamp")),
        _field("Started", status.get("startTime")),
        _field("Completed", status.get("completionTime")),
        _field("Spec digest", status.get("specDigest")),
        _field("Trace ID", status.get("traceId")),
    ]
    policy = status.get("policy")
    if policy:
        out.append("Policy:\n")
        out.append(f"  Allowed:      {policy.get('allowed')}\n")
        for label, key in (("Reason", "reasons"), ("Warning", "warnings")):
            for text in policy.get(key) or []:
                out.append(f"  {label}:{' ' * (12 - len(label))}{text}\n")
    holds = status.get("budgetReservations") or []
    if holds:
        out.append("Budget holds:\n")
        rows = [
            [
                f"{h.get('namespace')}/{h.get('budget')}",
                format_micros(int(h.get("amountMicros", 0))),
                str(h.get("settled")),
            ]
            for h in holds
        ]
        out.append(_indent(table(["BUDGET", "HELD", "SETTLED"], rows)))
    attempts = status.get("attempts") or []
    if attempts:
        out.append("Attempts:\n")
        rows = [
            [str(a.get("number")), str(a.get("jobName")), str(a.get("outcome")),
             str(a.get("startTime") or "-"), str(a.get("completionTime") or "-"), str(a.get("message") or "")]
            for a in attempts
        ]  # fmt: skip
        out.append(_indent(table(["#", "JOB", "OUTCOME", "STARTED", "COMPLETED", "MESSAGE"], rows)))
    calls = status.get("calls") or []
    if calls:
        out.append("Calls:\n")
        rows = []
        for i, c in enumerate(calls):
            call_usage = c.get("usage") or {}
            fallbacks = ", ".join(
                f"{f.get('adapter')} ({f.get('errorClass')})" for f in c.get("fallbacks") or []
            )
            rows.append(
                [str(i), str(c.get("adapter")), str(c.get("model")),
                 f"{call_usage.get('inputTokens', 0)}/{call_usage.get('outputTokens', 0)}",
                 format_micros(int(c.get("costMicros", 0))), fallbacks or "-"]
            )  # fmt: skip
        out.append(_indent(table(["#", "ADAPTER", "MODEL", "TOKENS", "COST", "FELL BACK FROM"], rows)))
    artifacts = status.get("artifacts") or []
    if artifacts:
        out.append("Artifacts:\n")
        rows = [[str(a.get("name")), str(a.get("uri")), str(a.get("sizeBytes", "-"))] for a in artifacts]
        out.append(_indent(table(["NAME", "URI", "BYTES"], rows)))
    conditions = status.get("conditions") or []
    if conditions:
        out.append("Conditions:\n")
        rows = [
            [str(c.get("type")), str(c.get("status")), str(c.get("reason")), str(c.get("lastTransitionTime")),
             str(c.get("message") or "")]
            for c in conditions
        ]  # fmt: skip
        out.append(_indent(table(["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], rows)))
    return "".join(out)


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())
