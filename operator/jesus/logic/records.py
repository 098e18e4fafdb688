"""The durable records of runs, as pure data: a finished run's archive record, the operator's decisions
that go to the audit log, and the hash chain that makes the log tamper-evident.

Nothing here touches a database (`jesus.records` does); what is built here is what is stored, so the
record of a run and the hash of an audit row are table-tested without one. See docs/records.md.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jesus.api.agentrun import AgentRun, AgentRunConditionType, AgentRunPhase, AgentRunReason, AgentRunStatus
from jesus.api.objects import JsonObject, spec_digest

RECORD_VERSION = 1
"""The shape of an archived run's document; bumped when a field changes meaning."""

GENESIS_HASH = "0" * 64
"""The `prev_hash` of the audit log's first row."""

KEY_LIMIT = 400
"""The longest audit entry key (the column's width)."""

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


class ArchiveRecordError(ValueError):
    """A run that cannot be archived (no UID, not finished); the message names the run and the field."""


def clean_text(value: str) -> str:
    """`value` as every backend stores it: NUL (PostgreSQL refuses it in text) and unpaired surrogates
    (not UTF-8) become U+FFFD, so SQLite and PostgreSQL hold the same record and the same hash."""
    if "\x00" in value:
        value = value.replace("\x00", REPLACEMENT)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # One for one, so a field keeps its length (and the schema's maxLength still holds).
        value = _SURROGATE.sub(REPLACEMENT, value)
    return value


def clean_json(value: Any) -> Any:
    """`value` (JSON data) with every string, keys included, passed through `clean_text`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """The one serialization the archive stores and the audit chain hashes: sorted keys, no whitespace,
    UTF-8 text (control characters escaped by JSON itself)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass(frozen=True)
class CallRow:
    """One model call of a run, as a row of the calls table."""

    index: int
    adapter: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_micros: int
    duration_milliseconds: int | None
    fallbacks: tuple[tuple[str, str], ...]
    """(adapter, error class) of each adapter that failed first, in order."""


@dataclass(frozen=True)
class RunRecord:
    """A finished run as the archive stores it: columns to query by, and the whole record as JSON."""

    uid: str
    namespace: str
    name: str
    phase: str
    team: str
    user: str
    created: str | None
    start_time: str | None
    completion_time: str | None
    spec_digest: str
    trace_id: str | None
    cost_micros: int
    input_tokens: int
    output_tokens: int
    attempts: int
    calls: tuple[CallRow, ...]
    document: JsonObject
    """Everything: metadata that identifies the run, the spec, the status as the operator left it."""

    @property
    def document_json(self) -> str:
        """The document's canonical JSON (what the archive's `record` column holds)."""
        return canonical_json(self.document)


def _metadata(obj: JsonObject) -> JsonObject:
    metadata = obj.get("metadata") or {}
    kept = ("name", "namespace", "uid", "generation", "creationTimestamp", "labels", "annotations")
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        # Kopf's bookkeeping and kubectl's copy of the object say nothing about the run.
        if not k.startswith(("jesus.dev/", "kopf.zalando.org/", "kubectl.kubernetes.io/"))
    }
    picked = {k: metadata[k] for k in kept if k in metadata and k != "annotations"}
    if annotations:
        picked["annotations"] = annotations
    return picked


