"""Who may call the router's admin API: the operator's service account by TokenReview (cached on an
injected clock, fail closed), or a static token in local mode; hostile and careless headers are
refused before any review is asked for."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from tests.builders.adapters import scripted_adapter
from tests.builders.routes import route_policy
from tests.builders.spec_files import to_yaml

from jesus.cli import CommandError
from jesus.cli.router import admin_access, build_service
from jesus.router.admin_auth import (
    MAX_ADMIN_HEADER_BYTES,
    AdminDecision,
    ReviewUnavailableError,
    StaticTokenAuthenticator,
    TokenReviewAuthenticator,
    TokenReviewResult,
    bearer_token,
    parse_service_account,
    review_decision,
)
from jesus.router.service import build_app
from jesus.router.token_review import review_result
from jesus.specs import load_text

OPERATOR = "system:serviceaccount:jesus-system:jesus-operator"
AUDIENCE = "jesus-router"
OPERATOR_TOKEN = "eyJ.operator.token"
OTHER_TOKEN = "eyJ.other.token"
EXPIRED_TOKEN = "eyJ.expired.token"


class FakeReviewer:
    """The API server's TokenReview, as a table of tokens; counts the reviews it was asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.unavailable = False
        self.hang = False

    async def review(self, token: str, audiences: list[str]) -> TokenReviewResult:
        self.calls.append((token, audiences))
        if self.hang:
            await asyncio.Event().wait()
        if self.unavailable:
            raise ReviewUnavailableError("the API server is unreachable: ConnectError")
        if token == OPERATOR_TOKEN:
            return TokenReviewResult(True, OPERATOR, (AUDIENCE,))
        if token == OTHER_TOKEN:
            return TokenReviewResult(True, "system:serviceaccount:team-a:curious", (AUDIENCE,))
        if token == EXPIRED_TOKEN:
            return TokenReviewResult(False, error="[invalid bearer token, token has expired]")
        return TokenReviewResult(False, error="invalid bearer token")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reviewing(reviewer: FakeReviewer, clock: Clock, **options: float) -> TokenReviewAuthenticator:
    return TokenReviewAuthenticator(
        reviewer,
        username=OPERATOR,
        audience=AUDIENCE,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


# --- the header ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "needs an Authorization: Bearer <token> header"),
        ("", "needs an Authorization: Bearer <token> header"),
        ("   ", "needs an Authorization: Bearer <token> header"),
        ("Basic YWRtaW46YWRtaW4=", "scheme must be Bearer, not 'Basic'"),
        (OPERATOR_TOKEN, "scheme must be Bearer"),  # careless: the token without its scheme
        ("Bearer", "empty or not printable ASCII"),
        ("Bearer a b", "empty or not printable ASCII"),
        ("Bearer t\u00f6ken", "empty or not printable ASCII"),
        ("Bearer " + "x" * MAX_ADMIN_HEADER_BYTES, f"longer than {MAX_ADMIN_HEADER_BYTES} bytes"),
    ],
)
def test_a_header_that_holds_no_token_is_refused_with_its_reason(header: str | None, reason: str) -> None:
    decision = bearer_token(header)
    assert isinstance(decision, AdminDecision)
    assert decision.status == 401 and reason in decision.reason


def test_a_bearer_header_gives_its_token_whatever_the_schemes_case() -> None:
    assert bearer_token(f"Bearer {OPERATOR_TOKEN}") == OPERATOR_TOKEN
    assert bearer_token(f"bearer   {OPERATOR_TOKEN}  ") == OPERATOR_TOKEN


# --- the review's answer -----------------------------------------------------------------------


def test_the_decision_needs_the_operators_account_for_the_routers_audience() -> None:
    ok = review_decision(TokenReviewResult(True, OPERATOR, (AUDIENCE,)), username=OPERATOR, audience=AUDIENCE)
    assert (ok.status, ok.who) == (200, OPERATOR)
    other = review_decision(
        TokenReviewResult(True, "system:serviceaccount:team-a:curious", (AUDIENCE,)),
        username=OPERATOR,
        audience=AUDIENCE,
    )
    assert other.status == 403
    assert "'system:serviceaccount:team-a:curious'" in other.reason and OPERATOR in other.reason
    elsewhere = review_decision(
        TokenReviewResult(True, OPERATOR, ("https://kubernetes.default.svc",)),
        username=OPERATOR,
        audience=AUDIENCE,
    )
    assert elsewhere.status == 401 and "not jesus-router" in elsewhere.reason
    unknown = review_decision(
        TokenReviewResult(False, error="token has expired"), username=OPERATOR, audience=AUDIENCE
    )
    assert unknown.status == 401 and "token has expired" in unknown.reason


