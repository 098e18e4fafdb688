"""The local control plane's parts that need no Kubernetes binaries: its certificates, its simulated
nodes, and `jesus dev` over a recorded state (down, status, env, up when one already runs)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jesus.cli import main
from jesus.devcluster import nodes, pki
from jesus.devcluster.controlplane import ControlPlane, free_port, port_in_use


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_pki_has_a_ca_that_signed_a_server_cert_and_the_client_identities(tmp_path: Path) -> None:
    directory = tmp_path / "pki"
    pki.generate_pki(directory)
    ca = load(directory / "ca.crt")
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True

    server = load(directory / "apiserver.crt")
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "kubernetes.default.svc.cluster.local"} <= set(
        sans.get_values_for_type(x509.DNSName)
    )
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    usages = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert server.not_valid_after_utc - server.not_valid_before_utc >= pki._VALIDITY

    for client in pki.CLIENTS:
        cert = load(directory / f"{client.file_stem}.crt")
        cert.verify_directly_issued_by(ca)
        subject = cert.subject
        assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == client.user
        assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == list(
            client.groups
        )
        assert (directory / f"{client.file_stem}.key").stat().st_mode & 0o077 == 0, "keys are private"
    assert (directory / "sa.key").is_file() and (directory / "sa.pub").read_bytes().startswith(b"-----BEGIN")


def test_the_gpu_node_advertises_its_gpus_and_keeps_other_pods_off() -> None:
    built = {shape.name: nodes.build_node(shape) for shape in nodes.DEFAULT_NODES}
    gpu = built["kwok-gpu-0"]
    assert gpu["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert gpu["metadata"]["labels"]["nvidia.com/gpu.count"] == "8"
    assert gpu["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    cpu = built["kwok-cpu-0"]
    assert "nvidia.com/gpu" not in cpu["status"]["capacity"]
    assert not cpu["spec"].get("taints")
    assert {n["metadata"]["labels"]["kubernetes.io/hostname"] for n in built.values()} == set(built)


def test_a_free_port_is_free_until_someone_listens() -> None:
    import socket

    port = free_port()
    assert not port_in_use(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert port_in_use(port)


def as_etcd(component: subprocess.Popen[bytes]) -> tuple[str, int, str]:
    """The state-file row of `component` recorded as etcd, with the binary it really runs."""
    return ("etcd", component.pid, str(component.args[0]))  # type: ignore[index]


@pytest.fixture
def recorded_etcd(state: Path, component: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """`component`, recorded in the state file as a running plane's only component, etcd."""
    record(state, as_etcd(component))
    return component


def record(directory: Path, *processes: tuple[str, int, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    ports = {
        "etcd_client": 1,
        "etcd_peer": 2,
        "apiserver": 16443,
        "controller_manager": 4,
        "scheduler": 5,
        "kwok": 6,
    }
    entries = [
        {"name": n, "pid": pid, "binary": b, "log": str(directory / f"{n}.log")} for n, pid, b in processes
    ]
    (directory / "state.json").write_text(json.dumps({"ports": ports, "processes": entries}))


def dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait()
    return finished.pid


def test_without_a_recorded_plane_there_is_nothing_to_stop_or_show(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dev", "down"]) == 0
    assert "nothing to stop" in capsys.readouterr().err
    assert main(["dev", "status"]) == 1
    assert capsys.readouterr().out.strip() == "No control plane recorded."
    assert main(["dev", "env"]) == 2
    assert "no control plane is running: start one with `jesus dev up`" in capsys.readouterr().err


def test_a_corrupt_state_file_counts_as_no_plane(state: Path) -> None:
    state.mkdir(parents=True)
    (state / "state.json").write_text("{half")
    assert ControlPlane.load(state) is None


def test_status_shows_each_component_and_fails_when_one_exited(
    state: Path, recorded_etcd: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dev", "status"]) == 0
    assert f"etcd\tpid={recorded_etcd.pid}\trunning" in capsys.readouterr().out

    record(state, as_etcd(recorded_etcd), ("kwok", dead_pid(), "/nonexistent/kwok"))
    assert main(["dev", "status"]) == 1
    out = capsys.readouterr().out
    assert "kwok\t" in out and "\tEXITED\t" in out


def test_up_refuses_to_start_over_a_half_dead_plane_and_keeps_a_live_one(
    state: Path, component: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    record(state, as_etcd(component), ("kube-apiserver", dead_pid(), "/nonexistent/kube-apiserver"))
    assert main(["dev", "up"]) == 2
    err = capsys.readouterr().err
    assert "partly down (kube-apiserver exited" in err and "run `jesus dev down`" in err

    record(state, as_etcd(component))
    assert main(["dev", "up"]) == 0
    assert "already running at https://127.0.0.1:16443; nothing started" in capsys.readouterr().err
    assert component.poll() is None


def test_a_recycled_pid_is_not_taken_for_a_component(state: Path, component: subprocess.Popen[bytes]) -> None:
    record(state, ("etcd", component.pid, "/nonexistent/etcd"))  # alive, but not running etcd
    plane = ControlPlane.load(state)
    assert plane is not None
    assert plane.running() == [] and [p.name for p in plane.crashed()] == ["etcd"]
    plane.stop()
    assert component.poll() is None, "a process that is not ours is never signalled"


def test_down_stops_the_recorded_components_and_forgets_them(
    state: Path, recorded_etcd: subprocess.Popen[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dev", "down"]) == 0
    assert "Stopped control plane." in capsys.readouterr().err
    assert recorded_etcd.wait(timeout=10) != 0  # ended by a signal
    assert not (state / "state.json").exists()
