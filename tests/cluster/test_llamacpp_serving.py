"""A llama.cpp model served by the platform, for real: the operator's Deployment for a ModelAdapter with
`serving.engine: llamacpp` lands on the sandbox node (`--serving-placement`), the sandbox kubelet runs
its container from the dev cluster's llama.cpp image (llama-cpp-python's server behind llama-server's
command line, `jesus.devcluster.llamacpp.server_image`) with the Deployment's own args, the
container downloads the tiny random-weight model from `modelURI` (an HTTP server this module starts)
into its emptyDir, its readiness probe on /health makes the pod Ready, the adapter becomes Ready, and an
AgentRun routed to it gets the server's completion with its tokens and cost recorded.

The router runs as a process on this machine under a bwrap that gives it the sandbox node's /etc/hosts,
so it resolves the Service name in the adapter's `status.endpoint` as the node's pods do (127.0.0.1,
where pods on the host network listen). One control plane, kubelet, model server and operator world
serve the module.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.builders.adapters import llamacpp_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.manifest import set_field
from tests.builders.routes import failover_route
from tests.cluster.harness import OperatorWorld, get, operator_world, wait_for
from tests.cluster.sandbox_kubelet import KubeletThread, running_kubelet

from jesus.devcluster import ControlPlane, llamacpp
from jesus.devcluster.controlplane import free_port
from jesus.devcluster.images import ImageResolver
from jesus.devcluster.nodes import SANDBOX_NODE, sandbox_placement
from jesus.devcluster.podspec import hosts_file
from jesus.logic.serving import ENGINE_LLAMACPP, LLAMACPP_UID, serving_name

TEAM = "local"
ADAPTER = "tiny"
ROUTE = "local-model"
# Loading the half-megabyte model takes seconds; the first pod also waits for the scheduler and the
# operator's resync.
READY_SECONDS = 120


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Served:
    world: OperatorWorld
    kubelet: KubeletThread
    model_url: str
    service: str
    port: int

    @property
    def namespace(self) -> str:
        return self.world.namespace

    def describe(self) -> str:
        pods = self.world.plane.kubectl(
            "get", "-n", self.namespace, "modeladapters,deployments,pods", "-o", "wide", check=False
        ).stdout
        inside = "\n".join(
            self.kubelet.inside(self.namespace, pod["metadata"]["name"]) for pod in self.pods()
        )
        logs = "\n".join(
            f"--- {path.name} ---\n{path.read_text(errors='replace')[-3000:]}"
            for path in self.kubelet.workdir.glob(f"{self.namespace}/*/{ENGINE_LLAMACPP}.log")
        )
        return "\n".join([pods, inside, logs, self.world.describe()])

    def pods(self) -> list[dict[str, Any]]:
        listing = get(
            self.world.plane, self.namespace, "pods", f"-lapp.kubernetes.io/instance={self.service}"
        )
        return list((listing or {}).get("items") or [])


def _require_server() -> None:
    if not llamacpp.is_built() or not llamacpp.model_path().is_file():
        raise RuntimeError(
            "the llama.cpp server is not built: run `make tools` (jesus dev build --llamacpp), "
            f"which builds it once into {llamacpp.server_dir()}"
        )


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    """The tiny model over HTTP on 127.0.0.1: what `modelURI` names."""
    _require_server()
    model = llamacpp.model_path()
    handler = functools.partial(_Quiet, directory=str(model.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{model.name}"
    finally:
        server.shutdown()
        server.server_close()


def sandbox_hosts(directory: Path) -> tuple[Path, tuple[str, ...]]:
    """A hosts file and the bwrap that runs the router with it as /etc/hosts, all else the host's.
    The file is rewritten in place once the namespace is known (glibc reads it on every lookup)."""
    hosts = directory / "router-hosts"
    hosts.write_text(hosts_file("router", "default", []))
    bwrap = shutil.which("bwrap")
    assert bwrap is not None, "bubblewrap is needed (make packages)"
    return hosts, (bwrap, "--dev-bind", "/", "/", "--ro-bind", str(hosts), "/etc/hosts", "--")


def served_adapter(model_url: str, port: int) -> dict[str, Any]:
    obj = llamacpp_adapter(ADAPTER)
    for path, value in {
        "spec.serving.image": llamacpp.IMAGE,
        "spec.serving.modelURI": model_url,
        "spec.serving.port": port,
        "spec.serving.threads": 1,
        "spec.pricing": {"inputPerMillionTokens": "0.10", "outputPerMillionTokens": "0.20"},
    }.items():
        obj = set_field(obj, path, value)
    return obj


@pytest.fixture(scope="module")
def served(
    control_plane: ControlPlane, model_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("llamacpp-serving")
    images = ImageResolver({llamacpp.IMAGE: llamacpp.server_image(directory / "images")})
    port = free_port()
    service = serving_name(ADAPTER, ENGINE_LLAMACPP)
    hosts, wrapper = sandbox_hosts(directory)
    with (
        running_kubelet(control_plane, images, directory / "pods") as kubelet,
        operator_world(
            control_plane,
            directory,
            "llamacpp",
            [
                team_budget(TEAM, TEAM, "1.00"),
                failover_route(ROUTE, ADAPTER),
                served_adapter(model_server, port),
            ],
            operator_args=("--serving-placement", json.dumps(sandbox_placement())),
            router_wrapper=wrapper,
        ) as world,
    ):
        with hosts.open("r+") as file:  # in place: the router's bind mount shows this inode
            text = hosts_file("router", world.namespace, [(service, world.namespace)])
            file.truncate(0)
            file.write(text)
        yield Served(world, kubelet, model_server, service, port)


def adapter_ready(served: Served) -> dict[str, Any] | None:
    obj = get(served.world.plane, served.namespace, "modeladapter", ADAPTER) or {}
    conditions = {c["type"]: c for c in obj.get("status", {}).get("conditions") or []}
    return obj if conditions.get("Ready", {}).get("status") == "True" else None


def test_the_deployment_lands_on_the_sandbox_node_and_its_probes_make_the_adapter_ready(
    served: Served,
) -> None:
    adapter = wait_for(
        lambda: adapter_ready(served),
        timeout=READY_SECONDS,
        what=f"ModelAdapter {ADAPTER} to be Ready",
        describe=served.describe,
    )
    status = adapter["status"]
    assert status["endpoint"] == f"http://{served.service}.{served.namespace}.svc:{served.port}/v1"
    assert status["serving"]["readyReplicas"] == 1
    [pod] = [p for p in served.pods() if not p["metadata"].get("deletionTimestamp")]
    assert pod["spec"]["nodeName"] == SANDBOX_NODE
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    [container] = pod["status"]["containerStatuses"]
    assert (container["ready"], container["restartCount"]) == (True, 0)
    assert "running" in container["state"]
    # The container ran what the Deployment says, as Pod Security "restricted" admitted it (the
    # namespace enforces it): llama-server's command line, uid 65532, a read-only root.
    spec = pod["spec"]["containers"][0]
    assert "command" not in spec  # the image's entrypoint, llama-server, takes the args
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    worker = next(w for w in served.kubelet.kubelet.workers.values() if w.name == pod["metadata"]["name"])
    sandbox = worker.containers[0].sandbox
    assert sandbox is not None
    assert sandbox.argv == ["llama-server", *spec["args"]]
    assert (sandbox.uid, sandbox.read_only_root) == (LLAMACPP_UID, True)
    # The model came from modelURI into the pod's emptyDir, under the URL's file name.
    downloads = list(served.kubelet.pod_directory(served.namespace, pod["metadata"]["name"]).rglob("*.gguf"))
    assert [path.name for path in downloads] == [served.model_url.rsplit("/", 1)[1]]
    assert downloads[0].read_bytes() == llamacpp.model_path().read_bytes()


def test_a_run_routed_to_it_gets_the_servers_completion_with_its_tokens_and_cost(served: Served) -> None:
    wait_for(
        lambda: adapter_ready(served),
        timeout=READY_SECONDS,
        what=f"ModelAdapter {ADAPTER} to be Ready",
        describe=served.describe,
    )
    served.world.apply(hello_run("hello", team=TEAM, route_name=ROUTE, timeout_seconds=120))
    status = served.world.wait_phase("hello", "Succeeded", "Failed", timeout=120)
    assert status["phase"] == "Succeeded", served.describe()
    [call, *_] = status["calls"]
    assert (call["adapter"], call["model"]) == (ADAPTER, "tiny-llama")
    assert call["usage"]["inputTokens"] > 5 and call["usage"]["outputTokens"] >= 1
    assert status["usage"]["inputTokens"] >= call["usage"]["inputTokens"]
    assert status["costMicros"] > 0


def test_a_model_uri_that_serves_nothing_keeps_the_adapter_unready_saying_why(served: Served) -> None:
    # Careless: the URL names a file the server does not have. The container exits before it listens,
    # so no probe passes and the adapter says the pod is crash-looping.
    name, port = "missing", free_port()
    obj = set_field(served_adapter(served.model_url + ".missing", port), "metadata.name", name)
    served.world.apply(obj)
    try:
        unready = wait_for(
            lambda: (
                (o := get(served.world.plane, served.namespace, "modeladapter", name))
                and "CrashLoopBackOff" in str(o.get("status", {}).get("conditions"))
                and o
            ),
            timeout=READY_SECONDS,
            what=f"ModelAdapter {name} to report the crash loop",
            describe=served.describe,
        )
        ready = next(c for c in unready["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "DeploymentUnavailable")
        assert f"container {ENGINE_LLAMACPP} of pod llamacpp-{name}-" in ready["message"]
        assert "is CrashLoopBackOff" in ready["message"]
        pod = next(iter(served.kubelet.workdir.glob(f"{served.namespace}/llamacpp-{name}-*")))
        log = (pod / f"{ENGINE_LLAMACPP}.log").read_text()
        assert "the server answered 404" in log
    finally:
        served.world.plane.kubectl("delete", "modeladapter", name, "-n", served.namespace, "--wait=false")
