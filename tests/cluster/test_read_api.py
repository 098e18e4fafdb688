"""The read API against the real API server: `jesus api` authenticates a ServiceAccount's token with a
TokenReview and shows it the namespaces where a SubjectAccessReview lets it list AgentRuns.

One module, one `jesus api` process and one archive (SQLite, filled directly): team a's viewer sees team
a's runs and not team b's, a cluster-wide reader sees both, and tokens the API server does not accept
are refused. The dashboard is driven here too, in Debian's headless Chromium through Playwright, signed in
with the viewer's real token.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import TextContent
from tests.builders.archived_runs import archive, archived_run
from tests.builders.processes import free_port
from tests.cluster.harness import JESUS, Process, http_ready, wait_for
from tests.cluster.test_chart import one, render

from jesus.devcluster import ControlPlane
from jesus.records import RecordStore, database_url

TRACE_URL = "http://jaeger.invalid:16686/trace/{traceId}"
CHROMIUM = "/usr/bin/chromium"  # Debian's: a browser is never downloaded
SCREENSHOTS = "JESUS_DASHBOARD_SCREENSHOTS"
"""A folder to write the dashboard's screenshots to (docs/images: `JESUS_DASHBOARD_SCREENSHOTS=docs/images
pytest tests/cluster/test_read_api.py -k dashboard`)."""


@dataclass
class World:
    url: str
    a: str
    b: str
    viewer: str
    reader: str
    database: str
    env: dict[str, str]


def _rbac(a: str, b: str, suffix: str) -> list[dict[str, object]]:
    rules = [{"apiGroups": ["jesus.dev"], "resources": ["agentruns"], "verbs": ["get", "list"]}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "viewer", "namespace": a}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader", "namespace": b}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "run-viewer", "namespace": a}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "run-viewer", "namespace": a},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "run-viewer"},
         "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": a}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": f"run-reader-{suffix}"}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": f"run-reader-{suffix}"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": f"run-reader-{suffix}"},
         "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": b}]},
    ]  # fmt: skip


async def _fill(database: str, a: str, b: str) -> None:
    store = RecordStore(database_url(database))
    await store.migrate()
    await archive(
        store,
        archived_run("a-one", namespace=a, team="a", completion="2026-11-30T10:01:00Z"),
        archived_run("a-two", namespace=a, team="a", completion="2026-11-30T10:02:00Z"),
        archived_run("b-one", namespace=b, team="b", completion="2026-11-30T10:03:00Z"),
    )
    await store.close()


@pytest.fixture(scope="module")
def world(crds: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    control_plane = crds
    suffix = uuid.uuid4().hex[:6]
    a, b = f"read-a-{suffix}", f"read-b-{suffix}"
    for name in (a, b):
        control_plane.kubectl("create", "namespace", name)
    objects = _rbac(a, b, suffix)
    manifest = "\n---\n".join(json.dumps(o) for o in objects)
    control_plane.kubectl("apply", "-f", "-", input=manifest)
    workdir = tmp_path_factory.mktemp("read-api")
    database = f"sqlite:///{workdir / 'archive.db'}"
    asyncio.run(_fill(database, a, b))
    port = free_port()
    server = Process(
        "jesus api",
        [
            *JESUS,
            "api",
            "--database",
            database,
            "--port",
            str(port),
            "--cache-seconds",
            "0",
            "--trace-url",
            TRACE_URL,
            "--refresh-seconds",
            "1",
        ],
        {**control_plane.env, "JESUS_API_CURSOR_KEY": "k" * 32},
        workdir / "api.log",
    )
    server.start()
    try:
        wait_for(lambda: http_ready(port), what="jesus api to answer /healthz", describe=server.tail)
        tokens = {
            who: control_plane.kubectl("create", "token", who, "-n", ns, "--duration=10m").stdout.strip()
            for who, ns in (("viewer", a), ("reader", b))
        }
        yield World(
            f"http://127.0.0.1:{port}", a, b, tokens["viewer"], tokens["reader"], database, control_plane.env
        )
    finally:
        server.stop()
        control_plane.kubectl("delete", "-f", "-", "--wait=false", input=manifest, check=False)
        for name in (a, b):
            control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def get(world: World, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(world.url + path, headers=headers, timeout=30)


def test_a_viewer_of_team_a_sees_team_as_runs_and_not_team_bs(world: World) -> None:
    runs = get(world, "/v1/runs", world.viewer)
    assert runs.status_code == 200, runs.text
    assert [(r["namespace"], r["name"]) for r in runs.json()["items"]] == [
        (world.a, "a-two"),
        (world.a, "a-one"),
    ]
    assert get(world, f"/v1/runs?namespace={world.b}", world.viewer).json()["items"] == []
    assert get(world, f"/v1/runs/{world.b}/b-one", world.viewer).status_code == 404
    assert get(world, f"/v1/runs/{world.a}/a-one", world.viewer).json()["team"] == "a"
    costs = get(world, "/v1/costs?groupBy=team", world.viewer).json()
    assert [g["key"] for g in costs["groups"]] == ["a"]
    # A reader bound cluster-wide sees both teams.
    every = get(world, "/v1/runs", world.reader).json()["items"]
    assert [r["name"] for r in every] == ["b-one", "a-two", "a-one"]


def test_tokens_the_api_server_does_not_accept_are_refused(world: World) -> None:
    assert get(world, "/v1/runs", None).status_code == 401
    forged = get(world, "/v1/runs", world.viewer[:-4] + "AAAA")
    assert forged.status_code == 401
    assert "does not authenticate this token" in forged.json()["error"]["message"]
    assert get(world, "/openapi.json", None).json()["info"]["title"] == "Jesus read API"


async def test_jesus_mcp_submits_a_run_with_the_callers_credentials_and_reads_the_archive(
    world: World, crds: ControlPlane
) -> None:
    whoami = json.loads(crds.kubectl("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]["username"]
    command = StdioServerParameters(
        command=JESUS[0], args=[*JESUS[1:], "mcp", "--database", world.database], env=world.env
    )
    spec = {
        "owner": {"team": "a"},
        "task": {"instructions": "Say hello."},
        "routePolicyRef": {"name": "route"},
        "limits": {"maxCost": "0.10"},
    }
    async with Client(command) as client:
        submitted = await client.call_tool(
            "submit_run", {"namespace": world.a, "name": "from-mcp", "spec": spec}
        )
        assert not submitted.is_error, submitted.content
        listed = await client.call_tool("list_runs", {"namespace": world.a})
    [block] = listed.content
    assert isinstance(block, TextContent)
    assert [r["name"] for r in json.loads(block.text)["items"]] == ["a-two", "a-one"]
    created = json.loads(crds.kubectl("get", "agentrun", "from-mcp", "-n", world.a, "-o", "json").stdout)
    assert created["spec"]["owner"] == {"team": "a", "user": whoami}


def test_the_charts_api_pod_meets_the_restricted_pod_security_standard(
    world: World, crds: ControlPlane
) -> None:
    deployment = one(render("api.enabled=true", "archive.databaseSecret.name=db"), "Deployment", "jesus-api")
    namespace = f"{world.a}-pss"
    crds.kubectl("create", "namespace", namespace)
    try:
        crds.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
        template = deployment["spec"]["template"]
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "api", "namespace": namespace},
               "spec": {**template["spec"], "serviceAccountName": "default"}}  # fmt: skip
        admitted = crds.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        assert admitted.returncode == 0, admitted.stderr
        # The check is real: the same pod with root allowed is refused.
        pod["spec"]["securityContext"] = {**pod["spec"]["securityContext"], "runAsNonRoot": False}
        refused = crds.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        assert refused.returncode != 0 and "restricted" in refused.stderr, refused.stderr
    finally:
        crds.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_dashboard_in_a_browser_shows_a_viewer_team_as_runs_costs_and_fallbacks_only(
    world: World,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            # Not signed in: the runs list sends to the sign-in page, which keeps where it was going.
            page.goto(f"{world.url}/ui/runs")
            expect(page).to_have_url(re.compile(r"/ui/sign-in\?next=%2Fui%2Fruns&reason=none$"))
            page.fill("#token", world.viewer)
            page.get_by_role("button", name="Sign in").click()
            expect(page).to_have_url(f"{world.url}/ui/runs")
            rows = page.locator("tr.run")
            expect(rows).to_have_count(2)
            assert rows.evaluate_all("rows => rows.map(r => r.dataset.name)") == ["a-two", "a-one"]
            # The token is in a cookie scripts cannot read.
            assert page.evaluate("document.cookie") == ""
            [cookie] = page.context.cookies()
            assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Strict", False)
            # A run archived now appears without a reload (the list asks for its newest rows each second).
            with ThreadPoolExecutor(1) as thread:  # Playwright's own loop runs in this one
                thread.submit(asyncio.run, _archive_late_run(world)).result()
            expect(rows).to_have_count(3, timeout=10_000)
            expect(rows.first).to_have_attribute("data-name", "a-three")
            expect(page.locator("tr.run", has_text="a-three")).to_contain_text("Failed")
            if os.environ.get(SCREENSHOTS):
                page.screenshot(
                    path=str(Path(os.environ[SCREENSHOTS]) / "dashboard-runs.png"), full_page=True
                )
            # A run's page: its cost, its calls with the fallback, its trace link, an artifact's link.
            page.get_by_role("link", name="a-one", exact=True).click()
            expect(page.locator("h1")).to_contain_text("a-one")
            expect(page.locator("#cost")).to_have_text("0.003")
            expect(page.locator(".fallback")).to_have_text(["primary (RateLimited)"])
            expect(page.locator("#trace")).to_have_attribute(
                "href", "http://jaeger.invalid:16686/trace/0af7651916cd43dd8448eb211c80319c"
            )
            expect(page.locator("#artifacts a")).to_have_attribute(
                "href", re.compile(rf"^/v1/runs/{world.a}/a-one/artifacts/result\.json\?uid=")
            )
            if os.environ.get(SCREENSHOTS):
                page.screenshot(path=str(Path(os.environ[SCREENSHOTS]) / "dashboard-run.png"), full_page=True)
            # Team b's run is not there for this viewer, by its own URL or by a filter.
            missing = page.goto(f"{world.url}/ui/runs/{world.b}/b-one")
            assert missing is not None and missing.status == 404
            page.goto(f"{world.url}/ui/runs?namespace={world.b}")
            expect(page.locator("tr.run")).to_have_count(0)
            page.goto(f"{world.url}/ui/costs?groupBy=team&days=90&to=2026-12-01")
            expect(page.locator("table.groups tbody td:first-child")).to_have_text(["a"])  # no team b
            expect(page.locator("table.groups tbody td:last-child")).to_have_text(["0.009"])
            # Signing out drops the cookie; the next page asks for a token again.
            page.get_by_role("button", name="Sign out").click()
            expect(page).to_have_url(re.compile(r"/ui/sign-in\?reason=signed-out$"))
            assert page.context.cookies() == []
        finally:
            browser.close()


async def _archive_late_run(world: World) -> None:
    store = RecordStore(database_url(world.database))
    await archive(
        store,
        archived_run(
            "a-three", namespace=world.a, team="a", completion="2026-11-30T10:04:00Z", phase="Failed"
        ),
    )
    await store.close()
