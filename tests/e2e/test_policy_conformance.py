"""The real OPA binary against the policies, and the two engines against each other.

`opa test` (and `opa check --strict`, `opa fmt`) must pass; then every input the Rego tests use and
every AgentRun under examples/ goes through the embedded engine and through a real `opa run --server`,
and any difference in any decision fails the test. Both engines must also fail closed the same way.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.builders.adapters import build_hosted_adapter, build_served_adapter
from tests.builders.agentrun import build_run
from tests.builders.defaults import NOW
from tests.builders.policy import build_input

from jesus.devcluster.toolchain import ensure_tool
from jesus.policy import EmbeddedEngine, OpaServerEngine, PolicyLoadError
from jesus.policy.opa_process import OpaServerProcess
from jesus.policy.planning import plan_runs
from jesus.specs import load_specs

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
EXAMPLES = ROOT / "examples"
CASES_REF = "data.jesus.admission_test.cases"


@pytest.fixture(scope="module")
def opa() -> Path:
    """The OPA binary, built from tools/opa (pinned) into the cache once."""
    return ensure_tool("opa")


@pytest.fixture(scope="module")
def opa_server(opa: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaServerProcess]:
    """`opa run --server` over policies/ on 127.0.0.1 and a free port; always stopped."""
    log = tmp_path_factory.mktemp("opa") / "opa.log"
    with OpaServerProcess(opa, POLICIES, log_path=log) as server:
        yield server


@pytest.fixture(scope="module")
def embedded() -> EmbeddedEngine:
    return EmbeddedEngine.from_directory(POLICIES)


@pytest.fixture(scope="module")
def rego_cases(opa: Path) -> dict[str, Any]:
    """Every named input of the Rego tests (policies/admission/cases_test.rego), as OPA evaluates it."""
    result = subprocess.run(
        [str(opa), "eval", "--data", str(POLICIES), "--format", "raw", CASES_REF],
        capture_output=True,
        text=True,
        check=True,
    )
    cases: dict[str, Any] = json.loads(result.stdout)
    return cases


def _run_opa(opa: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(opa), *args], capture_output=True, text=True, cwd=ROOT)


def test_opa_test_passes(opa: Path) -> None:
    result = _run_opa(opa, "test", "policies/", "--verbose")
    assert result.returncode == 0, f"opa test failed:\n{result.stdout}\n{result.stderr}"
    assert "PASS" in result.stdout
    assert "FAIL" not in result.stdout


def test_policies_pass_strict_checks_and_are_formatted(opa: Path) -> None:
    check = _run_opa(opa, "check", "--strict", "policies/")
    assert check.returncode == 0, check.stderr
    fmt = _run_opa(opa, "fmt", "--list", "policies/")
    assert fmt.stdout.strip() == "", f"not formatted (run `opa fmt -w policies/`):\n{fmt.stdout}"


def test_every_policy_line_is_covered_by_a_test(opa: Path) -> None:
    result = _run_opa(opa, "test", "--coverage", "--format", "json", "policies/")
    coverage = json.loads(result.stdout)
    uncovered = {
        name: file.get("not_covered") for name, file in coverage["files"].items() if file.get("not_covered")
    }
    assert uncovered == {}


async def _differences(
    embedded: EmbeddedEngine, server: OpaServerProcess, inputs: dict[str, dict[str, Any]]
) -> list[str]:
    differences = []
    async with OpaServerEngine(server.url, timeout_seconds=10.0) as remote:
        for name, document in inputs.items():
            local_decision = await embedded.decide(document)
            remote_decision = await remote.decide(document)
            if local_decision.error or remote_decision.error:
                differences.append(f"{name}: no decision: {local_decision.error or remote_decision.error}")
            elif local_decision.as_json() != remote_decision.as_json():
                differences.append(
                    f"{name}:\n  embedded:   {local_decision.as_json()}"
                    f"\n  opa-server: {remote_decision.as_json()}"
                )
    return differences


async def test_every_rego_test_case_gets_the_same_decision_from_both_engines(
    embedded: EmbeddedEngine, opa_server: OpaServerProcess, rego_cases: dict[str, Any]
) -> None:
    assert len(rego_cases) >= 30
    differences = await _differences(embedded, opa_server, rego_cases)
    assert differences == [], "engines disagree:\n" + "\n".join(differences)


async def test_every_example_gets_the_same_decision_from_both_engines(
    embedded: EmbeddedEngine, opa_server: OpaServerProcess
) -> None:
    spec_set = load_specs([EXAMPLES])
    planned = plan_runs(spec_set, now=NOW)
    assert planned, "examples/ holds no AgentRun"
    inputs = {f"{p.loaded.file}:{p.namespace}/{p.name}": p.policy_input for p in planned}
    differences = await _differences(embedded, opa_server, inputs)
    assert differences == [], "engines disagree:\n" + "\n".join(differences)


def test_the_rego_tests_use_the_document_build_policy_input_builds(rego_cases: dict[str, Any]) -> None:
    adapters = {"claude": build_hosted_adapter(ready=True), "llama": build_served_adapter(ready=True)}
    assert build_input(adapters=adapters) == rego_cases["admitted"]


async def test_failing_builtin_fails_closed_in_both_engines(opa: Path, tmp_path: Path) -> None:
    policies = Path(
        shutil.copytree(POLICIES, tmp_path / "policies", ignore=shutil.ignore_patterns("*_test.rego"))
    )
    (policies / "admission" / "divide.rego").write_text(
        'package jesus.admission\n\ndeny contains "never" if 1 / count(input.run.tools) > 5\n'
    )
    document = build_input(run=build_run(tools=[]))
    local_decision = EmbeddedEngine.from_directory(policies).evaluate(document)
    with OpaServerProcess(opa, policies) as server:
        async with OpaServerEngine(server.url) as remote:
            remote_decision = await remote.decide(document)
    for decision in (local_decision, remote_decision):
        assert not decision.allow
        assert decision.error is not None
    assert "divide by zero" in (remote_decision.error or "")


async def test_missing_site_data_denies_in_both_engines(opa: Path, tmp_path: Path) -> None:
    policies = Path(shutil.copytree(POLICIES, tmp_path / "policies"))
    (policies / "data.json").unlink()
    document = build_input()
    local_decision = EmbeddedEngine.from_directory(policies).evaluate(document)
    with OpaServerProcess(opa, policies) as server:
        async with OpaServerEngine(server.url) as remote:
            remote_decision = await remote.decide(document)
    expected = ("policy data is missing: data.jesus.config is not loaded or not an object",)
    assert local_decision.reasons == remote_decision.reasons == expected
    assert not local_decision.allow
    assert not remote_decision.allow


def test_broken_policy_keeps_the_server_from_starting(opa: Path, tmp_path: Path) -> None:
    policies = Path(shutil.copytree(POLICIES, tmp_path / "policies"))
    (policies / "admission" / "broken.rego").write_text("package jesus.admission\n\ndeny contains x if {\n")
    with pytest.raises(PolicyLoadError, match="the OPA server exited"):
        OpaServerProcess(opa, policies).start()


async def test_stopped_server_fails_closed(opa: Path) -> None:
    with OpaServerProcess(opa, POLICIES) as server:
        url = server.url
    async with OpaServerEngine(url, timeout_seconds=2.0) as remote:
        decision = await remote.decide(build_input())
    assert not decision.allow
    assert decision.error is not None
    assert "unreachable" in decision.error


async def test_both_engines_decide_alike_which_lessons_runs_are_offered(opa: Path, tmp_path: Path) -> None:
    # policies/lessons/: a site that requires approval on LongTerm lessons and offers no ShortTerm ones.
    from tests.builders.lessons import lesson_object

    from jesus.policy.lessons import EmbeddedLessonPolicy, OpaServerLessonPolicy

    policies = Path(
        shutil.copytree(POLICIES, tmp_path / "policies", ignore=shutil.ignore_patterns("*_test.rego"))
    )
    data = json.loads((policies / "data.json").read_text())
    data["jesus"]["config"]["lessons"] = {
        "requireLabels": {"jesus.dev/approved": "true"},
        "offerShortTerm": False,
    }
    (policies / "data.json").write_text(json.dumps(data))
    lessons = [
        lesson_object("l-approved", "LongTerm", {"jesus.dev/approved": "true"}),
        lesson_object("l-unapproved", "LongTerm", {"jesus.dev/approved": "yes"}),
        lesson_object("l-unlabelled", "LongTerm", {}),
        lesson_object("l-short", "ShortTerm", {"jesus.dev/approved": "true"}),
        lesson_object("l-quoted", "LongTerm", {"jesus.dev/approved": 'true" or "1'}),
    ]
    local = EmbeddedLessonPolicy(EmbeddedEngine.from_directory(policies))
    with OpaServerProcess(opa, policies) as server:
        async with OpaServerEngine(server.url) as engine:
            remote = OpaServerLessonPolicy(server.url, engine.client)
            pairs = [(await local.verdict(lesson), await remote.verdict(lesson)) for lesson in lessons]
    assert [mine == theirs for mine, theirs in pairs] == [True] * len(lessons), pairs
    assert [mine.offer for mine, _ in pairs] == [True, False, False, False, False]
    assert pairs[1][0].reasons == (
        "LongTerm lesson l-unapproved lacks the label jesus.dev/approved=true that the site requires",
    )
    assert pairs[3][0].reasons == (
        "ShortTerm lesson l-short is not offered: the site offers only reviewed lessons",
    )
