"""Checks on object metadata the API server makes and the models leave open (ObjectMeta allows extras
so live objects parse): unknown fields, and label and annotation syntax."""

from __future__ import annotations

import re
from typing import Any

from jesus.api.common import LABEL_KEY_PATTERN
from jesus.specs.source import FieldPath

# Fields of metav1.ObjectMeta; kubectl's strict field validation rejects any other.
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
MAX_ANNOTATIONS_BYTES = 256 * 1024


def metadata_problems(metadata: Any) -> list[tuple[FieldPath, str]]:
    """What the API server would reject in `metadata` and the model lets pass, as (field path, message)."""
    if not isinstance(metadata, dict):
        return []  # the model reports a metadata that is not a mapping
    problems: list[tuple[FieldPath, str]] = []
    for key in metadata:
        if key not in OBJECT_META_FIELDS:
            problems.append((("metadata", key), "unknown field"))
    for field in ("labels", "annotations"):
        values = metadata.get(field)
        if not isinstance(values, dict):
            continue  # the model reports types
        for key, value in values.items():
            path: FieldPath = ("metadata", field, key)
            if not _LABEL_KEY.match(key):
                problems.append(
                    (path, f"{key!r} is not a valid key: an optional DNS prefix and '/', then a name")
                )
            if field == "labels" and isinstance(value, str) and not _LABEL_VALUE.match(value):
                problems.append(
                    (
                        path,
                        "a label value is at most 63 letters, digits, '-', '_' or '.', alphanumeric at ends",
                    )
                )
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        size = sum(len(k) + len(v) for k, v in annotations.items() if isinstance(v, str))
        if size > MAX_ANNOTATIONS_BYTES:
            problems.append(
                (("metadata", "annotations"), f"annotations total {size} bytes; the limit is 256 KiB")
            )
    return problems