def build_run_record(obj: JsonObject) -> RunRecord:
    """The archive record of the finished AgentRun `obj` (as the API server returned it)."""
    obj = clean_json(obj)
    run = AgentRun.model_validate(obj)
    metadata = run.metadata
    where = f"AgentRun {metadata.namespace}/{metadata.name}"
    if not metadata.uid:
        raise ArchiveRecordError(f"{where}: metadata.uid is empty; the archive keys runs by UID")
    status = run.status or AgentRunStatus()
    if status.phase is None or not status.phase.terminal:
        raise ArchiveRecordError(f"{where}: status.phase is {status.phase}, not a final phase")
    calls = tuple(
        CallRow(
            index=i,
            adapter=c.adapter,
            model=c.model,
            input_tokens=c.usage.input_tokens,
            output_tokens=c.usage.output_tokens,
            cost_micros=c.cost_micros,
            duration_milliseconds=c.duration_milliseconds,
            fallbacks=tuple((f.adapter, f.error_class) for f in c.fallbacks or []),
        )
        for i, c in enumerate(status.calls or [])
    )
    usage = status.usage
    stored = dict(obj.get("status") or {})
    # The Archived condition is about the archive, not the run: leave it out of the run's record.
    conditions = [c for c in stored.get("conditions") or [] if c.get("type") != "Archived"]
    if conditions or "conditions" in stored:
        stored["conditions"] = conditions
    document: JsonObject = {
        "recordVersion": RECORD_VERSION,
        "apiVersion": obj.get("apiVersion", run.api_version),
        "kind": "AgentRun",
        "metadata": _metadata(obj),
        "spec": obj.get("spec") or {},
        "status": stored,
    }
    return RunRecord(
        uid=metadata.uid,
        namespace=metadata.namespace or "",
        name=metadata.name or "",
        phase=status.phase.value,
        team=run.spec.owner.team,
        user=run.spec.owner.user,
        created=metadata.creation_timestamp,
        start_time=status.start_time,
        completion_time=status.completion_time,
        # The digest admission recorded (the spec the run executed); a run denied before it has
        # none, and its current spec is the one that was refused.
        spec_digest=status.spec_digest or spec_digest(obj.get("spec") or {}),
        trace_id=status.trace_id,
        cost_micros=status.cost_micros or 0,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        attempts=len(status.attempts or []),
        calls=calls,
        document=document,
    )


def needs_archiving(status: AgentRunStatus) -> bool:
    """Whether a run with `status` is due for the archive: finished, its holds settled (settling is the
    last thing that changes its figures), and not yet marked Archived."""
    return (
        status.phase is not None
        and status.phase.terminal
        and all(r.settled for r in status.budget_reservations or [])
        and not any(
            c.type == AgentRunConditionType.ARCHIVED and c.status.value == "True"
            for c in status.conditions or []
        )
    )


class DecisionAction(enum.StrEnum):
    """What the operator decided about a run (the audit log's `action` column)."""

    ADMIT = "admit"
    DENY = "deny"
    HOLD = "hold"
    """Left waiting (dependencies, money, the policy engine, the route), with the reason."""
    SETTLE = "settle"
    STOP = "stop"
    """Stopped by a Budget that ran out while the run was running."""
    ARCHIVE = "archive"
    """The run's record was written to the archive (not a decision about the run, but logged alike)."""
    EXPIRE_ARTIFACTS = "expire-artifacts"
    """The run's stored artifacts were deleted: its retention had passed (docs/artifacts.md)."""


@dataclass(frozen=True)
class Decision:
    """One audit log entry before it is chained: who, what, when, why."""

    action: DecisionAction
    namespace: str
    name: str
    uid: str
    at: str
    """When it was decided (the condition's transition time, or the archive's clock)."""
    detail: JsonObject = field(default_factory=dict)
    discriminator: str = ""
    """Tells apart two entries of one action for one run (a hold's reason)."""

    @property
    def key(self) -> str:
        """Unique per fact: an entry is logged once however often it is offered (replays, restarts).
        At most KEY_LIMIT characters: a long discriminator (a reason may be 1 KiB) is kept as its digest."""
        tail = f"/{self.discriminator}" if self.discriminator else ""
        if len(tail) > 64:
            tail = "/sha256:" + hashlib.sha256(self.discriminator.encode()).hexdigest()
        return f"{clean_text(self.uid)[:253]}/{self.action.value}{tail}"

    def content(self) -> JsonObject:
        """What the chain hashes of this entry (with the row's position and predecessor)."""
        content: JsonObject = clean_json(
            {
                "key": self.key,
                "action": self.action.value,
                "namespace": self.namespace,
                "name": self.name,
                "uid": self.uid,
                "at": self.at,
                "detail": self.detail,
            }
        )
        return content


