"""A pod's configuration as its kubelet assembles it from the cluster: environment variables (values,
Secret and ConfigMap references, the downward API, envFrom) and volumes written to this machine
(configMap, secret, emptyDir, downwardAPI and projected ones, the service-account token among them).

A reference that cannot be satisfied raises `PodConfigError`, which the kubelet reports as the
container's `CreateContainerConfigError` and retries, as a kubelet does.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jesus.devcluster.podspec import PodSpecError, expand, relative_path
from jesus.kube import JsonObject, KubeClient, KubeError

DEFAULT_MODE = 0o644
TOKEN_SECONDS = 3607


class PodConfigError(Exception):
    """Something the pod refers to is missing or refused; the message names it."""


def _field(pod: Mapping[str, Any], path: str, where: str, pod_ip: str) -> str:
    metadata = pod.get("metadata", {})
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": pod.get("spec", {}).get("nodeName"),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", "default"),
        "status.podIP": pod_ip,
        "status.hostIP": pod_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    for prefix, key in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((metadata.get(key) or {}).get(path[len(prefix) + 2 : -2], ""))
    raise PodConfigError(f"{where}: fieldRef {path!r} is not supported")


class PodConfig:
    """Reads the ConfigMaps, Secrets and tokens one pod needs, once each."""

    def __init__(self, kube: KubeClient, pod: JsonObject, *, pod_ip: str = "127.0.0.1") -> None:
        self.kube = kube
        self.pod = pod
        self.pod_ip = pod_ip
        self.namespace: str = pod["metadata"]["namespace"]
        self._objects: dict[tuple[str, str], JsonObject | None] = {}

    async def _object(self, kind: str, name: str) -> JsonObject | None:
        if (kind, name) not in self._objects:
            self._objects[(kind, name)] = await self.kube.get(kind, self.namespace, name)
        return self._objects[(kind, name)]

    async def data(self, kind: str, name: str, *, optional: bool, where: str) -> dict[str, bytes] | None:
        """The keys of ConfigMap or Secret `name` as bytes; None when it is missing and optional."""
        obj = await self._object(kind, name)
        if obj is None:
            if optional:
                return None
            raise PodConfigError(f'{where}: {kind.lower()} "{name}" not found')
        values: dict[str, bytes] = {}
        if kind == "Secret":
            for key, value in (obj.get("data") or {}).items():
                values[key] = base64.b64decode(value)
        else:
            for key, value in (obj.get("data") or {}).items():
                values[key] = str(value).encode()
            for key, value in (obj.get("binaryData") or {}).items():
                values[key] = base64.b64decode(value)
        return values

    async def key(self, kind: str, ref: Mapping[str, Any], where: str) -> str | None:
        """One key of a ConfigMap or Secret (`secretKeyRef`/`configMapKeyRef`); None when optional and
        missing."""
        optional = bool(ref.get("optional"))
        values = await self.data(kind, ref["name"], optional=optional, where=where)
        if values is None:
            return None
        if ref["key"] not in values:
            if optional:
                return None
            raise PodConfigError(f'{where}: {kind.lower()} "{ref["name"]}" has no key "{ref["key"]}"')
        return values[ref["key"]].decode()

    # -- environment ------------------------------------------------------------------------------

    async def environment(self, container: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
        """The container's variables: `base` (the kubelet's own), then envFrom, then env, each value
        expanded against the variables before it."""
        env = dict(base)
        name = container.get("name")
        for index, source in enumerate(container.get("envFrom") or []):
            where = f"container {name!r} envFrom[{index}]"
            prefix = str(source.get("prefix") or "")
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source:
                    ref = source[key]
                    values = await self.data(
                        kind, ref["name"], optional=bool(ref.get("optional")), where=where
                    )
                    for variable, content in (values or {}).items():
                        env[prefix + variable] = content.decode()
        for item in container.get("env") or []:
            where = f"container {name!r} env {item['name']!r}"
            if "valueFrom" not in item:
                env[item["name"]] = expand(str(item.get("value") or ""), env)
                continue
            source = item["valueFrom"]
            value: str | None
            if "secretKeyRef" in source:
                value = await self.key("Secret", source["secretKeyRef"], where)
            elif "configMapKeyRef" in source:
                value = await self.key("ConfigMap", source["configMapKeyRef"], where)
            elif "fieldRef" in source:
                value = _field(self.pod, source["fieldRef"]["fieldPath"], where, self.pod_ip)
            else:
                raise PodConfigError(f"{where}: valueFrom {sorted(source)} is not supported")
            if value is not None:
                env[item["name"]] = value
        return env

    # -- volumes ----------------------------------------------------------------------------------

    async def volumes(self, directory: Path) -> dict[str, Path]:
        """Write every volume of the pod under `directory`; volume name -> its directory."""
        written: dict[str, Path] = {}
        for volume in self.pod["spec"].get("volumes") or []:
            name = volume["name"]
            where = f"volume {name!r}"
            target = directory / "volumes" / name
            target.mkdir(parents=True, exist_ok=True)
            if "emptyDir" in volume:
                target.chmod(0o777)
            elif "configMap" in volume:
                await self._keys_volume(target, "ConfigMap", volume["configMap"], "name", where)
            elif "secret" in volume:
                await self._keys_volume(target, "Secret", volume["secret"], "secretName", where)
            elif "downwardAPI" in volume:
                self._downward(target, volume["downwardAPI"], _mode(volume["downwardAPI"]), where)
            elif "projected" in volume:
                await self._projected(target, volume["projected"], where)
            else:
                kinds = sorted(set(volume) - {"name"})
                raise PodConfigError(f"{where}: volume type {kinds} is not supported on this node")
            written[name] = target
        return written

    async def _keys_volume(
        self,
        target: Path,
        kind: str,
        source: Mapping[str, Any],
        name_key: str,
        where: str,
        default_mode: int | None = None,
    ) -> None:
        mode = _mode(source) if default_mode is None else default_mode
        name = source[name_key]
        values = await self.data(kind, name, optional=bool(source.get("optional")), where=where)
        if values is None:
            return
        items = source.get("items")
        if not items:
            for key, value in values.items():
                write_file(target, key, value, mode, where)
            return
        for item in items:
            if item["key"] not in values:
                if source.get("optional"):
                    continue
                raise PodConfigError(f'{where}: {kind.lower()} "{name}" has no key "{item["key"]}"')
            write_file(target, item["path"], values[item["key"]], int(item.get("mode", mode)), where)

    def _downward(self, target: Path, source: Mapping[str, Any], mode: int, where: str) -> None:
        for item in source.get("items") or []:
            if "fieldRef" not in item:
                raise PodConfigError(f"{where}: downwardAPI item {item.get('path')!r} needs a fieldRef")
            value = _field(self.pod, item["fieldRef"]["fieldPath"], where, self.pod_ip)
            write_file(target, item["path"], value.encode(), int(item.get("mode", mode)), where)

    async def _projected(self, target: Path, projected: Mapping[str, Any], where: str) -> None:
        mode = _mode(projected)
        for source in projected.get("sources") or []:
            if "serviceAccountToken" in source:
                await self._token(target, source["serviceAccountToken"], mode, where)
            elif "configMap" in source:
                await self._keys_volume(target, "ConfigMap", source["configMap"], "name", where, mode)
            elif "secret" in source:
                await self._keys_volume(target, "Secret", source["secret"], "name", where, mode)
            elif "downwardAPI" in source:
                self._downward(target, source["downwardAPI"], mode, where)
            else:
                raise PodConfigError(f"{where}: projected source {sorted(source)} is not supported")

    async def _token(self, target: Path, source: Mapping[str, Any], mode: int, where: str) -> None:
        account = self.pod["spec"].get("serviceAccountName") or "default"
        audience = source.get("audience")
        try:
            status = await self.kube.request_token(
                self.namespace,
                account,
                audiences=[audience] if audience else None,
                expiration_seconds=int(source.get("expirationSeconds") or TOKEN_SECONDS),
                bound_pod=self.pod,
            )
        except KubeError as exc:
            raise PodConfigError(f'{where}: no token for service account "{account}": {exc}') from exc
        write_file(target, source["path"], str(status["token"]).encode(), mode, where)


def _mode(source: Mapping[str, Any]) -> int:
    return int(source.get("defaultMode", DEFAULT_MODE))


def write_file(directory: Path, path: str, content: bytes, mode: int, where: str) -> Path:
    """Write `content` at `path` inside `directory` (made by this kubelet, so holding no links but its
    own): the path must be relative without `..`, and no link is followed on the way."""
    try:
        relative = relative_path(path, f"{where}: path")
    except PodSpecError as exc:
        raise PodConfigError(str(exc)) from exc
    target = directory / relative
    current = directory
    for part in Path(relative).parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise PodConfigError(f"{where}: path {path!r} goes through {part!r}, which is no directory")
        current.mkdir(mode=0o755, exist_ok=True)
    if target.is_symlink() or target.is_dir():
        raise PodConfigError(f"{where}: path {path!r} is written twice or is a directory")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(target, flags, mode & 0o777)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    target.chmod(mode & 0o777)
    return target
