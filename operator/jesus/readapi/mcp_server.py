"""`jesus mcp`: the platform's own MCP server, for agents and IDEs.

The read tools (list_runs, get_run, run_calls, costs, budgets) give what the read API gives, from the
same `ReadService`; their parameters are checked the same way and a wrong one is a tool error naming it.
`submit_run` creates an AgentRun through the Kubernetes API with the caller's own credentials (their
kubeconfig), so the API server's RBAC and the run-owner policy judge the caller, not the platform; the
owner's user is filled in from who the API server says the caller is (a SelfSubjectReview).
"""

from __future__ import annotations

from typing import Any, Protocol

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from jesus.api import AgentRun
from jesus.api.common import API_VERSION
from jesus.api.objects import JsonObject
from jesus.logic.run_queries import QueryError
from jesus.readapi.access import LOCAL_CALLER, Caller
from jesus.readapi.service import NotFoundError, ReadService
from jesus.specs.errors import describe_validation_error
from jesus.specs.problems import format_field_path

INSTRUCTIONS = (
    "Jesus runs AI agents on Kubernetes as AgentRuns. Use list_runs, get_run and run_calls for finished "
    "runs (the archive), costs for spend per team, user, model or adapter, budgets for the caps, and "
    "submit_run to start a run as yourself."
)


class Submitter(Protocol):
    """Creates objects as the caller (`jesus.kube.KubeClient` over the caller's kubeconfig)."""

    async def who_am_i(self) -> JsonObject: ...

    async def create(self, obj: JsonObject) -> JsonObject: ...


def _dump(model: Any) -> dict[str, Any]:
    result: dict[str, Any] = model.model_dump(by_alias=True, mode="json")
    return result


async def _answer(call: Any) -> dict[str, Any]:
    """The service's answer as JSON, or a ToolError saying what was wrong."""
    try:
        return _dump(await call)
    except QueryError as exc:
        raise ToolError(f"{exc.parameter}: {exc.message}") from None
    except NotFoundError as exc:
        raise ToolError(str(exc)) from None


def run_manifest(namespace: str, name: str, spec: JsonObject, user: str) -> JsonObject:
    """The AgentRun to create: `spec` as given, its owner's user filled in (or checked) as `user`;
    ToolError naming the field when it is not a valid AgentRun."""
    spec = dict(spec)
    owner = dict(spec.get("owner") or {})
    given = owner.get("user")
    if given not in (None, "", user):
        raise ToolError(
            f"AgentRun {namespace}/{name}: spec.owner.user is {given!r} but you are {user!r}; "
            "a run's owner is the person who submits it (leave it out to have it filled in)"
        )
    owner["user"] = user
    spec["owner"] = owner
    manifest: JsonObject = {
        "apiVersion": API_VERSION,
        "kind": "AgentRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    try:
        AgentRun.model_validate(manifest)
    except ValidationError as exc:
        problems = "; ".join(
            f"{format_field_path(path) or 'spec'}: {message}"
            for path, message in describe_validation_error(exc)[:5]
        )
        raise ToolError(f"AgentRun {namespace}/{name} is not valid: {problems}") from None
    return manifest


def build_mcp_server(
    service: ReadService, submitter: Submitter | None, caller: Caller = LOCAL_CALLER
) -> MCPServer:
    """The MCP server over `service` (read as `caller`) and, when given, `submitter`."""
    server = MCPServer("jesus", instructions=INSTRUCTIONS)

    @server.tool()
    async def list_runs(
        namespace: str | None = None,
        team: str | None = None,
        user: str | None = None,
        phase: str | None = None,
        model: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Finished AgentRuns from the archive, newest first. Filters: namespace, team, user, phase
        (Succeeded, Failed, Denied), model; start/end bound the completion time (RFC 3339). Pass the
        answer's nextCursor as cursor for the next page."""
        return await _answer(
            service.list_runs(
                caller, namespace=namespace, team=team, user=user, phase=phase, model=model, start=start,
                end=end, limit=limit, cursor=cursor,
            )
        )  # fmt: skip

    @server.tool()
    async def get_run(namespace: str, name: str, uid: str | None = None) -> dict[str, Any]:
        """One archived AgentRun with its whole record: spec, policy verdict, budget holds, attempts,
        calls, artifacts, conditions."""
        return await _answer(service.get_run(caller, namespace, name, uid))

    @server.tool()
    async def run_calls(namespace: str, name: str, uid: str | None = None) -> dict[str, Any]:
        """The model calls of an archived AgentRun: adapter, model, tokens, cost and fallbacks."""
        return await _answer(service.calls(caller, namespace, name, uid))

    @server.tool()
    async def costs(
        group_by: str, namespace: str | None = None, start: str | None = None, end: str | None = None
    ) -> dict[str, Any]:
        """Spend of the runs completed between start and end (RFC 3339), summed by group_by: team,
        user, model or adapter. costMicros are millionths of the currency."""
        return await _answer(
            service.costs(caller, group_by=group_by, namespace=namespace, start=start, end=end)
        )

    @server.tool()
    async def budgets(namespace: str | None = None) -> dict[str, Any]:
        """The Budgets (spending caps) with their spec and status: spent, reserved, thresholds."""
        return await _answer(service.list_budgets(caller, namespace))

    if submitter is not None:

        @server.tool()
        async def submit_run(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
            """Create an AgentRun as you (your Kubernetes credentials). spec is the AgentRun's spec:
            owner.team (your namespace's team), task.instructions, routePolicyRef.name, limits. The
            owner's user is filled in as you."""
            from jesus.kube import KubeError

            try:
                user = str((await submitter.who_am_i()).get("username") or "")
            except KubeError as exc:
                raise ToolError(
                    f"the API server did not say who you are: {exc.status} {exc.reason}"
                ) from None
            if not user:
                raise ToolError("the API server did not say who you are (SelfSubjectReview gave no username)")
            manifest = run_manifest(namespace, name, spec, user)
            try:
                created = await submitter.create(manifest)
            except KubeError as exc:
                raise ToolError(
                    f"the API server refused AgentRun {namespace}/{name}: "
                    f"{exc.status} {exc.reason}: {exc.message[:500]}"
                ) from None
            metadata = created.get("metadata") or {}
            return {"namespace": namespace, "name": name, "uid": metadata.get("uid"), "owner": user}

    return server
