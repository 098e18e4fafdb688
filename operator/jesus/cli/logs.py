"""`jesus logs NAME [-n NS] [--attempt N] [--tail N]`: a run's runner log, through the API server.

The log of the run's last attempt (or --attempt N): the runner pod of that attempt's Job. When the pod
is gone (the Job was cleaned up, or the run was deleted), the archive's record of the run (--database,
or $JESUS_ARCHIVE_DATABASE) tells what it holds instead: the attempts, their outcome and messages, and
the model calls; the archive keeps no pod logs.
"""

from __future__ import annotations

import argparse
import asyncio

from jesus.api.common import format_micros
from jesus.cli import CommandError, command_parser
from jesus.cli.inspection import (
    ARCHIVE,
    FoundRun,
    RunCluster,
    add_source_arguments,
    archive_url,
    cluster_call,
    connect_cluster,
    find_run,
    open_reader,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `logs` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument("name", help="the run's name")
    add_source_arguments(parser)
    parser.add_argument("--attempt", type=int, default=None, help="which attempt (default: the last)")
    parser.add_argument("--tail", type=int, default=None, help="only the last N lines of the pod's log")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Print the pod's log, or the archive's account of the run."""
    if args.tail is not None and args.tail < 0:
        raise CommandError(f"--tail: {args.tail} is negative")
    print(asyncio.run(logs(args)), end="")
    return 0


async def logs(args: argparse.Namespace) -> str:
    """The text to print."""
    reader = open_reader(archive_url(args))
    try:
        cluster = await connect_cluster(args)
        run = await find_run(cluster, reader, args.namespace, args.name)
    finally:
        if reader is not None:
            await reader.close()
    where = f"AgentRun {run.namespace}/{run.name}"
    attempts = run.status.get("attempts") or []
    if not attempts:
        raise CommandError(
            f"{where} has no attempts (phase {run.status.get('phase', 'Pending')}): no runner ran"
        )
    numbers = [int(a.get("number", 0)) for a in attempts]
    number = args.attempt if args.attempt is not None else max(numbers)
    if number not in numbers:
        raise CommandError(
            f"{where} has no attempt {number}; its attempts are {', '.join(map(str, numbers))}"
        )
    attempt = next(a for a in attempts if int(a.get("number", 0)) == number)
    if cluster is not None:
        text = await _pod_log(cluster, run.namespace, str(attempt.get("jobName")), args.tail, where)
        if text is not None:
            return text
    if run.source != ARCHIVE and reader is None:
        raise CommandError(
            f"{where}: the runner pod of attempt {number} (Job {attempt.get('jobName')}) is gone; "
            "give --database (or $JESUS_ARCHIVE_DATABASE) to read the archive's record instead"
        )
    return from_record(run, number)


async def _pod_log(cluster: RunCluster, namespace: str, job: str, tail: int | None, where: str) -> str | None:
    pods = await cluster_call(
        f"the pods of Job {namespace}/{job}", cluster.list("Pod", namespace, labels={"job-name": job})
    )
    if not pods:
        return None
    # The newest pod of the Job (a Job may have replaced a pod that failed to start).
    pod = max(pods, key=lambda p: str(p.get("metadata", {}).get("creationTimestamp", "")))
    name = str(pod["metadata"]["name"])
    text: str = await cluster_call(
        f"the log of pod {namespace}/{name} ({where})", cluster.pod_log(namespace, name, tail_lines=tail)
    )
    return text


def from_record(run: FoundRun, number: int) -> str:
    """What the record holds of attempt `number`, as log-like lines."""
    status = run.status
    lines = [
        f"# {run.namespace}/{run.name}: no runner pod; from the {run.source}'s record (pod logs are not kept)"
    ]
    for attempt in status.get("attempts") or []:
        if int(attempt.get("number", 0)) != number:
            continue
        lines.append(
            f"{attempt.get('startTime') or '-'} attempt {number} started (Job {attempt.get('jobName')})"
        )
        message = f": {attempt['message']}" if attempt.get("message") else ""
        lines.append(
            f"{attempt.get('completionTime') or '-'} attempt {number} {attempt.get('outcome')}{message}"
        )
    for i, call in enumerate(status.get("calls") or []):
        for fallback in call.get("fallbacks") or []:
            lines.append(
                f"call {i}: {fallback.get('adapter')} failed ({fallback.get('errorClass')}), fell back"
            )
        usage = call.get("usage") or {}
        lines.append(
            f"call {i}: {call.get('adapter')} {call.get('model')} {usage.get('inputTokens', 0)} in, "
            f"{usage.get('outputTokens', 0)} out, cost {format_micros(int(call.get('costMicros', 0)))}"
        )
    lines.append(
        f"{status.get('completionTime') or '-'} {status.get('phase')}: {status.get('message') or ''}".rstrip()
    )
    return "\n".join(lines) + "\n"
