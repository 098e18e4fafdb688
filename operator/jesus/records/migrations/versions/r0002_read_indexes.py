"""The read API's indexes: lists newest first (everywhere, by namespace), cost sums read from an index
alone, and each call's namespace and completion time beside it (filled in from its run).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

RUN_COSTS = [
    "completion_time",
    "namespace",
    "team",
    "owner_user",
    "cost_micros",
    "input_tokens",
    "output_tokens",
]
CALL_COSTS = [
    "completion_time",
    "namespace",
    "model",
    "adapter",
    "run_uid",
    "cost_micros",
    "input_tokens",
    "output_tokens",
]


def upgrade() -> None:
    with op.batch_alter_table("run_calls") as batch:
        batch.add_column(sa.Column("namespace", sa.String(63)))
        batch.add_column(sa.Column("completion_time", sa.String(40)))
    op.execute(
        "UPDATE run_calls SET "
        "namespace = (SELECT runs.namespace FROM runs WHERE runs.uid = run_calls.run_uid), "
        "completion_time = (SELECT runs.completion_time FROM runs WHERE runs.uid = run_calls.run_uid)"
    )
    op.create_index("ix_runs_completion_uid", "runs", ["completion_time", "uid"])
    op.create_index("ix_runs_namespace_completion_uid", "runs", ["namespace", "completion_time", "uid"])
    op.create_index("ix_runs_costs", "runs", RUN_COSTS)
    op.create_index("ix_run_calls_costs", "run_calls", CALL_COSTS)
    op.create_index("ix_audit_log_namespace_id", "audit_log", ["namespace", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_namespace_id", "audit_log")
    op.drop_index("ix_run_calls_costs", "run_calls")
    op.drop_index("ix_runs_costs", "runs")
    op.drop_index("ix_runs_namespace_completion_uid", "runs")
    op.drop_index("ix_runs_completion_uid", "runs")
    with op.batch_alter_table("run_calls") as batch:
        batch.drop_column("completion_time")
        batch.drop_column("namespace")
