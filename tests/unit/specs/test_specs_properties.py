"""Properties of the loader: it never raises on any input, locates every problem inside the file,
and valid objects survive a trip through YAML unchanged."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.builders.adapters import openai_adapter, scripted_adapter, vllm_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.manifest import set_field
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.api import parse_object
from jesus.specs import Severity, load_text, validate_specs

BASES = [
    agent_run(depends_on=("a", "b")),
    route_policy(adapters=("a", "b")),
    budget(),
    scripted_adapter(),
    openai_adapter(),
    vllm_adapter(),
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
LOOSE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def spec_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        found.append((*prefix, key))
        found.extend(spec_paths(value, (*prefix, key)))
    return found


@LOOSE
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_any_text_gives_problems_never_an_exception(text: str) -> None:
    spec_set = load_text(text, Path("any.yaml"))
    lines = text.count("\n") + 1
    for problem in validate_specs(spec_set):
        assert 1 <= problem.line <= max(lines, 1) + 1, problem.format()
        assert problem.message


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    body = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [("spec", *p) for p in spec_paths(body["spec"])]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = body
        for part in path[:-1]:
            parent = parent[part]
        parent[path[-1]] = draw(JSON_VALUES)
    return body


@LOOSE
@given(mutated())
def test_every_problem_of_a_mutated_spec_points_into_the_file(body: dict[str, Any]) -> None:
    text = to_yaml(body)
    lines = text.count("\n") + 1
    spec_set = load_text(text, Path("mutated.yaml"))
    problems = [p for p in validate_specs(spec_set) if p.severity is Severity.ERROR]
    for problem in problems:
        assert 1 <= problem.line <= lines
        assert problem.kind == body["kind"]
        assert problem.field.startswith(("spec", "metadata")) or problem.field == "", problem.format()
    # an object is either loaded or explained by at least one schema problem
    assert bool(spec_set.objects) != bool(spec_set.problems)


@st.composite
def valid_runs(draw: st.DrawFn) -> dict[str, Any]:
    # what a person types: no control characters or Unicode line separators (YAML folds those)
    typed = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40)
    names = st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)
    run = agent_run(name=draw(names), policy=draw(names))
    run = set_field(run, "spec.owner.team", draw(names))
    run = set_field(
        run, "spec.limits.maxCost", draw(st.from_regex(r"(0|[1-9][0-9]{0,5})(\.[0-9]{1,6})?", fullmatch=True))
    )
    run = set_field(run, "spec.priority", draw(st.integers(-1000, 1000)))
    run = set_field(
        run,
        "spec.task.inputs",
        draw(st.dictionaries(typed.filter(bool), typed, max_size=4)),
    )
    run = set_field(run, "spec.task.instructions", draw(typed.filter(lambda t: t.strip() != "")))
    return set_field(
        run,
        "spec.dataClassification",
        draw(st.sampled_from(["public", "internal", "confidential", "restricted"])),
    )


@LOOSE
@given(valid_runs())
def test_valid_runs_survive_yaml_and_json_unchanged(run: dict[str, Any]) -> None:
    expected = parse_object(run)
    for text in (to_yaml(run), json.dumps(run)):
        spec_set = load_text(text)
        assert spec_set.problems == [], [p.format() for p in spec_set.problems]
        assert spec_set.objects[0].obj == expected
