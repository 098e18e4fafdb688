"""`jesus dev up/down/env/status` as a person uses them: one control plane, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jesus.devcluster import ComponentCrashedError, ControlPlane
from jesus.devcluster.controlplane import free_port, port_in_use


def jesus(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jesus.cli", *args], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def dev_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "JESUS_DEV_DIR": str(tmp_path / "dev")}
    try:
        yield env
    finally:
        jesus("dev", "down", env=env)


def recorded_pids(env: dict[str, str]) -> list[int]:
    state = json.loads((Path(env["JESUS_DEV_DIR"]) / "state.json").read_text())
    return [p["pid"] for p in state["processes"]]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"


def test_up_twice_starts_one_control_plane_and_down_leaves_nothing(dev_env: dict[str, str]) -> None:
    port = free_port()
    first = jesus("dev", "up", "--port", str(port), "--oidc", env=dev_env)
    assert first.returncode == 0, first.stderr
    audit_log = Path(dev_env["JESUS_DEV_DIR"]) / "audit.log"
    assert f"audited in {audit_log}" in first.stderr
    assert "OIDC provider (Hydra) at https://127.0.0.1:" in first.stderr
    assert "jesus dev login ada@example.com" in first.stderr
    pids = recorded_pids(dev_env)
    assert len(pids) == 7  # etcd, Hydra, its login app, kube-apiserver, controller manager, scheduler, kwok
    ports = json.loads((Path(dev_env["JESUS_DEV_DIR"]) / "state.json").read_text())["ports"]
    oidc_ports = [ports[name] for name in ("oidc_public", "oidc_admin", "oidc_login")]
    assert all(port_in_use(p) for p in oidc_ports)
    assert all(alive(pid) for pid in pids)

    second = jesus("dev", "up", "--port", str(port), env=dev_env)
    assert second.returncode == 0, second.stderr
    assert "already running" in second.stderr
    assert recorded_pids(dev_env) == pids

    env_lines = jesus("dev", "env", env=dev_env)
    assert env_lines.returncode == 0
    kubeconfig = next(line for line in env_lines.stdout.splitlines() if "KUBECONFIG" in line).split("=", 1)[1]
    nodes = subprocess.run(
        ["bash", "-c", f"{env_lines.stdout}\nkubectl get nodes -o name"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "node/kwok-gpu-0" in nodes.stdout
    assert Path(kubeconfig).is_file()

    down = jesus("dev", "down", env=dev_env)
    assert down.returncode == 0
    assert not any(alive(pid) for pid in pids)
    assert not port_in_use(port)
    assert not any(port_in_use(p) for p in oidc_ports)
    assert jesus("dev", "env", env=dev_env).returncode != 0


def test_up_on_a_port_in_use_says_what_to_do(dev_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = jesus("dev", "up", "--port", str(port), env=dev_env)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def watch(plane: ControlPlane, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        plane.check_alive()
        time.sleep(0.1)


def test_a_crashed_component_is_reported_with_its_log(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "crash", die_with_parent=True)
    plane.start()
    try:
        scheduler = next(p for p in plane.processes if p.name == "kube-scheduler")
        os.kill(scheduler.pid, signal.SIGKILL)
        with pytest.raises(ComponentCrashedError, match="kube-scheduler exited") as raised:
            watch(plane, seconds=5)
        # The message carries the component's own log lines.
        assert str(raised.value).count("\n") >= 2
        env = {**os.environ, "JESUS_DEV_DIR": str(plane.state_dir)}
        status = jesus("dev", "status", env=env)
        assert status.returncode == 1
        assert "kube-scheduler" in status.stdout and "EXITED" in status.stdout
    finally:
        plane.stop()
    assert not any(alive(p.pid) for p in plane.processes)
