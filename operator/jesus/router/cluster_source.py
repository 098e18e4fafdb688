"""`ClusterRouteSource`: the router's routes as the cluster has them, kept by list and watch.

In a cluster, `jesus router` lists and watches ModelAdapters, RoutePolicies and Secrets
(`jesus.kube.reflector`), the same objects the operator admits runs against. An adapter is rebuilt
when its spec, its endpoint in status (a self-hosted model's Service) or the Secret key it names
changes; one that cannot be built (no credential, no endpoint yet, invalid) leaves the map, and the
reason is kept for the error a registration gets. Only the Secrets that some ModelAdapter names are
kept in memory. Replaced and deleted adapters are closed after RETIRE_GRACE_SECONDS.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from jesus.api import ModelAdapter, RoutePolicy
from jesus.api.objects import JsonObject
from jesus.kube import KubeError
from jesus.kube.reflector import ListWatchClient, Reflector
from jesus.logic.budget import DEFAULT_NAMESPACE
from jesus.logic.routing import RoutePlan
from jesus.redaction import Redactor
from jesus.router.config import CredentialSource, FirstOf, RouterConfigError, build_routed_adapters
from jesus.router.routed import RoutedAdapter
from jesus.router.schema import error_text
from jesus.router.sources import RETIRE_GRACE_SECONDS, close_adapter, keyed_by_namespace, plan_for_policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchedSecrets:
    """The Secret keys a ClusterRouteSource keeps, decoded: (namespace, name) -> key -> value."""

    values: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def lookup(self, namespace: str, secret: str, key: str, provider: str) -> str | None:
        """See `CredentialSource`."""
        value = self.values.get((namespace, secret), {}).get(key)
        return value or None


def _decoded(obj: JsonObject) -> dict[str, str]:
    """A Secret's data, decoded; a key that is not base64 of UTF-8 is left out (and logged)."""
    values: dict[str, str] = {}
    for key, encoded in (obj.get("data") or {}).items():
        try:
            values[key] = base64.b64decode(str(encoded), validate=True).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            metadata = obj.get("metadata") or {}
            log.warning(
                "Secret %s/%s key %s is not base64 of UTF-8 text; ignored",
                metadata.get("namespace"),
                metadata.get("name"),
                key,
            )
    for key, text in (obj.get("stringData") or {}).items():
        values[key] = str(text).strip()
    return values


def _within(identity: tuple[str, str], namespace: str | None) -> bool:
    """Whether an object of `identity` is in `namespace` (None: every namespace)."""
    return namespace is None or identity[0] == namespace


def _identity(obj: JsonObject) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or DEFAULT_NAMESPACE), str(metadata.get("name") or "")


