"""Runner Jobs behind Kueue (`jesus operator --kueue`, docs/scheduling.md, ADR 0029): the lane a run's
priority falls in, the LocalQueue its Job names, and what the Job's Workload says about it.

Jesus's own admission (dependencies, route, budgets, policy) stays in front: only an admitted run gets
a Job, and only then does Kueue see it. The Job is created suspended, with the team's LocalQueue and
the lane's WorkloadPriorityClass in its labels; Kueue admits it against its ClusterQueue's quota and
unsuspends it, or preempts it for a higher lane. Pure: the operator reads the Workload and writes what
`observe_workload` makes of it.
"""

from __future__ import annotations

import enum
import itertools
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jesus.api.common import LABEL_TEAM
from jesus.api.objects import JsonObject

LABEL_QUEUE_NAME = "kueue.x-k8s.io/queue-name"
LABEL_PRIORITY_CLASS = "kueue.x-k8s.io/priority-class"
LABEL_JOB_UID = "kueue.x-k8s.io/job-uid"  # Kueue's label on the Workload it makes for a Job (or a pod)
# The scheduling gate Kueue's pod integration puts on a pod until it admits the pod's Workload.
ADMISSION_GATE = "kueue.x-k8s.io/admission"
WORKLOAD_API_VERSION = "kueue.x-k8s.io/v1beta2"

# The range of AgentRun.spec.priority the API server enforces; the lanes must cover all of it.
PRIORITY_MIN, PRIORITY_MAX = -1000, 1000

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
# A condition reason as the API server accepts it (metav1.Condition).
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
QUEUE_NAME_FIELDS = frozenset({"team", "namespace"})


class QueueingError(ValueError):
    """A lane or queue setting that cannot work; the message names it."""


@dataclass(frozen=True)
class Lane:
    """A priority lane: runs with `spec.priority >= min_priority` (and below the next lane up) get the
    WorkloadPriorityClass `name`, whose value is `value` (Kueue preempts lower values for higher)."""

    name: str
    min_priority: int
    value: int


DEFAULT_LANES = (
    Lane("interactive", 500, 10000),
    Lane("batch", 0, 1000),
    Lane("background", PRIORITY_MIN, 100),
)
DEFAULT_QUEUE_NAME = "{team}"


def parse_lanes(text: str) -> tuple[Lane, ...]:
    """Lanes from `name=minPriority:value,...` (the operator's --kueue-lanes), highest first; a
    QueueingError names the entry that is wrong or the priorities no lane covers."""
    lanes = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, sep, figures = entry.partition("=")
        low, colon, value = figures.partition(":")
        try:
            if not (sep and colon):
                raise ValueError
            lanes.append(Lane(name.strip(), int(low), int(value)))
        except ValueError:
            raise QueueingError(
                f"--kueue-lanes: {entry!r} is not name=minPriority:value (e.g. batch=0:1000)"
            ) from None
    return validate_lanes(lanes)


def validate_lanes(lanes: Sequence[Lane]) -> tuple[Lane, ...]:
    """The lanes sorted highest first, after checking that they can work: names are WorkloadPriority
    Class names, each used once; thresholds distinct and within the API's priority range; the lowest
    lane takes every priority down to the API's minimum (no run is left without a lane); a higher lane
    has a higher value (so it may preempt the lanes below)."""
    if not lanes:
        raise QueueingError("no priority lanes: give at least one (e.g. batch=-1000:1000)")
    ordered = tuple(sorted(lanes, key=lambda lane: lane.min_priority, reverse=True))
    names = [lane.name for lane in ordered]
    for lane in ordered:
        if len(lane.name) > 253 or not _DNS_SUBDOMAIN.match(lane.name):
            raise QueueingError(f"lane {lane.name!r}: not a valid WorkloadPriorityClass name (DNS subdomain)")
        if names.count(lane.name) > 1:
            raise QueueingError(f"lane {lane.name!r} is given twice")
        if not PRIORITY_MIN <= lane.min_priority <= PRIORITY_MAX:
            raise QueueingError(
                f"lane {lane.name!r}: minPriority {lane.min_priority} is outside the priorities a run may "
                f"have ({PRIORITY_MIN}..{PRIORITY_MAX})"
            )
    for higher, lower in itertools.pairwise(ordered):
        if higher.min_priority == lower.min_priority:
            raise QueueingError(
                f"lanes {higher.name!r} and {lower.name!r} start at the same priority {lower.min_priority}"
            )
        if higher.value <= lower.value:
            raise QueueingError(
                f"lane {higher.name!r} (value {higher.value}) must have a higher value than the lane below "
                f"it, {lower.name!r} (value {lower.value}), or it could never preempt it"
            )
    if ordered[-1].min_priority != PRIORITY_MIN:
        raise QueueingError(
            f"priorities {PRIORITY_MIN}..{ordered[-1].min_priority - 1} fall in no lane: the lowest lane "
            f"({ordered[-1].name!r}) must start at {PRIORITY_MIN}"
        )
    return ordered


