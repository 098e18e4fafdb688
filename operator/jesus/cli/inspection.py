"""What `jesus get runs`, `jesus describe run` and `jesus logs` share: finding runs in the cluster and in
the archive, and printing them as kubectl does (a table, `-o wide`, `-o json`, `-o yaml`).

A run still in the cluster is shown as the API server has it; a run the cluster no longer has (deleted,
garbage-collected) is shown from the archive's record, which holds the same metadata, spec and status.
Where both have a run (same UID) the cluster's copy wins. Not a command module: the three commands
import it.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from jesus.api.common import format_micros
from jesus.api.objects import JsonObject
from jesus.cli import CommandError

if TYPE_CHECKING:
    from jesus.records.reader import ArchiveReader

OUTPUTS = ("table", "wide", "json", "yaml")
CLUSTER, ARCHIVE = "cluster", "archive"


class RunCluster(Protocol):
    """What the commands ask the API server (`jesus.kube.KubeClient` answers)."""

    async def get(self, kind: str, namespace: str | None, name: str) -> JsonObject | None: ...

    async def list(
        self, kind: str, namespace: str | None = None, *, labels: dict[str, str] | None = None
    ) -> list[JsonObject]: ...

    async def pod_log(
        self, namespace: str, name: str, *, container: str | None = None, tail_lines: int | None = None
    ) -> str: ...


@dataclass(frozen=True)
class FoundRun:
    """A run and where it was read: `cluster` or `archive`."""

    obj: JsonObject
    source: str

    @property
    def namespace(self) -> str:
        return str(self.obj.get("metadata", {}).get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.obj.get("metadata", {}).get("name", ""))

    @property
    def uid(self) -> str:
        return str(self.obj.get("metadata", {}).get("uid", ""))

    @property
    def status(self) -> JsonObject:
        status: JsonObject = self.obj.get("status") or {}
        return status


def add_source_arguments(parser: argparse.ArgumentParser, *, all_namespaces: bool = False) -> None:
    """The flags every inspection command takes: where to look, and how to print."""
    parser.add_argument("--namespace", "-n", default="default", help="the namespace (default: default)")
    if all_namespaces:
        parser.add_argument(
            "--all-namespaces",
            "-A",
            action="store_true",
            help="every namespace (the cluster's and the archive's)",
        )
    parser.add_argument(
        "--kubeconfig", default=None, metavar="FILE", help="default: $KUBECONFIG, else in-cluster"
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="also read the run archive (default: $JESUS_ARCHIVE_DATABASE, when set)",
    )
    parser.add_argument(
        "--archive-only", action="store_true", help="read only the archive: no cluster is asked"
    )


def archive_url(args: argparse.Namespace) -> str | None:
    """The archive's URL: --database, else $JESUS_ARCHIVE_DATABASE, else None (cluster only)."""
    from jesus.records.urls import ENV_VARIABLE

    url: str | None = args.database or os.environ.get(ENV_VARIABLE) or None
    if args.archive_only and url is None:
        raise CommandError(f"--archive-only needs --database URL or ${ENV_VARIABLE}")
    return url


async def connect_cluster(args: argparse.Namespace) -> RunCluster | None:
    """The cluster's client, or None with --archive-only; CommandError naming the kubeconfig."""
    if args.archive_only:
        return None
    from jesus.kube import KubeClient

    try:
        client: RunCluster = await KubeClient.connect(args.kubeconfig)
    except Exception as exc:  # no kubeconfig, no service account: say which
        where = args.kubeconfig or os.environ.get("KUBECONFIG") or "the in-cluster service account"
        raise CommandError(
            f"cannot reach the cluster through {where}: {type(exc).__name__}: {str(exc)[:200]} "
            "(use --archive-only with --database to read only the archive)"
        ) from exc
    return client


def open_reader(url: str | None) -> ArchiveReader | None:
    """The archive's reader, or None; CommandError naming the setting when the URL is wrong."""
    if url is None:
        return None
    from jesus.records import ArchiveConfigError, DatabaseSetting, database_url
    from jesus.records.reader import ArchiveReader

    try:
        return ArchiveReader(database_url(url, DatabaseSetting("--database")), pool_size=1)
    except ArchiveConfigError as exc:
        raise CommandError(str(exc)) from exc


async def cluster_call(what: str, call: Any) -> Any:
    """Await a cluster request; CommandError naming `what` when the API server refuses or is away."""
    from jesus.kube import KubeError

    try:
        return await call
    except KubeError as exc:
        raise CommandError(
            f"{what}: the API server answered {exc.status} {exc.reason}: {exc.message[:200]}"
        ) from exc


