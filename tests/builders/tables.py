"""Decision tables for pytest: one row a case, the case's name first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest


def named_cases(argnames: Sequence[str], table: Sequence[tuple[Any, ...]]) -> pytest.MarkDecorator:
    """parametrize over `table`, each row's first item naming the case and the rest its arguments."""
    return pytest.mark.parametrize(argnames, [row[1:] for row in table], ids=[row[0] for row in table])
