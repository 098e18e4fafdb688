"""Objects as the Kubernetes JSON a spec file holds, and the edits that turn a valid one into a variant.

The kind modules (`adapters`, `routes`, `budget`, `agentrun`) build fresh valid objects with `manifest`;
`set_field` and `drop_field` turn one into the variant a test needs, so no test copies YAML.
"""

from __future__ import annotations

import copy
from typing import Any

API_VERSION = "jesus.dev/v1alpha1"

Obj = dict[str, Any]


def manifest(
    kind: str, name: str, spec: Obj, namespace: str | None = None, labels: dict[str, str] | None = None
) -> Obj:
    """An object of `kind` as a spec file holds it: apiVersion, kind, metadata and `spec`."""
    metadata: Obj = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def _walk(obj: Obj, path: str) -> tuple[Any, str | int]:
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = obj
    for part in parts[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    return node, parts[-1]


def set_field(obj: Obj, path: str, value: Any) -> Obj:
    """A copy of `obj` with the dotted `path` (list indexes as numbers: spec.chain.0.adapterRef) set."""
    result = copy.deepcopy(obj)
    node, last = _walk(result, path)
    node[last] = value
    return result


def drop_field(obj: Obj, path: str) -> Obj:
    """A copy of `obj` without the field at the dotted `path`."""
    result = copy.deepcopy(obj)
    node, last = _walk(result, path)
    del node[last]
    return result
