"""What a kubelet derives from a pod's spec before it starts a container, as pure functions: the
command line (Kubernetes' command/args rules and `$(VAR)` expansion), the user, the paths volumes and
subPaths may take, and the /etc/hosts that maps Service names to this machine."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from jesus.devcluster.images import ContainerImage

_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
MAX_SYMLINKS = 40


class PodSpecError(ValueError):
    """The pod asks for something this node refuses to do; the message names the field."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is a literal `$`, and a
    reference to an undefined variable stays as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REFERENCE.sub(replace, text)


def container_argv(image: ContainerImage, container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """The process's argv: `command` replaces the image's entrypoint (and drops its cmd), `args`
    replaces the cmd; both are expanded against the container's environment."""
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = [*command, *(args or [])]
    elif args is not None:
        argv = [*image.entrypoint, *args]
    else:
        argv = [*image.entrypoint, *image.cmd]
    if not argv:
        raise PodSpecError(
            f"container {container.get('name')!r}: no command: the pod gives none and the image has "
            "neither entrypoint nor cmd"
        )
    return [expand(str(part), env) for part in argv]


def _passwd_lookup(rootfs: Path, file: str, name: str) -> tuple[int, int] | None:
    try:
        lines = (rootfs / "etc" / file).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) >= 4 and fields[0] == name:
            return int(fields[2]), int(fields[3])
    return None


def image_user(image: ContainerImage) -> tuple[int | None, int | None]:
    """The image's USER as (uid, gid): numbers, or names looked up in the image's /etc/passwd and
    /etc/group."""
    if not image.user:
        return None, None
    user, _, group = image.user.partition(":")
    uid: int | None
    gid: int | None = None
    if user.isdigit():
        uid = int(user)
    else:
        found = _passwd_lookup(image.rootfs, "passwd", user)
        if found is None:
            raise PodSpecError(f"the image's user {user!r} is not in its /etc/passwd")
        uid, gid = found
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = _passwd_lookup(image.rootfs, "group", group)
            gid = found[0] if found else None
    return uid, gid


def run_as(pod: Mapping[str, Any], container: Mapping[str, Any], image: ContainerImage) -> tuple[int, int]:
    """The uid and gid the container runs as: the container's securityContext, then the pod's, then
    the image's USER, then root. `runAsNonRoot` with uid 0 is refused, as a kubelet refuses it."""
    pod_context = pod.get("spec", {}).get("securityContext") or {}
    context = container.get("securityContext") or {}
    image_uid, image_gid = image_user(image)
    uid = context.get("runAsUser", pod_context.get("runAsUser", image_uid))
    gid = context.get("runAsGroup", pod_context.get("runAsGroup", image_gid))
    uid = 0 if uid is None else int(uid)
    gid = 0 if gid is None else int(gid)
    if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) and uid == 0:
        raise PodSpecError(f"container {container.get('name')!r} has runAsNonRoot and image will run as root")
    return uid, gid


def read_only_root(container: Mapping[str, Any]) -> bool:
    """Whether the container's securityContext asks for a read-only root filesystem."""
    return bool((container.get("securityContext") or {}).get("readOnlyRootFilesystem"))


def mount_path(path: str, where: str) -> str:
    """A volume's mountPath, normalised: absolute, no `..` that climbs above `/`, no `:`."""
    if not path.startswith("/"):
        raise PodSpecError(f"{where}: mountPath {path!r} must be absolute")
    if ":" in path or "\0" in path:
        raise PodSpecError(f"{where}: mountPath {path!r} must not contain ':'")
    if ".." in path.split("/"):
        raise PodSpecError(f"{where}: mountPath {path!r} must not contain '..'")
    normal = posixpath.normpath(path)
    return "/" + normal.lstrip("/")


def relative_path(path: str, where: str) -> str:
    """A path inside a volume (an item's `path`, a `subPath`): relative, no `..` component."""
    if not path or path.startswith("/"):
        raise PodSpecError(f"{where}: {path!r} must be a relative path")
    parts = path.split("/")
    if ".." in parts or "\0" in path:
        raise PodSpecError(f"{where}: {path!r} must not contain '..'")
    if parts[0].startswith(".."):
        raise PodSpecError(f"{where}: {path!r} must not start with '..'")
    return posixpath.normpath(path)


def resolve_inside(root: Path, relative: str, where: str) -> Path:
    """`root/relative` with every symlink on the way resolved as if `root` were `/`; refused when
    a link leads outside `root` (the subPath escape of CVE-2017-1002101)."""
    root = root.resolve()
    pending = [part for part in relative.split("/") if part and part != "."]
    current = root
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if current == root:
                raise PodSpecError(f"{where}: {relative!r} leads outside its volume")
            current = current.parent
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > MAX_SYMLINKS:
                raise PodSpecError(f"{where}: {relative!r} has too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                raise PodSpecError(
                    f"{where}: {relative!r} goes through the symlink {part!r} -> {target!r}, which "
                    "leads outside its volume"
                )
            pending = [p for p in target.split("/") if p and p != "."] + pending
            continue
        current = candidate
    if current != root and root not in current.parents:
        raise PodSpecError(f"{where}: {relative!r} leads outside its volume")
    return current


def resolve_in_image(rootfs: Path, path: str) -> str:
    """`path` inside the image with the image's own symlinks followed (an absolute link is read from
    the image's root, never the host's); what the sandbox then mounts onto."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        if part == ".":
            continue
        candidate = rootfs.joinpath(*resolved, part)
        if candidate.is_symlink() and hops < MAX_SYMLINKS:
            hops += 1
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return "/" + "/".join(resolved)


def service_host_names(name: str, namespace: str, pod_namespace: str) -> list[str]:
    """The names a Service answers to from a pod in `pod_namespace` (cluster DNS's forms)."""
    names = [f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
    return [name, *names] if namespace == pod_namespace else names


def hosts_file(pod_name: str, pod_namespace: str, services: Iterable[tuple[str, str]]) -> str:
    """/etc/hosts for a pod: the pod's own name and every Service (name, namespace) on 127.0.0.1, where
    this node's pods listen (they share the host's network)."""
    lines = ["127.0.0.1\tlocalhost", f"127.0.0.1\t{pod_name}", "::1\tlocalhost ip6-localhost ip6-loopback"]
    kubernetes = service_host_names("kubernetes", "default", pod_namespace)
    lines.append("127.0.0.1\t" + " ".join(kubernetes))
    for name, namespace in sorted(services):
        if (name, namespace) == ("kubernetes", "default"):
            continue
        lines.append("127.0.0.1\t" + " ".join(service_host_names(name, namespace, pod_namespace)))
    return "\n".join(lines) + "\n"


def declared_ports(container: Mapping[str, Any]) -> dict[str, int]:
    """The container's ports by name (unnamed ones under their number)."""
    ports: dict[str, int] = {}
    for port in container.get("ports") or []:
        number = int(port["containerPort"])
        ports[str(port.get("name") or number)] = number
    return ports


def probe_port(port: int | str, container: Mapping[str, Any]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    ports = declared_ports(container)
    if port not in ports:
        raise PodSpecError(f"container {container.get('name')!r}: the probe's port {port!r} is not declared")
    return ports[port]