def _condition_time(status: AgentRunStatus, type_: str, fallback: str) -> str:
    for c in status.conditions or []:
        if c.type == type_:
            return c.last_transition_time
    return fallback


def decisions(
    before: AgentRunStatus | None, after: AgentRunStatus, *, namespace: str, name: str, uid: str, now: str
) -> list[Decision]:
    """The decisions a status change from `before` to `after` shows (all of them when `before` is
    None: a finished run's whole history, as far as its final status tells it)."""
    if not uid:
        return []
    prior = before or AgentRunStatus()
    found: list[Decision] = []

    def add(action: DecisionAction, at: str, detail: JsonObject, discriminator: str = "") -> None:
        found.append(Decision(action, namespace, name, uid, at, detail, discriminator))

    held = [
        {"namespace": r.namespace, "budget": r.budget, "amountMicros": r.amount_micros}
        for r in after.budget_reservations or []
    ]
    policy = after.policy
    reasons = list(policy.reasons or []) if policy is not None else []
    was_admitted = prior.spec_digest is not None
    if after.spec_digest is not None and not was_admitted:
        add(
            DecisionAction.ADMIT,
            _condition_time(after, "Admitted", now),
            {"holds": held, "specDigest": after.spec_digest, "policyReasons": reasons},
        )
    if after.phase is AgentRunPhase.DENIED and prior.phase is not AgentRunPhase.DENIED:
        add(
            DecisionAction.DENY,
            after.completion_time or now,
            {"policyReasons": reasons, "message": after.message or ""},
        )
    if after.phase is AgentRunPhase.WAITING and before is not None:
        reason = _waiting_reason(after)
        if prior.phase is not AgentRunPhase.WAITING or reason != _waiting_reason(prior):
            add(DecisionAction.HOLD, now, {"reason": reason, "message": after.message or ""}, reason)
    settled = [r for r in after.budget_reservations or [] if r.settled]
    was_settled = any(r.settled for r in prior.budget_reservations or [])
    if settled and not was_settled:
        add(
            DecisionAction.SETTLE,
            after.completion_time or now,
            {
                "costMicros": after.cost_micros or 0,
                "budgets": [
                    {"namespace": r.namespace, "budget": r.budget, "heldMicros": r.amount_micros}
                    for r in settled
                ],
            },
        )
    stopped = _stopped_by_budget(after)
    if stopped and not _stopped_by_budget(prior):
        add(
            DecisionAction.STOP,
            after.completion_time or now,
            {"reason": AgentRunReason.STOPPED_BY_BUDGET.value, "costMicros": after.cost_micros or 0},
        )
    return found


def _waiting_reason(status: AgentRunStatus) -> str:
    """The reason of the False condition that keeps the run waiting."""
    for c in status.conditions or []:
        if c.status.value == "False" and c.type not in ("Ready", "Running"):
            return c.reason
    for c in status.conditions or []:
        if c.status.value == "Unknown":
            return c.reason
    return "Waiting"


def _stopped_by_budget(status: AgentRunStatus) -> bool:
    return status.phase is AgentRunPhase.FAILED and any(
        c.type == "Failed" and c.reason == AgentRunReason.STOPPED_BY_BUDGET.value
        for c in status.conditions or []
    )


def archive_decision(record: RunRecord, now: str) -> Decision:
    """The audit entry of writing `record` to the archive: what was written, by digest."""
    return Decision(
        DecisionAction.ARCHIVE,
        record.namespace,
        record.name,
        record.uid,
        now,
        {
            "phase": record.phase,
            "recordDigest": "sha256:" + hashlib.sha256(record.document_json.encode()).hexdigest(),
            "costMicros": record.cost_micros,
        },
    )


# The audit chain.


@dataclass(frozen=True)
class AuditRow:
    """One stored audit row: its position, content, predecessor's hash and own hash."""

    id: int
    recorded_at: str
    content: JsonObject
    prev_hash: str
    hash: str


