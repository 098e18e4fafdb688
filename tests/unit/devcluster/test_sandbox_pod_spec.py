"""What the sandbox kubelet derives from a pod spec, without a cluster: command lines by Kubernetes'
rules, `$(VAR)` expansion, the user, volume paths (hostile ones refused), /etc/hosts, the bubblewrap
command line, images from an OCI layout, and the status it reports."""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from jesus.controllers.app import in_cluster_server
from jesus.devcluster.images import (
    ContainerImage,
    ImageConfigError,
    ImageNotFoundError,
    ImageResolver,
    image_from_oci_layout,
    opa_image,
)
from jesus.devcluster.nodes import DEFAULT_NODES, SANDBOX_NODE, build_node, sandbox_placement
from jesus.devcluster.podconfig import PodConfigError, write_file
from jesus.devcluster.podspec import (
    PodSpecError,
    container_argv,
    expand,
    hosts_file,
    mount_path,
    probe_port,
    relative_path,
    resolve_in_image,
    resolve_inside,
    run_as,
)
from jesus.devcluster.podstatus import RUNNING, TERMINATED, ContainerRecord, pod_phase, pod_status
from jesus.devcluster.sandbox import Mount, SandboxSpec, bwrap_argv

IMAGE = ContainerImage(rootfs=Path("/nonexistent"), entrypoint=("/ep",), cmd=("default",))


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("$(A)-x", {"A": "1"}, "1-x"),
        ("$(MISSING)", {}, "$(MISSING)"),
        ("$$(A)", {"A": "1"}, "$(A)"),
        ("$$$(A)", {"A": "1"}, "$1"),
        ("$(A", {"A": "1"}, "$(A"),
        ("plain $ sign", {}, "plain $ sign"),
    ],
)
def test_expansion_follows_kubernetes(text: str, env: dict[str, str], expected: str) -> None:
    assert expand(text, env) == expected


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        ({}, ["/ep", "default"]),
        ({"args": ["a"]}, ["/ep", "a"]),
        ({"args": []}, ["/ep"]),
        ({"command": ["/c"]}, ["/c"]),
        ({"command": ["/c"], "args": ["$(V)"]}, ["/c", "v"]),
    ],
)
def test_command_and_args_replace_entrypoint_and_cmd(container: dict[str, Any], expected: list[str]) -> None:
    assert container_argv(IMAGE, {"name": "c", **container}, {"V": "v"}) == expected


def test_no_command_anywhere_is_refused() -> None:
    with pytest.raises(PodSpecError, match="container 'c': no command"):
        container_argv(ContainerImage(rootfs=Path("/x")), {"name": "c"}, {})


