"""Short-term lessons (issue 18): lessons and lesson_evidence.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "lessons",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("team", sa.String(63), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("run_labels", sa.Text, nullable=False),
        sa.Column("memory", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_lessons_team", "lessons", ["team"])
    op.create_table(
        "lesson_evidence",
        sa.Column(
            "lesson_id", sa.String(64), sa.ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("namespace", sa.String(63), primary_key=True),
        sa.Column("run", sa.String(253), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("outcome", sa.Text),
        sa.Column("artifacts", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("lesson_evidence")
    op.drop_index("ix_lessons_team", table_name="lessons")
    op.drop_table("lessons")
