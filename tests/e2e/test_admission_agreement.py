"""`jesus plan` and the operator reach the same admission verdict, with the same reasons.

Both go through `jesus.logic.admission`; what differs is everything around it, and that is what is
compared here. `jesus plan` reads spec files and asks the embedded engine; the operator reads the
cluster (here an in-memory API server with the real ledger) through its watch-fed cache and asks an
OPA server. Every input of the Rego tests and every AgentRun of examples/ must come out the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.builders.cluster import FakeKube, operator_context, sync_cache
from tests.builders.rego import POLICIES
from tests.builders.rego import rego_cases as read_rego_cases

from jesus.api import AgentRun
from jesus.controllers.agentrun.admission import admit_run
from jesus.controllers.agentrun.draft import StatusDraft
from jesus.devcluster.toolchain import ensure_tool
from jesus.logic.admission import AdmissionVerdict, Outcome, decide
from jesus.policy import EmbeddedEngine, OpaServerEngine
from jesus.policy.opa_process import OpaServerProcess
from jesus.policy.planning import decide_planned, placed, plan_runs
from jesus.specs import SpecSet, load_specs

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def opa() -> Path:
    return ensure_tool("opa")


@pytest.fixture(scope="module")
def opa_server(opa: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaServerProcess]:
    with OpaServerProcess(opa, POLICIES, log_path=tmp_path_factory.mktemp("opa") / "opa.log") as server:
        yield server


@pytest.fixture
async def remote(opa_server: OpaServerProcess) -> AsyncIterator[OpaServerEngine]:
    async with OpaServerEngine(opa_server.url, timeout_seconds=10.0) as engine:
        yield engine


@pytest.fixture(scope="module")
def embedded() -> EmbeddedEngine:
    return EmbeddedEngine.from_directory(POLICIES)


def essence(verdict: AdmissionVerdict) -> tuple[Any, ...]:
    """What a person reads: the outcome, its reason, the reasons and warnings."""
    return (verdict.outcome, verdict.reason, verdict.reasons, verdict.warnings)


@pytest.fixture(scope="module")
def rego_cases(opa: Path) -> dict[str, Any]:
    """Every named input of the Rego tests (policies/admission/cases_test.rego)."""
    return read_rego_cases(opa)


async def test_every_rego_case_gets_the_same_verdict_from_plan_and_operator(
    rego_cases: dict[str, Any], embedded: EmbeddedEngine, remote: OpaServerEngine
) -> None:
    cases = rego_cases
    assert len(cases) >= 30
    differences = []
    for name, document in cases.items():
        asking = AdmissionVerdict(Outcome.ASK_POLICY, "", "", (), "", policy_input=document)
        planned = decide(asking, await embedded.decide(document))  # jesus plan's default engine
        operated = decide(asking, await remote.decide(document))  # the operator's, in the chart
        assert planned.decided and operated.decided, name
        if essence(planned) != essence(operated):
            differences.append(f"{name}:\n  plan:     {essence(planned)}\n  operator: {essence(operated)}")
    assert differences == []
    outcomes = {decide(AdmissionVerdict(Outcome.ASK_POLICY, "", "", (), ""), await embedded.decide(d)).outcome
                for d in cases.values()}  # fmt: skip
    assert outcomes == {Outcome.ADMITTED, Outcome.DENIED}, "the cases should cover both answers"


async def _operator_verdict(spec_set: SpecSet, run: AgentRun, engine: OpaServerEngine) -> AdmissionVerdict:
    """The operator's verdict on `run`, with every object of the specs applied to a fresh cluster and
    every dependency of the run already succeeded (what `jesus plan` assumes)."""
    kube = FakeKube()
    for loaded in spec_set.objects:
        kube.put(placed(loaded.obj, loaded.namespace).to_kubernetes())
    namespace = run.metadata.namespace or ""
    for name in run.spec.depends_on or []:
        dependency = kube.find("AgentRun", namespace, name) or {}
        kube.put({**dependency, "status": {"phase": "Succeeded"}})
    context = operator_context(kube, engine, lambda: NOW)
    sync_cache(context, kube)
    obj = kube.find("AgentRun", namespace, run.metadata.name or "")
    assert obj is not None
    stored = AgentRun.model_validate(obj)
    return await admit_run(context, StatusDraft(stored, NOW), obj)


async def test_every_example_gets_the_same_verdict_from_plan_and_operator(
    embedded: EmbeddedEngine, remote: OpaServerEngine
) -> None:
    spec_set = load_specs([EXAMPLES])
    planned = plan_runs(spec_set, now=NOW)
    assert len(planned) >= 5, "examples/ should hold several AgentRuns"
    differences = []
    for plan in planned:
        by_plan = await decide_planned(embedded, plan)
        by_operator = await _operator_verdict(spec_set, plan.run, remote)
        if essence(by_plan) != essence(by_operator) or by_plan.amount_micros != by_operator.amount_micros:
            differences.append(f"{plan.namespace}/{plan.name}:\n  plan:     {essence(by_plan)}\n"
                               f"  operator: {essence(by_operator)}")  # fmt: skip
        # The same figures went into both: only where they came from differs.
        assert by_operator.policy_input is not None
        assert {**by_operator.policy_input, "cluster": None} == {**plan.policy_input, "cluster": None}
    assert differences == [], "\n".join(differences)
