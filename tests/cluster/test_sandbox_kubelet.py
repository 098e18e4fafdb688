"""The sandbox kubelet: a pod on the sandbox node runs in bubblewrap over its image's root filesystem
with its command, environment, volumes, user and probes, and reports its status as a kubelet does;
careless pods get a clear status while the others keep running; hostile paths are refused."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.cluster.harness import apply, get
from tests.cluster.harness import wait_for as wait_until
from tests.cluster.sandbox_kubelet import (
    PYTHON_IMAGE,
    KubeletThread,
    on_sandbox_node,
    running_kubelet,
    sandbox_images,
)

from jesus.devcluster import ControlPlane, ensure_tool
from jesus.devcluster.controlplane import free_port
from jesus.devcluster.images import image_from_oci_layout
from jesus.devcluster.kubelet import API_READ_FAILED
from jesus.devcluster.nodes import SANDBOX_NODE

# What the process reports of itself: uid, gid, working directory, argv, environment, the files at
# its mountPaths, whether the root refuses a write, and who the API server says its token is.
PROBE_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, ssl, sys, urllib.request
    from http.server import BaseHTTPRequestHandler, HTTPServer
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    SA = "/var/run/secrets/kubernetes.io/serviceaccount"
    report = {"uid": os.getuid(), "gid": os.getgid(), "cwd": os.getcwd(), "argv": sys.argv[1:]}
    report["env"] = {k: v for k, v in os.environ.items() if k.startswith(("T_", "S_", "KUBERNETES_"))}
    def read(path):
        try:
            return open(path).read()
        except OSError as exc:
            return f"error: {exc.strerror}"
    report["files"] = {p: read(p) for p in (
        "/etc/settings/greeting", "/etc/settings/conf/mode.conf", "/etc/settings/extra",
        "/etc/creds/password", SA + "/namespace")}
    report["modes"] = {p: oct(os.stat(p).st_mode & 0o777) for p in (
        "/etc/settings/conf/mode.conf", "/etc/creds/password")}
    try:
        open("/root-write-test", "w")
        report["root_write"] = "allowed"
    except OSError as exc:
        report["root_write"] = exc.strerror
    try:
        open("/etc/creds/new", "w")
        report["secret_write"] = "allowed"
    except OSError as exc:
        report["secret_write"] = exc.strerror
    context = ssl.create_default_context(cafile=SA + "/ca.crt")
    url = "https://kubernetes.default.svc:%s/apis/authentication.k8s.io/v1/selfsubjectreviews" % (
        os.environ["KUBERNETES_SERVICE_PORT"])
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": "Bearer " + open(SA + "/token").read(), "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            report["whoami"] = json.load(response)["status"]["userInfo"]["username"]
    except Exception as exc:
        report["whoami"] = f"error: {exc}"
    with open("report.json", "w") as out:
        json.dump(report, out)
    class Ready(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/ready" else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    HTTPServer(("0.0.0.0", int(os.environ["T_PORT"])), Ready).serve_forever()
    """
)


@pytest.fixture(scope="module")
def kubelet(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletThread]:
    directory = tmp_path_factory.mktemp("kubelet")
    with running_kubelet(control_plane, sandbox_images(directory / "images"), directory / "pods") as thread:
        yield thread


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 90, what: str, describe: Callable[[], str] = str
) -> Any:
    """The harness's wait, with room for a machine whose cores other test runs share."""
    return wait_until(predicate, timeout=timeout, what=what, describe=describe)


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return on_sandbox_node(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"containers": containers, "terminationGracePeriodSeconds": 5, **spec},
        }
    )


def container(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": PYTHON_IMAGE, **fields}


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}


