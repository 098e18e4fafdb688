"""The redactor for the redaction tests: one per test session (spaCy loads once per process anyway)."""

from __future__ import annotations

import pytest

from jesus.redaction import PresidioRedactor, default_redactor


@pytest.fixture(scope="session")
def redactor() -> PresidioRedactor:
    """The process-wide default redactor."""
    return default_redactor()
