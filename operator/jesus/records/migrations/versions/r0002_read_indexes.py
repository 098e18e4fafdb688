"""Indexes for the read API's lists (newest first, by namespace) and its cost sums by model.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_runs_completion_uid", "runs", ["completion_time", "uid"])
    op.create_index("ix_runs_namespace_completion_uid", "runs", ["namespace", "completion_time", "uid"])
    op.create_index("ix_run_calls_model", "run_calls", ["model"])
    op.create_index("ix_audit_log_namespace_id", "audit_log", ["namespace", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_namespace_id", "audit_log")
    op.drop_index("ix_run_calls_model", "run_calls")
    op.drop_index("ix_runs_namespace_completion_uid", "runs")
    op.drop_index("ix_runs_completion_uid", "runs")
