"""The run archive (runs, run_calls) and the hash-chained audit log (audit_log, audit_head).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

GENESIS_HASH = "0" * 64


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("uid", sa.String(64), primary_key=True),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("team", sa.String(63), nullable=False),
        sa.Column("owner_user", sa.String(253), nullable=False),
        sa.Column("created", sa.String(40)),
        sa.Column("start_time", sa.String(40)),
        sa.Column("completion_time", sa.String(40)),
        sa.Column("spec_digest", sa.String(71), nullable=False),
        sa.Column("trace_id", sa.String(32)),
        sa.Column("cost_micros", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("record_version", sa.Integer, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("archived_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_runs_namespace_name", "runs", ["namespace", "name"])
    op.create_index("ix_runs_team_completion", "runs", ["team", "completion_time"])
    op.create_table(
        "run_calls",
        sa.Column("run_uid", sa.String(64), sa.ForeignKey("runs.uid", ondelete="CASCADE"), primary_key=True),
        sa.Column("call_index", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("adapter", sa.String(253), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_micros", sa.BigInteger, nullable=False),
        sa.Column("duration_milliseconds", sa.BigInteger),
        sa.Column("fallbacks", sa.Text, nullable=False),
    )
    op.create_index("ix_run_calls_adapter_model", "run_calls", ["adapter", "model"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
        sa.Column("entry_key", sa.String(400), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("run_uid", sa.String(64), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("entry_key", name="uq_audit_log_entry_key"),
        sa.UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
    )
    op.create_index("ix_audit_log_run_uid", "audit_log", ["run_uid"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_hash": GENESIS_HASH}])


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_log_run_uid", "audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_run_calls_adapter_model", "run_calls")
    op.drop_table("run_calls")
    op.drop_index("ix_runs_team_completion", "runs")
    op.drop_index("ix_runs_namespace_name", "runs")
    op.drop_table("runs")
