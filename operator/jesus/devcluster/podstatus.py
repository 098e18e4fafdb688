"""A pod's status as a kubelet reports it, built from what its containers did (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jesus.kube import JsonObject

WAITING, RUNNING, TERMINATED = "waiting", "running", "terminated"


@dataclass
class ContainerRecord:
    """What one container is doing, as the kubelet tracks it."""

    name: str
    image: str
    state: str = WAITING
    reason: str = "ContainerCreating"
    message: str = ""
    exit_code: int = 0
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    ready: bool = False
    last_terminated: JsonObject | None = field(default=None)

    def terminated(self) -> JsonObject:
        """The `terminated` state of the last run."""
        state: JsonObject = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at or None,
            "finishedAt": self.finished_at or None,
        }
        if self.message:
            state["message"] = self.message
        return state


def container_status(record: ContainerRecord) -> JsonObject:
    """One entry of `containerStatuses`."""
    state: JsonObject
    if record.state == RUNNING:
        state = {"running": {"startedAt": record.started_at}}
    elif record.state == TERMINATED:
        state = {"terminated": record.terminated()}
    else:
        state = {
            "waiting": {"reason": record.reason, **({"message": record.message} if record.message else {})}
        }
    status: JsonObject = {
        "name": record.name,
        "image": record.image,
        "imageID": "",
        "ready": record.ready and record.state == RUNNING,
        "restartCount": record.restart_count,
        "started": record.state == RUNNING,
        "state": state,
    }
    status["lastState"] = {"terminated": record.last_terminated} if record.last_terminated else {}
    return status


def pod_phase(records: Sequence[ContainerRecord], restart_policy: str, started: bool) -> str:
    """Pending until every container started once; Succeeded or Failed when all have ended for good;
    Running otherwise."""
    if not started:
        return "Pending"
    if records and all(r.state == TERMINATED for r in records):
        if restart_policy == "Always":
            return "Running"
        if all(r.exit_code == 0 for r in records):
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
    return "Running"


def _condition(
    type_: str, value: bool, previous: Mapping[str, JsonObject], now: str, reason: str
) -> JsonObject:
    status = "True" if value else "False"
    before = previous.get(type_)
    moved = before is None or before.get("status") != status
    condition: JsonObject = {
        "type": type_,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": now if moved else before.get("lastTransitionTime", now) if before else now,
    }
    if not value:
        condition["reason"] = reason
    return condition


def pod_conditions(
    records: Sequence[ContainerRecord],
    previous: Sequence[Mapping[str, Any]],
    now: str,
    *,
    ended: bool,
    initialized: bool = True,
) -> list[JsonObject]:
    """Ready and ContainersReady from the containers' readiness; Initialized once every init
    container succeeded; the scheduler's own conditions kept. A transition time moves only when a
    condition's status flips."""
    by_type = {str(c.get("type")): dict(c) for c in previous}
    ready = bool(records) and all(r.ready and r.state == RUNNING for r in records)
    reason = "PodCompleted" if ended else "ContainersNotReady"
    ours = [
        _condition("Initialized", initialized, by_type, now, "ContainersNotInitialized"),
        _condition("ContainersReady", ready, by_type, now, reason),
        _condition("Ready", ready, by_type, now, reason),
    ]
    kept = [c for t, c in by_type.items() if t not in {"Initialized", "ContainersReady", "Ready"}]
    return kept + ours


def pod_status(
    records: Sequence[ContainerRecord],
    *,
    restart_policy: str,
    started: bool,
    previous_conditions: Sequence[Mapping[str, Any]],
    now: str,
    start_time: str,
    failure: tuple[str, str] | None = None,
    pod_ip: str = "127.0.0.1",
    init_records: Sequence[ContainerRecord] = (),
) -> JsonObject:
    """The status the kubelet writes: phase, conditions, containerStatuses, IPs (`pod_ip`, the host's:
    the pod shares its network, as a hostNetwork pod does).
    `failure` (reason, message) fails the whole pod (a port already in use)."""
    phase = "Failed" if failure else pod_phase(records, restart_policy, started)
    ended = phase in ("Succeeded", "Failed")
    initialized = all(r.state == TERMINATED and r.exit_code == 0 for r in init_records)
    status: JsonObject = {
        "phase": phase,
        "conditions": pod_conditions(records, previous_conditions, now, ended=ended, initialized=initialized),
        "containerStatuses": [container_status(r) for r in records],
        "hostIP": pod_ip,
        "hostIPs": [{"ip": pod_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
    }
    if init_records:
        status["initContainerStatuses"] = [container_status(r) for r in init_records]
    if failure:
        status["reason"], status["message"] = failure
    return status
