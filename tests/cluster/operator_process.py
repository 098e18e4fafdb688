"""Run `jesus operator` as a process against the test control plane, watching one namespace.

A helper for cluster tests that need the reconcilers running for real: the same entry point a person
starts, with its log kept so a failing wait can show it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jesus.devcluster import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds"


def install_crds(plane: ControlPlane) -> None:
    """Apply crds/ (idempotent) and wait until the API server serves them."""
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRD_DIR))


class OperatorProcess:
    """A running operator; `log()` is what it wrote so far."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process = process
        self.log_path = log_path

    def log(self, lines: int = 60) -> str:
        """The last `lines` lines of the operator's output."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def running_operator(
    plane: ControlPlane,
    namespace: str,
    log_path: Path,
    *,
    resync_seconds: float = 1.0,
    kubeconfig: Path | None = None,
) -> Iterator[OperatorProcess]:
    """`jesus operator --namespace <namespace>` for the duration of the block; stopped afterwards.

    `kubeconfig` replaces the admin's, e.g. to run as the chart's operator ServiceAccount.
    """
    kubeconfig = kubeconfig or plane.kubeconfig
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jesus.cli",
                "operator",
                f"--kubeconfig={kubeconfig}",
                f"--namespace={namespace}",
                f"--resync-seconds={resync_seconds}",
                f"--policies={REPO / 'policies'}",
            ],
            env={**plane.env, "KUBECONFIG": str(kubeconfig)},
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield OperatorProcess(process, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def get_object(plane: ControlPlane, namespace: str, *what: str) -> Any:
    """The object as JSON, or None when kubectl cannot get it."""
    result = plane.kubectl("get", "-n", namespace, *what, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def apply_objects(plane: ControlPlane, namespace: str, *objects: dict[str, Any]) -> None:
    """kubectl apply the objects into `namespace`."""
    items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(items))


def wait_for(
    predicate: Callable[[], Any], *, what: str, operator: OperatorProcess | None = None, timeout: float = 180
) -> Any:
    """Poll `predicate` until it returns something truthy; fail naming `what`, with the operator's log.

    The limit is generous on purpose: it covers the operator's start on a loaded 2-core machine, and
    these tests assert outcomes, not speed (tests/bench/bench_serving.py measures that).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if operator is not None and operator.process.poll() is not None:
            code = operator.process.returncode
            pytest.fail(f"the operator exited ({code}) while waiting for {what}:\n{operator.log()}")
        time.sleep(0.3)
    log = f"\noperator log:\n{operator.log()}" if operator is not None else ""
    pytest.fail(f"timed out after {timeout}s waiting for {what}{log}")


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    """The status condition `type_` of `obj`, or None."""
    if not obj:
        return None
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)