def test_a_token_review_status_is_read_field_by_field() -> None:
    status = {"authenticated": True, "user": {"username": OPERATOR, "groups": ["x"]}, "audiences": [AUDIENCE]}
    assert review_result(status) == TokenReviewResult(True, OPERATOR, (AUDIENCE,))
    assert review_result({}) == TokenReviewResult(False)
    assert review_result({"error": "bad"}).error == "bad"


# --- reviewing with a cache --------------------------------------------------------------------


async def test_the_operators_token_is_reviewed_once_for_the_cache_time_then_again() -> None:
    reviewer, clock = FakeReviewer(), Clock()
    auth = reviewing(reviewer, clock, cache_seconds=10)
    for _ in range(3):
        assert (await auth.authenticate(f"Bearer {OPERATOR_TOKEN}")).allowed
    assert reviewer.calls == [(OPERATOR_TOKEN, [AUDIENCE])]
    clock.now += 9.9
    assert (await auth.authenticate(f"Bearer {OPERATOR_TOKEN}")).allowed
    assert len(reviewer.calls) == 1
    clock.now += 0.2
    assert (await auth.authenticate(f"Bearer {OPERATOR_TOKEN}")).allowed
    assert len(reviewer.calls) == 2


async def test_another_accounts_an_expired_and_a_garbage_token_are_refused() -> None:
    auth = reviewing(FakeReviewer(), Clock())
    other = await auth.authenticate(f"Bearer {OTHER_TOKEN}")
    assert (other.status, other.kind) == (403, "Forbidden")
    expired = await auth.authenticate(f"Bearer {EXPIRED_TOKEN}")
    assert (expired.status, expired.kind) == (401, "Unauthenticated") and "has expired" in expired.reason
    garbage = await auth.authenticate("Bearer not-a-jwt")
    assert garbage.status == 401 and "invalid bearer token" in garbage.reason


async def test_a_refusal_is_cached_too_so_a_flood_of_one_bad_token_costs_one_review() -> None:
    reviewer = FakeReviewer()
    auth = reviewing(reviewer, Clock())
    for _ in range(50):
        assert (await auth.authenticate(f"Bearer {OTHER_TOKEN}")).status == 403
    assert len(reviewer.calls) == 1


async def test_a_header_too_long_or_without_a_token_asks_no_review() -> None:
    reviewer = FakeReviewer()
    auth = reviewing(reviewer, Clock())
    for header in (None, "Basic x", "Bearer " + "A" * (MAX_ADMIN_HEADER_BYTES * 8)):
        assert (await auth.authenticate(header)).status == 401
    assert reviewer.calls == []


async def test_an_unreachable_api_server_refuses_with_503_and_is_not_cached() -> None:
    reviewer = FakeReviewer()
    reviewer.unavailable = True
    auth = reviewing(reviewer, Clock())
    decision = await auth.authenticate(f"Bearer {OPERATOR_TOKEN}")
    assert (decision.status, decision.kind) == (503, "AuthenticationUnavailable")
    assert "unreachable" in decision.reason and "refused" in decision.reason
    reviewer.unavailable = False
    assert (await auth.authenticate(f"Bearer {OPERATOR_TOKEN}")).allowed  # asked again, not cached
    assert len(reviewer.calls) == 2


async def test_an_api_server_that_does_not_answer_in_time_refuses_with_503() -> None:
    reviewer = FakeReviewer()
    reviewer.hang = True
    auth = reviewing(reviewer, Clock(), timeout_seconds=0.05)
    decision = await auth.authenticate(f"Bearer {OPERATOR_TOKEN}")
    assert decision.status == 503 and "within 0.05s" in decision.reason


async def test_the_cache_holds_at_most_its_bound() -> None:
    reviewer, clock = FakeReviewer(), Clock()
    auth = reviewing(reviewer, clock, max_cached=2)
    for i in range(5):
        await auth.authenticate(f"Bearer garbage-{i}")
    assert len(auth._cache) == 2
    assert all(OPERATOR_TOKEN not in key for key in auth._cache)  # keyed by digest, never the token


async def test_the_static_token_of_local_mode_is_compared_whole() -> None:
    auth = StaticTokenAuthenticator("local-secret")
    assert (await auth.authenticate("Bearer local-secret")).allowed
    for header in ("Bearer local-secre", "Bearer local-secret2", "Bearer LOCAL-SECRET", None):
        assert (await auth.authenticate(header)).status == 401
    with pytest.raises(ValueError, match="empty"):
        StaticTokenAuthenticator("")