def config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def pod_status(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return (get(plane, namespace, "pod", name) or {}).get("status", {})


def describe(plane: ControlPlane, namespace: str, kubelet: KubeletThread, *names: str) -> str:
    lines = [plane.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout]
    for name in names:
        lines.append(json.dumps(pod_status(plane, namespace, name), indent=1))
        lines.append(kubelet.inside(namespace, name))
        for log in sorted(kubelet.pod_directory(namespace, name).glob("*.log")):
            lines.append(f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}")
    return "\n".join(lines)


def condition(status: dict[str, Any], type_: str) -> str | None:
    return next((c["status"] for c in status.get("conditions", []) if c["type"] == type_), None)


def waiting_reason(status: dict[str, Any]) -> tuple[str, str] | None:
    for entry in status.get("containerStatuses", []):
        waiting = entry["state"].get("waiting")
        if not waiting or waiting.get("reason") in (None, "ContainerCreating"):
            continue
        if waiting.get("message", "").startswith(API_READ_FAILED):
            continue  # a read the kubelet retries (a busy API server), not the pod's own fault
        return waiting["reason"], waiting.get("message", "")
    return None


def test_pod_runs_in_its_sandbox_with_its_config_user_token_and_probe(
    control_plane: ControlPlane, namespace: str, kubelet: KubeletThread
) -> None:
    port = free_port()
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "prober"}}
    app = container(
        "app",
        command=["python", "-c", PROBE_SCRIPT],
        args=["$(T_GREETING)-arg", "$(T_UNDEFINED)", "$$(T_GREETING)"],
        workingDir="/data",
        env=[
            {"name": "T_PORT", "value": str(port)},
            {"name": "T_GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
            {"name": "T_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "T_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "T_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "T_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "T_COMPOSED", "value": "x-$(T_GREETING)"},
            {
                "name": "T_OPTIONAL",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "absent", "optional": True}},
            },
        ],
        envFrom=[{"secretRef": {"name": "creds"}, "prefix": "S_"}],
        ports=[{"name": "http", "containerPort": port}],
        readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
        securityContext={"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
        volumeMounts=[
            {"name": "settings", "mountPath": "/etc/settings", "readOnly": True},
            {"name": "creds", "mountPath": "/etc/creds"},  # read-only all the same
            {"name": "data", "mountPath": "/data"},
        ],
    )
    apply(
        control_plane,
        namespace,
        account,
        config_map("settings", {"greeting": "hello", "mode": "strict", "extra": "not mapped"}),
        secret("creds", {"password": "s3cret", "user": "ann"}),
        pod(
            "probe",
            [app],
            serviceAccountName="prober",
            securityContext={"runAsUser": 65532, "runAsGroup": 65532, "runAsNonRoot": True},
            volumes=[
                {
                    "name": "settings",
                    "configMap": {
                        "name": "settings",
                        "items": [
                            {"key": "greeting", "path": "greeting"},
                            {"key": "mode", "path": "conf/mode.conf", "mode": 0o400},
                        ],
                    },
                },
                {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o440}},
                {"name": "data", "emptyDir": {}},
            ],
        ),
    )
    status = wait_for(
        lambda: (
            (s := pod_status(control_plane, namespace, "probe")) and condition(s, "Ready") == "True" and s
        ),
        what="the probe pod to become Ready",
        describe=lambda: describe(control_plane, namespace, kubelet, "probe"),
    )
    assert status["phase"] == "Running"
    assert status["podIP"] == status["hostIP"] == kubelet.kubelet.pod_ip  # type: ignore[union-attr]
    assert condition(status, "ContainersReady") == "True"
    assert condition(status, "PodScheduled") == "True"  # the scheduler's condition is kept
    [entry] = status["containerStatuses"]
    assert entry["ready"] is True and entry["restartCount"] == 0 and "running" in entry["state"]

    report_path = kubelet.pod_directory(namespace, "probe") / "volumes" / "data" / "report.json"
    report = json.loads(report_path.read_text())
    assert (report["uid"], report["gid"], report["cwd"]) == (65532, 65532, "/data")
    assert report["argv"] == ["hello-arg", "$(T_UNDEFINED)", "$(T_GREETING)"]
    env = report["env"]
    assert env["T_PASSWORD"] == "s3cret" and env["S_password"] == "s3cret" and env["S_user"] == "ann"
    assert (env["T_POD"], env["T_NAMESPACE"], env["T_IP"]) == ("probe", namespace, status["podIP"])
    assert env["T_COMPOSED"] == "x-hello"
    assert "T_OPTIONAL" not in env
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert control_plane.ports is not None
    assert env["KUBERNETES_SERVICE_PORT"] == str(control_plane.ports.apiserver)
    files = report["files"]
    assert files["/etc/settings/greeting"] == "hello"
    assert files["/etc/settings/conf/mode.conf"] == "strict"
    assert files["/etc/settings/extra"].startswith("error:")  # items chose the keys
    assert files["/etc/creds/password"] == "s3cret"
    assert files["/var/run/secrets/kubernetes.io/serviceaccount/namespace"] == namespace
    assert report["modes"] == {"/etc/settings/conf/mode.conf": "0o400", "/etc/creds/password": "0o440"}
    assert report["root_write"] == "Read-only file system"
    assert report["secret_write"] == "Read-only file system"
    assert report["whoami"] == f"system:serviceaccount:{namespace}:prober"

    # Deleted: the container gets SIGTERM, exits, and the kubelet removes the pod.
    control_plane.kubectl("delete", "pod", "-n", namespace, "probe", "--wait=false")
    wait_for(
        lambda: get(control_plane, namespace, "pod", "probe") is None,
        timeout=20,
        what="the deleted pod to go away",
        describe=lambda: describe(control_plane, namespace, kubelet, "probe"),
    )


