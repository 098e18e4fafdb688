"""A mistyped apiVersion group, or one of our kinds outside our group, is an error, never a silent skip.

Before, `jesus validate` and `jesus plan` skipped `jesus.io/v1alpha1` with a warning and exited 0:
a pull-request check that checked nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.builders.agentrun import agent_run
from tests.builders.spec_files import to_yaml

from jesus.cli import main
from jesus.specs import Severity, load_text, validate_specs
from jesus.specs.groups import edit_distance, lookalike_problem, looks_like_our_group

RUN_YAML = to_yaml(agent_run())


def with_api_version(api_version: str, kind: str = "AgentRun") -> str:
    """A document whose first lines are a comment, so that the line of apiVersion is not line 1."""
    return f"# a careless edit\napiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: r}}\nspec: {{}}\n"


MISTYPED_GROUPS = [
    "jesus.io/v1alpha1",
    "Jesus.dev/v1alpha1",
    "JESUS.DEV/v1alpha1",
    "jesus-dev/v1alpha1",
    "jesusdev/v1alpha1",
    "jesus.de/v1alpha1",
    "jezus.dev/v1alpha1",
    "jesu.dev/v1alpha1",
    "api.jesus.dev/v1alpha1",
    "jesus.dev.io/v1alpha1",
    "agents.jesus.example.com/v1",
    "jesusplatform.io/v1alpha1",
    "jesus.dev /v1alpha1",
]


@pytest.mark.parametrize("api_version", MISTYPED_GROUPS)
def test_mistyped_group_is_an_error_at_its_line(api_version: str) -> None:
    problems = validate_specs(load_text(with_api_version(api_version), Path("runs/r.yaml")))
    errors = [p for p in problems if p.severity is Severity.ERROR]
    assert len(errors) == 1, [p.format() for p in problems]
    (error,) = errors
    assert (str(error.file), error.line, error.kind, error.name, error.field) == (
        "runs/r.yaml",
        2,
        "AgentRun",
        "r",
        "apiVersion",
    )
    assert "is not 'jesus.dev'" in error.message
    assert error.format().startswith("runs/r.yaml:2: AgentRun/r: apiVersion: apiVersion group ")


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [("v1alpha1", "AgentRun"), ("jesus.dev", "Budget"), ("v1", "ModelAdapter"), ("jesus", "ConfigMap")],
)
def test_our_kind_or_our_name_in_the_core_group_is_an_error(api_version: str, kind: str) -> None:
    problems = validate_specs(load_text(with_api_version(api_version, kind), Path("r.yaml")))
    assert [(p.severity, p.line, p.field) for p in problems] == [(Severity.ERROR, 2, "apiVersion")]
    assert "has no jesus.dev group" in problems[0].message


@pytest.mark.parametrize("kind", ["Agentrun", "agentrun", "AgentRuns", "Pipeline", "Playbook"])
def test_unknown_kind_in_our_group_is_an_error(kind: str) -> None:
    problems = validate_specs(load_text(with_api_version("jesus.dev/v1alpha1", kind), Path("r.yaml")))
    assert [(p.severity, p.line, p.field) for p in problems] == [(Severity.ERROR, 3, "kind")]
    assert "unknown kind" in problems[0].message


@pytest.mark.parametrize(
    "api_version",
    [
        "v1",
        "apps/v1",
        "batch/v1",
        "argoproj.io/v1alpha1",
        "kustomize.config.k8s.io/v1beta1",
        "kopf.dev/v1",
        "kueue.x-k8s.io/v1beta1",
        "monitoring.coreos.com/v1",
        "cert-manager.io/v1",
        "jesse.io/v1",
    ],
)
def test_other_apis_are_still_skipped_with_a_warning(api_version: str) -> None:
    problems = validate_specs(load_text(with_api_version(api_version, "Thing"), Path("r.yaml")))
    assert [p.severity for p in problems] == [Severity.WARNING]


def test_validate_and_plan_exit_1_on_a_mistyped_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "run.yaml"
    spec.write_text(RUN_YAML.replace("jesus.dev/v1alpha1", "jesus.io/v1alpha1"))
    assert main(["validate", str(tmp_path)]) == 1
    assert f"{spec}:1: AgentRun/" in capsys.readouterr().out + capsys.readouterr().err
    assert main(["plan", str(tmp_path)]) == 1
    assert "apiVersion group 'jesus.io' is not 'jesus.dev'" in capsys.readouterr().err


def test_edit_distance() -> None:
    assert edit_distance("", "") == 0
    assert edit_distance("jesus.dev", "jesus.dev") == 0
    assert edit_distance("jesus.io", "jesus.dev") == 3
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("abc", "") == 3


def test_exactly_our_group_is_not_a_lookalike() -> None:
    assert lookalike_problem("jesus.dev/v1alpha1", "AgentRun") is None
    assert lookalike_problem("jesus.dev/v2", "AgentRun") is None  # the version check reports this one
    assert looks_like_our_group("jesus.dev")
