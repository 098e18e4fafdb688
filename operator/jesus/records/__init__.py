"""The run archive and the audit log in SQL (SQLAlchemy 2, async; Alembic migrations; ADR 25).

- `urls`: the database setting, checked and turned into an async driver's URL;
- `schema`: the tables;
- `upgrade`: Alembic's upgrade, from the migrations this package carries;
- `store`: `RecordStore`, which writes finished runs and audit rows and reads the chain back.

What is stored is built by `jesus.logic.records`; see docs/records.md.
"""

from __future__ import annotations

from jesus.records.store import RecordRefusedError, RecordStore, StoreUnavailableError
from jesus.records.upgrade import migrate, schema_differences
from jesus.records.urls import ArchiveConfigError, DatabaseSetting, database_url

__all__ = [
    "ArchiveConfigError",
    "DatabaseSetting",
    "RecordRefusedError",
    "RecordStore",
    "StoreUnavailableError",
    "database_url",
    "migrate",
    "schema_differences",
]
