"""The bubblewrap command line that runs one container over its image's root filesystem (ADR 0022).

The sandbox's `/` is a tmpfs laid out from the image: each entry of the image's root is bound
read-only at its place, except the directories on the way to a mount point, which become empty
directories holding the image's entries bound one by one. Mount points the image lacks can so be made
without writing to the image (which many pods share), and a `readOnlyRootFilesystem` container gets
the whole tree remounted read-only at the end. The container gets its own user, PID, IPC and UTS
namespaces, its uid and gid, and the host's network.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jesus.devcluster.images import ContainerImage
from jesus.devcluster.podspec import PodSpecError, resolve_in_image

BWRAP = "bwrap"
# Mounted by bwrap itself, never bound from the image.
_SPECIAL = {"/proc": "--proc", "/dev": "--dev"}


@dataclass(frozen=True)
class Mount:
    """A host path bound into the sandbox at `destination`."""

    source: Path
    destination: str
    read_only: bool = True


@dataclass(frozen=True)
class SandboxSpec:
    """Everything one container's sandbox needs."""

    image: ContainerImage
    argv: Sequence[str]
    uid: int
    gid: int
    workdir: str
    hostname: str
    mounts: Sequence[Mount] = ()
    read_only_root: bool = False


def _ancestors(path: str) -> list[str]:
    parents = []
    current = posixpath.dirname(path)
    while current != "/":
        parents.append(current)
        current = posixpath.dirname(current)
    return parents


def _layout(rootfs: Path, directory: str, split: set[str], mounted: set[str], args: list[str]) -> None:
    """Bind the image's entries of `directory` into the sandbox, descending into the `split` ones."""
    host = rootfs / directory.lstrip("/")
    entries = sorted(p.name for p in host.iterdir()) if host.is_dir() and not host.is_symlink() else []
    names = set(entries) | {posixpath.basename(p) for p in split if posixpath.dirname(p) == directory}
    for name in sorted(names):
        path = posixpath.join(directory, name)
        source = host / name
        if path in split:
            if source.is_symlink() or (source.exists() and not source.is_dir()):
                raise PodSpecError(f"a mount point lies under {path}, which the image has as a file or link")
            args += ["--dir", path]
            _layout(rootfs, path, split, mounted, args)
        elif path in mounted:
            continue
        elif source.is_symlink():
            args += ["--symlink", str(source.readlink()), path]
        elif source.is_dir() or source.is_file():
            args += ["--ro-bind", str(source), path]


def bwrap_argv(spec: SandboxSpec) -> list[str]:
    """The full `bwrap ... -- argv` command line for `spec` (the environment is the process's own)."""
    image = spec.image
    mounts: list[tuple[str, str, str]] = []  # (destination, option, source)
    for destination, source in image.mounts.items():
        mounts.append((resolve_in_image(image.rootfs, destination), "--ro-bind", str(source)))
    for mount in spec.mounts:
        option = "--ro-bind" if mount.read_only else "--bind"
        mounts.append((resolve_in_image(image.rootfs, mount.destination), option, str(mount.source)))
    destinations = {destination for destination, _, _ in mounts} | set(_SPECIAL)
    split = {parent for destination in destinations for parent in _ancestors(destination)}
    # A mount point under another mount's destination is made inside that mount: keep them out of the
    # layout, and mount parents first.
    split -= {p for p in split if any(p == d or p.startswith(d + "/") for d in destinations)}
    args = [
        BWRAP,
        "--unshare-user",
        "--uid",
        str(spec.uid),
        "--gid",
        str(spec.gid),
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        spec.hostname,
        "--die-with-parent",
        "--new-session",
    ]
    _layout(image.rootfs, "/", split, destinations, args)
    for destination, option in _SPECIAL.items():
        args += [option, destination]
    for destination, option, host_path in sorted(mounts, key=lambda m: m[0].count("/")):
        args += [option, host_path, destination]
    if spec.read_only_root:
        args += ["--remount-ro", "/"]
    args += ["--chdir", spec.workdir or "/", "--", *spec.argv]
    return args


def sandbox_environment(
    image_env: Mapping[str, str], env: Mapping[str, str], hostname: str
) -> dict[str, str]:
    """The container's environment: the image's, the pod's on top, and HOSTNAME as a kubelet sets it."""
    return {"HOSTNAME": hostname, **image_env, **env}
