"""`jesus validate` and the loader behind it: schema problems with line and field, cross-object rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.invalid_cases import INVALID_CASES, InvalidCase
from tests.builders.manifest import set_field
from tests.builders.routes import route_policy
from tests.builders.spec_files import complete_set, to_yaml

from jesus.api import AgentRun, Budget, Lesson, ModelAdapter, RoutePolicy
from jesus.cli import main
from jesus.specs import Severity, load_specs, load_text, validate_specs

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
LINE_FORMAT = re.compile(
    r"^(?P<file>[^:]+):(?P<line>\d+): (?P<obj>\w+/[\w.-]+): (?P<field>[\w.\[\]]+): (?P<msg>.+)$"
)


def problems_of(text: str) -> list:
    return validate_specs(load_text(text, Path("specs.yaml")))


def dotted(field: str) -> str:
    return re.sub(r"\[(\d+)\]", r".\1", field)


@pytest.mark.parametrize("case", INVALID_CASES, ids=[c.id for c in INVALID_CASES])
def test_each_invalid_spec_fails_with_its_field_line_and_message(case: InvalidCase) -> None:
    body = case.build()
    text = to_yaml(body)
    problems = [p for p in problems_of(text) if p.severity is Severity.ERROR]
    assert problems, f"{case.id} passed validation"
    matching = [p for p in problems if p.field == case.field]
    assert matching, f"no problem at {case.field}: {[p.format() for p in problems]}"
    problem = matching[0]
    assert case.message in problem.message
    assert problem.kind == body["kind"]
    assert problem.name == body["metadata"]["name"]
    # the line is where the field sits in the file (a missing field: where its parent is)
    path = dotted(case.field)
    expected_line = None
    while expected_line is None:
        try:
            from tests.builders.spec_files import line_of

            expected_line = line_of(text, path)
        except AssertionError:
            path = path.rsplit(".", 1)[0]
    assert problem.line == expected_line, problem.format()


def test_a_valid_set_has_no_problems() -> None:
    spec_set = load_text(to_yaml(*complete_set()))
    assert validate_specs(spec_set) == []
    assert [type(o.obj) for o in spec_set.objects] == [ModelAdapter, RoutePolicy, Budget, AgentRun]
    assert spec_set.agent_runs[0].spec.route_policy_ref.name == "route"


def test_objects_remember_their_file_and_field_lines(tmp_path: Path) -> None:
    text = to_yaml(*complete_set())
    (tmp_path / "set.yaml").write_text(text)
    spec_set = load_specs([tmp_path])
    run = next(o for o in spec_set.objects if o.kind == "AgentRun")
    assert run.file == tmp_path / "set.yaml"
    assert run.line_of(("spec", "limits", "maxCost")) == text[: text.index("maxCost: ")].count("\n") + 1
    assert text.splitlines()[run.line - 1].startswith("apiVersion:")


def test_dangling_references_are_reported_at_the_reference() -> None:
    text = to_yaml(
        agent_run(policy="missing", depends_on=("ghost",)), route_policy(name="r", adapters=("nowhere",))
    )
    found = {(p.kind, p.field, p.message) for p in problems_of(text)}
    assert ("AgentRun", "spec.routePolicyRef.name", "RoutePolicy 'missing' is not defined") in found
    assert ("AgentRun", "spec.dependsOn[0]", "AgentRun 'ghost' is not defined") in found
    assert ("RoutePolicy", "spec.chain[0].adapterRef", "ModelAdapter 'nowhere' is not defined") in found


def test_a_reference_to_an_invalid_object_is_not_reported_twice() -> None:
    broken_policy = set_field(route_policy(), "spec.attemptTimeoutSeconds", 0)
    problems = problems_of(to_yaml(scripted_adapter(), broken_policy, agent_run()))
    assert [p.kind for p in problems] == ["RoutePolicy"]


def test_dependency_cycles_are_reported_once_per_cycle() -> None:
    runs = [
        agent_run("a", depends_on=("c",)),
        agent_run("b", depends_on=("a",)),
        agent_run("c", depends_on=("b",)),
        agent_run("d", depends_on=("a",)),
    ]
    problems = problems_of(to_yaml(*complete_set()[:2], *runs))
    cycles = [p for p in problems if "cycle" in p.message]
    assert len(cycles) == 1
    assert cycles[0].name == "a"
    assert cycles[0].message == "dependsOn forms a cycle: a -> c -> b -> a"
    assert cycles[0].field == "spec.dependsOn[0]"


def test_a_dag_is_fine() -> None:
    runs = [agent_run("a"), agent_run("b", depends_on=("a",)), agent_run("c", depends_on=("a", "b"))]
    assert problems_of(to_yaml(*complete_set()[:2], *runs)) == []


def test_duplicate_objects_and_overlapping_budgets_are_errors() -> None:
    problems = problems_of(
        to_yaml(
            *complete_set(),
            scripted_adapter(),
            budget(name="other"),
            budget(name="per-user", scope={"user": "ada@example.com"}),
        )
    )
    messages = [p.message for p in problems]
    assert any("ModelAdapter/scripted is declared twice (first at specs.yaml:1)" in m for m in messages)
    assert any(m.startswith("same scope (team=ml) and period (Daily) as Budget/budget") for m in messages)
    assert len(problems) == 2


def test_namespaces_separate_names_and_references() -> None:
    text = to_yaml(
        *complete_set(namespace="team-a"),
        scripted_adapter(namespace="team-b"),
        agent_run(namespace="team-b"),
    )
    problems = problems_of(text)
    assert [(p.kind, p.field) for p in problems] == [("AgentRun", "spec.routePolicyRef.name")]


def test_kustomization_namespace_applies_to_the_folder(tmp_path: Path) -> None:
    team = tmp_path / "teams" / "ml"
    team.mkdir(parents=True)
    (team / "kustomization.yaml").write_text("namespace: ml\nresources: [run.yaml]\n")
    (team / "run.yaml").write_text(to_yaml(agent_run()))
    (tmp_path / "platform.yaml").write_text(to_yaml(*complete_set()[:2]))
    spec_set = load_specs([tmp_path])
    run = spec_set.get("AgentRun", "run", "ml")
    assert run is not None
    assert [p.field for p in validate_specs(spec_set)] == ["spec.routePolicyRef.name"]


def test_route_selector_must_select_the_run() -> None:
    policy = set_field(route_policy(), "spec.selector", {"matchLabels": {"tier": "batch"}})
    problems = problems_of(to_yaml(scripted_adapter(), policy, agent_run(labels={"tier": "online"})))
    assert [p.field for p in problems] == ["spec.routePolicyRef.name"]
    assert "does not serve this run" in problems[0].message
    assert problems_of(to_yaml(scripted_adapter(), policy, agent_run(labels={"tier": "batch"}))) == []


def test_a_chain_that_accepts_no_data_of_the_run_is_a_warning() -> None:
    run = set_field(agent_run(), "spec.dataClassification", "restricted")
    problems = problems_of(to_yaml(scripted_adapter(), route_policy(), run))
    assert [(p.severity, p.field) for p in problems] == [(Severity.WARNING, "spec.dataClassification")]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("apiVersion: jesus.dev/v1alpha1\nkind: AgentRun\nspec: [\n", 4, "invalid YAML"),
        ("a: 1\na: 2\n", 2, "duplicate key"),
        ("- just\n- a list\n", 1, "must be a mapping"),
        ("apiVersion: jesus.dev/v1alpha1\nkind: Agent\nmetadata: {name: x}\n", 2, "unknown kind 'Agent'"),
        ("apiVersion: jesus.dev/v2\nkind: AgentRun\nmetadata: {name: x}\n", 1, "unknown version"),
        ("kind: AgentRun\nmetadata: {name: x}\n", 1, "apiVersion is missing"),
        ("apiVersion: jesus.dev/v1alpha1\nkind: Budget\nspec: {}\n", 1, "metadata.name is required"),
        ("{1: x}\n", 1, "is not a string"),
        ("apiVersion: jesus.dev/v1alpha1\nkind: AgentRun\nmetadata:\n  name: yes\n", 4, "quote it"),
        (
            "a: &a [1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" * 1
            + "".join(
                f"x{i}: &x{i} [{', '.join(['*' + ('b' if i == 0 else f'x{i - 1}')] * 9)}]\n" for i in range(5)
            ),
            1,
            "more than",
        ),
        ("x:\n" + "".join("  " * i + "- \n" for i in range(1, 80)), 0, "deeper than"),
    ],
    ids=[
        "broken",
        "duplicate-key",
        "not-a-mapping",
        "unknown-kind",
        "unknown-version",
        "no-api-version",
        "no-name",
        "number-key",
        "yaml11-boolean",
        "alias-bomb",
        "deep",
    ],
)
def test_bad_input_is_a_located_problem_never_a_traceback(text: str, line: int, fragment: str) -> None:
    problems = problems_of(text)
    assert problems, "bad input passed"
    # line 0: somewhere inside the file, wherever the limit was crossed
    assert any(
        fragment in p.message and (p.line == line or (line == 0 and 1 <= p.line <= text.count("\n") + 1))
        for p in problems
    ), [p.format() for p in problems]


def test_other_api_groups_are_skipped_with_a_warning() -> None:
    problems = problems_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    assert [(p.severity, p.kind) for p in problems] == [(Severity.WARNING, "ConfigMap")]


def test_empty_documents_are_ignored() -> None:
    assert problems_of("---\n---\n# nothing\n") == []


def test_huge_and_binary_files_are_refused(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("x: " + "a" * (5 * 1024 * 1024) + "\n")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    problems = validate_specs(load_specs([huge, binary]))
    assert [(p.file.name, p.line) for p in problems] == [("binary.yaml", 1), ("huge.yaml", 1)]
    assert "not UTF-8" in problems[0].message
    assert "limited to" in problems[1].message


def test_cli_prints_one_line_per_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(to_yaml(route_policy(adapters=("a", "a")), budget(limit="-1")))
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) >= 2
    for line in out:
        match = LINE_FORMAT.match(line)
        assert match, line
        assert match["file"] == str(spec)
    assert any(
        ": RoutePolicy/route: spec.chain: chain must not list the same adapter twice" in line for line in out
    )


def test_cli_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(to_yaml(budget(limit="-1")))
    assert main(["validate", "--output", "json", str(spec)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert report["errors"] == 1
    (problem,) = report["problems"]
    assert problem == {
        "file": str(spec),
        "line": to_yaml(budget(limit="-1")).splitlines().index("  limit: '-1'") + 1,
        "kind": "Budget",
        "name": "budget",
        "field": "spec.limit",
        "message": problem["message"],
        "severity": "error",
    }


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "good.yaml").write_text(to_yaml(*complete_set()))
    assert main(["validate", str(tmp_path / "good.yaml")]) == 0
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: no such file or directory" in capsys.readouterr().err


EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=[p.stem for p in EXAMPLE_FILES])
def test_each_example_is_valid_on_its_own(example: Path) -> None:
    problems = validate_specs(load_specs([example]))
    assert [p.format() for p in problems] == []


def test_the_examples_folder_is_valid_as_a_whole() -> None:
    """`jesus validate examples/` is what the CI example runs: the examples must not clash."""
    problems = validate_specs(load_specs([EXAMPLES]))
    assert [p.format() for p in problems if p.severity is Severity.ERROR] == []


def test_examples_cover_every_kind_and_field_group() -> None:
    assert "hello" in {p.stem for p in EXAMPLE_FILES}
    assert len(EXAMPLE_FILES) >= 5
    spec_set = load_specs(EXAMPLE_FILES)
    kinds = {"AgentRun", "RoutePolicy", "Budget", "ModelAdapter", "Lesson"}
    assert {o.kind for o in spec_set.objects} == kinds
    used: set[str] = set()

    def collect(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                used.add(f"{prefix}.{key}")
                collect(value, f"{prefix}.{key}")
        elif isinstance(node, list):
            for item in node:
                collect(item, prefix)

    for loaded in spec_set.objects:
        collect(loaded.document.data["spec"], loaded.kind)
    for kind, model in (
        ("AgentRun", AgentRun),
        ("RoutePolicy", RoutePolicy),
        ("Budget", Budget),
        ("ModelAdapter", ModelAdapter),
        ("Lesson", Lesson),
    ):
        spec_fields = model.model_fields["spec"].annotation.model_fields.values()  # type: ignore[union-attr]
        missing = [f.alias for f in spec_fields if f"{kind}.{f.alias}" not in used]
        assert missing == [], f"no example sets {kind}.spec {missing}"


def test_hello_is_the_smallest_complete_run() -> None:
    spec_set = load_specs([EXAMPLES / "hello.yaml"])
    assert validate_specs(spec_set) == []
    assert sorted(o.kind for o in spec_set.objects) == ["AgentRun", "Budget", "ModelAdapter", "RoutePolicy"]
    (adapter,) = spec_set.model_adapters
    assert adapter.spec.provider == "scripted"


def test_numbers_are_read_as_the_api_server_reads_them() -> None:
    """2.0 is the integer 2 to the API server (JSON has one number type); 2.5 is not an integer."""
    whole = to_yaml(set_field(route_policy(), "spec.attemptTimeoutSeconds", 30.0), scripted_adapter())
    assert problems_of(whole) == []
    fraction = to_yaml(set_field(route_policy(), "spec.attemptTimeoutSeconds", 2.5), scripted_adapter())
    assert [p.field for p in problems_of(fraction)] == ["spec.attemptTimeoutSeconds"]


@pytest.mark.parametrize(
    ("thresholds", "refused"),
    [
        ([2.0, 100], ["spec.thresholds[0]"]),  # CEL sees a double in the list: no isSorted for it
        ([50, 100.0], ["spec.thresholds[1]"]),
        ([2.0, 3.0], ["spec.thresholds[0]", "spec.thresholds[1]"]),
        ([2.0], ["spec.thresholds[0]"]),
        ([50, 100], []),
    ],
)
def test_decimals_in_a_list_are_refused_as_the_api_server_refuses_them(
    thresholds: list[float], refused: list[str]
) -> None:
    text = to_yaml(set_field(budget(), "spec.thresholds", thresholds))
    assert [p.field for p in problems_of(text)] == refused


SPECS_REPO = REPO / "specs"


def test_the_specs_repository_layout_is_valid_and_namespaced_per_team() -> None:
    spec_set = load_specs([SPECS_REPO])
    assert validate_specs(spec_set) == []
    namespaces = {o.namespace for o in spec_set.objects}
    assert namespaces == {"team-ml-platform", "team-support"}
    # the platform base lands once in every team namespace
    for namespace in namespaces:
        assert spec_set.get("RoutePolicy", "default", namespace) is not None
    # every run, budget and platform file is reachable from the root kustomization
    reached = {f.resolve() for f in spec_set.files}
    on_disk = {p.resolve() for p in SPECS_REPO.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert on_disk - reached == {(SPECS_REPO / "argocd" / "applicationset.yaml").resolve()}


def test_kustomize_outer_namespace_wins_and_missing_resources_are_problems(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "kustomization.yaml").write_text("namespace: inner\nresources: [objects.yaml]\n")
    (base / "objects.yaml").write_text(to_yaml(*complete_set()[:2]))
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "namespace: outer\nresources:\n  - ../base\n  - run.yaml\n  - gone.yaml\n"
    )
    (overlay / "run.yaml").write_text(to_yaml(agent_run()))
    spec_set = load_specs([overlay])
    assert {o.namespace for o in spec_set.objects} == {"outer"}
    problems = validate_specs(spec_set)
    assert [(p.file.name, p.line, p.message) for p in problems] == [
        ("kustomization.yaml", 5, "resource gone.yaml does not exist")
    ]
    assert load_specs([base]).objects[0].namespace == "inner"


def test_a_kustomization_namespace_overrides_the_objects_own(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("namespace: team-a\nresources: [objects.yaml]\n")
    (tmp_path / "objects.yaml").write_text(to_yaml(*complete_set(namespace="elsewhere")))
    spec_set = load_specs([tmp_path])
    assert {o.namespace for o in spec_set.objects} == {"team-a"}
    assert validate_specs(spec_set) == []
    # without a kustomization the object's own namespace counts
    assert {o.namespace for o in load_specs([tmp_path / "objects.yaml"]).objects} == {"elsewhere"}


def test_a_budget_must_count_in_the_currency_its_runs_are_priced_in() -> None:
    euro_budget = set_field(budget(), "spec.currency", "EUR")
    problems = problems_of(to_yaml(scripted_adapter(), route_policy(), euro_budget, agent_run()))
    assert [(p.kind, p.field) for p in problems] == [("Budget", "spec.currency")]
    assert "counts EUR, but ModelAdapter/scripted" in problems[0].message
    # a budget that does not cover the run does not care
    other_team = set_field(euro_budget, "spec.scope", {"team": "other"})
    assert problems_of(to_yaml(scripted_adapter(), route_policy(), other_team, agent_run())) == []


def test_kustomize_namespaces_are_written_into_the_objects(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("namespace: team-a\nresources: [objects.yaml]\n")
    (tmp_path / "objects.yaml").write_text(to_yaml(*complete_set()))
    spec_set = load_specs([tmp_path])
    assert {o.obj.metadata.namespace for o in spec_set.objects} == {"team-a"}


def test_an_object_too_large_for_the_api_server_is_a_problem() -> None:
    inputs = {f"part{i}": "x" * 60_000 for i in range(40)}
    problems = problems_of(to_yaml(set_field(agent_run(), "spec.task.inputs", inputs)))
    assert len(problems) == 1
    assert problems[0].line == 1
    assert "the API server stores at most" in problems[0].message


def test_cli_reads_stdin_for_dash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(to_yaml(budget(limit="1.0000001"))))
    assert main(["validate", "-"]) == 1
    assert capsys.readouterr().out.startswith("<stdin>:")
    monkeypatch.setattr("sys.stdin", io.StringIO(to_yaml(*complete_set())))
    assert main(["validate", "-"]) == 0


def test_a_null_known_field_is_pruned_but_a_null_unknown_field_is_an_error_at_its_line() -> None:
    text = (
        "apiVersion: jesus.dev/v1alpha1\n"
        "kind: Budget\n"
        "metadata:\n"
        "  name: team\n"
        "spec:\n"
        "  scope:\n"
        "    team: ml\n"
        "    surprise:\n"  # unknown, null: the API server refuses it in strict field validation
        "  limit: '100.00'\n"
        "  period: Daily\n"
        "  thresholds: null\n"  # known, null: pruned, as the API server prunes it
    )
    problems = [p.format() for p in load_text(text, Path("specs.yaml")).problems]
    assert problems == ["specs.yaml:8: Budget/team: spec.scope.surprise: unknown field"]
    clean = text.replace("    surprise:\n", "")
    assert load_text(clean, Path("specs.yaml")).problems == []
