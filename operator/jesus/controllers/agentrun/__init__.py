"""The AgentRun reconciler: a thin loop over `jesus.logic.admission` and `jesus.logic.lifecycle`.

- `reconcile`: the level-based reconcile and what it performs;
- `admission`: observing admission's inputs, the policy engine, the holds, the verdict in status;
- `attempts`: the runner Job of each attempt, its outcome, settlement;
- `holds`: the run's money in the Budgets (through the ledger);
- `draft`: the status being built, with its conditions and Events;
- `handlers`: the Kopf wiring and the work queue's passes.
"""

from __future__ import annotations

from jesus.controllers.agentrun.handlers import register
from jesus.controllers.agentrun.reconcile import reconcile_run, release_on_delete, request, wake_for_budget

__all__ = ["reconcile_run", "register", "release_on_delete", "request", "wake_for_budget"]