class ClusterRouteSource:
    """ModelAdapters, RoutePolicies and their Secrets as the cluster has them, kept by watches."""

    def __init__(
        self,
        *,
        namespaces: tuple[str, ...] = (),
        live: bool = True,
        fallback: CredentialSource | None = None,
        redact: Redactor | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.namespaces = namespaces
        self._sleep = sleep
        self._retiring: set[asyncio.Task[None]] = set()
        self.live = live
        self.adapters: dict[str, RoutedAdapter] = {}
        self.problems: dict[str, str] = {}  # why an adapter is not built, by `<namespace>/<name>`
        self.policy_problems: dict[str, str] = {}  # why a RoutePolicy is not usable (its own names)
        self._models: dict[tuple[str, str], ModelAdapter] = {}
        self._policies: dict[tuple[str, str], RoutePolicy] = {}
        self._secrets = WatchedSecrets()
        self._secrets_listed: set[str | None] = set()  # namespaces (None: all) whose Secrets were listed
        self._fingerprints: dict[tuple[str, str], str] = {}
        self._fallback = fallback
        self._redact = redact
        self._client: ListWatchClient | None = None
        self._reflectors: list[Reflector] = []
        self._tasks: list[asyncio.Task[None]] = []

    # --- running ---------------------------------------------------------------------------------

    async def start(self, client: ListWatchClient, timeout_seconds: float = 60.0) -> None:
        """Start the watches and wait until each kind has been listed once (TimeoutError if not).

        Secrets are listed last, so the adapters that name them are known by then."""
        self._client = client
        self._reflectors = [
            Reflector(client, kind, namespace, functools.partial(replace, namespace), changed)
            for kind, replace, changed in (
                ("ModelAdapter", self._replace_adapters, self._adapter_changed),
                ("RoutePolicy", self._replace_policies, self._policy_changed),
                ("Secret", self._replace_secrets, self._secret_changed),
            )
            for namespace in (self.namespaces or (None,))
        ]
        self._tasks = [asyncio.create_task(r.run(), name=f"watch {r.where}") for r in self._reflectors]
        await asyncio.wait_for(asyncio.gather(*(r.synced.wait() for r in self._reflectors)), timeout_seconds)
        log.info("Route source synced: %d adapters, %d policies", len(self.adapters), len(self._policies))

    def unsynced(self) -> list[str]:
        """The kinds not listed yet, each with why when a request failed."""
        return [
            r.where + (f" ({r.last_error})" if r.last_error else "")
            for r in self._reflectors
            if not r.synced.is_set()
        ]

    @property
    def synced(self) -> bool:
        """Whether every kind has been listed at least once."""
        return bool(self._reflectors) and all(r.synced.is_set() for r in self._reflectors)

    async def stop(self) -> None:
        """Stop the watches and close every adapter, the retiring ones too."""
        for task in [*self._tasks, *self._retiring]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._retiring, return_exceptions=True)
        for routed in list(self.adapters.values()):
            await close_adapter(routed)
        self.adapters.clear()

    # --- what the router asks --------------------------------------------------------------------

    def resolve_plan(self, namespace: str, route_policy: str, classification: str) -> RoutePlan:
        """See `RouteSource`; only adapters that were built can be in the plan."""
        buildable = {
            name: model
            for (model_namespace, name), model in self._models.items()
            if model_namespace == namespace and f"{namespace}/{name}" in self.adapters
        }
        policy = self._policies.get((namespace, route_policy))
        return plan_for_policy(
            policy, namespace, route_policy, classification, buildable, self.problems, self.policy_problems
        )

    # --- ModelAdapters ---------------------------------------------------------------------------

    async def _replace_adapters(self, namespace: str | None, items: list[JsonObject]) -> None:
        current = {_identity(obj) for obj in items}
        listed = [identity for identity in self._models if _within(identity, namespace)]
        for gone in [identity for identity in listed if identity not in current]:
            await self._adapter_changed("DELETED", {"metadata": {"namespace": gone[0], "name": gone[1]}})
        for obj in items:
            await self._adapter_changed("MODIFIED", obj)

    async def _adapter_changed(self, type_: str, obj: JsonObject) -> None:
        identity = _identity(obj)
        key = "/".join(identity)
        if type_ == "DELETED":
            self._models.pop(identity, None)
            self.problems.pop(key, None)
            self._drop(identity)
            self._forget_unreferenced_secrets()
            return
        try:
            model = ModelAdapter.model_validate(obj)
        except ValidationError as exc:
            self._models.pop(identity, None)
            self._unusable(identity, f"ModelAdapter {key} is invalid: {error_text(exc)}")
            return
        self._models[identity] = model
        await self._ensure_secret(identity[0], model)
        self._build(identity)

    def _build(self, identity: tuple[str, str]) -> None:
        """(Re)build one adapter when what it is built from changed."""
        namespace, name = identity
        model = self._models[identity]
        credential = None
        ref = model.spec.credentials_secret_ref
        if ref is not None:
            credential = self._secrets.lookup(namespace, ref.name, ref.key, model.spec.provider.value)
        endpoint = model.status.endpoint if model.status is not None else None
        fingerprint = hashlib.sha256(
            json.dumps(
                [model.spec.model_dump(mode="json"), endpoint, credential], sort_keys=True, default=str
            ).encode()
        ).hexdigest()
        if self._fingerprints.get(identity) == fingerprint:
            return
        self._fingerprints[identity] = fingerprint  # built, or refused, once per change
        if model.spec.serving is not None and model.spec.endpoint is None and endpoint is None:
            self._unusable(
                identity,
                f"ModelAdapter {namespace}/{name} is served by the platform and its status has no "
                "endpoint yet (the operator writes it once the serving Deployment is available)",
            )
            return
        credentials = self._secrets if self._fallback is None else FirstOf((self._secrets, self._fallback))
        try:
            built = build_routed_adapters(
                {name: model},
                live=self.live,
                credentials=credentials,
                namespace=namespace,
                redact=self._redact,
            )
        except RouterConfigError as exc:
            self._unusable(identity, str(exc))
            return
        self.problems.pop(f"{namespace}/{name}", None)
        for key, routed in keyed_by_namespace(namespace, built.adapters).items():
            self._retire(self.adapters.get(key))
            self.adapters[key] = routed
        log.info("Model adapter ready adapter=%s/%s provider=%s", namespace, name, model.spec.provider.value)

    def _unusable(self, identity: tuple[str, str], reason: str) -> None:
        self.problems["/".join(identity)] = reason
        self._retire(self.adapters.pop("/".join(identity), None))
        log.warning("Model adapter unusable adapter=%s reason=%s", "/".join(identity), reason)

    def _drop(self, identity: tuple[str, str]) -> None:
        self._fingerprints.pop(identity, None)
        self._retire(self.adapters.pop("/".join(identity), None))

    def _retire(self, routed: RoutedAdapter | None) -> None:
        """Close an adapter that left the map once the calls that still hold it are done."""
        if routed is None:
            return
        task = asyncio.get_running_loop().create_task(self._close_later(routed))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _close_later(self, routed: RoutedAdapter) -> None:
        try:
            await self._sleep(RETIRE_GRACE_SECONDS)
        finally:
            await close_adapter(routed)

    # --- RoutePolicies ---------------------------------------------------------------------------

    async def _replace_policies(self, namespace: str | None, items: list[JsonObject]) -> None:
        for identity in [identity for identity in self._policies if _within(identity, namespace)]:
            del self._policies[identity]
        for obj in items:
            await self._policy_changed("ADDED", obj)

    async def _policy_changed(self, type_: str, obj: JsonObject) -> None:
        identity = _identity(obj)
        key = "/".join(identity)
        self._policies.pop(identity, None)
        self.policy_problems.pop(key, None)
        if type_ == "DELETED":
            return
        try:
            self._policies[identity] = RoutePolicy.model_validate(obj)
        except ValidationError as exc:
            self.policy_problems[key] = f"RoutePolicy {key} is invalid: {error_text(exc)}"
            log.warning("Route policy unusable policy=%s reason=%s", key, self.policy_problems[key])

    # --- Secrets ---------------------------------------------------------------------------------

    def _referenced(self, identity: tuple[str, str]) -> bool:
        namespace, name = identity
        return any(
            model_namespace == namespace
            and model.spec.credentials_secret_ref is not None
            and model.spec.credentials_secret_ref.name == name
            for (model_namespace, _), model in self._models.items()
        )

    async def _ensure_secret(self, namespace: str, model: ModelAdapter) -> None:
        """Read the Secret a newly seen adapter names, once; its watch keeps it current after that."""
        ref = model.spec.credentials_secret_ref
        if ref is None or self._client is None or (namespace, ref.name) in self._secrets.values:
            return
        if not self._secrets_listed & {None, namespace}:
            return  # the Secrets' first list is still to come, and brings it
        try:
            obj = await self._client.get("Secret", namespace, ref.name)
        except KubeError as exc:
            log.warning("Could not read Secret %s/%s: %s", namespace, ref.name, exc)
            return
        if obj is not None and (namespace, ref.name) not in self._secrets.values:
            self._secrets.values[(namespace, ref.name)] = _decoded(obj)

    async def _replace_secrets(self, namespace: str | None, items: list[JsonObject]) -> None:
        for identity in [identity for identity in self._secrets.values if _within(identity, namespace)]:
            del self._secrets.values[identity]
        for obj in items:
            if self._referenced(_identity(obj)):
                self._secrets.values[_identity(obj)] = _decoded(obj)
        self._secrets_listed.add(namespace)
        self._rebuild_all()

    async def _secret_changed(self, type_: str, obj: JsonObject) -> None:
        identity = _identity(obj)
        if not self._referenced(identity):
            self._secrets.values.pop(identity, None)
            return
        if type_ == "DELETED":
            self._secrets.values.pop(identity, None)
        else:
            self._secrets.values[identity] = _decoded(obj)
        for model_identity, model in list(self._models.items()):
            ref = model.spec.credentials_secret_ref
            if model_identity[0] == identity[0] and ref is not None and ref.name == identity[1]:
                self._build(model_identity)

    def _forget_unreferenced_secrets(self) -> None:
        for identity in [identity for identity in self._secrets.values if not self._referenced(identity)]:
            del self._secrets.values[identity]

    def _rebuild_all(self) -> None:
        for identity in list(self._models):
            self._build(identity)
