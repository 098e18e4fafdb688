"""The cluster client over a recording stand-in for kr8s: which request each method sends, and how the
API server's failures become the errors the reconcilers act on."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import kr8s
import kr8s.asyncio
import pytest

from jesus.kube import ConflictError, InvalidError, KubeClient, KubeError, NotFoundError


@dataclass
class Call:
    method: str
    version: str
    base: str
    namespace: str | None
    url: str
    kwargs: dict[str, Any]


def status(code: int, reason: str, message: str) -> httpx.Response:
    return httpx.Response(code, json={"kind": "Status", "reason": reason, "message": message})


@dataclass
class FakeApi:
    """Answers each call with the next scripted response (a dict body, an httpx.Response, or None)."""

    answers: list[Any] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def call_api(
        self,
        method: str = "GET",
        version: str = "v1",
        base: str = "",
        namespace: str | None = None,
        url: str = "",
        **kwargs: Any,
    ) -> AsyncIterator[httpx.Response]:
        self.calls.append(Call(method, version, base, namespace, url, kwargs))
        answer = self.answers.pop(0) if self.answers else {}
        if answer is None:
            raise kr8s.ServerError("connection reset", response=None)
        response = answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)
        if response.status_code >= 400:
            raise kr8s.ServerError("failed", response=response)
        yield response


def client(*answers: Any) -> tuple[KubeClient, FakeApi]:
    api = FakeApi(list(answers))
    return KubeClient(cast(kr8s.asyncio.Api, api)), api


def run(name: str = "r") -> dict[str, Any]:
    return {
        "apiVersion": "jesus.dev/v1alpha1",
        "kind": "AgentRun",
        "metadata": {"name": name, "namespace": "team"},
    }


async def test_get_reads_the_named_object_and_none_when_it_is_missing() -> None:
    kube, api = client(run(), status(404, "NotFound", 'agentruns "x" not found'))
    assert (await kube.get("AgentRun", "team", "r")) == run()
    assert await kube.get("AgentRun", "team", "x") is None
    assert [(c.method, c.base, c.version, c.namespace, c.url) for c in api.calls] == [
        ("GET", "/apis/jesus.dev", "v1alpha1", "team", "agentruns/r"),
        ("GET", "/apis/jesus.dev", "v1alpha1", "team", "agentruns/x"),
    ]


async def test_a_cluster_scoped_kind_is_asked_without_a_namespace() -> None:
    kube, api = client({"metadata": {"name": "team"}})
    await kube.get("Namespace", "ignored", "team")
    assert (api.calls[0].base, api.calls[0].namespace, api.calls[0].url) == ("/api", None, "namespaces/team")


async def test_list_selects_by_labels_and_returns_the_items() -> None:
    kube, api = client({"items": [{"metadata": {"name": "a"}}]}, {"items": []})
    assert await kube.list("Pod", "team", labels={"job-name": "j", "app": "x"}) == [
        {"metadata": {"name": "a"}}
    ]
    assert await kube.list("Job") == []
    assert api.calls[0].kwargs["params"] == {"labelSelector": "job-name=j,app=x"}
    assert (api.calls[1].base, api.calls[1].namespace, api.calls[1].kwargs["params"]) == (
        "/apis/batch",
        None,
        {},
    )


@pytest.mark.parametrize(
    ("response", "error", "text"),
    [
        (status(404, "NotFound", "gone"), NotFoundError, "404 NotFound: gone"),
        (status(409, "AlreadyExists", "taken"), ConflictError, "409 AlreadyExists: taken"),
        (
            status(422, "Invalid", "spec.limits.maxCost: bad"),
            InvalidError,
            "422 Invalid: spec.limits.maxCost: bad",
        ),
        (
            httpx.Response(503, text="upstream connect error"),
            KubeError,
            "503 Service Unavailable: upstream connect",
        ),
        (None, KubeError, "0 NoResponse: connection reset"),
    ],
)
async def test_failures_become_the_errors_the_reconcilers_act_on(
    response: httpx.Response | None, error: type[KubeError], text: str
) -> None:
    kube, _ = client(response, response)
    with pytest.raises(error) as caught:
        await kube.replace_status(run())
    assert str(caught.value).startswith(text)
    assert type(caught.value) is error
    with pytest.raises(error):
        await kube.list("AgentRun", "team")


async def test_create_or_get_returns_the_existing_object_or_retries_when_it_vanished() -> None:
    exists = status(409, "AlreadyExists", "exists")
    gone = status(404, "NotFound", "gone")
    kube, api = client(
        exists, {"metadata": {"name": "r", "uid": "old"}}, exists, gone, {"metadata": {"uid": "new"}}
    )
    assert await kube.create_or_get(run()) == ({"metadata": {"name": "r", "uid": "old"}}, False)
    assert await kube.create_or_get(run()) == ({"metadata": {"uid": "new"}}, True)
    assert [c.method for c in api.calls] == ["POST", "GET", "POST", "GET", "POST"]
    assert api.calls[0].kwargs["json"] == run() and api.calls[0].url == "agentruns"


async def test_status_and_merge_patches_go_where_they_belong() -> None:
    kube, api = client({}, {}, {}, {})
    await kube.replace_status(run())
    await kube.patch_status("AgentRun", "team", "r", {"phase": "Running"})
    await kube.patch("Deployment", "team", "d", {"spec": {"replicas": 2}})
    await kube.delete("Job", "team", "j", propagation="Foreground")
    assert [(c.method, c.url) for c in api.calls] == [
        ("PUT", "agentruns/r/status"),
        ("PATCH", "agentruns/r/status"),
        ("PATCH", "deployments/d"),
        ("DELETE", "jobs/j"),
    ]
    assert api.calls[1].kwargs["json"] == {"status": {"phase": "Running"}}
    assert api.calls[2].kwargs["headers"] == {"Content-Type": "application/merge-patch+json"}
    assert api.calls[3].kwargs["json"] == {"propagationPolicy": "Foreground"}


async def test_deleting_what_is_gone_says_so() -> None:
    kube, _ = client(status(404, "NotFound", "gone"), httpx.Response(200, content=b""))
    assert await kube.delete("Job", "team", "j") is False
    assert await kube.delete("Job", "team", "j") is True


async def test_an_event_names_the_object_and_is_capped() -> None:
    kube, api = client({})
    involved = {**run(), "metadata": {"name": "r", "namespace": "team", "uid": "u1", "resourceVersion": "7"}}
    await kube.event(involved, type_="Warning", reason="PolicyDenied", message="x" * 5000)
    (call,) = api.calls
    event = call.kwargs["json"]
    assert (call.method, call.url, call.namespace) == ("POST", "events", "team")
    assert event["metadata"]["name"].startswith("r.")
    assert event["involvedObject"] == {
        "apiVersion": "jesus.dev/v1alpha1",
        "kind": "AgentRun",
        "name": "r",
        "namespace": "team",
        "uid": "u1",
        "resourceVersion": "7",
    }
    assert (event["type"], event["reason"], len(event["message"])) == ("Warning", "PolicyDenied", 1024)
    assert event["firstTimestamp"] == event["lastTimestamp"]
    json.dumps(event)  # what goes over the wire is plain JSON


def shout(text: str) -> str:
    """A stand-in redactor that is easy to see: upper case."""
    return text.upper()


async def test_statuses_and_events_leave_with_their_free_text_redacted() -> None:
    api = FakeApi([{}, {}, {}])
    kube = KubeClient(cast(kr8s.asyncio.Api, api), redact=shout)
    status_ = {
        "phase": "Failed",
        "message": "key sk-x",
        "specDigest": "sha256:ab",
        "conditions": [{"type": "Ready", "reason": "Failed", "message": "mail a@b.c"}],
        "attempts": [{"number": 1, "jobName": "job-a", "message": "boom"}],
        "policy": {"allowed": False, "reasons": ["owner a@b.c"], "warnings": ["w"]},
    }
    await kube.replace_status({**run(), "status": status_})
    await kube.patch_status("AgentRun", "team", "r", {"message": "late"})
    await kube.event(run(), type_="Warning", reason="Failed", message="call 555 0100")
    sent = api.calls[0].kwargs["json"]["status"]
    assert sent["message"] == "KEY SK-X" and sent["specDigest"] == "sha256:ab" and sent["phase"] == "Failed"
    assert sent["conditions"][0] == {"type": "Ready", "reason": "Failed", "message": "MAIL A@B.C"}
    assert sent["attempts"][0]["jobName"] == "job-a" and sent["attempts"][0]["message"] == "BOOM"
    assert sent["policy"] == {"allowed": False, "reasons": ["OWNER A@B.C"], "warnings": ["W"]}
    assert status_["message"] == "key sk-x", "the caller's status is not changed"
    assert api.calls[1].kwargs["json"] == {"status": {"message": "LATE"}}
    assert api.calls[2].kwargs["json"]["message"] == "CALL 555 0100"
    assert kube.redact_status({"message": "x"}) == {"message": "X"}


async def test_a_token_review_posts_the_token_and_audiences_cluster_wide() -> None:
    api = FakeApi([{"status": {"authenticated": True, "user": {"username": "system:serviceaccount:a:b"}}}])
    client = KubeClient(cast(kr8s.asyncio.Api, api))
    status = await client.review_token("tok", ["jesus-router"])
    assert status["user"]["username"] == "system:serviceaccount:a:b"
    [call] = api.calls
    assert (call.method, call.base, call.version, call.namespace, call.url) == (
        "POST",
        "/apis/authentication.k8s.io",
        "v1",
        None,
        "tokenreviews",
    )
    assert call.kwargs["json"]["spec"] == {"token": "tok", "audiences": ["jesus-router"]}


async def test_the_routers_reviewer_fails_closed_naming_why() -> None:
    from jesus.router.admin_auth import ReviewUnavailableError
    from jesus.router.token_review import ClusterTokenReviewer

    forbidden = FakeApi([status(403, "Forbidden", "cannot create tokenreviews")])
    reviewer = ClusterTokenReviewer(client=KubeClient(cast(kr8s.asyncio.Api, forbidden)))
    with pytest.raises(ReviewUnavailableError, match=r"403 Forbidden.*needs create on tokenreviews"):
        await reviewer.review("tok", ["jesus-router"])
    reset = FakeApi([None])
    reviewer = ClusterTokenReviewer(client=KubeClient(cast(kr8s.asyncio.Api, reset)))
    with pytest.raises(ReviewUnavailableError, match="the API server is unreachable: connection reset"):
        await reviewer.review("tok", ["jesus-router"])
    answered = FakeApi([{"status": {"authenticated": False, "error": "token has expired"}}])
    reviewer = ClusterTokenReviewer(client=KubeClient(cast(kr8s.asyncio.Api, answered)))
    result = await reviewer.review("tok", ["jesus-router"])
    assert (result.authenticated, result.error) == (False, "token has expired")


async def test_a_lease_is_replaced_whole_and_deleted_only_at_the_version_read() -> None:
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "jesus-operator-shard-0", "namespace": "ops", "resourceVersion": "7"},
        "spec": {"holderIdentity": "op-a"},
    }
    kube, api = client(lease, status(409, "Conflict", "the object has been modified"), {}, {})
    assert await kube.replace(lease) == lease
    with pytest.raises(ConflictError):
        await kube.delete("Lease", "ops", "jesus-operator-shard-0", resource_version="7")
    await kube.delete("Lease", "ops", "jesus-operator-shard-0", resource_version="8")
    await kube.delete("Lease", "ops", "jesus-operator-shard-0")
    assert [(c.method, c.base, c.version, c.namespace, c.url) for c in api.calls] == [
        ("PUT", "/apis/coordination.k8s.io", "v1", "ops", "leases/jesus-operator-shard-0"),
        *[("DELETE", "/apis/coordination.k8s.io", "v1", "ops", "leases/jesus-operator-shard-0")] * 3,
    ]
    assert api.calls[0].kwargs["json"] == lease
    assert api.calls[2].kwargs["json"]["preconditions"] == {"resourceVersion": "8"}
    assert "preconditions" not in api.calls[3].kwargs["json"]
