"""Test-object builders for the four kinds, as the Kubernetes JSON a spec file holds.

Every builder returns a fresh valid object; `set_field` and `drop_field` turn it into the variant a
test needs, so no test copies YAML.
"""

from __future__ import annotations

import copy
import io
from typing import Any

from ruamel.yaml import YAML

API_VERSION = "jesus.dev/v1alpha1"

Obj = dict[str, Any]


def _object(
    kind: str, name: str, spec: Obj, namespace: str | None = None, labels: dict[str, str] | None = None
) -> Obj:
    metadata: Obj = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def scripted_adapter(
    name: str = "scripted",
    *,
    text: str = "done",
    classifications: tuple[str, ...] = ("public", "internal"),
    **kw: Any,
) -> Obj:
    """A ModelAdapter with provider scripted and one text reply."""
    spec: Obj = {
        "provider": "scripted",
        "model": "scripted-1",
        "pricing": {"inputPerMillionTokens": "1.00", "outputPerMillionTokens": "2.00"},
        "dataClassifications": list(classifications),
        "scripted": {"replies": [{"text": text, "usage": {"inputTokens": 10, "outputTokens": 5}}]},
    }
    return _object("ModelAdapter", name, spec, **kw)


def openai_adapter(name: str = "openai", **kw: Any) -> Obj:
    """A ModelAdapter for the hosted OpenAI API, with a Secret reference and rate limits."""
    spec: Obj = {
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "credentialsSecretRef": {"name": "openai-key", "key": "apiKey"},
        "pricing": {"inputPerMillionTokens": "0.40", "outputPerMillionTokens": "1.60"},
        "limits": {"requestsPerMinute": 500, "tokensPerMinute": 200000},
        "dataClassifications": ["public", "internal"],
    }
    return _object("ModelAdapter", name, spec, **kw)


def vllm_adapter(name: str = "llama", **kw: Any) -> Obj:
    """A self-hosted ModelAdapter: vLLM served by the platform on one GPU."""
    spec: Obj = {
        "provider": "vllm",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "dataClassifications": ["public", "internal", "confidential"],
        "serving": {
            "image": "vllm/vllm-openai:v0.11.0",
            "modelURI": "hf://meta-llama/Llama-3.1-8B-Instruct",
            "gpu": {"count": 1, "type": "NVIDIA-H100-80GB-HBM3"},
            "replicas": 1,
            "extraArgs": ["--max-model-len=8192"],
        },
    }
    return _object("ModelAdapter", name, spec, **kw)


def route_policy(name: str = "route", adapters: tuple[str, ...] = ("scripted",), **kw: Any) -> Obj:
    """A RoutePolicy whose chain is `adapters`, in order."""
    spec: Obj = {"chain": [{"adapterRef": a} for a in adapters]}
    return _object("RoutePolicy", name, spec, **kw)


def budget(name: str = "budget", scope: Obj | None = None, limit: str = "100.00", **kw: Any) -> Obj:
    """A daily Budget over a team (or `scope`)."""
    spec: Obj = {"scope": scope if scope is not None else {"team": "ml"}, "period": "Daily", "limit": limit}
    return _object("Budget", name, spec, **kw)


def agent_run(name: str = "run", policy: str = "route", depends_on: tuple[str, ...] = (), **kw: Any) -> Obj:
    """An AgentRun owned by team ml, routed through `policy`."""
    spec: Obj = {
        "owner": {"user": "ada@example.com", "team": "ml"},
        "task": {"instructions": "Summarise the input.", "inputs": {"text": "hello"}},
        "routePolicyRef": {"name": policy},
        "limits": {"maxCost": "0.50"},
    }
    if depends_on:
        spec["dependsOn"] = list(depends_on)
    return _object("AgentRun", name, spec, **kw)


def complete_set(namespace: str | None = None) -> list[Obj]:
    """A valid set: adapter, policy, budget and run that refer to each other."""
    return [
        scripted_adapter(namespace=namespace),
        route_policy(namespace=namespace),
        budget(namespace=namespace),
        agent_run(namespace=namespace),
    ]


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