def row_hash(row_id: int, recorded_at: str, content: JsonObject, prev_hash: str) -> str:
    """The hash of an audit row: sha256 over the previous row's hash and the row's canonical JSON (its
    id and time included, so moving or renumbering a row breaks it too)."""
    body = canonical_json({"id": row_id, "recordedAt": recorded_at, "content": content})
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def chain(entries: Iterable[Decision], last_id: int, last_hash: str, recorded_at: str) -> list[AuditRow]:
    """`entries` as the rows that follow row `last_id` (whose hash is `last_hash`)."""
    rows: list[AuditRow] = []
    prev = last_hash
    for offset, entry in enumerate(entries, start=1):
        content = entry.content()
        digest = row_hash(last_id + offset, recorded_at, content, prev)
        rows.append(AuditRow(last_id + offset, recorded_at, content, prev, digest))
        prev = digest
    return rows


@dataclass(frozen=True)
class ChainBreak:
    """The first row where the chain does not hold, and what differs there."""

    row_id: int
    problem: str

    def __str__(self) -> str:
        return f"audit row {self.row_id}: {self.problem}"


class ChainVerifier:
    """Checks audit rows one at a time, in id order, so a long log is verified in batches.

    A changed row fails its own hash; a deleted one leaves a gap in the ids and its successor's
    `prev_hash` pointing at nothing; an inserted one breaks its successor's link (and renumbering to
    make room changes every later row's hash). Appending a well-formed row at the end is what a hash
    chain alone cannot see: the head row (`audit_head`) catches a careless one, and the head hash that
    `jesus audit verify` prints, kept elsewhere, catches the rest.
    """

    def __init__(self) -> None:
        self.last_id = 0
        self.last_hash = GENESIS_HASH
        self.rows = 0

    def check(self, row: AuditRow) -> ChainBreak | None:
        """The break `row` shows, or None (and `row` becomes the last one checked)."""
        if row.id != self.last_id + 1:
            gap = f"{self.last_id + 1}" if row.id == self.last_id + 2 else f"{self.last_id + 1}..{row.id - 1}"
            if row.id <= self.last_id:
                return ChainBreak(row.id, f"comes after row {self.last_id}: ids must rise by one")
            return ChainBreak(row.id, f"follows row {self.last_id}: row {gap} is missing (deleted)")
        if row.prev_hash != self.last_hash:
            return ChainBreak(
                row.id,
                f"prev_hash {row.prev_hash[:16]}... differs from row {self.last_id}'s hash "
                f"{self.last_hash[:16]}... (a row before it was deleted, inserted or rewritten)",
            )
        expected = row_hash(row.id, row.recorded_at, row.content, row.prev_hash)
        if row.hash != expected:
            return ChainBreak(
                row.id,
                f"hash {row.hash[:16]}... differs from {expected[:16]}..., the hash of its content "
                "(the row was altered)",
            )
        self.last_id, self.last_hash = row.id, row.hash
        self.rows += 1
        return None

    def check_head(self, last_id: int, last_hash: str) -> ChainBreak | None:
        """After the last row: whether the head the appenders keep agrees with it."""
        if (last_id, last_hash) == (self.last_id, self.last_hash):
            return None
        if last_id > self.last_id:
            return ChainBreak(
                self.last_id + 1, f"is missing: the head says the log ends at row {last_id} (rows deleted)"
            )
        return ChainBreak(
            last_id if last_id else self.last_id,
            f"the head says the log ends at row {last_id} with hash {last_hash[:16]}..., but it ends at "
            f"row {self.last_id} with {self.last_hash[:16]}... (rows appended or the head rewritten)",
        )


def verify_chain(rows: Iterable[AuditRow]) -> ChainBreak | None:
    """The first break in `rows` (in id order), or None when every row is where and what it was."""
    verifier = ChainVerifier()
    for row in rows:
        if (found := verifier.check(row)) is not None:
            return found
    return None