@pytest.mark.parametrize(
    ("text", "username"),
    [
        ("jesus-system:jesus-operator", OPERATOR),
        (OPERATOR, OPERATOR),
    ],
)
def test_the_operator_account_is_namespace_and_name(text: str, username: str) -> None:
    assert parse_service_account(text, source="--operator-account") == username


@pytest.mark.parametrize("text", ["jesus-operator", "ns:", ":sa", "NS:sa", "a:b:c", "ns:sa;rm", ""])
def test_a_careless_operator_account_is_refused_naming_the_flag(text: str) -> None:
    with pytest.raises(ValueError, match="--operator-account"):
        parse_service_account(text, source="--operator-account")


# --- the admin API over HTTP -------------------------------------------------------------------


async def test_the_admin_api_answers_401_403_503_with_the_reason_and_serves_the_operator() -> None:
    specs = load_text(to_yaml(scripted_adapter(namespace="team"), route_policy("route", namespace="team")))
    reviewer = FakeReviewer()
    service = build_service(
        specs, live=False, secrets_dir=Path("/nonexistent"), admin_token=None, registry=CollectorRegistry()
    )
    service.admin = reviewing(reviewer, Clock())
    body = {"run": "r", "namespace": "team", "routePolicy": "route"}
    transport = httpx.ASGITransport(app=build_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:

        async def post(headers: dict[str, str]) -> httpx.Response:
            return await client.post("/admin/v1/runs", json=body, headers=headers)

        missing = await post({})
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.json()["error"]["code"] == "Unauthenticated"
        other = await post({"authorization": f"Bearer {OTHER_TOKEN}"})
        assert other.status_code == 403
        assert "team-a:curious" in other.json()["error"]["message"]
        huge = await post({"authorization": "Bearer " + "A" * 60_000})
        assert huge.status_code == 401 and "longer than" in huge.json()["error"]["message"]
        revoke = await client.delete(
            "/admin/v1/runs", params={"token": "x"}, headers={"authorization": "Basic x"}
        )
        assert revoke.status_code == 401
        reviewer.unavailable = True
        down = await post({"authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert down.status_code == 503 and "refused" in down.json()["error"]["message"]
        reviewer.unavailable = False
        granted = await post({"authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert granted.status_code == 201, granted.text
        assert granted.json()["chain"] == ["team/scripted"]
    assert service.signer is None  # no key: the token is known to this replica only
    assert await service.resolve_token(granted.json()["token"]) is not None


# --- the router's command line -----------------------------------------------------------------


def _args(operator_account: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(operator_account=operator_account, admin_audience=AUDIENCE, kubeconfig=None)


def test_the_static_token_is_local_mode_and_signs_unless_a_key_is_given() -> None:
    admin, key = admin_access(_args(), {"JESUS_ROUTER_ADMIN_TOKEN": "local"})
    assert isinstance(admin, StaticTokenAuthenticator) and key == "local"
    admin, key = admin_access(_args(), {"JESUS_ROUTER_ADMIN_TOKEN": "local", "JESUS_ROUTER_SIGNING_KEY": "k"})
    assert key == "k"
    assert admin_access(_args(), {}) == (None, None)


def test_an_operator_account_reviews_tokens_and_refuses_a_static_token_beside_it() -> None:
    admin, key = admin_access(_args("jesus-system:jesus-operator"), {"JESUS_ROUTER_SIGNING_KEY": "k"})
    assert isinstance(admin, TokenReviewAuthenticator)
    assert (admin.username, admin.audience, key) == (OPERATOR, AUDIENCE, "k")
    admin, key = admin_access(_args(), {"JESUS_ROUTER_OPERATOR_ACCOUNT": "jesus-system:jesus-operator"})
    assert isinstance(admin, TokenReviewAuthenticator)
    with pytest.raises(CommandError, match="both set"):
        admin_access(_args("jesus-system:jesus-operator"), {"JESUS_ROUTER_ADMIN_TOKEN": "local"})
    with pytest.raises(CommandError, match=r"--operator-account.*not a service account"):
        admin_access(_args("jesus-operator"), {})


def test_without_a_signing_key_the_router_makes_one_and_says_what_it_costs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        _, first = admin_access(_args("ns:op"), {})
        _, second = admin_access(_args("ns:op"), {})
    assert first and second and first != second
    assert "JESUS_ROUTER_SIGNING_KEY" in caplog.text