def test_careless_pods_get_a_clear_status_and_the_others_run(
    control_plane: ControlPlane, namespace: str, kubelet: KubeletThread
) -> None:
    serve = "import time\nwhile True: time.sleep(1)"
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    busy_port = held.getsockname()[1]
    apply(
        control_plane,
        namespace,
        secret("creds", {"password": "s3cret"}),
        pod("unknown-image", [{"name": "app", "image": "example.invalid/nothing:1"}]),
        pod(
            "missing-key",
            [
                container(
                    "app",
                    command=["python", "-c", serve],
                    env=[{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "absent"}}}],
                )
            ],
        ),
        pod("bad-command", [container("app", command=["/no/such/binary"])], restartPolicy="Never"),
        pod(
            "failing",
            [container("app", command=["python", "-c", "raise SystemExit(3)"])],
            restartPolicy="Never",
        ),
        pod(
            "crashing",
            [container("app", command=["python", "-c", "raise SystemExit(1)"])],
            restartPolicy="Always",
        ),
        pod(
            "port-taken",
            [container("app", command=["python", "-c", serve], ports=[{"containerPort": busy_port}])],
        ),
        pod("healthy", [container("app", command=["python", "-c", serve])]),
        pod(
            "unhealthy",
            [
                container(
                    "app",
                    command=["python", "-c", serve],
                    livenessProbe={
                        "tcpSocket": {"port": free_port()},
                        "periodSeconds": 1,
                        "failureThreshold": 2,
                    },
                )
            ],
        ),
    )
    try:
        show = lambda: describe(  # noqa: E731 - a short describe for every wait below
            control_plane, namespace, kubelet, "unknown-image", "missing-key", "bad-command", "crashing"
        )
        reason = wait_for(
            lambda: waiting_reason(pod_status(control_plane, namespace, "unknown-image")),
            what="unknown-image to wait",
            describe=show,
        )
        assert reason[0] == "ErrImagePull" and "example.invalid/nothing:1" in reason[1]
        reason = wait_for(
            lambda: waiting_reason(pod_status(control_plane, namespace, "missing-key")),
            what="missing-key to wait",
            describe=show,
        )
        assert reason == (
            "CreateContainerConfigError",
            "container 'app' env 'X': secret \"creds\" has no key \"absent\"",
        )
        failed = wait_for(
            lambda: (s := pod_status(control_plane, namespace, "bad-command")).get("phase") == "Failed" and s,
            what="bad-command to fail",
            describe=show,
        )
        terminated = failed["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] != 0 and terminated["reason"] == "Error"
        failed = wait_for(
            lambda: (s := pod_status(control_plane, namespace, "failing")).get("phase") == "Failed" and s,
            what="failing to fail",
            describe=show,
        )
        assert failed["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
        crashing = wait_for(
            lambda: (
                (s := pod_status(control_plane, namespace, "crashing"))
                and s.get("containerStatuses", [{}])[0].get("restartCount", 0) >= 2
                and s
            ),
            what="crashing to restart twice",
            describe=show,
        )
        assert crashing["phase"] == "Running" and condition(crashing, "Ready") == "False"
        assert crashing["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
        taken = wait_for(
            lambda: (s := pod_status(control_plane, namespace, "port-taken")).get("phase") == "Failed" and s,
            what="port-taken to fail",
            describe=show,
        )
        assert taken["reason"] == "PortInUse" and str(busy_port) in taken["message"]
        wait_for(
            lambda: condition(pod_status(control_plane, namespace, "healthy"), "Ready") == "True",
            what="the healthy pod to run beside the careless ones",
            describe=show,
        )
        unhealthy = wait_for(
            lambda: (
                (s := pod_status(control_plane, namespace, "unhealthy"))
                and s.get("containerStatuses", [{}])[0].get("restartCount", 0) >= 1
                and s
            ),
            what="the unhealthy pod to be restarted by its liveness probe",
            describe=show,
        )
        assert unhealthy["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
        # The careless pods are retried, not dropped: still waiting with the same reason.
        waiting = pod_status(control_plane, namespace, "missing-key")["containerStatuses"][0]["state"]
        assert waiting["waiting"]["reason"] == "CreateContainerConfigError", waiting
    finally:
        held.close()


def test_hostile_paths_are_refused(
    control_plane: ControlPlane, namespace: str, kubelet: KubeletThread
) -> None:
    # The API server refuses a subPath that climbs out of its volume; the kubelet would as well
    # (tests/unit/devcluster/test_sandbox_paths.py).
    climbing = pod(
        "climbing",
        [
            container(
                "app",
                command=["true"],
                volumeMounts=[{"name": "d", "mountPath": "/d", "subPath": "../../etc"}],
            )
        ],
        volumes=[{"name": "d", "emptyDir": {}}],
    )
    refused = control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(climbing), check=False
    )
    assert refused.returncode != 0 and "subPath" in refused.stderr
    # A mountPath with `..` passes the API server; the kubelet refuses it, naming the field.
    apply(
        control_plane,
        namespace,
        pod(
            "dotdot",
            [container("app", command=["true"], volumeMounts=[{"name": "d", "mountPath": "/x/../../etc"}])],
            volumes=[{"name": "d", "emptyDir": {}}],
        ),
    )
    reason = wait_for(
        lambda: waiting_reason(pod_status(control_plane, namespace, "dotdot")),
        what="dotdot to be refused",
        describe=lambda: describe(control_plane, namespace, kubelet, "dotdot"),
    )
    assert reason[0] == "CreateContainerConfigError" and "mountPath '/x/../../etc'" in reason[1]
    assert not (Path("/etc") / "dotdot").exists()


def test_sandbox_node_is_left_to_the_kubelet(control_plane: ControlPlane) -> None:
    node = get(control_plane, "", "node", SANDBOX_NODE)
    assert node is not None
    assert {t["key"] for t in node["spec"]["taints"]} == {"jesus.dev/sandbox"}


def test_init_containers_run_first_and_exec_and_tcp_probes_gate_readiness(
    control_plane: ControlPlane, namespace: str, kubelet: KubeletThread
) -> None:
    port = free_port()
    listen = (
        "import os, socket, time\n"
        "time.sleep(1)\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(('0.0.0.0', {port})); s.listen()\n"
        "open('/data/ready', 'w').close()\n"
        "while True: s.accept()[0].close()\n"
    )
    seeded = "open('/data/seed', 'w').write('from init')"
    data = [{"name": "data", "mountPath": "/data"}]
    apply(
        control_plane,
        namespace,
        pod(
            "initialised",
            [
                container(
                    "app",
                    command=["python", "-c", f"assert open('/data/seed').read() == 'from init'\n{listen}"],
                    ports=[{"name": "tcp", "containerPort": port}],
                    readinessProbe={
                        "exec": {"command": ["test", "-f", "/data/ready"]},
                        "periodSeconds": 1,
                        "timeoutSeconds": 10,  # a sandbox to start on a busy machine
                    },
                    livenessProbe={
                        "tcpSocket": {"port": "tcp"},
                        "initialDelaySeconds": 3,
                        "periodSeconds": 1,
                    },
                    volumeMounts=data,
                )
            ],
            initContainers=[container("seed", command=["python", "-c", seeded], volumeMounts=data)],
            volumes=[{"name": "data", "emptyDir": {}}],
        ),
        pod(
            "sidecar",
            [container("app", command=["true"])],
            initContainers=[container("proxy", command=["true"], restartPolicy="Always")],
        ),
        pod(
            "init-fails",
            [container("app", command=["true"])],
            initContainers=[container("seed", command=["python", "-c", "raise SystemExit(4)"])],
            restartPolicy="Never",
        ),
    )
    show = lambda: describe(control_plane, namespace, kubelet, "initialised", "init-fails")  # noqa: E731
    status = wait_for(
        lambda: (
            (s := pod_status(control_plane, namespace, "initialised"))
            and condition(s, "Ready") == "True"
            and s
        ),
        what="the initialised pod to become Ready",
        describe=show,
    )
    assert condition(status, "Initialized") == "True"
    [init] = status["initContainerStatuses"]
    assert init["state"]["terminated"]["exitCode"] == 0
    # The liveness probe holds: no restart after several periods.
    time.sleep(4)
    status = pod_status(control_plane, namespace, "initialised")
    assert status["containerStatuses"][0]["restartCount"] == 0, show()
    failed = wait_for(
        lambda: (s := pod_status(control_plane, namespace, "init-fails")).get("phase") == "Failed" and s,
        what="init-fails to fail",
        describe=show,
    )
    assert failed["reason"] == "InitContainerFailed" and "'seed' exited with code 4" in failed["message"]
    assert condition(failed, "Initialized") == "False"
    assert "waiting" in failed["containerStatuses"][0]["state"]  # the app never started
    reason = wait_for(
        lambda: waiting_reason(pod_status(control_plane, namespace, "sidecar")),
        what="sidecar to wait",
        describe=show,
    )
    assert reason[0] == "CreateContainerConfigError" and "init container 'proxy': sidecar" in reason[1]


def umoci(*args: str) -> None:
    subprocess.run(["umoci", *args], check=True, capture_output=True, timeout=120)


def test_a_pod_runs_from_an_oci_image_that_umoci_unpacked(
    control_plane: ControlPlane, namespace: str, kubelet: KubeletThread, tmp_path: Path
) -> None:
    # An image the way the platform's own is built: an OCI layout with an image config, unpacked
    # with umoci; here holding only the static OPA binary.
    layout, bundle = tmp_path / "layout", tmp_path / "bundle"
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:v1")
    umoci("unpack", "--rootless", "--image", f"{layout}:v1", str(bundle))
    shutil.copy(ensure_tool("opa"), bundle / "rootfs" / "opa")
    umoci("repack", "--image", f"{layout}:v1", str(bundle))
    umoci("config", "--image", f"{layout}:v1", "--config.entrypoint", "/opa", "--config.cmd", "version")
    unpacked = tmp_path / "unpacked"
    umoci("unpack", "--rootless", "--image", f"{layout}:v1", str(unpacked))
    kubelet.images.add("test.local/opa-oci:v1", image_from_oci_layout(layout, "v1", unpacked / "rootfs"))
    apply(
        control_plane,
        namespace,
        pod("from-oci", [{"name": "opa", "image": "test.local/opa-oci:v1"}], restartPolicy="Never"),
    )
    status = wait_for(
        lambda: (
            (s := pod_status(control_plane, namespace, "from-oci")).get("phase") in ("Succeeded", "Failed")
            and s
        ),
        what="the pod from the OCI image to finish",
        describe=lambda: describe(control_plane, namespace, kubelet, "from-oci"),
    )
    assert status["phase"] == "Succeeded", describe(control_plane, namespace, kubelet, "from-oci")
    log = (kubelet.pod_directory(namespace, "from-oci") / "opa.log").read_text()
    assert "Version: 1.22.2" in log  # the image's entrypoint and cmd ran
