"""A kubelet for one kwok node that runs its pods' containers for real, each in a bubblewrap sandbox
over its image's root filesystem (ADR 0022).

kwok simulates every other node and leaves this one's pods alone (see `kwok-stages.yaml`): the
kubelet here starts them, probes them and reports their status as a kubelet would (phase, conditions
Ready and ContainersReady from readiness probes, containerStatuses with restarts and exit codes), and
finishes their deletion after stopping their containers (SIGTERM, the grace period, SIGKILL).

What a container gets: its image's root filesystem (read-only under `readOnlyRootFilesystem`), the
command and args by Kubernetes' rules, its environment (values, Secret and ConfigMap keys, the
downward API, envFrom, and `KUBERNETES_SERVICE_HOST`/`PORT` pointing at the API server), its volumes
at their mountPaths (configMap, secret, emptyDir, downwardAPI, projected, the service-account token
among them), its uid and gid, the host's network, and an /etc/hosts that maps every Service name to
127.0.0.1: pods listen on the host, so a Service reaches its pod on the targetPort there, and a port a
container declares can be held by one pod only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from jesus.devcluster.images import ImageNotFoundError, ImageResolver
from jesus.devcluster.nodes import SANDBOX_NODE
from jesus.devcluster.podconfig import PodConfig, PodConfigError
from jesus.devcluster.podspec import (
    PodSpecError,
    container_argv,
    declared_ports,
    hosts_file,
    mount_path,
    read_only_root,
    relative_path,
    resolve_inside,
    run_as,
)
from jesus.devcluster.podstatus import RUNNING, TERMINATED, WAITING, ContainerRecord, pod_status
from jesus.devcluster.probes import probe_succeeds
from jesus.devcluster.sandbox import Mount, SandboxSpec, bwrap_argv, sandbox_environment
from jesus.kube import JsonObject, KubeClient, KubeError, NotFoundError
from jesus.logic.clock import format_time, system_clock

logger = logging.getLogger(__name__)

TERMINATION_LOG = "/dev/termination-log"
MESSAGE_LIMIT = 4096
# How a container's waiting message starts when reading its pod's Secrets, ConfigMaps or token failed
# (retried after `retry_seconds`, as a kubelet retries a cache it could not sync).
API_READ_FAILED = "the API server refused a read"


def _now() -> str:
    return format_time(system_clock())


@dataclass(frozen=True)
class KubeletSettings:
    """How the sandbox kubelet behaves; the defaults suit tests (short periods, short back-off)."""

    node: str = SANDBOX_NODE
    poll_seconds: float = 0.3
    # Probes run at their own periodSeconds, but never less often than this.
    max_probe_period_seconds: float = 1.0
    # Restarts back off from `restart_backoff_seconds`, doubling up to `max_restart_backoff_seconds`.
    restart_backoff_seconds: float = 0.5
    max_restart_backoff_seconds: float = 8.0
    # A deleted pod's containers get its terminationGracePeriodSeconds, at most this.
    max_grace_seconds: float = 10.0
    # How long a pod whose Secret, ConfigMap or image is missing waits before the next try.
    retry_seconds: float = 1.0
    # How long bwrap may take to say its sandboxed process's pid before the container counts as
    # running without it (then only the sandbox's process group can be signalled).
    sandbox_start_seconds: float = 30.0
    # The pods' IP (they share the host's network): None finds this machine's own address. Not a
    # loopback one: the API server refuses those in EndpointSlices.
    pod_ip: str | None = None


def host_address() -> str:
    """This machine's address on its default route (no packet is sent), else 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 9))
        except OSError:
            return "127.0.0.1"
        address: str = sock.getsockname()[0]
        return address


def port_free(port: int) -> bool:
    """Whether a TCP listener could bind `port` on all addresses of this machine."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            # A probe bind, closed at once: is the port free?
            sock.bind(("0.0.0.0", port))  # nosec B104
        except OSError:
            return False
    return True


class _Container:
    """One container of a pod: its record, its sandbox and its process."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec
        self.record = ContainerRecord(spec["name"], spec["image"])
        self.sandbox: SandboxSpec | None = None
        self.env: dict[str, str] = {}
        self.process: asyncio.subprocess.Process | None = None
        self.child_pid: int | None = None
        self.termination: Path | None = None
        self.log: Path | None = None


