"""A run registered with one `jesus router` process keeps its route and prices on the next one: the
process is stopped, a new one starts from specs whose RoutePolicy has another chain and whose adapters
cost more, and the run's token still works there with the chain and prices it was admitted with (ADR 16)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tests.builders.adapters import scripted_adapter
from tests.builders.agentrun import agent_run
from tests.builders.manifest import Obj
from tests.builders.processes import call_record, free_port, router_process
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.api import AgentRun
from jesus.controllers.router_admin import RouterAdminClient

pytestmark = pytest.mark.e2e

ADMIN = "e2e-pinned-admin"
# Each scripted answer uses 10 input and 5 output tokens.
ADMITTED_COST = 10 * 1 + 5 * 2  # micros at 1.00 / 2.00 per million tokens
EDITED_COST = 10 * 7 + 5 * 8  # at 7.00 / 8.00


@contextmanager
def router_over(tmp_path: Path, *objects: Obj) -> Iterator[str]:
    """`jesus router` over `objects`, stopped when the block ends; its URL."""
    specs = tmp_path / f"specs-{free_port()}.yaml"
    specs.write_text(to_yaml(*objects))
    with router_process(specs, secrets_dir=tmp_path, environment={"JESUS_ROUTER_ADMIN_TOKEN": ADMIN}) as (
        url,
        _,
    ):
        yield url


def register(url: str, run: AgentRun) -> str:
    """Register `run` as the operator does (its admin client); the run's token."""

    async def registered() -> str:
        client = RouterAdminClient(url, ADMIN)
        try:
            return await client.register(run)
        finally:
            await client.aclose()

    return asyncio.run(registered())


def test_a_restarted_router_serves_a_run_with_the_route_and_prices_it_was_admitted_with(
    tmp_path: Path,
) -> None:
    run = AgentRun.model_validate(agent_run("pinned", "route", namespace="team"))
    admitted = (
        scripted_adapter("primary", text="primary answers", namespace="team"),
        scripted_adapter("fallback", text="fallback answers", namespace="team"),
        route_policy("route", ("primary", "fallback"), namespace="team"),
    )
    edited = (
        scripted_adapter("primary", input_price="7.00", output_price="8.00", namespace="team"),
        scripted_adapter(
            "newcomer", text="newcomer answers", input_price="7.00", output_price="8.00", namespace="team"
        ),
        route_policy("route", ("newcomer",), namespace="team"),
    )
    with router_over(tmp_path, *admitted) as url:
        token = register(url, run)
        before = call_record(url, token)
    assert (before["adapter"], before["costMicros"]) == ("team/primary", ADMITTED_COST)
    with router_over(tmp_path, *edited) as url:
        after = call_record(url, token)
        # A run admitted now gets the edited route and prices.
        fresh = call_record(
            url, register(url, AgentRun.model_validate(agent_run("fresh", "route", namespace="team")))
        )
    assert after["adapter"] == "team/primary"  # the pinned chain, not the edited route's newcomer
    assert after["costMicros"] == ADMITTED_COST  # the pinned prices, not 7.00 / 8.00
    assert (fresh["adapter"], fresh["costMicros"]) == ("team/newcomer", EDITED_COST)
