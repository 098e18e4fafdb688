"""Where runner pods may be scheduled: the node selector and tolerations the operator's deployment gives
every runner pod (the chart's `runner.nodeSelector` and `runner.tolerations`, passed as one JSON flag).

Pure: `parse_placement` reads the flag's JSON and names the field of the first thing wrong with it, so
a bad value stops the operator at start with a message, never a Job the API server refuses later.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from jesus.api.objects import JsonObject

PLACEMENT_KEYS = frozenset({"nodeSelector", "tolerations"})
TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})
TOLERATION_OPERATORS = frozenset({"Equal", "Exists"})
TOLERATION_EFFECTS = frozenset({"NoSchedule", "PreferNoSchedule", "NoExecute"})
# A label key: an optional DNS subdomain prefix and a name of at most 63 characters.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(rf"^([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")


class PlacementError(ValueError):
    """The placement JSON is not valid; the message names the source and the field."""


@dataclass(frozen=True)
class RunnerPlacement:
    """The scheduling constraints of every runner pod."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[JsonObject, ...] = ()

    def pod_spec_fields(self) -> JsonObject:
        """The pod spec's nodeSelector and tolerations (absent when empty)."""
        fields: JsonObject = {}
        if self.node_selector:
            fields["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            fields["tolerations"] = [dict(t) for t in self.tolerations]
        return fields


def parse_placement(text: str, *, source: str) -> RunnerPlacement:
    """`text` as a RunnerPlacement; PlacementError names `source` and the field that is wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlacementError(f"{source}: not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise PlacementError(f"{source}: must be a JSON object with nodeSelector and/or tolerations")
    unknown = sorted(set(value) - PLACEMENT_KEYS)
    if unknown:
        raise PlacementError(f"{source}: unknown field {unknown[0]!r} (known: nodeSelector, tolerations)")
    selector = _node_selector(_or_empty(value.get("nodeSelector"), {}), source)
    tolerations = _or_empty(value.get("tolerations"), [])
    if not isinstance(tolerations, list):
        raise PlacementError(f"{source}: tolerations must be a list")
    return RunnerPlacement(
        node_selector=selector,
        tolerations=tuple(_toleration(t, f"{source}: tolerations[{i}]") for i, t in enumerate(tolerations)),
    )


def _or_empty(value: Any, empty: Any) -> Any:
    """A field left out or null is empty; any other value is checked as it is."""
    return empty if value is None else value


def _node_selector(selector: Any, source: str) -> dict[str, str]:
    if not isinstance(selector, dict):
        raise PlacementError(f"{source}: nodeSelector must be an object of label keys to values")
    for key, label in selector.items():
        if not _LABEL_KEY.match(key) or len(key) > 317:
            raise PlacementError(f"{source}: nodeSelector key {key!r} is not a label key")
        if not isinstance(label, str) or not _LABEL_VALUE.match(label):
            raise PlacementError(f"{source}: nodeSelector[{key!r}] must be a label value (a string)")
    return dict(selector)


def _toleration(toleration: Any, where: str) -> JsonObject:
    if not isinstance(toleration, dict):
        raise PlacementError(f"{where} must be an object")
    unknown = sorted(set(toleration) - TOLERATION_KEYS)
    if unknown:
        raise PlacementError(f"{where}: unknown field {unknown[0]!r}")
    for name in ("key", "operator", "value", "effect"):
        if name in toleration and not isinstance(toleration[name], str):
            raise PlacementError(f"{where}.{name} must be a string")
    operator = toleration.get("operator", "Equal")
    if operator not in TOLERATION_OPERATORS:
        raise PlacementError(f"{where}.operator must be Equal or Exists, not {operator!r}")
    if operator == "Exists" and toleration.get("value"):
        raise PlacementError(f"{where}.value must be empty when operator is Exists")
    if operator == "Equal" and not toleration.get("key"):
        raise PlacementError(f"{where}.key is needed when operator is Equal")
    effect = toleration.get("effect", "")
    if effect and effect not in TOLERATION_EFFECTS:
        raise PlacementError(f"{where}.effect must be one of {', '.join(sorted(TOLERATION_EFFECTS))}")
    seconds = toleration.get("tolerationSeconds")
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise PlacementError(f"{where}.tolerationSeconds must be a whole number")
        if effect != "NoExecute":
            raise PlacementError(f"{where}.tolerationSeconds applies only to the NoExecute effect")
    return dict(toleration)