class PodWorker:
    """Runs one pod on the node until it ends or is deleted."""

    def __init__(self, kubelet: SandboxKubelet, pod: JsonObject) -> None:
        self.kubelet = kubelet
        self.kube = kubelet.kube
        self.pod = pod
        self.namespace: str = pod["metadata"]["namespace"]
        self.name: str = pod["metadata"]["name"]
        self.directory = kubelet.workdir / self.namespace / self.name
        self.containers = [_Container(c) for c in pod["spec"]["containers"]]
        self.init_containers = [_Container(c) for c in pod["spec"].get("initContainers") or []]
        self.restart_policy: str = pod["spec"].get("restartPolicy", "Always")
        self.started = False
        self.start_time = _now()
        self.failure: tuple[str, str] | None = None
        self.conditions: list[JsonObject] = list(pod.get("status", {}).get("conditions") or [])
        self.ports: set[int] = set()
        self.changed = asyncio.Event()
        self.stopping = False
        self._last_status: JsonObject | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    # -- the pod's life ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Prepare the pod (retrying what is missing), run its init containers, then start its
        containers and supervise them; the status follows every change."""
        reporter = asyncio.create_task(self._report_changes())
        tasks: list[asyncio.Task[None]] = []
        try:
            while not self.stopping and not await self._prepare():
                await self.report()
                await asyncio.sleep(self.kubelet.settings.retry_seconds)
            if self.stopping or not self._claim_ports() or not await self._initialize():
                return
            self.started = True
            self.start_time = _now()
            tasks = [asyncio.create_task(self._supervise(c)) for c in self.containers]
            probes = [asyncio.create_task(self._probe(c)) for c in self.containers]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in probes:
                    task.cancel()
                await asyncio.gather(*probes, return_exceptions=True)
        finally:
            for task in [*tasks, reporter]:
                task.cancel()
            await asyncio.gather(*tasks, reporter, return_exceptions=True)
            self.kubelet.release_ports(self.ports)
            self.kubelet.forget_hosts(self.namespace, self.name)
            await asyncio.shield(self._report_until_written(tries=10))

    async def _prepare(self) -> bool:
        """Resolve images, environment and volumes; on failure the containers wait with the reason."""
        self.directory.mkdir(parents=True, exist_ok=True)
        config = PodConfig(self.kube, self.pod, pod_ip=self.kubelet.pod_ip)
        try:
            for container in [*self.init_containers, *self.containers]:
                try:
                    self.kubelet.images.resolve(container.spec["image"])
                except ImageNotFoundError as exc:
                    self._wait_all("ErrImagePull", str(exc), container)
                    return False
            for container in self.init_containers:
                if container.spec.get("restartPolicy") == "Always":
                    raise PodSpecError(
                        f"init container {container.spec['name']!r}: sidecar containers (restartPolicy "
                        "Always) are not supported on this node"
                    )
            volumes = await config.volumes(self.directory)
            for container in [*self.init_containers, *self.containers]:
                await self._configure(container, config, volumes)
        except (PodConfigError, PodSpecError) as exc:
            self._wait_all("CreateContainerConfigError", str(exc))
            return False
        except (KubeError, httpx.HTTPError) as exc:
            # A timeout's text is often empty: its type says what happened. The next try may pass.
            self._wait_all(
                "CreateContainerConfigError", f"{API_READ_FAILED}: {type(exc).__name__} {exc}".strip()
            )
            return False
        return True

    def _wait_all(self, reason: str, message: str, only: _Container | None = None) -> None:
        for container in [*self.init_containers, *self.containers]:
            if only is None or container is only:
                container.record.state, container.record.reason = WAITING, reason
                container.record.message = message
            elif container.record.reason == "ErrImagePull":
                container.record.reason, container.record.message = "ContainerCreating", ""
        logger.info("Could not start pod pod=%s reason=%s message=%s", self.key, reason, message)

    async def _configure(self, container: _Container, config: PodConfig, volumes: Mapping[str, Path]) -> None:
        spec = container.spec
        name = spec["name"]
        image = self.kubelet.images.resolve(spec["image"])
        uid, gid = run_as(self.pod, spec, image)
        base = {**self.kubelet.service_env(), **image.env}
        env = await config.environment(spec, base)
        argv = container_argv(image, spec, env)
        mounts = []
        # ConfigMap, Secret, downwardAPI and projected volumes are read-only whatever the mount says,
        # as a kubelet mounts them.
        writable = {v["name"] for v in self.pod["spec"].get("volumes") or [] if "emptyDir" in v}
        for index, mount in enumerate(spec.get("volumeMounts") or []):
            where = f"container {name!r} volumeMounts[{index}]"
            destination = mount_path(mount["mountPath"], where)
            if mount["name"] not in volumes:
                raise PodSpecError(f"{where}: no volume named {mount['name']!r}")
            source = volumes[mount["name"]]
            if mount.get("subPath"):
                source = resolve_inside(source, relative_path(mount["subPath"], f"{where}: subPath"), where)
                if not source.exists():
                    source.mkdir(parents=True)
            read_only = bool(mount.get("readOnly")) or mount["name"] not in writable
            mounts.append(Mount(source, destination, read_only=read_only))
        container.termination = self.directory / f"{name}.termination-log"
        container.termination.write_text("")
        container.log = self.directory / f"{name}.log"
        message_path = spec.get("terminationMessagePath") or TERMINATION_LOG
        mounts.append(Mount(container.termination, mount_path(message_path, f"container {name!r}"), False))
        mounts.append(Mount(self.kubelet.hosts_path(self.namespace, self.name), "/etc/hosts"))
        container.env = sandbox_environment(image.env, env, self.name)
        container.sandbox = SandboxSpec(
            image=image,
            argv=argv,
            uid=uid,
            gid=gid,
            workdir=spec.get("workingDir") or image.workdir,
            hostname=self.name,
            mounts=mounts,
            read_only_root=read_only_root(spec),
        )

    def _claim_ports(self) -> bool:
        for container in self.containers:
            for port in declared_ports(container.spec).values():
                if not self.kubelet.claim_port(port):
                    self.failure = (
                        "PortInUse",
                        f"container {container.spec['name']!r} declares port {port}, which another "
                        "process on this node already uses (pods here share the host's network)",
                    )
                    logger.info("Refused pod pod=%s port=%d reason=PortInUse", self.key, port)
                    return False
                self.ports.add(port)
        return True

    async def _initialize(self) -> bool:
        """Run the init containers one after another to success (retried unless restartPolicy is
        Never); False when one failed for good, which fails the pod."""
        backoff = self.kubelet.settings.restart_backoff_seconds
        for container in self.init_containers:
            while True:
                code = await self._run_once(container)
                if self._stopped():
                    return False
                if code == 0:
                    break
                if self.restart_policy == "Never":
                    self.failure = (
                        "InitContainerFailed",
                        f"init container {container.record.name!r} exited with code {code}",
                    )
                    return False
                await self._back_off(container, backoff)
                backoff = min(backoff * 2, self.kubelet.settings.max_restart_backoff_seconds)
        return True

    async def _back_off(self, container: _Container, seconds: float) -> None:
        record = container.record
        record.last_terminated = record.terminated()
        record.restart_count += 1
        record.state, record.reason = WAITING, "CrashLoopBackOff"
        record.message = f"back-off {seconds:.1f}s restarting failed container {record.name}"
        await self.report()
        await asyncio.sleep(seconds)

    # -- containers -------------------------------------------------------------------------------

    async def _supervise(self, container: _Container) -> None:
        """Run the container, restarting it as the pod's restartPolicy says, until it ends for good."""
        backoff = self.kubelet.settings.restart_backoff_seconds
        while not self.stopping:
            code = await self._run_once(container)
            if self._stopped():
                return
            restart = self.restart_policy == "Always" or (self.restart_policy == "OnFailure" and code != 0)
            if not restart:
                return
            await self._back_off(container, backoff)
            backoff = min(backoff * 2, self.kubelet.settings.max_restart_backoff_seconds)

    async def _run_once(self, container: _Container) -> int:
        assert (
            container.sandbox is not None and container.log is not None and container.termination is not None
        )
        record = container.record
        argv = bwrap_argv(container.sandbox)
        info_read, info_write = os.pipe()
        argv = [argv[0], "--as-pid-1", "--info-fd", str(info_write), *argv[1:]]
        with container.log.open("ab") as log:
            try:
                container.process = await asyncio.create_subprocess_exec(
                    *argv,
                    env=container.env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=(info_write,),
                )
            except OSError as exc:
                os.close(info_read)
                os.close(info_write)
                record.state, record.reason, record.exit_code = TERMINATED, "StartError", 128
                record.message = f"the sandbox could not start: {exc}"
                self.changed.set()
                return 128
        os.close(info_write)
        container.child_pid = await _child_pid(info_read, self.kubelet.settings.sandbox_start_seconds)
        if container.child_pid is None and container.process.returncode is None:
            logger.info(
                "Sandbox gave no pid pod=%s container=%s bwrap_pid=%d",
                self.key,
                record.name,
                container.process.pid,
            )
        record.state, record.reason, record.message = RUNNING, "", ""
        record.started_at, record.ready = _now(), False
        logger.info("Started container pod=%s container=%s", self.key, record.name)
        self.changed.set()
        code = await container.process.wait()
        code = 128 - code if code < 0 else code  # killed by a signal: 128 + its number
        record.state, record.exit_code, record.finished_at, record.ready = TERMINATED, code, _now(), False
        record.reason = "Completed" if code == 0 else "Error"
        message = container.termination.read_text(errors="replace")[:MESSAGE_LIMIT]
        policy = container.spec.get("terminationMessagePolicy")
        if not message and code != 0 and policy == "FallbackToLogsOnError":
            message = container.log.read_text(errors="replace")[-MESSAGE_LIMIT:]
        record.message = message
        container.process, container.child_pid = None, None
        logger.info("Container ended pod=%s container=%s exit_code=%d", self.key, record.name, code)
        self.changed.set()
        return code

    def _stopped(self) -> bool:
        return self.stopping

    async def stop(self, grace_seconds: float) -> None:
        """Stop every container: SIGTERM to its process, SIGKILL to its sandbox after `grace_seconds`."""
        self.stopping = True
        processes = [c for c in [*self.init_containers, *self.containers] if c.process is not None]
        for container in processes:
            if container.child_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(container.child_pid, signal.SIGTERM)
        waits = [c.process.wait() for c in processes if c.process is not None]
        if waits:
            try:
                await asyncio.wait_for(asyncio.gather(*waits), grace_seconds)
            except TimeoutError:
                for container in processes:
                    if container.process is not None and container.process.returncode is None:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(container.process.pid, signal.SIGKILL)
                await asyncio.gather(*(c.process.wait() for c in processes if c.process is not None))

    # -- probes -----------------------------------------------------------------------------------

    async def _probe(self, container: _Container) -> None:
        """The container's probes while it runs: readiness (no probe means ready) and liveness."""
        liveness = container.spec.get("livenessProbe")
        tasks = [asyncio.create_task(self._readiness(container))]
        if liveness is not None:
            tasks.append(asyncio.create_task(self._liveness(container, liveness)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _readiness(self, container: _Container) -> None:
        """Ready after successThreshold successes, not ready after failureThreshold failures; probed
        at the probe's period, or more often (`max_probe_period_seconds`) so tests need not wait."""
        probe = container.spec.get("readinessProbe")
        successes = failures = 0
        while True:
            record = container.record
            if record.state != RUNNING:
                successes = failures = 0
                await asyncio.sleep(0.1)
                continue
            if probe is None:
                if not record.ready:
                    record.ready = True
                    self.changed.set()
                await asyncio.sleep(0.1)
                continue
            if not self._running_for(record, float(probe.get("initialDelaySeconds", 0))):
                await asyncio.sleep(0.1)
                continue
            if await self._check(container, probe):
                successes, failures = successes + 1, 0
                if successes >= int(probe.get("successThreshold", 1)) and not record.ready:
                    record.ready = True
                    self.changed.set()
            else:
                successes, failures = 0, failures + 1
                if failures >= int(probe.get("failureThreshold", 3)) and record.ready:
                    record.ready = False
                    self.changed.set()
            period = float(probe.get("periodSeconds", 10))
            await asyncio.sleep(min(period, self.kubelet.settings.max_probe_period_seconds))

    async def _liveness(self, container: _Container, probe: Mapping[str, Any]) -> None:
        """Kill the container after failureThreshold failed probes at the probe's own period (a
        shorter one would kill a slow starter a kubelet lets live)."""
        failures = 0
        while True:
            record = container.record
            if record.state != RUNNING or not self._running_for(
                record, float(probe.get("initialDelaySeconds", 0))
            ):
                failures = 0
                await asyncio.sleep(0.2)
                continue
            if await self._check(container, probe):
                failures = 0
            else:
                failures += 1
                if failures >= int(probe.get("failureThreshold", 3)) and container.process is not None:
                    logger.info("Liveness probe failed pod=%s container=%s", self.key, record.name)
                    failures = 0
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(container.process.pid, signal.SIGKILL)
            await asyncio.sleep(float(probe.get("periodSeconds", 10)))

    @staticmethod
    def _running_for(record: ContainerRecord, seconds: float) -> bool:
        if seconds <= 0:
            return True
        started = system_clock().timestamp() - _parse(record.started_at)
        return started >= seconds

    async def _check(self, container: _Container, probe: Mapping[str, Any]) -> bool:
        assert container.sandbox is not None
        return await probe_succeeds(probe, container.spec, container.sandbox, container.env)

    # -- status -----------------------------------------------------------------------------------

    async def _report_changes(self) -> None:
        while True:
            await self.changed.wait()
            self.changed.clear()
            await self._report_until_written()

    async def _report_until_written(self, tries: int | None = None) -> None:
        """Write the status, retrying a failed write (a busy API server) until it is written or
        `tries` ran out: a lost write must not leave the pod's last state unreported for good, as
        no later change may come to carry it."""
        attempt = 0
        while not await self.report():
            attempt += 1
            if tries is not None and attempt >= tries:
                return
            await asyncio.sleep(self.kubelet.settings.retry_seconds)

    async def report(self) -> bool:
        """Write the pod's status when it changed since the last write; False when the write failed."""
        status = pod_status(
            [c.record for c in self.containers],
            restart_policy=self.restart_policy,
            started=self.started,
            previous_conditions=self.conditions,
            now=_now(),
            start_time=self.start_time,
            failure=self.failure,
            pod_ip=self.kubelet.pod_ip,
            init_records=[c.record for c in self.init_containers],
        )
        if status == self._last_status:
            return True
        try:
            await self.kube.patch_status("Pod", self.namespace, self.name, status)
        except NotFoundError:
            return True  # the pod is gone: nothing left to report
        except (KubeError, httpx.HTTPError) as exc:
            logger.warning("Could not write pod status pod=%s error=%s %s", self.key, type(exc).__name__, exc)
            self.changed.set()  # the reporter tries again, whoever called
            return False
        self.conditions = status["conditions"]
        self._last_status = status
        return True


def _parse(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


async def _child_pid(descriptor: int, seconds: float) -> int | None:
    """The sandboxed process's pid, from bwrap's --info-fd, read on the event loop (no thread: a
    sandbox that never answers must not hold one of the loop's few executor threads, which every
    later container would queue behind). None when bwrap failed first or gave nothing in `seconds`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(descriptor, "rb", buffering=0)
    )
    data = b""
    try:
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(4096):
                data += chunk
                with contextlib.suppress(ValueError):
                    return int(json.loads(data)["child-pid"])
    except TimeoutError:
        pass
    finally:
        transport.close()
    return None


class SandboxKubelet:
    """Runs the pods scheduled to `settings.node`, in every namespace, until stopped."""

    def __init__(
        self,
        kube: KubeClient,
        images: ImageResolver,
        *,
        api_server: tuple[str, int],
        settings: KubeletSettings | None = None,
        workdir: Path | None = None,
    ) -> None:
        self.kube = kube
        self.images = images
        self.api_server = api_server
        self.settings = settings or KubeletSettings()
        self.pod_ip = self.settings.pod_ip or host_address()
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="jesus-kubelet-"))
        self.workers: dict[str, PodWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ports: set[int] = set()
        self._hosts: dict[str, str] = {}
        self._services: list[tuple[str, str]] = []
        self._deleting: set[str] = set()
        self._deletions: set[asyncio.Task[None]] = set()

    def service_env(self) -> dict[str, str]:
        """The variables that point in-cluster clients at the API server."""
        host, port = self.api_server
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
        }

    def claim_port(self, port: int) -> bool:
        """Reserve `port` for a pod: no other pod of this node has it and nothing else listens."""
        if port in self._ports or not port_free(port):
            return False
        self._ports.add(port)
        return True

    def release_ports(self, ports: set[int]) -> None:
        self._ports -= ports

    def hosts_path(self, namespace: str, name: str) -> Path:
        """The pod's /etc/hosts on this machine, written now and kept current as Services come."""
        path = self.workdir / namespace / name / "hosts"
        self._hosts[str(path)] = namespace
        _rewrite(path, hosts_file(name, namespace, self._services))
        return path

    def forget_hosts(self, namespace: str, name: str) -> None:
        """Stop keeping a finished pod's /etc/hosts current."""
        self._hosts.pop(str(self.workdir / namespace / name / "hosts"), None)

    async def run(self, stop: asyncio.Event) -> None:
        """Run this node's pods until `stop` is set; then stop their containers."""
        ticks = 0
        try:
            while not stop.is_set():
                try:
                    await self._sync(refresh_services=ticks % 5 == 0)
                except (KubeError, httpx.HTTPError) as exc:
                    # The API server is busy or restarting: the next round lists again.
                    logger.info("Could not list pods node=%s error=%s", self.settings.node, exc)
                ticks += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_seconds)
        finally:
            await asyncio.gather(*(w.stop(1.0) for w in self.workers.values()), return_exceptions=True)
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _sync(self, *, refresh_services: bool) -> None:
        if refresh_services:
            services = await self.kube.list("Service")
            self._services = [(s["metadata"]["name"], s["metadata"]["namespace"]) for s in services]
            for path, namespace in self._hosts.items():
                name = Path(path).parent.name
                _rewrite(Path(path), hosts_file(name, namespace, self._services))
        pods = [p for p in await self.kube.list("Pod") if p["spec"].get("nodeName") == self.settings.node]
        present = set()
        for pod in pods:
            key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
            uid = pod["metadata"].get("uid", "")
            present.add(key + uid)
            if pod["metadata"].get("deletionTimestamp"):
                if key + uid not in self._deleting:
                    self._deleting.add(key + uid)
                    await self._delete(key + uid, pod)
                continue
            if key + uid not in self._tasks and pod.get("status", {}).get("phase") not in (
                "Succeeded",
                "Failed",
            ):
                worker = PodWorker(self, pod)
                self.workers[key + uid] = worker
                self._tasks[key + uid] = asyncio.create_task(worker.run(), name=f"pod {key}")
        for gone in set(self._tasks) - present:
            worker = self.workers.pop(gone)
            task = self._tasks.pop(gone)
            if not task.done():
                await worker.stop(0)
                task.cancel()

    async def _delete(self, key: str, pod: JsonObject) -> None:
        """Stop a deleted pod's containers within its grace period (in the background), then remove
        the pod."""
        if key not in self.workers:
            await self._remove(pod)
            return
        grace = min(
            float(pod["spec"].get("terminationGracePeriodSeconds", 30)), self.settings.max_grace_seconds
        )
        task = asyncio.create_task(self._finish_delete(key, pod, grace), name=f"delete {key}")
        self._deletions.add(task)
        task.add_done_callback(self._deletions.discard)

    async def _finish_delete(self, key: str, pod: JsonObject, grace: float) -> None:
        worker = self.workers[key]
        await worker.stop(grace)
        task = self._tasks[key]
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 5)
        await self._remove(pod)

    async def _remove(self, pod: JsonObject) -> None:
        metadata = pod["metadata"]
        with contextlib.suppress(KubeError, httpx.HTTPError):
            await self.kube.delete("Pod", metadata["namespace"], metadata["name"], grace_period_seconds=0)
        logger.info("Deleted pod pod=%s/%s", metadata["namespace"], metadata["name"])


def _rewrite(path: Path, text: str) -> None:
    """Write `text` into `path` in place (a bind mount shows the same file), when it changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return
    with path.open("a+") as file:
        file.seek(0)
        file.truncate()
        file.write(text)