def lane_for(priority: int, lanes: Sequence[Lane]) -> Lane:
    """The lane of a run of `priority` (lanes as `validate_lanes` returns them, highest first)."""
    for lane in lanes:
        if priority >= lane.min_priority:
            return lane
    # validate_lanes makes the lowest lane start at the API's minimum, below which no run can be.
    raise QueueingError(f"priority {priority} falls in no lane of {[lane.name for lane in lanes]}")


def validate_queue_name(template: str) -> str:
    """Check a LocalQueue naming rule (the operator's --kueue-queue-name): only `{team}` and
    `{namespace}` as fields, and a valid name for a team of one letter."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise QueueingError(f"--kueue-queue-name {template!r}: {exc}") from None
    unknown = fields - QUEUE_NAME_FIELDS
    if unknown:
        raise QueueingError(
            f"--kueue-queue-name {template!r}: unknown field(s) {', '.join(sorted(unknown))}; "
            f"it may use {{team}} and {{namespace}}"
        )
    sample = template.format(team="a", namespace="a")
    if not _DNS_LABEL.match(sample):
        raise QueueingError(
            f"--kueue-queue-name {template!r} does not make a LocalQueue name (lowercase letters, digits, "
            "'-'), e.g. {team} or jesus-{team}"
        )
    return template


def queue_name(template: str, *, team: str, namespace: str) -> str:
    """The LocalQueue a run's Job names. QueueingError when the rule makes no valid name for this
    team (too long, say): the run cannot be queued and says why."""
    name = template.format(team=team, namespace=namespace)
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise QueueingError(
            f"the LocalQueue name {name!r} made by --kueue-queue-name {template!r} for team {team!r} "
            "is not a valid name (at most 63 lowercase letters, digits and '-')"
        )
    return name


@dataclass(frozen=True)
class QueueSettings:
    """How runner Jobs and serving Deployments go through Kueue."""

    queue_name: str = DEFAULT_QUEUE_NAME
    lanes: tuple[Lane, ...] = DEFAULT_LANES
    serving_lane: str | None = None
    """The lane of self-hosted models' serving Deployments; None: the highest lane."""

    def __post_init__(self) -> None:
        names = [lane.name for lane in self.lanes]
        if self.serving_lane is not None and self.serving_lane not in names:
            raise QueueingError(
                f"--kueue-serving-lane {self.serving_lane!r} is not one of the lanes ({', '.join(names)})"
            )


def job_labels(settings: QueueSettings, *, team: str, namespace: str, priority: int) -> dict[str, str]:
    """The labels that hand a runner Job to Kueue: its LocalQueue and its lane's priority class."""
    return {
        LABEL_QUEUE_NAME: queue_name(settings.queue_name, team=team, namespace=namespace),
        LABEL_PRIORITY_CLASS: lane_for(priority, settings.lanes).name,
    }


def serving_team(labels: Mapping[str, str] | None, namespace: str) -> str:
    """Whose quota a ModelAdapter's serving Deployment uses: the team its `jesus.dev/team` label names,
    else its namespace's (a self-hosted model serves every team whose routes reach it, so no run's
    team pays for its GPUs)."""
    return (labels or {}).get(LABEL_TEAM) or namespace


def serving_labels(settings: QueueSettings, *, team: str, namespace: str) -> dict[str, str]:
    """The labels that hand a serving Deployment (and, through Kueue's webhook, its pods) to Kueue: the
    team's LocalQueue and the serving lane (the highest unless configured: preempting a model server
    costs every run that calls it a reload)."""
    lane = settings.serving_lane or settings.lanes[0].name
    return {
        LABEL_QUEUE_NAME: queue_name(settings.queue_name, team=team, namespace=namespace),
        LABEL_PRIORITY_CLASS: lane,
    }


def build_priority_classes(lanes: Sequence[Lane]) -> list[JsonObject]:
    """The WorkloadPriorityClasses of `lanes` (the chart installs them; tests apply these)."""
    return [
        {
            "apiVersion": WORKLOAD_API_VERSION,
            "kind": "WorkloadPriorityClass",
            "metadata": {"name": lane.name, "labels": {"app.kubernetes.io/part-of": "jesus"}},
            "value": lane.value,
            "description": f"Jesus lane {lane.name}: AgentRuns of priority {lane.min_priority} and up",
        }
        for lane in lanes
    ]


# --- what Kueue says ------------------------------------------------------------------------------


class QueueState(enum.StrEnum):
    """Where the runner Job stands with Kueue."""

    QUEUED = "Queued"
    """Not admitted: waiting for quota, for its LocalQueue, or for Kueue to notice it."""
    ADMITTED = "Admitted"
    """Kueue admitted it; the Job runs (or is about to)."""
    PREEMPTED = "Preempted"
    """Kueue evicted it after admitting it (preempted for a higher lane, a reclaiming team, ...)."""


NO_WORKLOAD = "WorkloadPending"


