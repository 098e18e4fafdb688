"""Container images for the sandbox kubelet: a root filesystem on this machine and the image's config.

Nothing is pulled. A test (or `jesus dev`) says which image reference means which root filesystem
(`ImageResolver`); a reference nobody mapped is refused with `ImageNotFoundError`, which the kubelet
reports as the container's `ErrImagePull`. Three ways to make a `ContainerImage`:

- `image_from_oci_layout`: an OCI image layout (the config blob gives entrypoint, cmd, env, user and
  working directory) and the root filesystem `umoci unpack` made of it;
- `opa_image`: the cached OPA binary at `/opa`, as the official `openpolicyagent/opa:*-static` image
  has it;
- `host_image`: the host's `/usr` (and its `/bin`, `/lib` links) read-only, plus host directories at
  their own paths (the project's checkout and virtualenv), for running Jesus's own code before its
  real image is built.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ImageNotFoundError(LookupError):
    """No root filesystem is known for an image reference."""


class ImageConfigError(ValueError):
    """An image's config could not be read; the message names the file."""


@dataclass(frozen=True)
class ContainerImage:
    """One image as the sandbox runs it.

    `rootfs` is the image's root filesystem; `mounts` are host paths the image has at the given
    absolute paths on top of it (read-only, like a lower layer), so an image can be assembled from
    host directories without copying them.
    """

    rootfs: Path
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str = "/"
    mounts: Mapping[str, Path] = field(default_factory=dict)


class ImageResolver:
    """Image reference -> `ContainerImage`, for the references a test registered."""

    def __init__(self, images: Mapping[str, ContainerImage] | None = None) -> None:
        self._images: dict[str, ContainerImage] = dict(images or {})

    def add(self, reference: str, image: ContainerImage) -> None:
        """Map `reference` (as pods write it, e.g. `jesus/jesus:0.1.0`) to `image`."""
        self._images[reference] = image

    def resolve(self, reference: str) -> ContainerImage:
        """The image for `reference`; ImageNotFoundError naming it when none is registered."""
        image = self._images.get(reference)
        if image is None:
            known = ", ".join(sorted(self._images)) or "none"
            raise ImageNotFoundError(
                f'image "{reference}" is not available on this node (images it has: {known})'
            )
        return image


def _config_list(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = config.get(key) or []
    return tuple(str(item) for item in value)


def _env_map(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def image_from_config(rootfs: Path, config: Mapping[str, Any]) -> ContainerImage:
    """A `ContainerImage` from an OCI image config document (`{"config": {"Entrypoint": ...}}`)."""
    inner: Mapping[str, Any] = config.get("config") or {}
    return ContainerImage(
        rootfs=rootfs,
        entrypoint=_config_list(inner, "Entrypoint"),
        cmd=_config_list(inner, "Cmd"),
        env=_env_map(list(inner.get("Env") or [])),
        user=str(inner["User"]) if inner.get("User") else None,
        workdir=str(inner.get("WorkingDir") or "/"),
    )


def _blob(layout: Path, digest: str) -> Any:
    algorithm, _, value = digest.partition(":")
    path = layout / "blobs" / algorithm / value
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ImageConfigError(f"{path}: the blob {digest} could not be read: {exc}") from exc


def image_from_oci_layout(layout: Path, tag: str, rootfs: Path) -> ContainerImage:
    """The image tagged `tag` in the OCI image layout `layout`, run from `rootfs` (its unpacked root
    filesystem, e.g. `umoci unpack`'s `bundle/rootfs`)."""
    index_path = layout / "index.json"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as exc:
        raise ImageConfigError(f"{index_path}: not an OCI image index: {exc}") from exc
    tags = []
    for descriptor in index.get("manifests") or []:
        name = (descriptor.get("annotations") or {}).get("org.opencontainers.image.ref.name")
        tags.append(str(name))
        if name == tag:
            manifest = _blob(layout, descriptor["digest"])
            config = _blob(layout, manifest["config"]["digest"])
            return image_from_config(rootfs, config)
    raise ImageConfigError(f"{index_path}: no manifest tagged {tag!r} (tags: {', '.join(tags) or 'none'})")


def opa_image(binary: Path, directory: Path) -> ContainerImage:
    """The official OPA static image's shape: the binary at `/opa`, entrypoint `/opa`, cmd `run`, user
    1000; `directory` holds its (otherwise empty) root filesystem."""
    rootfs = directory / "opa-rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    return ContainerImage(
        rootfs=rootfs,
        entrypoint=("/opa",),
        cmd=("run",),
        env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        user="1000:1000",
        mounts={"/opa": binary},
    )


def host_image(
    directory: Path,
    *,
    entrypoint: tuple[str, ...] = (),
    cmd: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    host_paths: tuple[Path, ...] = (),
    workdir: str = "/",
) -> ContainerImage:
    """An image made of the host's `/usr` (read-only) and `host_paths` at their own paths, with an
    `/etc` of its own (passwd, group, nsswitch.conf) written into `directory`."""
    rootfs = directory / "host-rootfs"
    etc = rootfs / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532::/home/nonroot:/bin/sh\n"
    )
    (etc / "group").write_text("root:x:0:\nnonroot:x:65532:\n")
    (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files dns\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    for name in ("tmp", "home", "root", "var", "run"):
        (rootfs / name).mkdir(exist_ok=True)
    # Debian's merged /usr: /bin, /lib and friends are links into /usr.
    for name in ("bin", "sbin", "lib", "lib64"):
        link = rootfs / name
        if not link.is_symlink() and Path("/usr", name).exists():
            os.symlink(f"usr/{name}", link)
    mounts: dict[str, Path] = {"/usr": Path("/usr")}
    for path in host_paths:
        mounts[str(path.resolve())] = path.resolve()
    return ContainerImage(
        rootfs=rootfs,
        entrypoint=entrypoint,
        cmd=cmd,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", **(env or {})},
        workdir=workdir,
        mounts=mounts,
    )
