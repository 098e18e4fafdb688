"""The standard scenario's fixed facts: the moment tests are judged at, and the namespace of its objects."""

from __future__ import annotations

from datetime import UTC, datetime

from jesus.logic.clock import format_time

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
"""The moment every scenario is judged at: pass it (or a moment relative to it), never the wall clock."""
PERIOD_START = format_time(NOW.replace(day=1, hour=0, minute=0))
"""The start of NOW's month: the period of the Budgets built with spending."""
NAMESPACE = "research"
