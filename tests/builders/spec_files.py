"""Spec files as a person writes them: multi-document YAML text, where a field sits in it, and a complete
set of objects that refer to each other."""

from __future__ import annotations

import io
from typing import Any

from ruamel.yaml import YAML
from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.manifest import Obj
from tests.builders.routes import route_policy


def complete_set(namespace: str | None = None) -> list[Obj]:
    """A valid set: adapter, policy, budget and run that refer to each other."""
    return [
        scripted_adapter(namespace=namespace),
        route_policy(namespace=namespace),
        budget(namespace=namespace),
        agent_run(namespace=namespace),
    ]


# Plain scalars kubectl (YAML 1.1) reads as booleans; a careful author quotes them, and so do we.
_YAML11_BOOLEAN_WORDS = frozenset(
    word
    for base in ("y", "yes", "n", "no", "true", "false", "on", "off")
    for word in (base, base.capitalize(), base.upper())
)


def _represent_str(representer: Any, value: str) -> Any:
    style = "'" if value in _YAML11_BOOLEAN_WORDS else None
    return representer.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def to_yaml(*objects: Obj) -> str:
    """Objects as one multi-document YAML text, block style, as a person would write it."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.representer.add_representer(str, _represent_str)
    buffer = io.StringIO()
    yaml.dump_all(list(objects), buffer)
    return buffer.getvalue()


def line_of(text: str, path: str) -> int:
    """The 1-based line where the dotted `path` sits in block-style YAML `text` of one document.

    Found textually (keys as `key:` at growing indentation, list items as `- `), independently of
    the loader under test.
    """
    lines = text.splitlines()
    position = 0
    indent = -1
    for part in path.split("."):
        if part.isdigit():
            wanted = int(part)
            seen = 0
            item_indent = None
            for i in range(position + 1, len(lines)):
                stripped = lines[i].lstrip()
                current = len(lines[i]) - len(stripped)
                if (
                    stripped.startswith("- ")
                    and (item_indent is None or current == item_indent)
                    and current >= indent
                ):
                    item_indent = current
                    if seen == wanted:
                        position, indent = i, current
                        break
                    seen += 1
            else:
                raise AssertionError(f"no item {part} of {path} in YAML")
            continue
        for i in range(position, len(lines)):
            stripped = lines[i].lstrip().removeprefix("- ")
            current = len(lines[i]) - len(stripped)
            if stripped.startswith(f"{part}:") and current > indent:
                position, indent = i, current
                break
        else:
            raise AssertionError(f"no key {part} of {path} in YAML")
    return position + 1
