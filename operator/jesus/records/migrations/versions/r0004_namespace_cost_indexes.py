"""The read API's cost sums over one namespace (or a few) read an index led by the namespace: the
indexes of 0002 lead with the completion time, so a week of one namespace scanned the week of every
namespace (7 days of 20 namespaces at 100,000 runs: 1.56 -> 0.26 ms by model on SQLite).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

RUN_COSTS = [
    "namespace",
    "completion_time",
    "team",
    "owner_user",
    "cost_micros",
    "input_tokens",
    "output_tokens",
]
CALL_COSTS = [
    "namespace",
    "completion_time",
    "model",
    "adapter",
    "run_uid",
    "cost_micros",
    "input_tokens",
    "output_tokens",
]


def upgrade() -> None:
    op.create_index("ix_runs_namespace_costs", "runs", RUN_COSTS)
    op.create_index("ix_run_calls_namespace_costs", "run_calls", CALL_COSTS)


def downgrade() -> None:
    op.drop_index("ix_run_calls_namespace_costs", "run_calls")
    op.drop_index("ix_runs_namespace_costs", "runs")
