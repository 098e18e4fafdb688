"""The router's admin API against the real API server (issue 16): only the token of the operator's
service account, for the router's audience, registers a run, as the API server's TokenReview says.
Another account's token, a token for another audience, the token of a deleted account, a forged one,
no header and a huge header are refused; a router whose API server cannot be reached refuses
everything (fail closed). And the operator, given its token as a file, gets its runs registered end to
end with no shared secret.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.builders.adapters import answering_adapter, scripted_adapter
from tests.builders.agentrun import hello_run
from tests.builders.budget import team_budget
from tests.builders.routes import failover_route, route_policy
from tests.builders.spec_files import to_yaml
from tests.cluster.harness import JESUS, OperatorWorld, Process, http_ready, operator_world, wait_for

from jesus.devcluster import ControlPlane
from jesus.devcluster.controlplane import free_port

AUDIENCE = "jesus-router"  # the router's default --admin-audience (the chart sets its own)
OPERATOR, CURIOUS, GONE = "operator", "curious", "gone"


@dataclass
class Accounts:
    """The service accounts' tokens, and the world (router, operator, runtime) whose router trusts
    only `operator`, and whose operator presents that account's token from a file."""

    world: OperatorWorld
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.world.router_port}"

    def register(self, headers: dict[str, str], run: str = "r") -> httpx.Response:
        return httpx.post(
            f"{self.url}/admin/v1/runs",
            json={"run": run, "namespace": self.world.namespace, "routePolicy": "simple"},
            headers=headers,
            timeout=10,
        )


def create_token(plane: ControlPlane, namespace: str, account: str, audience: str | None = AUDIENCE) -> str:
    extra = [f"--audience={audience}"] if audience else []
    return plane.kubectl("create", "token", account, "-n", namespace, "--duration=10m", *extra).stdout.strip()


@pytest.fixture(scope="module")
def accounts(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Accounts]:
    workdir = tmp_path_factory.mktemp("admin-tokens")
    home = f"admin-accounts-{uuid.uuid4().hex[:6]}"  # where the accounts live, as jesus-system would
    control_plane.kubectl("create", "namespace", home)
    for account in (OPERATOR, CURIOUS, GONE):
        control_plane.kubectl("create", "serviceaccount", account, "-n", home)
    tokens = {account: create_token(control_plane, home, account) for account in (OPERATOR, CURIOUS, GONE)}
    tokens["operator-for-the-api-server"] = create_token(control_plane, home, OPERATOR, audience=None)
    control_plane.kubectl("delete", "serviceaccount", GONE, "-n", home)
    token_file = workdir / "token"  # as the chart's projected volume holds it
    token_file.write_text(tokens[OPERATOR])
    router_environment = {
        "JESUS_ROUTER_ADMIN_TOKEN": "",  # no static token: the harness's default is switched off
        "JESUS_ROUTER_OPERATOR_ACCOUNT": f"{home}:{OPERATOR}",
        "JESUS_ROUTER_SIGNING_KEY": "test-signing-key",
    }
    operator_environment = {"JESUS_ROUTER_ADMIN_TOKEN": "", "JESUS_ROUTER_ADMIN_TOKEN_FILE": str(token_file)}
    objects = [
        answering_adapter("steady", replies=50),
        failover_route("simple", "steady"),
        team_budget("t", "t", "1.00"),
    ]
    try:
        with operator_world(
            control_plane,
            workdir,
            "admin-tokens",
            objects,
            router_environment=router_environment,
            operator_environment=operator_environment,
        ) as world:
            yield Accounts(world, {**tokens, "home": home})
    finally:
        control_plane.kubectl("delete", "namespace", home, "--wait=false", check=False)


