"""Fixtures of the cluster tier on top of the session's control plane: the CRDs, installed once a module,
and an operator process watching the test's namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.cluster.operator_process import OperatorProcess, install_crds, running_operator

from jesus.devcluster import ControlPlane


@pytest.fixture(scope="module")
def crds(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with crds/ applied and served."""
    install_crds(control_plane)
    return control_plane


@pytest.fixture
def operator(crds: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """`jesus operator` watching `namespace`, its log in the test's tmp_path."""
    with running_operator(crds, namespace, tmp_path / "operator.log") as process:
        yield process
