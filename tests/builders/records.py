"""Finished AgentRuns as the API server returns them, for the archive's tests: with calls, fallbacks,
holds and artifacts, or with whatever hostile text a test puts in."""

from __future__ import annotations

import uuid
from typing import Any

from tests.builders.agentrun import agent_run

from jesus.logic.records import Decision, DecisionAction

Obj = dict[str, Any]

DIGEST = "sha256:" + "ab" * 32
TRACE = "0af7651916cd43dd8448eb211c80319c"
T0 = "2026-11-30T10:00:00Z"


def finished_run(
    name: str = "run",
    *,
    uid: str | None = None,
    phase: str = "Succeeded",
    calls: int = 2,
    message: str = "succeeded after 1 attempt(s): done; cost 0.003000",
    namespace: str = "team-a",
) -> Obj:
    """A run that ended in `phase`, with `calls` model calls (the first fell back once)."""
    run = agent_run(name, namespace=namespace)
    run["metadata"].update(
        uid=uid or str(uuid.uuid4()),
        generation=1,
        creationTimestamp=T0,
        resourceVersion="42",
        annotations={"kopf.zalando.org/last-handled-configuration": "{}", "note": "kept"},
    )
    cost = 1500 * calls
    run["status"] = {
        "phase": phase,
        "observedGeneration": 1,
        "message": message,
        "policy": {"allowed": True, "reasons": [], "warnings": ["no data classification"]},
        "budgetReservations": [
            {"namespace": namespace, "budget": "team", "amountMicros": 500000, "settled": True}
        ],
        "attempts": [
            {
                "number": 1,
                "jobName": f"{name}-1",
                "outcome": "Succeeded" if phase == "Succeeded" else "Failed",
                "startTime": "2026-11-30T10:00:01Z",
                "completionTime": "2026-11-30T10:00:09Z",
            }
        ],
        "calls": [
            {
                "adapter": "primary" if i else "backup",
                "model": "m-small",
                "usage": {"inputTokens": 100 + i, "outputTokens": 20 + i},
                "costMicros": 1500,
                "durationMilliseconds": 300,
                **({"fallbacks": [{"adapter": "primary", "errorClass": "RateLimited"}]} if i == 0 else {}),
            }
            for i in range(calls)
        ]
        or None,
        "usage": {
            "inputTokens": sum(100 + i for i in range(calls)),
            "outputTokens": sum(20 + i for i in range(calls)),
        },
        "costMicros": cost,
        "traceId": TRACE,
        "artifacts": [{"name": "result.json", "uri": "file:///out/result.json", "sizeBytes": 12}],
        "specDigest": DIGEST,
        "startTime": "2026-11-30T10:00:01Z",
        "completionTime": "2026-11-30T10:00:09Z",
        "conditions": [
            {"type": "Admitted", "status": "True", "reason": "Admitted", "message": "ok",
             "lastTransitionTime": "2026-11-30T10:00:00Z"},
            {"type": "Succeeded", "status": "True", "reason": "JobSucceeded", "message": "done",
             "lastTransitionTime": "2026-11-30T10:00:09Z"},
        ],
    }  # fmt: skip
    if run["status"]["calls"] is None:
        del run["status"]["calls"]
    return run


def decision(uid: str, action: DecisionAction = DecisionAction.ADMIT, n: int = 0) -> Decision:
    """An audit entry for run `uid` (`n` tells several of one action apart)."""
    return Decision(action, "team-a", "run", uid, T0, {"n": n, "note": "ünïcode ✓"}, str(n) if n else "")
