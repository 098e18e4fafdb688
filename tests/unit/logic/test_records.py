"""The archive record of a finished run, the decisions a status change shows, and the audit hash chain:
pure, with exact figures."""

from __future__ import annotations

import dataclasses
import json

import pytest
from tests.builders.records import DIGEST, TRACE, decision, finished_run

from jesus.api.agentrun import AgentRunStatus
from jesus.controllers.agentrun.handlers import unarchived
from jesus.logic.records import (
    GENESIS_HASH,
    KEY_LIMIT,
    ArchiveRecordError,
    DecisionAction,
    build_run_record,
    canonical_json,
    chain,
    clean_text,
    decisions,
    needs_archiving,
    row_hash,
    verify_chain,
)

NOW = "2026-12-01T00:00:00Z"


def test_a_finished_run_becomes_columns_calls_and_its_whole_record() -> None:
    obj = finished_run("r1", uid="u-1", calls=3)
    record = build_run_record(obj)
    assert (record.uid, record.namespace, record.name, record.phase) == ("u-1", "team-a", "r1", "Succeeded")
    assert (record.team, record.user) == ("ml", "ada@example.com")
    assert (record.cost_micros, record.input_tokens, record.output_tokens) == (4500, 303, 63)
    assert (record.spec_digest, record.trace_id, record.attempts) == (DIGEST, TRACE, 1)
    assert [c.adapter for c in record.calls] == ["backup", "primary", "primary"]
    assert record.calls[0].fallbacks == (("primary", "RateLimited"),)
    assert record.calls[1].fallbacks == ()
    document = json.loads(record.document_json)
    assert document["spec"] == obj["spec"]
    assert document["status"]["policy"]["warnings"] == ["no data classification"]
    assert document["status"]["budgetReservations"][0]["amountMicros"] == 500000
    assert document["status"]["artifacts"][0]["uri"] == "file:///out/result.json"
    # Kopf's bookkeeping is not the run's; a user's annotation is.
    assert document["metadata"]["annotations"] == {"note": "kept"}


def test_the_archived_condition_is_left_out_of_the_record() -> None:
    obj = finished_run(uid="u-2")
    obj["status"]["conditions"].append(
        {"type": "Archived", "status": "False", "reason": "ArchivePending", "lastTransitionTime": NOW}
    )
    types = [c["type"] for c in build_run_record(obj).document["status"]["conditions"]]
    assert types == ["Admitted", "Succeeded"]


def test_a_denied_run_without_a_digest_is_archived_under_its_current_specs_digest() -> None:
    obj = finished_run(uid="u-3", phase="Denied", calls=0)
    del obj["status"]["specDigest"]
    record = build_run_record(obj)
    assert record.spec_digest.startswith("sha256:") and record.spec_digest != DIGEST
    assert record.calls == ()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda o: o["metadata"].pop("uid"), "metadata.uid"),
        (lambda o: o["status"].update(phase="Running"), "status.phase"),
    ],
)
def test_a_run_without_uid_or_not_finished_is_refused_naming_the_field(change: object, field: str) -> None:
    obj = finished_run("broken")
    change(obj)  # type: ignore[operator]
    with pytest.raises(ArchiveRecordError, match=rf"AgentRun team-a/broken: {field}"):
        build_run_record(obj)


def test_hostile_text_nul_surrogates_and_unicode_is_stored_the_same_on_every_backend() -> None:
    hostile = "nul\x00here \ud800 lone, ✓ ünïcode, 🚀 " + "x" * 3000
    obj = finished_run(uid="u-4", message=hostile[:4096])
    record = build_run_record(obj)
    message = record.document["status"]["message"]
    assert "\x00" not in message and "\ufffd" in message
    assert "✓ ünïcode, 🚀" in message
    record.document_json.encode("utf-8")  # no surrogate left to fail the encoding
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("plain") == "plain"


def test_canonical_json_ignores_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'


def _status(obj: dict[str, object]) -> AgentRunStatus:
    return AgentRunStatus.model_validate(obj["status"])


def test_a_finished_runs_history_is_admit_and_settle() -> None:
    obj = finished_run(uid="u-5")
    found = decisions(None, _status(obj), namespace="team-a", name="run", uid="u-5", now=NOW)
    assert [(d.action, d.key, d.at) for d in found] == [
        (DecisionAction.ADMIT, "u-5/admit", "2026-11-30T10:00:00Z"),
        (DecisionAction.SETTLE, "u-5/settle", "2026-11-30T10:00:09Z"),
    ]
    assert found[0].detail["holds"] == [{"namespace": "team-a", "budget": "team", "amountMicros": 500000}]
    assert found[1].detail == {
        "costMicros": 3000,
        "budgets": [{"namespace": "team-a", "budget": "team", "heldMicros": 500000}],
    }


def test_a_status_change_shows_only_the_new_decisions() -> None:
    obj = finished_run(uid="u-6")
    after = _status(obj)
    running = after.model_copy(
        update={
            "phase": "Running",
            "budget_reservations": [
                r.model_copy(update={"settled": False}) for r in after.budget_reservations or []
            ],
        }
    )
    found = decisions(running, after, namespace="team-a", name="run", uid="u-6", now=NOW)
    assert [d.action for d in found] == [DecisionAction.SETTLE]
    assert decisions(after, after, namespace="team-a", name="run", uid="u-6", now=NOW) == []