async def archive_call(what: str, call: Any) -> Any:
    """Await an archive query; CommandError naming `what` and the database when it fails."""
    from jesus.records import StoreUnavailableError

    try:
        return await call
    except StoreUnavailableError as exc:
        raise CommandError(f"{what}: {exc}") from exc


async def find_run(
    cluster: RunCluster | None, reader: ArchiveReader | None, namespace: str, name: str
) -> FoundRun:
    """The run `namespace/name`: the cluster's, else the archive's newest of that name."""
    if cluster is not None:
        obj = await cluster_call(f"AgentRun {namespace}/{name}", cluster.get("AgentRun", namespace, name))
        if obj is not None:
            return FoundRun(obj, CLUSTER)
    if reader is not None:
        found = await archive_call(f"AgentRun {namespace}/{name}", reader.get_run(namespace, name, None))
        if found is not None:
            return FoundRun(found[1], ARCHIVE)
    places = " or ".join(
        p
        for p, there in (("the cluster", cluster is not None), (f"the archive {reader}", reader is not None))
        if there
    )
    raise CommandError(f"AgentRun {namespace}/{name} not found in {places}")


async def fetch_run(args: argparse.Namespace) -> FoundRun:
    """The run the arguments name (`--namespace`, the name): the cluster's, else the archive's."""
    reader = open_reader(archive_url(args))
    try:
        cluster = await connect_cluster(args)
        return await find_run(cluster, reader, args.namespace, args.name)
    finally:
        if reader is not None:
            await reader.close()


async def list_runs(
    cluster: RunCluster | None, reader: ArchiveReader | None, namespace: str | None, limit: int
) -> list[FoundRun]:
    """The runs of `namespace` (every one when None) in the cluster, then the archive's the cluster no
    longer has (up to `limit` of those, newest first); sorted by namespace and name."""
    found: dict[str, FoundRun] = {}
    if cluster is not None:
        where = f"AgentRuns in {namespace}" if namespace else "AgentRuns"
        for obj in await cluster_call(where, cluster.list("AgentRun", namespace)):
            run = FoundRun(obj, CLUSTER)
            found[run.uid or f"{run.namespace}/{run.name}"] = run
    if reader is not None:
        from jesus.logic.run_queries import RunFilter

        summaries = await archive_call(
            f"the archive {reader}", reader.list_runs(RunFilter(namespace=namespace), None, None, limit)
        )
        missing = [s.uid for s in summaries if s.uid not in found]
        records = await archive_call(f"the archive {reader}", reader.records(missing))
        for uid in missing:
            if uid in records:
                found[uid] = FoundRun(records[uid], ARCHIVE)
    return sorted(found.values(), key=lambda r: (r.namespace, r.name, r.status.get("completionTime") or ""))


# --- printing ------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns as kubectl prints them: left-aligned, three spaces apart."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = [
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    ]
    return "\n".join(lines) + "\n"


def cost(status: JsonObject) -> str:
    micros = status.get("costMicros")
    return format_micros(int(micros)) if isinstance(micros, int) else "-"


def models(status: JsonObject) -> str:
    names = sorted({str(c.get("model", "")) for c in status.get("calls") or []})
    return ",".join(names) or "-"


def run_row(run: FoundRun, *, wide: bool, with_namespace: bool) -> list[str]:
    """One run as a table row."""
    spec = run.obj.get("spec") or {}
    owner = spec.get("owner") or {}
    status = run.status
    row = [
        run.name,
        str(status.get("phase") or "-"),
        str(owner.get("team", "-")),
        str(owner.get("user", "-")),
    ]
    row += [cost(status), str(status.get("completionTime") or "-")]
    if with_namespace:
        row.insert(0, run.namespace)
    if wide:
        usage = status.get("usage") or {}
        tokens = f"{usage.get('inputTokens', 0)}/{usage.get('outputTokens', 0)}" if usage else "-"
        row += [str(len(status.get("attempts") or [])), tokens, models(status), run.source, run.uid or "-"]
    return row


def run_headers(*, wide: bool, with_namespace: bool) -> list[str]:
    headers = ["NAME", "PHASE", "TEAM", "USER", "COST", "COMPLETED"]
    if with_namespace:
        headers.insert(0, "NAMESPACE")
    if wide:
        headers += ["ATTEMPTS", "TOKENS(IN/OUT)", "MODELS", "SOURCE", "UID"]
    return headers


def dump(document: Any, output: str) -> str:
    """`document` as JSON (indented, as kubectl) or YAML."""
    if output == "json":
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def as_list(runs: Sequence[FoundRun]) -> JsonObject:
    """Runs as a kubectl List; an archived run is its record (it carries `recordVersion`)."""
    return {"apiVersion": "v1", "kind": "List", "items": [r.obj for r in runs]}
