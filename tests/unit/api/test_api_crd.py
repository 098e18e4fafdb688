"""The generated CRDs: committed files match the models, schemas are structural and documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from jesus.api import KINDS, CelRule
from jesus.api.crd import build_crd, crd_filename, generate_crd_files
from jesus.cli import main

REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "crds"
INFOS = list(KINDS.values())
IDS = [info.kind for info in INFOS]


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path (`spec.chain[]` for items, `spec.inputs{}` for map values)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_committed_crds_match_the_models() -> None:
    generated = generate_crd_files()
    committed = {path.name: path.read_text(encoding="utf-8") for path in CRD_DIR.glob("*.yaml")}
    assert set(committed) == set(generated), "crds/ holds other files than the models generate"
    stale = [name for name, text in generated.items() if committed[name] != text]
    assert not stale, f"crds/ is stale, run `jesus crds`: {stale}"


@pytest.mark.parametrize("info", INFOS, ids=IDS)
def test_every_field_has_a_description(info) -> None:
    missing = [
        path
        for path, node in walk(schema_of(build_crd(info)))
        if path and not path.endswith(("[]", "{}")) and path != "metadata" and not node.get("description")
    ]
    assert not missing


@pytest.mark.parametrize("info", INFOS, ids=IDS)
def test_schema_is_structural(info) -> None:
    for path, node in walk(schema_of(build_crd(info))):
        for key in ("$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "patternProperties", "uniqueItems"):
            assert key not in node, f"{path} has {key}"
        assert node.get("additionalProperties") is not False, f"{path} forbids additionalProperties"
        assert "type" in node, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("default") is None:
            assert "default" not in node, f"{path} defaults to null"


@pytest.mark.parametrize("info", INFOS, ids=IDS)
def test_crd_names_categories_and_subresources(info) -> None:
    crd = build_crd(info)
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == f"{info.plural}.jesus.dev"
    assert names["categories"] == ["jesus"]
    assert names["shortNames"]
    assert crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert crd_filename(info) == f"{info.plural}.jesus.dev.yaml"


def test_short_names_are_unique_across_kinds() -> None:
    short = [s for info in INFOS for s in info.short_names]
    assert len(short) == len(set(short))


@pytest.mark.parametrize("info", INFOS, ids=IDS)
def test_printer_columns_point_at_schema_fields(info) -> None:
    crd = build_crd(info)
    fields = {path for path, _ in walk(schema_of(crd))}
    for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
        json_path = column["jsonPath"]
        if json_path.startswith(".metadata."):
            continue
        plain = json_path.lstrip(".").split("[?")[0].replace("[0]", "[]")
        assert plain in fields, f"column {column['name']} points at {json_path}, not in the schema"


def _model_rules(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[CelRule]:
    """Every CEL rule reachable from `model`: its own and its fields' (annotated or nested models)."""
    if model in seen:
        return
    seen.add(model)
    yield from getattr(model, "cel_rules", ())
    for info in model.model_fields.values():
        yield from (m for m in info.metadata if isinstance(m, CelRule))
        stack: list[Any] = [info.annotation]
        while stack:
            tp = stack.pop()
            if isinstance(tp, CelRule):
                yield tp
            elif isinstance(tp, type) and issubclass(tp, BaseModel):
                yield from _model_rules(tp, seen)
            stack.extend(getattr(tp, "__args__", ()))
            stack.extend(getattr(tp, "__metadata__", ()))
            if hasattr(tp, "__metadata__"):
                stack.append(tp.__origin__)


@pytest.mark.parametrize("info", INFOS, ids=IDS)
def test_every_model_rule_is_in_the_crd_with_its_message(info) -> None:
    schema_rules = {
        (rule["rule"], rule["message"])
        for _, node in walk(schema_of(build_crd(info)))
        for rule in node.get("x-kubernetes-validations", [])
    }
    model_rules = {(r.rule, r.message) for r in _model_rules(info.model, set())}
    assert model_rules, "every kind has cross-field rules"
    assert model_rules <= schema_rules


@pytest.mark.parametrize("info", INFOS, ids=IDS)
def test_conditions_are_a_list_map_keyed_by_type(info) -> None:
    conditions = schema_of(build_crd(info))["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {"type", "status", "reason", "lastTransitionTime"}


def test_no_float_anywhere() -> None:
    for info in INFOS:
        for path, node in walk(schema_of(build_crd(info))):
            assert node.get("type") != "number", f"{info.kind} {path} is a float"


def test_crds_command_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds", "--output-dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(generate_crd_files())
    assert main(["crds", "--check", "--output-dir", str(tmp_path)]) == 0
    victim = tmp_path / "budgets.jesus.dev.yaml"
    victim.write_text(victim.read_text() + "# edited by hand\n")
    assert main(["crds", "--check", "--output-dir", str(tmp_path)]) == 1
    assert "budgets.jesus.dev.yaml: differs from the models" in capsys.readouterr().err


def test_docs_list_every_rule_of_every_kind() -> None:
    docs = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    for info in INFOS:
        section = docs.split(f"## {info.kind}\n", 1)[1].split("\n## ", 1)[0]
        for rule in _model_rules(info.model, set()):
            assert f"- {rule.message}" in section, f"docs/api.md ({info.kind}) misses: {rule.message}"
