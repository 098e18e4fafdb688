"""Fixtures of the dev cluster's unit tests: a `jesus dev` state directory, and a process standing in
for a control plane component."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "dev"
    monkeypatch.setenv("JESUS_DEV_DIR", str(directory))
    return directory


@pytest.fixture
def component() -> Iterator[subprocess.Popen[bytes]]:
    """A long-lived process in its own session, standing in for a control plane component."""
    sleep = shutil.which("sleep")
    assert sleep is not None
    process = subprocess.Popen([sleep, "300"], start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