def test_user_comes_from_container_then_pod_then_image(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("app:x:1001:1002::/:/bin/sh\n")
    image = ContainerImage(rootfs=tmp_path, user="app")
    pod: dict[str, Any] = {"spec": {"securityContext": {"runAsUser": 7}}}
    assert run_as({}, {"name": "c"}, image) == (1001, 1002)
    assert run_as(pod, {"name": "c"}, image) == (7, 1002)
    assert run_as(pod, {"name": "c", "securityContext": {"runAsUser": 8, "runAsGroup": 9}}, image) == (8, 9)
    with pytest.raises(PodSpecError, match="runAsNonRoot"):
        run_as({}, {"name": "c", "securityContext": {"runAsNonRoot": True}}, ContainerImage(rootfs=tmp_path))
    with pytest.raises(PodSpecError, match="'ghost' is not in its /etc/passwd"):
        run_as({}, {"name": "c"}, ContainerImage(rootfs=tmp_path, user="ghost"))


@pytest.mark.parametrize("path", ["relative", "/a/../../etc", "/a:b", "/x/.."])
def test_hostile_or_careless_mount_paths_are_refused(path: str) -> None:
    with pytest.raises(PodSpecError, match="volumeMounts\\[0\\]: mountPath"):
        mount_path(path, "volumeMounts[0]")


def test_mount_paths_are_normalised() -> None:
    assert mount_path("/etc//creds/./", "m") == "/etc/creds"


@pytest.mark.parametrize("path", ["", "/abs", "../up", "a/../../b", "..data/key"])
def test_item_paths_and_sub_paths_stay_inside_their_volume(path: str) -> None:
    with pytest.raises(PodSpecError):
        relative_path(path, "subPath")


def test_a_sub_path_through_a_symlink_out_of_the_volume_is_refused(tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    (volume / "inside").mkdir(parents=True)
    os.symlink("/etc", volume / "absolute")
    os.symlink("../..", volume / "climbing")
    os.symlink("inside", volume / "fine")
    with pytest.raises(PodSpecError, match="leads outside its volume"):
        resolve_inside(volume, "absolute/passwd", "subPath")
    with pytest.raises(PodSpecError, match="leads outside its volume"):
        resolve_inside(volume, "climbing/etc", "subPath")
    assert resolve_inside(volume, "fine/x", "subPath") == (volume / "inside" / "x").resolve()


def test_a_symlink_loop_is_refused(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(PodSpecError, match="too many levels"):
        resolve_inside(tmp_path, "a/x", "subPath")


def test_volume_files_never_follow_links_or_climb(tmp_path: Path) -> None:
    os.symlink("/etc", tmp_path / "link")
    with pytest.raises(PodConfigError, match="goes through 'link'"):
        write_file(tmp_path, "link/passwd", b"x", 0o644, "volume 's'")
    os.symlink("/tmp/elsewhere", tmp_path / "key")
    with pytest.raises(PodConfigError, match="written twice"):
        write_file(tmp_path, "key", b"x", 0o644, "volume 's'")
    with pytest.raises(PodConfigError, match=r"must not contain '\.\.'"):
        write_file(tmp_path, "a/../../x", b"x", 0o644, "volume 's'")
    written = write_file(tmp_path, "a/b/key", b"value", 0o400, "volume 's'")
    assert written.read_bytes() == b"value" and oct(written.stat().st_mode & 0o777) == "0o400"


def test_image_symlinks_are_followed_inside_the_image(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    os.symlink("/run", tmp_path / "var" / "run")
    os.symlink("../../../../..", tmp_path / "up")
    assert resolve_in_image(tmp_path, "/var/run/secrets/x") == "/run/secrets/x"
    assert resolve_in_image(tmp_path, "/up/etc") == "/etc"


def test_hosts_file_maps_service_names_to_the_host() -> None:
    text = hosts_file("pod-1", "team", [("router", "team"), ("db", "other")])
    assert "127.0.0.1\tpod-1" in text
    assert "127.0.0.1\trouter router.team router.team.svc router.team.svc.cluster.local" in text
    assert "127.0.0.1\tdb.other db.other.svc db.other.svc.cluster.local" in text
    assert "kubernetes.default.svc" in text


def test_probe_ports_by_number_or_name() -> None:
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert probe_port("http", container) == 8080
    assert probe_port(9090, container) == 9090
    with pytest.raises(PodSpecError, match="'metrics' is not declared"):
        probe_port("metrics", container)


def test_bwrap_lays_out_the_image_and_mounts_without_writing_to_it(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text("")
    os.symlink("usr/bin", rootfs / "bin")
    volume = tmp_path / "volume"
    spec = SandboxSpec(
        image=ContainerImage(rootfs=rootfs, mounts={"/opa": Path("/host/opa")}),
        argv=["/opa", "run"],
        uid=65532,
        gid=65532,
        workdir="/",
        hostname="pod",
        mounts=[Mount(volume, "/etc/creds"), Mount(volume, "/data", read_only=False)],
        read_only_root=True,
    )
    argv = bwrap_argv(spec)
    joined = " ".join(argv)
    assert argv[0] == "bwrap" and argv[-3:] == ["--", "/opa", "run"]
    assert "--uid 65532 --gid 65532" in joined
    assert "--unshare-net" not in argv  # the host's network
    # /etc holds a mount point, so it is laid out entry by entry instead of bound whole.
    assert f"--dir /etc --ro-bind {rootfs}/etc/passwd /etc/passwd" in joined
    assert "--symlink usr/bin /bin" in joined
    assert f"--ro-bind {volume} /etc/creds" in joined and f"--bind {volume} /data" in joined
    assert "--ro-bind /host/opa /opa" in joined
    assert argv.index("--remount-ro") > argv.index("/data")


def test_images_resolve_by_reference_and_name_the_missing_one(tmp_path: Path) -> None:
    resolver = ImageResolver({"opa:1": opa_image(Path("/bin/true"), tmp_path)})
    assert resolver.resolve("opa:1").entrypoint == ("/opa",)
    with pytest.raises(ImageNotFoundError, match='image "nope:2" is not available on this node'):
        resolver.resolve("nope:2")


def _blob(layout: Path, document: dict[str, Any]) -> str:
    data = json.dumps(document).encode()
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}"


def test_image_config_comes_from_an_oci_layout(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    config = _blob(
        layout,
        {
            "config": {
                "Entrypoint": ["jesus"],
                "Cmd": ["--help"],
                "Env": ["PATH=/usr/bin", "A=b=c"],
                "User": "65532:65532",
                "WorkingDir": "/app",
            }
        },
    )
    manifest = _blob(layout, {"config": {"digest": config}, "layers": []})
    index = {"manifests": [{"digest": manifest, "annotations": {"org.opencontainers.image.ref.name": "dev"}}]}
    (layout / "index.json").write_text(json.dumps(index))
    image = image_from_oci_layout(layout, "dev", tmp_path / "rootfs")
    assert (image.entrypoint, image.cmd, image.user, image.workdir) == (
        ("jesus",),
        ("--help",),
        "65532:65532",
        "/app",
    )
    assert image.env == {"PATH": "/usr/bin", "A": "b=c"}
    with pytest.raises(ImageConfigError, match="no manifest tagged 'other'"):
        image_from_oci_layout(layout, "other", tmp_path / "rootfs")


def test_status_reports_phase_readiness_and_keeps_transition_times() -> None:
    record = ContainerRecord("app", "img", state=RUNNING, started_at="t0", ready=True)
    scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "t-1"}
    first = pod_status(
        [record],
        restart_policy="Always",
        started=True,
        previous_conditions=[scheduled],
        now="t1",
        start_time="t0",
    )
    conditions = {c["type"]: c for c in first["conditions"]}
    assert first["phase"] == "Running"
    assert conditions["Ready"]["status"] == "True" and conditions["PodScheduled"] == scheduled
    again = pod_status(
        [record],
        restart_policy="Always",
        started=True,
        previous_conditions=first["conditions"],
        now="t2",
        start_time="t0",
    )
    assert {c["type"]: c for c in again["conditions"]}["Ready"]["lastTransitionTime"] == "t1"
    record.ready = False
    flipped = pod_status(
        [record],
        restart_policy="Always",
        started=True,
        previous_conditions=again["conditions"],
        now="t3",
        start_time="t0",
    )
    ready = {c["type"]: c for c in flipped["conditions"]}["Ready"]
    assert (ready["status"], ready["lastTransitionTime"], ready["reason"]) == (
        "False",
        "t3",
        "ContainersNotReady",
    )


@pytest.mark.parametrize(
    ("codes", "policy", "phase"),
    [
        ([0, 0], "Never", "Succeeded"),
        ([0, 1], "Never", "Failed"),
        ([0, 1], "OnFailure", "Running"),
        ([0, 0], "OnFailure", "Succeeded"),
        ([0, 0], "Always", "Running"),
    ],
)
def test_phase_after_every_container_ended(codes: list[int], policy: str, phase: str) -> None:
    records = [
        ContainerRecord(f"c{i}", "img", state=TERMINATED, exit_code=code) for i, code in enumerate(codes)
    ]
    assert pod_phase(records, policy, started=True) == phase
    assert pod_phase(records, policy, started=False) == "Pending"


def test_a_failure_fails_the_pod_with_its_reason() -> None:
    status = pod_status(
        [ContainerRecord("app", "img")],
        restart_policy="Always",
        started=False,
        previous_conditions=[],
        now="t",
        start_time="t",
        failure=("PortInUse", "port 80"),
        pod_ip="192.0.2.2",
    )
    assert (status["phase"], status["reason"], status["podIP"]) == ("Failed", "PortInUse", "192.0.2.2")


@pytest.mark.parametrize(
    ("environ", "server"),
    [
        (
            {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"},
            "https://127.0.0.1:6443",
        ),
        ({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, "https://[fd00::1]:443"),
        ({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "https://kubernetes.default.svc"),
        ({}, "https://kubernetes.default.svc"),
    ],
)
def test_the_operator_finds_the_api_server_as_client_go_does(environ: dict[str, str], server: str) -> None:
    assert in_cluster_server(environ) == server


def test_kwok_leaves_the_sandbox_nodes_pods_to_the_kubelet() -> None:
    text = resources.files("jesus.devcluster").joinpath("kwok-stages.yaml").read_text()
    stages = [s for s in yaml.safe_load_all(text) if s["spec"]["resourceRef"]["kind"] == "Pod"]
    assert stages
    for stage in stages:
        expressions = stage["spec"]["selector"]["matchExpressions"]
        assert {"key": ".spec.nodeName", "operator": "NotIn", "values": [SANDBOX_NODE]} in expressions


def test_only_pods_placed_there_land_on_the_sandbox_node() -> None:
    [shape] = [s for s in DEFAULT_NODES if s.sandbox]
    node = build_node(shape)
    placement = sandbox_placement()
    assert node["metadata"]["name"] == SANDBOX_NODE
    assert placement["nodeSelector"].items() <= node["metadata"]["labels"].items()
    [taint] = node["spec"]["taints"]
    [toleration] = placement["tolerations"]
    assert (taint["key"], taint["effect"]) == (toleration["key"], toleration["effect"])