def test_deny_stop_and_hold_are_decisions() -> None:
    denied = finished_run(uid="u-7", phase="Denied", calls=0)
    denied["status"].update(policy={"allowed": False, "reasons": ["team over quota"]}, budgetReservations=[])
    del denied["status"]["specDigest"]
    found = decisions(None, _status(denied), namespace="n", name="r", uid="u-7", now=NOW)
    assert [(d.action, d.detail["policyReasons"]) for d in found] == [
        (DecisionAction.DENY, ["team over quota"])
    ]

    stopped = finished_run(uid="u-8", phase="Failed")
    stopped["status"]["conditions"][1] = {
        "type": "Failed", "status": "True", "reason": "StoppedByBudget", "lastTransitionTime": NOW,
    }  # fmt: skip
    actions = [
        d.action for d in decisions(None, _status(stopped), namespace="n", name="r", uid="u-8", now=NOW)
    ]
    assert actions == [DecisionAction.ADMIT, DecisionAction.SETTLE, DecisionAction.STOP]

    waiting = AgentRunStatus.model_validate(
        {
            "phase": "Waiting",
            "conditions": [
                {
                    "type": "BudgetReserved",
                    "status": "False",
                    "reason": "BudgetExceeded",
                    "lastTransitionTime": NOW,
                }
            ],
        }
    )
    held = decisions(AgentRunStatus(), waiting, namespace="n", name="r", uid="u-9", now=NOW)
    assert [(d.action, d.key) for d in held] == [(DecisionAction.HOLD, "u-9/hold/BudgetExceeded")]
    assert decisions(waiting, waiting, namespace="n", name="r", uid="u-9", now=NOW) == []
    assert decisions(None, waiting, namespace="n", name="r", uid="", now=NOW) == []


def test_chain_links_each_row_to_the_one_before() -> None:
    rows = chain([decision("u", n=i) for i in range(3)], 0, GENESIS_HASH, NOW)
    assert [r.id for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == GENESIS_HASH
    assert rows[1].prev_hash == rows[0].hash and rows[2].prev_hash == rows[1].hash
    assert rows[0].hash == row_hash(1, NOW, rows[0].content, GENESIS_HASH)
    assert verify_chain(rows) is None
    # Pinned: the hash is sha256 over the previous hash, a newline, and the canonical JSON.
    assert len(rows[0].hash) == 64 and rows[0].hash != rows[1].hash


def test_verify_names_the_first_altered_deleted_or_inserted_row() -> None:
    rows = chain([decision("u", n=i) for i in range(5)], 0, GENESIS_HASH, NOW)
    altered = list(rows)
    altered[2] = dataclasses.replace(rows[2], content={**rows[2].content, "at": "2020-01-01T00:00:00Z"})
    broken = verify_chain(altered)
    assert broken is not None and broken.row_id == 3 and "altered" in broken.problem

    deleted = [r for r in rows if r.id != 2]
    broken = verify_chain(deleted)
    assert broken is not None and broken.row_id == 3 and "row 2 is missing" in broken.problem

    # Inserted after row 2, the later rows renumbered to make room: row 4 (the old 3) no longer links.
    forged = chain([decision("u", n=99)], 2, rows[1].hash, NOW)[0]
    shifted = [dataclasses.replace(r, id=r.id + 1) for r in rows[2:]]
    broken = verify_chain([*rows[:2], forged, *shifted])
    assert broken is not None and broken.row_id == 4 and "prev_hash" in broken.problem


def test_a_long_hold_reason_keeps_the_key_short_and_stable() -> None:
    long_reason = "R" * 1024
    entry = decision("u-10", DecisionAction.HOLD)
    entry = dataclasses.replace(entry, discriminator=long_reason)
    assert len(entry.key) <= KEY_LIMIT and entry.key.startswith("u-10/hold/sha256:")
    assert entry.key == dataclasses.replace(entry, at="later").key
    assert dataclasses.replace(entry, discriminator="BudgetExceeded").key == "u-10/hold/BudgetExceeded"


@pytest.mark.parametrize(
    ("phase", "settled", "archived", "due"),
    [
        ("Succeeded", True, None, True),
        ("Denied", None, None, True),
        ("Failed", False, None, False),  # settle first: the cost is not final
        ("Running", True, None, False),
        ("Succeeded", True, "True", False),
        ("Succeeded", True, "False", True),  # ArchivePending: still due
    ],
)
def test_a_run_is_due_for_the_archive_once_finished_settled_and_not_archived(
    phase: str, settled: bool | None, archived: str | None, due: bool
) -> None:
    status = finished_run(phase=phase)["status"]
    if settled is None:
        status["budgetReservations"] = []
    else:
        status["budgetReservations"][0]["settled"] = settled
    if archived is not None:
        status["conditions"].append(
            {"type": "Archived", "status": archived, "reason": "Archived", "lastTransitionTime": NOW}
        )
    assert needs_archiving(AgentRunStatus.model_validate(status)) is due


@pytest.mark.parametrize("due", [True, False])
def test_the_handlers_filter_agrees_with_needs_archiving(due: bool) -> None:
    status = finished_run()["status"]
    if not due:
        status["conditions"].append(
            {"type": "Archived", "status": "True", "reason": "Archived", "lastTransitionTime": NOW}
        )
    assert unarchived(status) is needs_archiving(AgentRunStatus.model_validate(status)) is due
