"""The embedded engine over the project's policies/, and how it fails closed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.builders.adapters import build_hosted_adapter, build_served_adapter
from tests.builders.agentrun import build_run
from tests.builders.policy import build_input

from jesus.logic.policy_input import PolicyInput
from jesus.policy import EmbeddedEngine, PolicyLoadError, load_policy_source

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture(scope="module")
def engine() -> EmbeddedEngine:
    return EmbeddedEngine.from_directory(POLICIES)


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    """A copy of policies/ a test may break."""
    return Path(shutil.copytree(POLICIES, tmp_path / "policies"))


def test_standard_run_is_admitted(engine: EmbeddedEngine) -> None:
    decision = engine.evaluate(build_input())
    assert decision.allow
    assert decision.decided
    assert decision.engine == "embedded"


async def test_decide_matches_evaluate(engine: EmbeddedEngine) -> None:
    document = build_input(run=build_run(user="  ", classification="restricted"))
    assert (await engine.decide(document)) == engine.evaluate(document)


def test_confidential_data_to_a_hosted_model_is_denied(engine: EmbeddedEngine) -> None:
    adapters = {
        "claude": build_hosted_adapter(classifications=("internal", "confidential")),
        "llama": build_served_adapter(),
    }
    decision = engine.evaluate(build_input(run=build_run(classification="confidential"), adapters=adapters))
    assert not decision.allow
    (reason,) = decision.reasons
    assert reason == (
        'confidential data goes only to models inside the cluster, but model adapter "claude" (anthropic) '
        "calls its provider's own API"
    )


def test_every_reason_is_reported(engine: EmbeddedEngine) -> None:
    run = build_run(user="  ", max_cost="30.00", tools=[{"name": "shell", "stdio": {"command": "sh"}}])
    decision = engine.evaluate(build_input(run=run, route=None))
    assert not decision.allow
    expected = (
        "owner.user is required",
        'route policy "default" does not exist',
        'MCP tool server "shell"',
        "maximum cost 30.00 USD exceeds the per-run limit 25.00 USD",
    )
    assert len(decision.reasons) == len(expected)
    for fragment in expected:
        assert any(fragment in reason for reason in decision.reasons), fragment


def test_input_that_is_not_json_fails_closed(engine: EmbeddedEngine) -> None:
    document: PolicyInput = {"version": object()}
    decision = engine.evaluate(document)
    assert not decision.allow
    assert decision.error is not None
    assert "not JSON" in decision.error


def test_policy_that_does_not_compile_is_refused(policy_copy: Path) -> None:
    (policy_copy / "admission" / "broken.rego").write_text(
        "package jesus.admission\n\ndeny contains x if {\n"
    )
    with pytest.raises(PolicyLoadError, match=r"does not compile \(admission/broken.rego\)"):
        EmbeddedEngine.from_directory(policy_copy)


def test_failing_builtin_fails_closed_instead_of_skipping_a_rule(policy_copy: Path) -> None:
    (policy_copy / "admission" / "divide.rego").write_text(
        'package jesus.admission\n\ndeny contains "never" if 1 / count(input.run.tools) > 5\n'
    )
    engine = EmbeddedEngine.from_directory(policy_copy)
    decision = engine.evaluate(build_input(run=build_run(tools=[])))
    assert not decision.allow
    assert decision.error is not None
    assert "built-in function failed" in decision.error


def test_undefined_decision_fails_closed(policy_copy: Path) -> None:
    main = policy_copy / "admission" / "main.rego"
    main.write_text(main.read_text().replace("decision := {", "decision := {} if false\n\nunused := {"))
    decision = EmbeddedEngine.from_directory(policy_copy).evaluate(build_input())
    assert not decision.allow
    assert decision.error is not None
    assert "is undefined" in decision.error


def test_missing_site_data_denies(policy_copy: Path) -> None:
    (policy_copy / "data.json").unlink()
    decision = EmbeddedEngine.from_directory(policy_copy).evaluate(build_input())
    assert not decision.allow
    assert decision.reasons == ("policy data is missing: data.jesus.config is not loaded or not an object",)


def test_sources_leave_tests_out_and_place_data_like_opa(policy_copy: Path) -> None:
    (policy_copy / "extra").mkdir()
    (policy_copy / "extra" / "data.json").write_text('{"flag": true}')
    source = load_policy_source(policy_copy)
    assert "admission/main.rego" in source.modules
    assert not any(path.endswith("_test.rego") for path in source.modules)
    assert source.data["extra"] == {"flag": True}
    assert source.data["jesus"]["config"]["version"] == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "must hold a JSON object, not list")],
)
def test_bad_data_file_is_named(policy_copy: Path, content: str, message: str) -> None:
    (policy_copy / "data.json").write_text(content)
    with pytest.raises(PolicyLoadError, match=message) as caught:
        load_policy_source(policy_copy)
    assert str(policy_copy / "data.json") in str(caught.value)


def test_directory_without_policies_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="holds no Rego modules"):
        load_policy_source(tmp_path)
    with pytest.raises(PolicyLoadError, match="does not exist"):
        load_policy_source(tmp_path / "nope")


def test_largest_amount_a_spec_can_write_is_shown_exactly(engine: EmbeddedEngine) -> None:
    """Past 2^31 whole units rego-cpp's sprintf("%d") wraps: the reason must still show the amount."""
    decision = engine.evaluate(build_input(run=build_run(max_cost="999999999999.999999")))
    assert not decision.allow
    assert (
        'maximum cost 999999999999.999999 USD exceeds the per-run limit 25.00 USD for team "research"'
        in decision.reasons
    )