def test_the_operators_token_registers_a_run(accounts: Accounts) -> None:
    headers = {"authorization": f"Bearer {accounts.tokens[OPERATOR]}"}
    answer = wait_for(
        lambda: (a := accounts.register(headers)).status_code == 201 and a,
        what="the operator's registration (the router has seen the RoutePolicy)",
        describe=accounts.world.describe,
    )
    assert answer.json()["chain"] == [f"{accounts.world.namespace}/steady"]


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        (CURIOUS, 403, f"the token belongs to 'system:serviceaccount:{{ns}}:{CURIOUS}'"),
        ("operator-for-the-api-server", 401, f"does not authenticate this token for audience {AUDIENCE}"),
        (GONE, 401, "does not authenticate this token"),
    ],
)
def test_a_token_that_is_not_the_operators_for_the_router_is_refused(
    accounts: Accounts, token: str, status: int, reason: str
) -> None:
    answer = accounts.register({"authorization": f"Bearer {accounts.tokens[token]}"})
    assert answer.status_code == status, answer.text
    assert reason.format(ns=accounts.tokens["home"]) in answer.json()["error"]["message"]


def _forged(token: str, namespace: str) -> str:
    """The operator's token with its payload rewritten to another account's and its signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = f"system:serviceaccount:{namespace}:{CURIOUS}"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def test_forged_garbage_and_missing_tokens_are_refused(accounts: Accounts) -> None:
    forged = accounts.register(
        {"authorization": f"Bearer {_forged(accounts.tokens[OPERATOR], accounts.tokens['home'])}"}
    )
    assert forged.status_code == 401, forged.text
    garbage = accounts.register({"authorization": "Bearer not.a.jwt"})
    assert garbage.status_code == 401
    missing = accounts.register({})
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    scheme = accounts.register({"authorization": f"Basic {accounts.tokens[OPERATOR]}"})
    assert scheme.status_code == 401 and "scheme must be Bearer" in scheme.json()["error"]["message"]


def test_a_huge_header_is_refused_and_the_router_keeps_serving(accounts: Accounts) -> None:
    for size in (9_000, 60_000):
        answer = accounts.register({"authorization": "Bearer " + "A" * size})
        assert answer.status_code in (400, 401, 431), (size, answer.status_code)
    assert http_ready(accounts.world.router_port)


def test_a_router_that_cannot_reach_the_api_server_refuses_everything(
    accounts: Accounts, tmp_path: Path
) -> None:
    # A router serving spec files, whose kubeconfig names an API server nobody listens on.
    plane = accounts.world.plane
    kubeconfig = json.loads(plane.kubeconfig.read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(json.dumps(kubeconfig))
    specs = tmp_path / "specs.yaml"
    specs.write_text(to_yaml(scripted_adapter(), route_policy("route")))
    port = free_port()
    router = Process(
        "router",
        [*JESUS, "router", "--port", str(port), "--specs", str(specs), "--kubeconfig", str(dead)],
        {
            **plane.env,
            "JESUS_ROUTER_OPERATOR_ACCOUNT": f"{accounts.tokens['home']}:{OPERATOR}",
            "JESUS_ROUTER_SIGNING_KEY": "k",
        },
        tmp_path / "router.log",
    )
    router.start()
    try:
        wait_for(lambda: http_ready(port), what="the router serving spec files", describe=router.tail)
        answer = httpx.post(
            f"http://127.0.0.1:{port}/admin/v1/runs",
            json={"run": "r", "namespace": "default", "routePolicy": "route"},
            headers={"authorization": f"Bearer {accounts.tokens[OPERATOR]}"},
            timeout=30,
        )
        assert answer.status_code == 503, answer.text
        message = answer.json()["error"]["message"]
        assert "refused" in message and ("unreachable" in message or "did not answer" in message), message
    finally:
        router.stop()


def test_the_operator_registers_its_runs_with_its_projected_token_file(accounts: Accounts) -> None:
    """End to end: the router trusts only the `operator` account; the operator reads that account's
    token from a file, as from the chart's projected volume; a run succeeds."""
    world = accounts.world
    world.apply(hello_run("hello", team="t", route_name="simple"))
    status = world.wait_phase("hello", "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", world.describe()
    log = world.router.log.read_text()
    home = accounts.tokens["home"]
    assert f"admin_api=token-review user=system:serviceaccount:{home}:{OPERATOR} audience={AUDIENCE}" in log