@dataclass(frozen=True)
class QueueObservation:
    """What Kueue says about one runner Job."""

    state: QueueState
    reason: str
    message: str
    cluster_queue: str = ""
    evictions: int = 0
    details: dict[str, Any] = field(default_factory=dict)


def _conditions(workload: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    status = workload.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    return {str(c["type"]): c for c in conditions if c.get("type")}


def _reason(value: object, fallback: str) -> str:
    text = str(value or "")
    return text if _REASON.match(text) and len(text) <= 1024 else fallback


def evictions(workload: Mapping[str, Any]) -> int:
    """How often Kueue has evicted the Workload (its scheduling statistics; a lasting count)."""
    stats = (workload.get("status") or {}).get("schedulingStats") or {}
    total = 0
    for entry in stats.get("evictions") or []:
        count = entry.get("count") if isinstance(entry, Mapping) else None
        if isinstance(count, int) and count > 0:
            total += count
    return total


def observe_workload(job: Mapping[str, Any], workloads: Sequence[Mapping[str, Any]]) -> QueueObservation:
    """What Kueue says about `job` through its Workload (of `workloads`, the one whose job-uid label is
    the Job's UID). Evicted after admission is PREEMPTED whatever the cause: the attempt's pods are gone."""
    uid = (job.get("metadata") or {}).get("uid")
    mine = [w for w in workloads if ((w.get("metadata") or {}).get("labels") or {}).get(LABEL_JOB_UID) == uid]
    suspended = bool((job.get("spec") or {}).get("suspend"))
    if not mine:
        if not suspended:
            # Kueue admitted and unsuspended it, and its Workload is gone already (finished, collected).
            return QueueObservation(QueueState.ADMITTED, "Admitted", "admitted by Kueue")
        return QueueObservation(
            QueueState.QUEUED, NO_WORKLOAD, "the Job waits for Kueue to create its Workload"
        )
    workload = mine[0]
    conditions = _conditions(workload)
    count = evictions(workload)
    evicted = conditions.get("Evicted")
    if count or (evicted is not None and evicted.get("status") == "True"):
        if evicted is None or evicted.get("status") != "True":
            evicted = conditions.get("Preempted")
        cause = evicted
        reason = _reason((cause or {}).get("reason"), "Preempted")
        message = str((cause or {}).get("message") or "evicted by Kueue")
        return QueueObservation(QueueState.PREEMPTED, reason, message[:1024], evictions=max(count, 1))
    admitted = conditions.get("Admitted")
    cluster_queue = str(((workload.get("status") or {}).get("admission") or {}).get("clusterQueue") or "")
    if admitted is not None and admitted.get("status") == "True":
        where = f" to ClusterQueue {cluster_queue}" if cluster_queue else ""
        return QueueObservation(QueueState.ADMITTED, "Admitted", f"admitted by Kueue{where}", cluster_queue)
    reserved = conditions.get("QuotaReserved")
    if reserved is not None:
        reason = _reason(reserved.get("reason"), "Pending")
        message = str(reserved.get("message") or "waiting for quota")
    else:
        reason, message = "Pending", "waiting for Kueue to consider the Workload"
    return QueueObservation(QueueState.QUEUED, reason, message[:1024], cluster_queue)


def gated(pod: Mapping[str, Any]) -> bool:
    """Whether Kueue holds `pod` back (its admission gate is on it) and it is not on its way out."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(isinstance(g, Mapping) and g.get("name") == ADMISSION_GATE for g in gates)


def observe_gated_pods(
    pods: Sequence[Mapping[str, Any]], workloads: Sequence[Mapping[str, Any]]
) -> QueueObservation | None:
    """What Kueue says about a Deployment's pods (pod integration: one Workload per pod, labelled with
    the pod's UID): None when none waits for Kueue (a gated pod whose Workload holds its quota is only
    about to be released); else QUEUED with the reason and message of the first waiting pod's Workload
    (by pod name), and how many of the live pods wait."""
    by_uid = {((w.get("metadata") or {}).get("labels") or {}).get(LABEL_JOB_UID): w for w in workloads}
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    waiting: list[tuple[str, str, str]] = []  # pod name, reason, message
    for pod in sorted(live, key=lambda p: str(p["metadata"].get("name", ""))):
        if not gated(pod):
            continue
        workload = by_uid.get(pod["metadata"].get("uid"))
        reserved = _conditions(workload).get("QuotaReserved") if workload is not None else None
        if reserved is not None and reserved.get("status") == "True":
            continue
        if workload is None:
            reason, message = NO_WORKLOAD, "waiting for Kueue to create its Workload"
        elif reserved is not None:
            reason = _reason(reserved.get("reason"), "Pending")
            message = str(reserved.get("message") or "waiting for quota")
        else:
            reason, message = "Pending", "waiting for Kueue to consider the Workload"
        waiting.append((str(pod["metadata"]["name"]), reason, message))
    if not waiting:
        return None
    name, reason, message = waiting[0]
    text = f"{len(waiting)}/{len(live)} serving pods wait in Kueue: {message} (pod {name})"
    return QueueObservation(QueueState.QUEUED, reason, text[:1024])
