"""Reading a policy directory: its Rego modules (tests left out) and its data documents.

Data files follow OPA's convention, so both engines see the same `data`: a `data.json` in folder
`a/b` (relative to the policy directory) is the document at `data.a.b`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jesus.policy.decision import PolicyLoadError

TEST_SUFFIX = "_test.rego"
DATA_FILE = "data.json"


@dataclass(frozen=True)
class PolicySource:
    """The admission policy as files: Rego modules by path (relative to the directory) and data."""

    directory: Path
    modules: dict[str, str]
    data: dict[str, Any]


def load_policy_source(directory: Path) -> PolicySource:
    """Read the modules (every *.rego except *_test.rego) and data documents under `directory`."""
    if not directory.is_dir():
        raise PolicyLoadError(f"policy directory {directory} does not exist")
    modules = {
        str(path.relative_to(directory)): _read(path)
        for path in sorted(directory.rglob("*.rego"))
        if not path.name.endswith(TEST_SUFFIX)
    }
    if not modules:
        raise PolicyLoadError(f"policy directory {directory} holds no Rego modules (*.rego)")
    data: dict[str, Any] = {}
    for path in sorted(directory.rglob(DATA_FILE)):
        _merge_at(data, path.parent.relative_to(directory).parts, _read_json(path), path)
    return PolicySource(directory=directory, modules=modules, data=data)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(f"{path}: cannot be read: {exc}") from exc


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(_read(path))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise PolicyLoadError(f"{path}: not valid JSON: {exc.msg} at {where}") from exc
    if not isinstance(document, dict):
        raise PolicyLoadError(f"{path}: must hold a JSON object, not {type(document).__name__}")
    return document


def _merge_at(data: dict[str, Any], parts: tuple[str, ...], document: dict[str, Any], path: Path) -> None:
    target = data
    for part in parts:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise PolicyLoadError(f"{path}: conflicts with a value already loaded at data.{'.'.join(parts)}")
    for key, value in document.items():
        if key in target:
            raise PolicyLoadError(f"{path}: data.{'.'.join((*parts, key))} is defined twice")
        target[key] = value


POLICY_DIR_ENV = "JESUS_POLICY_DIR"


def default_policy_dir(cwd: Path | None = None) -> Path:
    """Where the admission policies are when none is named: $JESUS_POLICY_DIR, else ./policies, else
    the policies/ folder of the checkout this package is installed from."""
    override = os.environ.get(POLICY_DIR_ENV)
    if override:
        return Path(override)
    local = (cwd or Path.cwd()) / "policies"
    if local.is_dir():
        return local
    return Path(__file__).resolve().parents[3] / "policies"
