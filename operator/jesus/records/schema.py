"""The archive's tables; the migrations under `migrations/versions` create exactly these (a test
compares them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# What the read API's cost sums read (with their filters first), so they read an index alone.
RUN_COST_COLUMNS = (
    "completion_time", "namespace", "team", "owner_user", "cost_micros", "input_tokens", "output_tokens",
)  # fmt: skip
CALL_COST_COLUMNS = (
    "completion_time", "namespace", "model", "adapter", "run_uid", "cost_micros", "input_tokens",
    "output_tokens",
)  # fmt: skip
# The same led by the namespace, for the sums of one namespace or a few (migration 0004).
RUN_NAMESPACE_COST_COLUMNS = ("namespace", "completion_time", *RUN_COST_COLUMNS[2:])
CALL_NAMESPACE_COST_COLUMNS = ("namespace", "completion_time", *CALL_COST_COLUMNS[2:])

runs = Table(
    "runs",
    metadata,
    Column("uid", String(64), primary_key=True),
    Column("namespace", String(63), nullable=False),
    Column("name", String(253), nullable=False),
    Column("phase", String(16), nullable=False),
    Column("team", String(63), nullable=False),
    Column("owner_user", String(253), nullable=False),
    Column("created", String(40)),
    Column("start_time", String(40)),
    Column("completion_time", String(40)),
    Column("spec_digest", String(71), nullable=False),
    Column("trace_id", String(32)),
    Column("cost_micros", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("record_version", Integer, nullable=False),
    Column("record", Text, nullable=False),
    Column("archived_at", String(40), nullable=False),
    Index("ix_runs_namespace_name", "namespace", "name"),
    Index("ix_runs_team_completion", "team", "completion_time"),
    # The read API's lists: newest first, everywhere or in one namespace; its cost sums per team or user,
    # read from the index alone (migration 0002).
    Index("ix_runs_completion_uid", "completion_time", "uid"),
    Index("ix_runs_namespace_completion_uid", "namespace", "completion_time", "uid"),
    Index("ix_runs_costs", *RUN_COST_COLUMNS),
    Index("ix_runs_namespace_costs", *RUN_NAMESPACE_COST_COLUMNS),
)

run_calls = Table(
    "run_calls",
    metadata,
    Column("run_uid", String(64), ForeignKey("runs.uid", ondelete="CASCADE"), primary_key=True),
    Column("call_index", Integer, primary_key=True, autoincrement=False),
    Column("adapter", String(253), nullable=False),
    Column("model", String(256), nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_micros", BigInteger, nullable=False),
    Column("duration_milliseconds", BigInteger),
    Column("fallbacks", Text, nullable=False),
    # The run's, copied so that cost sums per model or adapter read this table's index alone (0002);
    # null only in a row a migration could not fill.
    Column("namespace", String(63)),
    Column("completion_time", String(40)),
    Index("ix_run_calls_adapter_model", "adapter", "model"),
    Index("ix_run_calls_costs", *CALL_COST_COLUMNS),
    Index("ix_run_calls_namespace_costs", *CALL_NAMESPACE_COST_COLUMNS),
)

audit_log = Table(
    "audit_log",
    metadata,
    # Assigned by the appender under the chain's lock (last id + 1), never by a sequence: a sequence
    # skips numbers on a rolled-back transaction, and a gap must mean a deleted row.
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded_at", String(40), nullable=False),
    Column("entry_key", String(400), nullable=False),
    Column("action", String(16), nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("name", String(253), nullable=False),
    Column("run_uid", String(64), nullable=False),
    Column("at", String(40), nullable=False),
    Column("detail", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("entry_key", name="uq_audit_log_entry_key"),
    # Two rows that follow the same row would be a fork of the chain: the database refuses it.
    UniqueConstraint("prev_hash", name="uq_audit_log_prev_hash"),
    Index("ix_audit_log_run_uid", "run_uid"),
    Index("ix_audit_log_namespace_id", "namespace", "id"),
)

audit_head = Table(
    "audit_head",
    metadata,
    # One row (id 1), the chain's lock: appenders take it FOR UPDATE before reading the last row.
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

# Short-term memory (docs/reflection.md#lessons): lessons proposed by runs' reflections, and the runs
# that proposed or reused them. A lesson's id is stable for its team and text, so the same candidate
# from two runs is one lesson with two pieces of evidence.
lessons = Table(
    "lessons",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("namespace", String(63), nullable=False),
    Column("team", String(63), nullable=False),
    Column("text", Text, nullable=False),
    Column("run_labels", Text, nullable=False),
    Column("memory", String(16), nullable=False),
    Column("created_at", String(40), nullable=False),
    Index("ix_lessons_team", "team"),
)

lesson_evidence = Table(
    "lesson_evidence",
    metadata,
    Column("lesson_id", String(64), ForeignKey("lessons.id", ondelete="CASCADE"), primary_key=True),
    Column("namespace", String(63), primary_key=True),
    Column("run", String(253), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("outcome", Text),
    Column("artifacts", Text, nullable=False),
    Column("recorded_at", String(40), nullable=False),
)
