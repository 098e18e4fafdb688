"""The `jesus` commands that start long-lived processes (router, operator) and `jesus run`'s edges,
through `jesus.cli.main` with files in a temporary folder. What would block (uvicorn, Kopf) is replaced
by a recorder, so each test sees exactly what the command would have started."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from tests.builders.adapters import openai_adapter, scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.budget import budget
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.cli import main
from jesus.cli import router as router_cli
from jesus.cli.run import summary_lines
from jesus.controllers import app as operator_app
from jesus.redaction import PresidioRedactor
from jesus.redaction.logs import installed_log_redactor, uninstall_log_redaction
from jesus.runner.record import RunOutcome, RunRecord

REPO = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, *objects: dict[str, Any], name: str = "specs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(to_yaml(*objects))
    return path


# -- jesus router ----------------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    started: list[dict[str, Any]] = []
    # The command registers its metrics in the process-wide registry, once per process in real use.
    monkeypatch.setattr(router_cli, "REGISTRY", CollectorRegistry())
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.append({"app": app, **kwargs}))
    with settled_for_serving():
        yield started


@contextmanager
def settled_for_serving() -> Iterator[None]:
    """Undo what `prepare_to_serve` does to this (test) process when the block ends."""
    thresholds = gc.get_threshold()
    levels = {name: logging.getLogger(name).level for name in router_cli.CHATTY_LOGGERS}
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_the_router_settles_its_process_for_serving(caplog: pytest.LogCaptureFixture) -> None:
    with settled_for_serving():
        gc.unfreeze()
        options = router_cli.prepare_to_serve()
        frozen = gc.get_freeze_count()
        threshold = gc.get_threshold()[0]
        with caplog.at_level(logging.INFO):
            logging.getLogger("httpx").info('HTTP Request: POST http://upstream/v1 "HTTP/1.1 200 OK"')
            logging.getLogger("httpx2").info("HTTP Request: POST")
            logging.getLogger("openai._base_client").info("Retrying request")
            logging.getLogger("httpx").warning("a warning still comes through")
            logging.getLogger("jesus.router.service").info("Registered run run=r")
    assert options == {"loop": "uvloop", "http": "httptools"}
    assert frozen > 10_000, "what start-up built is out of the collector's way"
    assert threshold == router_cli.GC_YOUNG_THRESHOLD
    assert [r.getMessage() for r in caplog.records] == [
        "a warning still comes through",
        "Registered run run=r",
    ]


async def test_the_router_serves_the_specs_adapters_on_the_given_port(
    tmp_path: Path, served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JESUS_ROUTER_ADMIN_TOKEN", "admin-secret")
    specs = write(tmp_path, scripted_adapter(namespace="team"), route_policy(namespace="team"))
    assert main(["router", "--specs", str(specs), "--port", "18080", "--host", "0.0.0.0"]) == 0
    (started,) = served
    assert (started["host"], started["port"]) == ("0.0.0.0", 18080)
    assert (started["loop"], started["http"]) == ("uvloop", "httptools")
    transport = httpx2.ASGITransport(app=started["app"])
    async with httpx2.AsyncClient(transport=transport, base_url="http://router") as client:
        refused = await client.post("/admin/v1/runs", json={"run": "r", "routePolicy": "route"})
        granted = await client.post(
            "/admin/v1/runs",
            json={"run": "r", "namespace": "team", "routePolicy": "route"},
            headers={"authorization": "Bearer admin-secret"},
        )
        assert refused.status_code == 401
        assert granted.status_code in (200, 201), granted.text
        token = granted.json()["token"]
        answer = await client.post(
            "/v1/chat/completions",
            json={"model": "any", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "done"
    assert answer.json()["jesus"]["adapter"] == "team/scripted"


def test_the_router_refuses_specs_that_do_not_validate(
    tmp_path: Path, served: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    broken = scripted_adapter()
    broken["spec"]["pricing"]["inputPerMillionTokens"] = "cheap"
    specs = write(tmp_path, broken)
    assert main(["router", "--specs", str(specs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the specs do not validate:")
    assert str(specs) in err and "inputPerMillionTokens" in err
    assert served == []


def test_the_router_names_a_missing_specs_path(
    tmp_path: Path, served: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["router", "--specs", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert served == []


def test_a_live_router_without_credentials_names_the_variable(
    tmp_path: Path,
    served: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_KEY_APIKEY", raising=False)
    specs = write(tmp_path, openai_adapter())
    assert main(["router", "--specs", str(specs), "--secrets-dir", str(tmp_path / "secrets")]) == 2
    assert "OPENAI_KEY_APIKEY" in capsys.readouterr().err
    assert served == []
    assert main(["router", "--specs", str(specs), "--dry-run"]) == 0
    assert len(served) == 1


# -- jesus operator --------------------------------------------------------------------------------


def test_the_operator_command_passes_every_flag_to_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[operator_app.OperatorOptions] = []

    async def fake_run_operator(options: operator_app.OperatorOptions, **_: Any) -> None:
        seen.append(options)

    monkeypatch.setattr(operator_app, "run_operator", fake_run_operator)
    monkeypatch.setenv("JESUS_ROUTER_ADMIN_TOKEN", "t0ken")
    code = main(
        [
            "operator",
            "--namespace",
            "a",
            "--namespace",
            "b",
            "--opa-url",
            "http://opa:8181",
            "--policies",
            "/etc/policies",
            "--runner-image",
            "runner:1",
            "--runner-command",
            "python -m jesus runner",
            "--router-url",
            "http://router:8080",
            "--resync-seconds",
            "3",
            "--worker-limit",
            "7",
            "--metrics-port",
            "9100",
            "--runner-cpu-request",
            "250m",
            "--runner-memory-limit",
            "2Gi",
            "--runner-egress",
            '[{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}]',
            "--cluster-domain",
            "corp.internal",
        ]
    )
    assert code == 0
    (options,) = seen
    runner = options.settings.runner
    assert (runner.cpu_request, runner.memory_request, runner.cpu_limit, runner.memory_limit) == (
        "250m",
        "256Mi",
        "1",
        "2Gi",
    )
    egress = options.settings.runner_egress
    assert egress is not None
    assert egress.rules == ({"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},)
    assert egress.cluster_domain == "corp.internal"
    assert options.namespaces == ("a", "b")
    assert (options.opa_url, str(options.policy_dir)) == ("http://opa:8181", "/etc/policies")
    assert options.settings.runner.image == "runner:1"
    assert options.settings.runner.command == ("python", "-m", "jesus", "runner")
    assert options.settings.runner.router_url == "http://router:8080"
    assert (options.settings.resync_seconds, options.worker_limit, options.metrics_port) == (3.0, 7, 9100)
    assert options.router_admin_token == "t0ken"
    assert options.router_admin_token_file is None


def test_the_operator_reads_its_router_token_file_and_refuses_one_that_is_not_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[operator_app.OperatorOptions] = []

    async def fake_run_operator(options: operator_app.OperatorOptions, **_: Any) -> None:
        seen.append(options)

    monkeypatch.setattr(operator_app, "run_operator", fake_run_operator)
    token = tmp_path / "token"
    token.write_text("projected")
    assert main(["operator", "--router-admin-token-file", str(token)]) == 0
    assert seen[0].router_admin_token_file == token
    monkeypatch.setenv("JESUS_ROUTER_ADMIN_TOKEN_FILE", str(token))
    assert main(["operator"]) == 0
    assert seen[1].router_admin_token_file == token
    assert main(["operator", "--router-admin-token-file", str(tmp_path / "missing")]) != 0
    assert (
        f"--router-admin-token-file (or $JESUS_ROUTER_ADMIN_TOKEN_FILE): {tmp_path / 'missing'} is not a file"
        in (capsys.readouterr().err)
    )
    assert len(seen) == 2


def test_without_runner_egress_the_operator_makes_no_network_policies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[operator_app.OperatorOptions] = []

    async def fake_run_operator(options: operator_app.OperatorOptions, **_: Any) -> None:
        seen.append(options)

    monkeypatch.setattr(operator_app, "run_operator", fake_run_operator)
    assert main(["operator"]) == 0
    assert seen[0].settings.runner_egress is None


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("{", "error: --runner-egress: not JSON"),
        ('[{"to": [], "from": []}]', "error: --runner-egress[0]: unknown keys ['from']"),
    ],
)
def test_bad_runner_egress_stops_the_operator_naming_the_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], rules: str, message: str
) -> None:
    async def never(options: operator_app.OperatorOptions, **_: Any) -> None:
        raise AssertionError("the operator must not start")

    monkeypatch.setattr(operator_app, "run_operator", never)
    assert main(["operator", "--runner-egress", rules]) == 2
    assert capsys.readouterr().err.strip().startswith(message)


def test_policies_that_do_not_load_stop_the_operator_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from jesus.policy.decision import PolicyLoadError

    async def failing(options: operator_app.OperatorOptions, **_: Any) -> None:
        raise PolicyLoadError("policies/admission.rego:3: rego_parse_error")

    monkeypatch.setattr(operator_app, "run_operator", failing)
    assert main(["operator"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: the admission policies do not load: policies/admission.rego:3: rego_parse_error"
    )


# -- redaction of each component's exits (ADR 0015) ----------------------------------------------


@pytest.fixture
def log_factory() -> Iterator[None]:
    """Whatever a command installs as the log record factory is removed again afterwards."""
    yield
    uninstall_log_redaction()


def test_the_operator_redacts_its_logs_and_writes_with_patterns_only_by_default(
    monkeypatch: pytest.MonkeyPatch, log_factory: None
) -> None:
    seen: list[operator_app.OperatorOptions] = []

    async def fake_run_operator(options: operator_app.OperatorOptions, **_: Any) -> None:
        seen.append(options)

    monkeypatch.setattr(operator_app, "run_operator", fake_run_operator)
    monkeypatch.delenv("JESUS_REDACTION_NAMES", raising=False)
    assert main(["operator"]) == 0
    redact = seen[0].redact
    assert isinstance(redact, PresidioRedactor) and redact.names is False
    logger_redactor = installed_log_redactor()
    assert isinstance(logger_redactor, PresidioRedactor) and logger_redactor.names is False
    monkeypatch.setenv("JESUS_REDACTION_NAMES", "true")
    assert main(["operator"]) == 0
    assert isinstance(seen[1].redact, PresidioRedactor) and seen[1].redact.names is True


@pytest.mark.parametrize("command", ["operator", "router"])
def test_a_bad_redaction_setting_stops_the_operator_and_the_router(
    command: str,
    tmp_path: Path,
    served: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("JESUS_REDACTION_PATTERNS", "[1]")
    specs = write(tmp_path, scripted_adapter(namespace="team"), route_policy(namespace="team"))
    arguments = [command] + (["--specs", str(specs)] if command == "router" else [])
    assert main(arguments) == 2
    assert "JESUS_REDACTION_PATTERNS" in capsys.readouterr().err
    assert not served


def test_the_router_and_the_runner_redact_their_log_lines(
    tmp_path: Path, served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, log_factory: None
) -> None:
    specs = write(tmp_path, scripted_adapter(namespace="team"), route_policy(namespace="team"))
    assert main(["router", "--specs", str(specs)]) == 0
    assert installed_log_redactor() is not None
    uninstall_log_redaction()
    monkeypatch.delenv("JESUS_RUN_NAMESPACE", raising=False)
    assert main(["runner"]) == 2, "no run without its environment"
    redact = installed_log_redactor()
    assert redact is not None and redact("key sk-ant-" + "a" * 30) == "key [REDACTED:anthropic-key]"


# -- jesus run -------------------------------------------------------------------------------------


def test_run_names_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().err


def test_run_names_an_unknown_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = write(tmp_path, scripted_adapter(), route_policy(), agent_run("one"))
    assert main(["run", str(specs), "--run", "two"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {specs}: no valid AgentRun named 'two'; found: one"


def test_run_refuses_a_policies_folder_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = write(tmp_path, scripted_adapter(), route_policy(), agent_run())
    assert main(["run", str(specs), "--policies", str(tmp_path / "no-policies")]) == 2
    assert (
        capsys.readouterr().err.strip() == f"error: --policies {tmp_path / 'no-policies'}: no such directory"
    )


def test_run_explains_policies_that_do_not_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "admission.rego").write_text("package jesus.admission\n\ndeny contains msg if {\n")
    specs = write(tmp_path, scripted_adapter(), route_policy(), agent_run())
    assert main(["run", str(specs), "--policies", str(policies)]) == 2
    assert "admission.rego" in capsys.readouterr().err


def test_run_takes_the_policy_folder_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JESUS_POLICIES", str(REPO / "policies"))
    monkeypatch.chdir(tmp_path)  # no ./policies here: only the variable can name them
    run = agent_run()
    run["spec"]["limits"]["maxCost"] = "30.00"  # more than the shipped policies let one run cost
    specs = write(tmp_path, scripted_adapter(), route_policy(), budget(limit="1000.00"), run)
    assert main(["run", str(specs), "-o", "json"]) == 1
    record = json.loads(capsys.readouterr().out)
    assert record["outcome"] == "PolicyDenied"
    assert (record["policy"]["allowed"], record["policy"]["engine"]) == (False, "embedded")
    assert record["reason"] == "; ".join(record["policy"]["reasons"])


def test_the_summary_shows_calls_fallbacks_tools_and_failures() -> None:
    record = RunRecord(
        run="r", namespace="team", outcome=RunOutcome.MODEL_FAILED, reason="no adapter answered"
    )
    record.calls = [
        {
            "adapter": "team/primary",
            "model": "m1",
            "inputTokens": 10,
            "outputTokens": 2,
            "costMicros": 1_250,
            "latencyMs": 12.4,
            "attempts": [{}, {}],
            "fallbacks": [{"from": "team/a", "to": "team/primary"}],
        },
        {"adapter": None, "outcome": "error", "error": "Overloaded: every adapter is busy"},
    ]
    record.turns = 2
    record.tool_calls = [
        {"server": "files", "tool": "grep", "isError": False, "latencyMs": 3.2},
        {"server": "", "tool": "read", "isError": True, "latencyMs": 1.0},
    ]
    record.final_answer = "line one\nline two"
    lines = summary_lines(record, artifacts=Path("/tmp/a"), problems=[])
    assert lines[0] == "Run r (namespace team, live): ModelFailed"
    assert "  reason: no adapter answered" in lines
    assert "Policy:    not configured (no admission policy was checked)" in lines
    assert (
        "  1. team/primary (m1): 10+2 tokens, 0.00125, 12 ms, 2 attempt(s), fell back: team/a -> team/primary"
    ) in lines
    assert "  2. no adapter: error: Overloaded: every adapter is busy" in lines
    assert "Tools:     2 call(s)" in lines
    assert "  files.grep: ok (3 ms)" in lines and "  -.read: error (1 ms)" in lines
    assert lines[lines.index("Answer:") + 1 : lines.index("Answer:") + 3] == ["  line one", "  line two"]
    assert "Artifacts: /tmp/a" in lines


def test_the_summary_of_specs_that_do_not_validate_lists_the_problems() -> None:
    record = RunRecord(run="r", namespace="", outcome=RunOutcome.INVALID_SPEC, reason="2 problem(s)")
    lines = summary_lines(record, artifacts=None, problems=["a.yaml:3: bad", "a.yaml:9: worse"])
    assert lines == [
        "Run r: InvalidSpec",
        "  reason: the specs do not validate",
        "  problem: a.yaml:3: bad",
        "  problem: a.yaml:9: worse",
    ]


def test_runner_placement_reaches_the_runner_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[operator_app.OperatorOptions] = []

    async def fake_run_operator(options: operator_app.OperatorOptions, **_: Any) -> None:
        seen.append(options)

    monkeypatch.setattr(operator_app, "run_operator", fake_run_operator)
    placement = (
        '{"nodeSelector": {"pool": "agents"}, "tolerations": [{"key": "agents", "operator": "Exists"}]}'
    )
    assert main(["operator", "--runner-placement", placement]) == 0
    assert seen[0].settings.runner.placement.node_selector == {"pool": "agents"}
    assert seen[0].settings.runner.placement.tolerations == ({"key": "agents", "operator": "Exists"},)


def test_serving_placement_reaches_the_operator_settings_apart_from_the_runners(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[operator_app.OperatorOptions] = []

    async def fake_run_operator(options: operator_app.OperatorOptions, **_: Any) -> None:
        seen.append(options)

    monkeypatch.setattr(operator_app, "run_operator", fake_run_operator)
    assert main(["operator", "--serving-placement", '{"nodeSelector": {"pool": "inference"}}']) == 0
    assert seen[0].settings.serving_placement.node_selector == {"pool": "inference"}
    assert seen[0].settings.runner.placement.node_selector == {}


def test_bad_serving_placement_stops_the_operator_naming_the_flag_and_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def never(options: operator_app.OperatorOptions, **_: Any) -> None:
        raise AssertionError("the operator must not start")

    monkeypatch.setattr(operator_app, "run_operator", never)
    # Careless: a toleration with a value under Exists.
    bad = '{"tolerations": [{"key": "gpu", "operator": "Exists", "value": "yes"}]}'
    assert main(["operator", "--serving-placement", bad]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --serving-placement: tolerations[0].value must be empty when operator is Exists"
    )


def test_bad_runner_placement_stops_the_operator_naming_the_flag_and_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def never(options: operator_app.OperatorOptions, **_: Any) -> None:
        raise AssertionError("the operator must not start")

    monkeypatch.setattr(operator_app, "run_operator", never)
    assert main(["operator", "--runner-placement", '{"nodeSelector": {"pool": 3}}']) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --runner-placement: nodeSelector['pool'] must be a label value (a string)"
    )


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--shards", "4"], "--shards needs --identity"),  # careless: half the flags
        (["--identity", "op-0"], "--identity and --lease-namespace need --shards"),
        (["--shards", "4", "--identity", "op-0", "--lease-namespace", "ns", "--peering", "p"], "exclude"),
        (["--shards", "0", "--identity", "op-0", "--lease-namespace", "ns"], "--shards/--identity"),
        (["--shards", "4", "--identity", "Op 0; rm -rf /", "--lease-namespace", "ns"], "--shards/--identity"),
    ],
)
def test_the_shard_flags_are_checked_before_the_operator_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flags: list[str], says: str
) -> None:
    started: list[operator_app.OperatorOptions] = []

    async def fake_run_operator(options: operator_app.OperatorOptions, **_: Any) -> None:
        started.append(options)

    monkeypatch.setattr(operator_app, "run_operator", fake_run_operator)
    assert main(["operator", *flags]) != 0
    assert says in capsys.readouterr().err
    assert started == []


def test_the_shard_flags_reach_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[operator_app.OperatorOptions] = []

    async def fake_run_operator(options: operator_app.OperatorOptions, **_: Any) -> None:
        seen.append(options)

    monkeypatch.setattr(operator_app, "run_operator", fake_run_operator)
    assert main(["operator", "--shards", "4", "--identity", "op-0", "--lease-namespace", "jesus"]) == 0
    [options] = seen
    assert (options.shards, options.identity, options.lease_namespace) == (4, "op-0", "jesus")
