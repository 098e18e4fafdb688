"""A small typed client over kr8s for what the platform does: get, list, create-or-get, patch, status,
events.

Objects travel as plain Kubernetes JSON dicts; the callers parse them into the API models. Errors the
callers act on become the exceptions of `jesus.kube.errors`: NotFound, Conflict, Invalid.

The client is where the operator's text leaves it for the API server, so it redacts there (ADR 0015):
every Event's message, and the free text of every status it writes (`redact_status`).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import kr8s
import kr8s.asyncio

from jesus.api.common import GROUP, VERSION
from jesus.api.objects import JsonObject
from jesus.kube.errors import ConflictError, KubeError, NotFoundError, WatchExpiredError, error_from_response
from jesus.logic.clock import format_time, system_clock

MAX_IN_FLIGHT = 10
# Where a status holds free text (conditions' and attempts' messages, policy reasons and warnings):
# redacted wherever they sit. Everything else is the operator's own data (names, digests, amounts).
FREE_TEXT_KEYS = frozenset({"message", "reasons", "warnings"})


def _unchanged(text: str) -> str:
    return text


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: base path, group version, plural."""

    base: str
    version: str
    plural: str
    namespaced: bool = True


RESOURCES: Mapping[str, Resource] = {
    "AgentRun": Resource(f"/apis/{GROUP}", VERSION, "agentruns"),
    "Budget": Resource(f"/apis/{GROUP}", VERSION, "budgets"),
    "ModelAdapter": Resource(f"/apis/{GROUP}", VERSION, "modeladapters"),
    "RoutePolicy": Resource(f"/apis/{GROUP}", VERSION, "routepolicies"),
    "Lesson": Resource(f"/apis/{GROUP}", VERSION, "lessons"),
    "Job": Resource("/apis/batch", "v1", "jobs"),
    # Kueue's (`jesus operator --kueue`): the Workload it makes for each runner Job.
    "Workload": Resource("/apis/kueue.x-k8s.io", "v1beta2", "workloads"),
    "Deployment": Resource("/apis/apps", "v1", "deployments"),
    "Service": Resource("/api", "v1", "services"),
    "Secret": Resource("/api", "v1", "secrets"),
    "ConfigMap": Resource("/api", "v1", "configmaps"),
    "ServiceAccount": Resource("/api", "v1", "serviceaccounts"),
    "NetworkPolicy": Resource("/apis/networking.k8s.io", "v1", "networkpolicies"),
    "Pod": Resource("/api", "v1", "pods"),
    "Event": Resource("/api", "v1", "events"),
    # The operator replicas' membership and shard ownership (`jesus operator --shards`, docs/scale.md).
    "Lease": Resource("/apis/coordination.k8s.io", "v1", "leases"),
    "Namespace": Resource("/api", "v1", "namespaces", namespaced=False),
    "TokenReview": Resource("/apis/authentication.k8s.io", "v1", "tokenreviews", namespaced=False),
    "SelfSubjectReview": Resource(
        "/apis/authentication.k8s.io", "v1", "selfsubjectreviews", namespaced=False
    ),
    "SubjectAccessReview": Resource(
        "/apis/authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False
    ),
}


