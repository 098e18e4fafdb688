"""People with real OIDC identities (issue 16, ADR 0026): a control plane of this module's own started
with its OIDC provider (ORY Hydra and our login app), every person's ID token obtained through Hydra's
authorization-code flow, and the chart's roles and run-owner policy bound to the OIDC groups. Every
refusal is the API server's: RBAC's, the policy's, or the authenticator's 401; no operator runs here.

The hostile tokens are refused by the API server too: one past its expiry, one from another issuer (a
second Hydra with its own CA, for the same client id and the same person), one for another audience,
and Ada's own token with a group she does not have written into it (the signature no longer fits), or
unsigned.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.builders.budget import team_budget
from tests.cluster.harness import wait_for
from tests.cluster.operator_process import install_crds
from tests.cluster.test_access import (
    People,
    Teams,
    denied_by_policy,
    forbidden_by_rbac,
    installed_teams,
    run_of,
)

from jesus.devcluster import ControlPlane, ControlPlaneError, oidc

ADA = ("oidc:ada@example.com", "oidc:team-a")
BOB = ("oidc:bob@example.com", "oidc:team-b")
VERA = ("oidc:vera@example.com", "oidc:auditors")
PAT = ("oidc:pat@example.com", "oidc:platform")
API = "/apis/jesus.dev/v1alpha1"
PEOPLE = People(ADA, BOB, VERA, PAT, ("system:serviceaccount:argocd:argocd-application-controller", "gitops"))


@dataclass
class World:
    """The module's OIDC control plane, its team namespaces, and a kubeconfig per logged-in person."""

    plane: ControlPlane
    teams: Teams
    directory: Path
    tokens: dict[str, str]

    def token(self, email: str) -> str:
        if email not in self.tokens:
            self.tokens[email] = self.plane.login(email)
        return self.tokens[email]

    def kubectl(self, email: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl with `email`'s ID token (no impersonation, no certificate)."""
        config = self.directory / f"{email}.kubeconfig"
        if not config.exists():
            ca_file, token = self.plane.oidc_settings.ca_file, self.token(email)
            config.write_text(json.dumps(oidc.kubeconfig(self.plane.server, ca_file, email, token)))
        return subprocess.run(
            [str(self.plane.binary("kubectl")), f"--kubeconfig={config}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def create(self, email: str, namespace: str, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return self.kubectl(email, "create", "-n", namespace, "-f", "-", input=json.dumps(obj))

    @property
    def runs(self) -> str:
        """The API path of team a's AgentRuns."""
        return f"{API}/namespaces/{self.teams.a}/agentruns"

    def api(self, token: str, path: str) -> httpx.Response:
        """GET `path` from the API server with `token` as the bearer."""
        with httpx.Client(verify=self.plane.oidc_settings.ssl_context(), timeout=10) as http:
            return http.get(self.plane.server + path, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # The dev users, and a hostile one: the provider says she is in system:masters.
    users = (*oidc.DEV_USERS, oidc.DevUser("eve@example.com", ("system:masters",)))
    plane = ControlPlane(
        tmp_path_factory.mktemp("oidc-plane"), die_with_parent=True, oidc=True, oidc_users=users
    )
    plane.start()
    try:
        install_crds(plane)
        with installed_teams(plane, tmp_path_factory.mktemp("oidc-access"), PEOPLE) as teams:
            yield World(plane, teams, tmp_path_factory.mktemp("oidc-people"), {})
    finally:
        plane.stop()


def jesus(*args: str, plane: ControlPlane) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "JESUS_DEV_DIR": str(plane.state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "jesus.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_dev_login_prints_a_kubeconfig_the_api_server_knows_as_the_oidc_user(world: World) -> None:
    login = jesus("dev", "login", "ada@example.com", plane=world.plane)
    assert login.returncode == 0, login.stderr
    config = world.directory / "from-cli.kubeconfig"
    config.write_text(login.stdout)
    assert "groups: oidc:team-a" in login.stderr
    whoami = subprocess.run(
        [str(world.plane.binary("kubectl")), f"--kubeconfig={config}", "auth", "whoami", "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    assert user["username"] == "oidc:ada@example.com"
    assert set(user["groups"]) == {"oidc:team-a", "system:authenticated"}
    # Hydra issued it, for the kubectl client, to this login (the claims the API server checked).
    token = json.loads(login.stdout)["users"][0]["user"]["token"]
    claims = oidc.token_claims(token)
    assert claims["iss"] == world.plane.oidc_settings.issuer
    assert claims["aud"] == [oidc.CLIENT_ID]
    assert claims["groups"] == ["team-a"] and claims["email_verified"] is True


def test_a_provider_group_named_system_masters_is_only_oidc_system_masters(world: World) -> None:
    whoami = world.kubectl("eve@example.com", "auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["groups"] == [
        "oidc:system:masters",
        "system:authenticated",
    ]
    secrets = world.kubectl("eve@example.com", "get", "secrets", "-n", world.teams.a)
    assert secrets.returncode != 0
    assert 'User "oidc:eve@example.com" cannot list resource "secrets" in API group "" in the namespace ' in (
        secrets.stderr
    )


def test_dev_login_of_an_unknown_user_or_a_wrong_password_gets_no_token(world: World) -> None:
    unknown = jesus("dev", "login", "mallory@example.com", plane=world.plane)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "no dev user 'mallory@example.com'" in unknown.stderr and "ada@example.com" in unknown.stderr
    assert unknown.stdout == ""
    # The login app itself refuses a wrong password (the form comes back, Hydra issues nothing).
    with pytest.raises(oidc.OidcError, match=r"stopped at https://127\.0\.0\.1:\d+/login: HTTP 401"):
        oidc.obtain_id_token(world.plane.oidc_settings, "ada@example.com", "not-her-password")


def test_a_submitter_creates_runs_in_its_teams_namespace_and_is_refused_in_another(world: World) -> None:
    teams, ada = world.teams, "ada@example.com"
    created = world.create(ada, teams.a, run_of("ada-run", ADA[0], "a"))
    assert created.returncode == 0, created.stderr
    elsewhere = world.create(ada, teams.b, run_of("ada-in-b", ADA[0], "b"))
    assert forbidden_by_rbac(elsewhere, ADA[0], "create", "agentruns", teams.b), elsewhere.stderr
    deleted = world.kubectl("bob@example.com", "delete", "agentrun", "ada-run", "-n", teams.a)
    assert forbidden_by_rbac(deleted, BOB[0], "delete", "agentruns", teams.a), deleted.stderr


def test_a_submitter_cannot_create_or_edit_a_budget_and_the_platform_can(world: World) -> None:
    teams = world.teams
    budget = team_budget("a-budget", "a", "10.00")
    refused = world.create("ada@example.com", teams.a, budget)
    assert forbidden_by_rbac(refused, ADA[0], "create", "budgets", teams.a), refused.stderr
    created = world.create("pat@example.com", teams.a, budget)
    assert created.returncode == 0, created.stderr
    edit = world.kubectl(
        "ada@example.com", "patch", "budget", "a-budget", "-n", teams.a, "--type=merge",
        "-p", '{"spec": {"limit": "1000.00"}}',
    )  # fmt: skip
    assert forbidden_by_rbac(edit, ADA[0], "patch", "budgets", teams.a), edit.stderr


def test_a_submitter_cannot_claim_another_owner_and_names_itself_as_the_api_server_does(world: World) -> None:
    teams = world.teams
    as_bob = denied_by_policy(world.create("ada@example.com", teams.a, run_of("as-bob", BOB[0], "a")))
    assert as_bob == (
        'AgentRun as-bob: spec.owner.user is "oidc:bob@example.com" but the submitter is '
        '"oidc:ada@example.com"; a run\'s owner is the person who submits it'
    )
    # Careless: her email without the prefix is not the name the API server knows her by.
    bare = denied_by_policy(world.create("ada@example.com", teams.a, run_of("bare", "ada@example.com", "a")))
    assert 'spec.owner.user is "ada@example.com" but the submitter is "oidc:ada@example.com"' in bare
    other_team = denied_by_policy(world.create("ada@example.com", teams.a, run_of("as-b", ADA[0], "b")))
    assert 'spec.owner.team is "b"' in other_team


def test_a_viewer_lists_runs_and_creates_none(world: World) -> None:
    teams = world.teams
    assert world.create("ada@example.com", teams.a, run_of("seen", ADA[0], "a")).returncode == 0
    listed = world.kubectl("vera@example.com", "get", "agentruns", "-n", teams.a, "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert "agentrun.jesus.dev/seen" in listed.stdout.split()
    created = world.create("vera@example.com", teams.a, run_of("vera-run", VERA[0], "a"))
    assert forbidden_by_rbac(created, VERA[0], "create", "agentruns", teams.a), created.stderr


def test_the_audit_log_records_the_run_create_with_the_oidc_user(world: World) -> None:
    name = f"audited-{uuid.uuid4().hex[:6]}"
    assert world.create("ada@example.com", world.teams.a, run_of(name, ADA[0], "a")).returncode == 0

    def creates() -> list[dict[str, Any]]:
        events = (json.loads(line) for line in world.plane.audit_log.read_text().splitlines() if line)
        return [
            e
            for e in events
            if e["verb"] == "create"
            and e.get("objectRef", {}).get("name") == name
            and e["stage"] == "ResponseComplete"
        ]

    [event] = wait_for(creates, what=f"the audit event of AgentRun {name}'s create", timeout=10)
    assert event["user"]["username"] == "oidc:ada@example.com"
    assert "oidc:team-a" in event["user"]["groups"]
    assert "impersonatedUser" not in event
    claims = oidc.token_claims(world.token("ada@example.com"))
    assert event["user"]["extra"]["authentication.kubernetes.io/credential-id"] == [f"JTI={claims['jti']}"]
    assert event["responseStatus"]["code"] == 201


def _unauthorized(response: httpx.Response) -> bool:
    """The API server's own 401: a Status object, not anyone else's error page."""
    body = response.json()
    return response.status_code == 401 and body["kind"] == "Status" and body["reason"] == "Unauthorized"


def refused_because(world: World, token: str) -> str:
    """Present `token` to the API server, which must answer 401; the reason its log gives."""
    log = world.plane.state_dir / "kube-apiserver.log"
    start = log.stat().st_size
    response = world.api(token, world.runs)
    assert _unauthorized(response), (response.status_code, response.text)

    def reason() -> str:
        with log.open("rb") as text:
            text.seek(start)
            lines = text.read().decode(errors="replace").splitlines()
        return next((line.split(" err=", 1)[1] for line in lines if "Unable to authenticate" in line), "")

    found: str = wait_for(reason, what=f"the API server's reason in {log}", timeout=10)
    return found


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_token_with_a_group_written_into_it_is_refused(world: World) -> None:
    runs = world.runs
    token = world.token("ada@example.com")
    assert world.api(token, runs).status_code == 200
    header, _, signature = token.split(".")
    claims = oidc.token_claims(token)
    tampered = ".".join((header, _b64({**claims, "groups": ["team-a", "platform"]}), signature))
    assert "oidc: verify token: failed to verify signature" in refused_because(world, tampered)
    # Hostile: the same claims unsigned ("alg": "none").
    unsigned = ".".join((_b64({"alg": "none", "typ": "JWT"}), _b64({**claims, "groups": ["platform"]}), ""))
    assert 'unsupported algorithm, expected ["ES256"' in refused_because(world, unsigned).replace("\\", "")


def test_a_token_for_another_audience_is_refused(world: World) -> None:
    settings = world.plane.oidc_settings
    oidc.register_client(settings, oidc.kubectl_client("jesus-dev-dashboard"))
    token = world.plane.login("ada@example.com", client_id="jesus-dev-dashboard")
    assert oidc.token_claims(token)["aud"] == ["jesus-dev-dashboard"]
    reason = refused_because(world, token).replace("\\", "")
    assert 'oidc: expected audience "jesus-dev-kubectl" got ["jesus-dev-dashboard"]' in reason


def test_a_token_of_another_issuer_is_refused_even_for_the_same_client_and_person(
    world: World, tmp_path: Path
) -> None:
    stranger = ControlPlane(tmp_path / "stranger", die_with_parent=True)
    settings = stranger.start_oidc_provider()
    try:
        token = stranger.login("ada@example.com")
    finally:
        stranger.stop()
    claims = oidc.token_claims(token)
    assert claims["aud"] == [oidc.CLIENT_ID] and claims["email"] == "ada@example.com"
    assert claims["iss"] == settings.issuer != world.plane.oidc_settings.issuer
    # No authenticator takes it: the OIDC one does not even look at another issuer's token.
    assert refused_because(world, token) == '"invalid bearer token"'


def test_an_expired_token_is_refused(world: World) -> None:
    settings = world.plane.oidc_settings
    lifespans = f"{settings.admin}/admin/clients/{oidc.CLIENT_ID}/lifespans"
    with httpx.Client(verify=settings.ssl_context(), timeout=10) as http:
        short = {"authorization_code_grant_id_token_lifespan": "1s"}
        assert http.put(lifespans, json=short).status_code == 200
        try:
            token = world.plane.login("ada@example.com")
        finally:
            assert http.put(lifespans, json={}).status_code == 200
    claims = oidc.token_claims(token)
    assert claims["exp"] - claims["iat"] == 1
    # Presented only once its second is over: a token the API server accepted stays in its token cache
    # for 10 s (kube-apiserver's default), expired or not (docs/security.md).
    wait_for(lambda: time.time() > claims["exp"] + 0.1, what=f"the token's expiry at {claims['exp']}")
    assert "oidc: verify token: oidc: token is expired" in refused_because(world, token)
    assert world.api(world.plane.login("ada@example.com"), world.runs).status_code == 200


def test_a_plane_without_oidc_says_how_to_start_one(tmp_path: Path) -> None:
    expected = r"runs without OIDC: `jesus dev down`, then `jesus dev up --oidc`"
    with pytest.raises(ControlPlaneError, match=expected):
        ControlPlane(tmp_path).login("ada@example.com")
