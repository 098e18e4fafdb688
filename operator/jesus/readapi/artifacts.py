"""`GET /v1/runs/{namespace}/{name}/artifacts/{artifact}`: one artifact of an archived run.

The same access check as the run's detail (a run the caller may not read is a 404). An `s3://`
artifact is answered with a 307 to a pre-signed GET of its object, valid a few minutes (the browser
inflates the stored gzip and saves it under the artifact's name); a `file://` one (the directory
backend) is streamed from disk once its digest checks, and only from inside `app.state.artifact_root`.
A run past its retention answers 410: its artifacts are deleted, and the API does not pretend
otherwise. The S3 store is `app.state.artifacts` (None: `s3://` artifacts answer 503); the clock that
judges retention, `app.state.clock` (default: the system clock).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at definition time.
import asyncio
import pathlib
from typing import Annotated, Any
from urllib.parse import unquote, urlparse

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBearer

from jesus.api.agentrun import ArtifactRef
from jesus.logic.artifacts import ARTIFACT_NAME, expires_at, is_expired
from jesus.logic.clock import Clock, format_time, system_clock
from jesus.readapi.access import Authenticator, Caller
from jesus.readapi.models import ErrorBody
from jesus.readapi.service import ReadService
from jesus.records.artifacts import ArtifactStoreError, S3Artifacts, read_artifact

_BEARER = HTTPBearer(auto_error=False, description="a Kubernetes token (e.g. `kubectl create token`)")


async def _caller(request: Request, _scheme: Annotated[Any, Depends(_BEARER)] = None) -> Caller:
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator.authenticate(request.headers.get("authorization"))


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "the artifact (directory backend)"},
    307: {"description": "to a pre-signed GET of the stored object, valid a few minutes"},
    401: {"model": ErrorBody, "description": "no bearer token, or one the API server does not accept"},
    404: {"model": ErrorBody, "description": "no such run the caller may read, or no such artifact"},
    410: {"model": ErrorBody, "description": "the run's retention has passed: its artifacts are deleted"},
    502: {"model": ErrorBody, "description": "the stored artifact is missing or not what the run lists"},
    503: {"model": ErrorBody, "description": "no artifact store is configured, or it cannot be reached"},
}


def _inside(uri: str, root: pathlib.Path) -> bool:
    """Whether the `file://` URI names a file inside `root` (symbolic links and `..` resolved)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return False
    return pathlib.Path(unquote(parsed.path)).resolve().is_relative_to(root.resolve())


def artifact_router(service: ReadService, clock: Clock = system_clock) -> APIRouter:
    """The artifact route over `service` (whose access checks it shares)."""
    router = APIRouter()

    @router.get(
        "/v1/runs/{namespace}/{name}/artifacts/{artifact}",
        responses=_RESPONSES,
        response_class=Response,
        tags=["runs"],
    )
    async def get_artifact(
        request: Request,
        who: Annotated[Caller, Depends(_caller)],
        namespace: Annotated[str, Path(max_length=63, description="the run's namespace")],
        name: Annotated[str, Path(max_length=253, description="the run's name")],
        artifact: Annotated[str, Path(max_length=253, description="the artifact's name, e.g. result.json")],
        uid: Annotated[
            str | None, Query(max_length=64, description="one run of several of this name")
        ] = None,
    ) -> Response:
        """One artifact of an archived run: a redirect to the stored object, or its bytes."""
        detail = await service.get_run(who, namespace, name, uid)
        record: dict[str, Any] = detail.record if isinstance(detail.record, dict) else {}
        status = record.get("status") or {}
        where = f"AgentRun {namespace}/{name}"
        listed = [
            a for a in status.get("artifacts") or [] if isinstance(a, dict) and a.get("name") == artifact
        ]
        if not ARTIFACT_NAME.match(artifact) or not listed:
            return _error(404, "NotFound", f"{where} lists no artifact {artifact!r}")
        retention = int(((record.get("spec") or {}).get("artifacts") or {}).get("retentionDays", 30))
        completion = status.get("completionTime")
        now: Clock = getattr(request.app.state, "clock", None) or clock
        if is_expired(completion, retention, now()):
            moment = expires_at(completion, retention)
            assert moment is not None
            return _error(
                410, "Expired", f"{where}: its artifacts expired at {format_time(moment)} and are deleted"
            )
        try:
            ref = ArtifactRef.model_validate(listed[0])
        except ValueError:
            return _error(502, "ArtifactUnreadable", f"{where}: the entry of {artifact} is not valid")
        store: S3Artifacts | None = getattr(request.app.state, "artifacts", None)
        if ref.uri.startswith("s3://"):
            if store is None:
                return _error(503, "Unavailable", "no artifact store is configured on this server")
            try:
                url = await asyncio.to_thread(store.download_url, ref)
            except ValueError as exc:
                return _error(502, "ArtifactUnreadable", f"{where}: {exc}")
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
        root: pathlib.Path | None = getattr(request.app.state, "artifact_root", None)
        if root is None or not _inside(ref.uri, root):
            # A record names the file; only the configured directory is served, never any path.
            return _error(
                503, "Unavailable", f"{where}: {artifact} is not in this server's artifact directory"
            )
        try:
            content = await asyncio.to_thread(read_artifact, ref, store)
        except (ArtifactStoreError, ValueError) as exc:
            return _error(502, "ArtifactUnreadable", f"{where}: {exc}")
        return Response(
            content,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{artifact}"',
                "Cache-Control": "no-store",
            },
        )

    return router