class KubeClient:
    """Async access to the API server; the operator makes one and hands it to every reconciler."""

    def __init__(
        self,
        api: kr8s.asyncio.Api,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
        redact: Callable[[str], str] = _unchanged,
    ) -> None:
        self._api = api
        self.redact = redact
        # kr8s's HTTP client keeps 20 idle connections; more requests in flight than that open a new
        # TLS connection each (the load benchmark counted a handshake per request), so queue here.
        # Fewer than 20: httpx's pool walks every connection on each request (a third of the
        # operator's CPU in the load benchmark's profile at 20), and ten keep the API server busy.
        self._slots = asyncio.Semaphore(max_in_flight)

    @classmethod
    async def connect(
        cls, kubeconfig: str | None = None, *, redact: Callable[[str], str] = _unchanged
    ) -> KubeClient:
        """From a kubeconfig file, else $KUBECONFIG, else the in-cluster service account; `redact`
        cleans Event messages and statuses' free text."""
        api = await kr8s.asyncio.api(kubeconfig=kubeconfig)
        return cls(api, redact=redact)

    def sibling(self, max_in_flight: int = 2) -> KubeClient:
        """A client over the same connection with slots of its own: requests that must not queue behind
        the reconciles' (the shard Leases' renewals) go through it."""
        return KubeClient(self._api, redact=self.redact, max_in_flight=max_in_flight)

    def redact_status(self, status: JsonObject) -> JsonObject:
        """A copy of `status` with its free text redacted (what `replace_status` writes): controllers
        compare it with the stored status, so a redacted message does not look like a change."""
        return redact_free_text(status, self.redact)

    async def _call(
        self, method: str, kind: str, namespace: str | None, url: str = "", **kwargs: Any
    ) -> JsonObject:
        resource = RESOURCES[kind]
        path = resource.plural + (f"/{url}" if url else "")
        try:
            async with (
                self._slots,
                self._api.call_api(
                    method,
                    version=resource.version,
                    base=resource.base,
                    namespace=namespace if resource.namespaced else None,
                    url=path,
                    **kwargs,
                ) as response,
            ):
                body: JsonObject = response.json() if response.content else {}
                return body
        except kr8s.ServerError as exc:
            if exc.response is None:
                raise KubeError(0, "NoResponse", str(exc)) from exc
            raise error_from_response(exc.response) from exc

    async def get(self, kind: str, namespace: str | None, name: str) -> JsonObject | None:
        """The object, or None when it does not exist."""
        try:
            return await self._call("GET", kind, namespace, name)
        except NotFoundError:
            return None

    async def list(
        self, kind: str, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> list[JsonObject]:
        """Objects of `kind` in `namespace` (all namespaces when None), optionally by labels."""
        params = _selector(labels)
        resource = RESOURCES[kind]
        try:
            async with (
                self._slots,
                self._api.call_api(
                    "GET",
                    version=resource.version,
                    base=resource.base,
                    namespace=namespace,
                    url=resource.plural,
                    params=params,
                ) as response,
            ):
                items: list[JsonObject] = response.json().get("items", [])
        except kr8s.ServerError as exc:
            if exc.response is None:
                raise KubeError(0, "NoResponse", str(exc)) from exc
            raise error_from_response(exc.response) from exc
        return items

    async def list_at(
        self, kind: str, namespace: str | None = None, *, labels: Mapping[str, str] | None = None
    ) -> tuple[builtins.list[JsonObject], str]:
        """Every object of `kind` in `namespace` (all when None), only those with `labels` when given,
        and the list's resourceVersion, from which a watch continues (`watch`)."""
        body = await self._call(
            "GET", kind, namespace if RESOURCES[kind].namespaced else None, params=_selector(labels)
        )
        return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion", ""))

    async def watch(
        self,
        kind: str,
        namespace: str | None,
        resource_version: str,
        *,
        timeout_seconds: int = 300,
        labels: Mapping[str, str] | None = None,
    ) -> AsyncIterator[tuple[str, JsonObject]]:
        """The changes of `kind` after `resource_version` (of objects with `labels` when given, chosen
        by the API server): (ADDED | MODIFIED | DELETED | BOOKMARK, object) until the server ends the
        watch (after about `timeout_seconds`). WatchExpiredError when that version is too old to
        continue from (410 Gone: list again); KubeError for other failures."""
        resource = RESOURCES[kind]
        params = {
            **_selector(labels),
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        try:
            async with self._api.call_api(
                "GET",
                version=resource.version,
                base=resource.base,
                namespace=namespace if resource.namespaced else None,
                url=resource.plural,
                params=params,
                stream=True,
                timeout=None,
            ) as response:
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            raise WatchExpiredError(410, "Expired", str(obj.get("message", "")))
                        raise KubeError(int(obj.get("code") or 0), str(obj.get("reason")), str(obj))
                    yield str(event.get("type")), obj
        except kr8s.ServerError as exc:
            if exc.response is None:
                raise KubeError(0, "NoResponse", str(exc)) from exc
            error = error_from_response(exc.response)
            if error.status == 410:
                raise WatchExpiredError(410, error.reason, error.message) from exc
            raise error from exc
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            raise KubeError(0, "WatchBroken", f"the watch of {kind} broke: {exc}") from exc

    async def create(self, obj: JsonObject) -> JsonObject:
        """Create `obj`; ConflictError when it exists."""
        namespace = obj["metadata"].get("namespace")
        return await self._call("POST", obj["kind"], namespace, json=obj)

    async def create_or_get(self, obj: JsonObject) -> tuple[JsonObject, bool]:
        """Create `obj`, or return the existing object of that name; the flag says whether we created it."""
        try:
            return await self.create(obj), True
        except ConflictError:
            existing = await self.get(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
            if existing is None:  # deleted in between: try once more
                return await self.create(obj), True
            return existing, False

    async def replace(self, obj: JsonObject) -> JsonObject:
        """PUT the whole object; ConflictError when obj's resourceVersion is stale (someone else wrote
        it since it was read)."""
        metadata = obj["metadata"]
        return await self._call("PUT", obj["kind"], metadata.get("namespace"), metadata["name"], json=obj)

    async def replace_status(self, obj: JsonObject) -> JsonObject:
        """PUT the status subresource; ConflictError when obj's resourceVersion is stale."""
        metadata = obj["metadata"]
        if "status" in obj:
            obj = {**obj, "status": self.redact_status(obj["status"])}
        return await self._call(
            "PUT", obj["kind"], metadata.get("namespace"), f"{metadata['name']}/status", json=obj
        )

    async def patch_status(self, kind: str, namespace: str, name: str, status: JsonObject) -> JsonObject:
        """Merge-patch the status subresource."""
        return await self._call(
            "PATCH",
            kind,
            namespace,
            f"{name}/status",
            json={"status": self.redact_status(status)},
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def patch(self, kind: str, namespace: str | None, name: str, patch: JsonObject) -> JsonObject:
        """Merge-patch the object."""
        return await self._call(
            "PATCH",
            kind,
            namespace,
            name,
            json=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def delete(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
        grace_period_seconds: int | None = None,
        resource_version: str | None = None,
    ) -> bool:
        """Delete the object; False when it was already gone. With `resource_version`, only that version
        of it: ConflictError when it changed since."""
        options: JsonObject = {"propagationPolicy": propagation}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if resource_version is not None:
            options["preconditions"] = {"resourceVersion": resource_version}
        try:
            await self._call("DELETE", kind, namespace, name, json=options)
        except NotFoundError:
            return False
        return True

    async def request_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: builtins.list[str] | None = None,
        expiration_seconds: int = 3607,
        bound_pod: JsonObject | None = None,
    ) -> JsonObject:
        """A token of `service_account` from the TokenRequest API (bound to `bound_pod` when given):
        the TokenRequest's status, `{"token": ..., "expirationTimestamp": ...}`."""
        spec: JsonObject = {"expirationSeconds": expiration_seconds}
        if audiences:
            spec["audiences"] = audiences
        if bound_pod is not None:
            metadata = bound_pod["metadata"]
            spec["boundObjectRef"] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": metadata["name"],
                "uid": metadata["uid"],
            }
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        response = await self._call(
            "POST", "ServiceAccount", namespace, f"{service_account}/token", json=body
        )
        status: JsonObject = response.get("status") or {}
        return status

    async def review_token(self, token: str, audiences: builtins.list[str]) -> JsonObject:
        """What the API server says of `token` for `audiences` (a TokenReview): its status,
        `{"authenticated": ..., "user": {"username": ...}, "audiences": [...], "error": ...}`."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences},
        }
        response = await self._call("POST", "TokenReview", None, json=body)
        status: JsonObject = response.get("status") or {}
        return status

    async def pod_log(
        self, namespace: str, name: str, *, container: str | None = None, tail_lines: int | None = None
    ) -> str:
        """The log of a pod's container (its only one when `container` is None), as text."""
        params: dict[str, str] = {}
        if container:
            params["container"] = container
        if tail_lines is not None:
            params["tailLines"] = str(tail_lines)
        try:
            async with (
                self._slots,
                self._api.call_api(
                    "GET",
                    version="v1",
                    base="/api",
                    namespace=namespace,
                    url=f"pods/{name}/log",
                    params=params,
                ) as response,
            ):
                return str(response.text)
        except kr8s.ServerError as exc:
            if exc.response is None:
                raise KubeError(0, "NoResponse", str(exc)) from exc
            raise error_from_response(exc.response) from exc

    async def who_am_i(self) -> JsonObject:
        """Who this client's credentials are (a SelfSubjectReview): `{"username": ..., "groups": [...]}`."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        response = await self._call("POST", "SelfSubjectReview", None, json=body)
        user: JsonObject = (response.get("status") or {}).get("userInfo") or {}
        return user

    async def review_access(self, user: JsonObject, attributes: JsonObject) -> JsonObject:
        """Whether the user of a TokenReview's `user` ({username, uid, groups, extra}) may do what
        `attributes` (a SubjectAccessReview's resourceAttributes) says: its status,
        `{"allowed": ..., "denied": ..., "reason": ...}`."""
        spec: JsonObject = {"resourceAttributes": attributes, "user": user.get("username", "")}
        for key in ("uid", "groups", "extra"):
            if user.get(key):
                spec[key] = user[key]
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        response = await self._call("POST", "SubjectAccessReview", None, json=body)
        status: JsonObject = response.get("status") or {}
        return status

    async def event(
        self,
        involved: JsonObject,
        *,
        type_: str,
        reason: str,
        message: str,
        component: str = "jesus-operator",
    ) -> None:
        """Record a core/v1 Event about `involved` (Normal or Warning)."""
        metadata = involved["metadata"]
        now = format_time(system_clock())
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name']}.{uuid.uuid4().hex[:10]}",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": self.redact(message)[:1024],
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": component,
        }
        await self.create(event)


def redact_free_text(status: JsonObject, redact: Callable[[str], str]) -> JsonObject:
    """A copy of `status` with the strings under `FREE_TEXT_KEYS` redacted, at any depth."""
    redacted: JsonObject = _walk_free_text(status, redact, False)
    return redacted


def _walk_free_text(value: Any, redact: Callable[[str], str], free: bool) -> Any:
    if isinstance(value, str):
        return redact(value) if free else value
    if isinstance(value, Mapping):
        return {k: _walk_free_text(v, redact, free or k in FREE_TEXT_KEYS) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk_free_text(item, redact, free) for item in value]
    return value


def _selector(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The query parameters that ask the API server for objects with `labels` only (none: all)."""
    return {"labelSelector": ",".join(f"{k}={v}" for k, v in labels.items())} if labels else {}
