"""Build the platform's container image without a daemon, once, into ~/.cache/jesus/image (ADR 20).

The same image the Containerfile describes, made from what this machine can reach: debootstrap lays
down a Debian bookworm root filesystem with Debian's Python (the mirror is the host's apt source, read
at run time), the locked wheels are downloaded on the host with their hashes and installed into a venv
in that root offline (`--no-index --require-hashes`, network unshared), and umoci packs the result as
an OCI image layout. The layout is then unpacked again: `rootfs` is what a runtime would run, ready for
bwrap. A CycloneDX SBOM is generated from the image's site-packages.

A build lands in a directory keyed by a digest of the runtime lock, the sources that go into the wheel
and this recipe, so an unchanged tree never rebuilds; builds write to a temporary directory renamed into
place at the end, so an interrupted build leaves nothing half-made.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jesus.devcluster import lockfile
from jesus.devcluster.lockfile import RUNTIME_LOCK, LockError, Pin, check_lock
from jesus.devcluster.toolchain import cache_root, repo_root

IMAGE_REPOSITORY = "jesus/jesus"
DEBIAN_SUITE = "bookworm"
# A fresh tmpfs inside each build sandbox, never the host's /tmp.
SANDBOX_TMP = "/tmp"  # nosec B108
# Debian's Python, the CA bundle, and libatomic (regopy's Rego engine links it).
BASE_PACKAGES = ("python3", "ca-certificates", "libatomic1")
VENV = "/opt/jesus"
USER_ID = 65532
USER_NAME = "jesus"
# Every timestamp the recipe writes (image config, history): fixed, so a rebuild differs only in content.
CREATED = "1970-01-01T00:00:00Z"
IMAGE_ENV = (
    f"PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    f"HOME=/home/{USER_NAME}",
    # The root filesystem is read-only and ships no bytecode: compile in memory, never try to write it.
    "PYTHONDONTWRITEBYTECODE=1",
    "PYTHONUNBUFFERED=1",
    "LANG=C.UTF-8",
)
# What goes into the wheel (with pyproject.toml); these and the recipe make the cache key.
WHEEL_SOURCES = ("pyproject.toml", "README.md", "operator", "adapters")
# Removed from the root filesystem: documentation, translations, apt's caches and lists, logs.
BASE_TRIM = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/apt",
    "var/lib/apt/lists",
    "var/cache/debconf/templates.dat-old",
    "var/cache/debconf/config.dat-old",
    "var/log",
)
APT_SOURCES = Path("/etc/apt")

Progress = Callable[[str], None]


class ImageError(Exception):
    """The image could not be built; the message says what to do."""


@dataclass(frozen=True)
class ImageConfig:
    """What the OCI image config says to run, and as whom."""

    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    user: str
    workdir: str


@dataclass(frozen=True)
class BuiltImage:
    """One built image: its reference, OCI layout, unpacked root filesystem, config, SBOM and sizes."""

    ref: str
    layout: Path
    rootfs: Path
    config: ImageConfig
    sbom: Path
    size_bytes: int  # the unpacked root filesystem (what `docker images` calls its size)
    compressed_bytes: int  # the layer blobs (what a registry stores and a node pulls)
    build_seconds: float  # how long the build that made it took


def container_argv(
    image: BuiltImage,
    *,
    command: Sequence[str] | None = None,
    args: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    network: bool = False,
    binds: Mapping[Path, str] | None = None,
) -> list[str]:
    """The bwrap command line that runs `image` as a container runtime would, with a pod's semantics:
    `command` replaces the entrypoint, `args` the cmd (and a `command` without `args` drops the cmd);
    the root read-only, a fresh /tmp (the chart's emptyDir), the image's env updated by `env`, its
    user and working directory, new namespaces (the host's network only with `network`), and `binds`
    (host path -> container path) mounted read-only."""
    uid, _, gid = (image.config.user or "0").partition(":")
    if not (uid.isdigit() and (gid or uid).isdigit()):
        raise ImageError(f"{image.ref}: the config's user {image.config.user!r} is not numeric uid[:gid]")
    argv = [
        "bwrap",
        "--ro-bind",
        str(image.rootfs),
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        SANDBOX_TMP,
    ]
    argv += ["--unshare-all", *(["--share-net"] if network else []), "--die-with-parent", "--new-session"]
    argv += ["--uid", uid, "--gid", gid or uid, "--chdir", image.config.workdir or "/", "--clearenv"]
    for key, value in {**image.config.env, **(env or {})}.items():
        argv += ["--setenv", key, value]
    for source, target in (binds or {}).items():
        argv += ["--ro-bind", str(source), target]
    entrypoint = list(command) if command is not None else image.config.entrypoint
    rest = list(args) if args is not None else ([] if command is not None else image.config.cmd)
    program = [*entrypoint, *rest]
    if not program:
        raise ImageError(f"{image.ref}: nothing to run (no command, no entrypoint)")
    return [*argv, *program]


def _stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def app_version(root: Path) -> str:
    """The chart's appVersion: the image tag the chart defaults to."""
    chart = root / "charts" / "jesus" / "Chart.yaml"
    for line in chart.read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "appVersion":
            return value.strip().strip("\"'")
    raise ImageError(f"{chart}: no appVersion; the image is tagged with it")


def debian_mirror(apt_dir: Path = APT_SOURCES) -> str:
    """The Debian mirror the host's apt uses for `DEBIAN_SUITE` ($JESUS_DEBIAN_MIRROR overrides it)."""
    override = os.environ.get("JESUS_DEBIAN_MIRROR")
    candidates = [("JESUS_DEBIAN_MIRROR", override)] if override else list(_apt_mirrors(apt_dir))
    for origin, uri in candidates:
        parsed = urlparse(uri)
        if parsed.scheme not in ("http", "https", "file") or not (parsed.netloc or parsed.path):
            raise ImageError(f"{origin}: {uri!r} is not an http(s) or file URL of a Debian mirror")
        return uri
    raise ImageError(
        f"no apt source for Debian {DEBIAN_SUITE} in {apt_dir}/sources.list or {apt_dir}/sources.list.d; "
        "set JESUS_DEBIAN_MIRROR to a Debian mirror URL"
    )


def _apt_mirrors(apt_dir: Path) -> Iterator[tuple[str, str]]:
    """(file, URI) of every `deb` source that serves the suite itself (not -security, -updates)."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in text.split("\n\n"):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    key, sep, value = line.partition(":")
                    if sep and not line.startswith((" ", "\t", "#")):
                        fields[key.strip().lower()] = value.strip()
                if (
                    "deb" in fields.get("types", "").split()
                    and DEBIAN_SUITE in fields.get("suites", "").split()
                    and fields.get("enabled", "yes").lower() != "no"
                ):
                    for uri in fields.get("uris", "").split():
                        yield str(path), uri
        elif path.name == "sources.list" or path.suffix == ".list":
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()  # no [options]
                if len(words) >= 3 and words[0] == "deb" and words[2] == DEBIAN_SUITE:
                    yield str(path), words[1]


def _source_files(root: Path) -> Iterator[Path]:
    for name in WHEEL_SOURCES:
        path = root / name
        if path.is_file():
            yield path
        else:
            for file in sorted(path.rglob("*")):
                if file.is_file() and "__pycache__" not in file.parts and ".egg-info" not in str(file):
                    yield file


def image_key(root: Path) -> str:
    """Digest of the runtime lock, the wheel's sources and this recipe: what the build depends on."""
    digest = hashlib.sha256()
    recipe = (Path(__file__), Path(lockfile.__file__))
    for path in (root / RUNTIME_LOCK, *recipe, *_source_files(root)):
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path.name).encode())
        digest.update(b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _base_key() -> str:
    recipe = json.dumps([DEBIAN_SUITE, BASE_PACKAGES, BASE_TRIM, USER_ID, USER_NAME, VENV])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def image_dir(root: Path) -> Path:
    """The cache directory of the image built from this tree."""
    return cache_root() / "image" / f"{app_version(root)}-{image_key(root)}"


def _run(command: list[str], what: str, **kwargs: Any) -> str:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ImageError(f"{what} failed ({shlex.join(command[:3])} ... exited {result.returncode}):\n{tail}")
    return str(result.stdout)


def _require_tools() -> None:
    missing = [tool for tool in ("debootstrap", "umoci", "bwrap", "strip") if shutil.which(tool) is None]
    if missing:
        raise ImageError(
            f"{', '.join(missing)} not installed; the daemonless image build needs debootstrap, umoci, "
            "bubblewrap and binutils (`make packages` installs them on Debian)"
        )
    if os.geteuid() != 0:
        raise ImageError("the daemonless image build runs debootstrap and umoci, which need root")


def _bwrap(rootfs: Path, *, writable: bool, binds: dict[Path, str] | None = None) -> list[str]:
    """bwrap into `rootfs` with no network and a clean environment (the host's pip settings stay out)."""
    command = ["bwrap", "--bind" if writable else "--ro-bind", str(rootfs), "/"]
    command += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        SANDBOX_TMP,
        "--unshare-all",
        "--die-with-parent",
    ]
    command += [
        "--clearenv",
        "--setenv",
        "PATH",
        IMAGE_ENV[0].partition("=")[2],
        "--setenv",
        "HOME",
        SANDBOX_TMP,
    ]
    for source, target in (binds or {}).items():
        command += ["--ro-bind", str(source), target]
    return command


def ensure_base(progress: Progress = _stderr_progress) -> Path:
    """The Debian root filesystem with Python, debootstrapped once and cached; returns its directory."""
    target = cache_root() / "image" / f"base-{DEBIAN_SUITE}-{_base_key()}"
    if (target / "rootfs" / "usr" / "bin" / "python3").exists():
        return target / "rootfs"
    mirror = debian_mirror()
    staging = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        progress(
            f"Debootstrapping Debian {DEBIAN_SUITE} with {', '.join(BASE_PACKAGES)} (first time only)..."
        )
        started = time.monotonic()
        rootfs = staging / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                DEBIAN_SUITE,
                str(rootfs),
                mirror,
            ],
            f"debootstrap of Debian {DEBIAN_SUITE}",
        )
        for relative in BASE_TRIM:
            path = rootfs / relative
            if path.is_dir():
                for child in path.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            elif path.exists():
                path.unlink()
        with (rootfs / "etc" / "passwd").open("a") as passwd:
            passwd.write(
                f"{USER_NAME}:x:{USER_ID}:{USER_ID}:{USER_NAME}:/home/{USER_NAME}:/usr/sbin/nologin\n"
            )
        with (rootfs / "etc" / "group").open("a") as group:
            group.write(f"{USER_NAME}:x:{USER_ID}:\n")
        home = rootfs / "home" / USER_NAME
        home.mkdir(parents=True)
        os.chown(home, USER_ID, USER_ID)
        progress(f"Debootstrapped {DEBIAN_SUITE} seconds={time.monotonic() - started:.0f}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "rootfs"


_MARKER_SCRIPT = """
import json, os, platform, sys
print(json.dumps({
    "implementation_name": sys.implementation.name,
    "implementation_version": platform.python_version(),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_python_implementation": platform.python_implementation(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}))
"""


def image_pins(pins: dict[str, Pin], rootfs: Path) -> list[Pin]:
    """The pins whose markers hold for the image's own interpreter (not the host's)."""
    output = _run(
        [*_bwrap(rootfs, writable=False), "/usr/bin/python3", "-c", _MARKER_SCRIPT], "reading markers"
    )
    environment: dict[str, str] = json.loads(output)
    return [pin for pin in pins.values() if pin.applies(environment)]


def requirements_text(pins: list[Pin]) -> str:
    """A requirements file pinning exactly `pins`, each with all its hashes, no markers."""
    lines = []
    for pin in sorted(pins, key=lambda p: p.name):
        hashes = " ".join(f"--hash=sha256:{digest}" for digest in pin.hashes)
        lines.append(f"{pin.name}=={pin.version} {hashes}")
    return "\n".join(lines) + "\n"


def _build_wheel(root: Path, workdir: Path) -> Path:
    """Build the project's wheel from a copy of exactly the sources in the cache key."""
    source = workdir / "src"
    for name in WHEEL_SOURCES:
        if (root / name).is_dir():
            shutil.copytree(
                root / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, source / name)
    dist = workdir / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        "building the project's wheel",
    )
    (wheel,) = dist.glob("*.whl")
    return wheel


def install_wheels(rootfs: Path, requirements: Path, wheels: Path) -> None:
    """Create the venv in the root filesystem and install the wheels into it, offline, with hashes."""
    import pip

    # The host's pip package alone (not its site-packages), mounted for the build only: the image has no pip.
    pip_package = Path(pip.__file__).parent
    binds = {requirements: "/build/requirements.txt", wheels: "/build/wheels", pip_package: "/build/pip/pip"}
    box = _bwrap(rootfs, writable=True, binds=binds)
    _run([*box, "/usr/bin/python3", "-m", "venv", "--without-pip", VENV], "creating the image's venv")
    _run(
        [
            *box,
            "--setenv",
            "PYTHONPATH",
            "/build/pip",
            f"{VENV}/bin/python",
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--require-hashes",
            "--only-binary=:all:",
            # No bytecode: a quarter of the image for about half a second less at start (docs/image.md).
            "--no-compile",
            "--find-links",
            "/build/wheels",
            "-r",
            "/build/requirements.txt",
        ],
        "installing the locked wheels into the image (offline)",
    )


def _umoci(layout: Path, tag: str, rootfs: Path, bundle: Path) -> None:
    """Pack `rootfs` (moved into `bundle`) as image `tag` of a new OCI layout, with its config."""
    image = f"{layout}:{tag}"
    _run(["umoci", "init", "--layout", str(layout)], "umoci init")
    _run(["umoci", "new", "--image", image], "umoci new")
    # An empty image unpacked gives the bundle metadata that repack compares against; our root goes in it.
    _run(["umoci", "unpack", "--image", image, str(bundle)], "umoci unpack")
    (bundle / "rootfs").rmdir()
    rootfs.rename(bundle / "rootfs")
    history = ["--history.created", CREATED, "--history.author", "jesus dev image"]
    _run(
        [
            "umoci",
            "repack",
            "--image",
            image,
            *history,
            "--history.created_by",
            "jesus dev image",
            str(bundle),
        ],
        "umoci repack",
    )
    config = ["umoci", "config", "--image", image, "--created", CREATED, *history]
    config += ["--config.user", f"{USER_ID}:{USER_ID}", "--config.workingdir", "/"]
    config += ["--config.entrypoint", f"{VENV}/bin/jesus", "--config.cmd", "--help"]
    config += ["--architecture", "amd64", "--os", "linux"]
    for entry in IMAGE_ENV:
        config += ["--config.env", entry]
    labels = {
        "org.opencontainers.image.title": "jesus",
        "org.opencontainers.image.version": tag,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    for key, value in labels.items():
        config += ["--config.label", f"{key}={value}"]
    _run(config, "umoci config")
    _run(["umoci", "gc", "--layout", str(layout)], "umoci gc")


def _read_layout(layout: Path, tag: str) -> tuple[ImageConfig, int]:
    """The config of image `tag` in `layout`, and the total size of its layer blobs."""

    def blob(digest: str) -> dict[str, Any]:
        algorithm, _, value = digest.partition(":")
        loaded: dict[str, Any] = json.loads((layout / "blobs" / algorithm / value).read_text())
        return loaded

    index = json.loads((layout / "index.json").read_text())
    for entry in index.get("manifests", []):
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            manifest = blob(entry["digest"])
            break
    else:
        raise ImageError(f"{layout}/index.json: no image tagged {tag!r}")
    config = blob(manifest["config"]["digest"]).get("config", {})
    env = dict(item.partition("=")[::2] for item in config.get("Env", []))
    image_config = ImageConfig(
        entrypoint=list(config.get("Entrypoint") or []),
        cmd=list(config.get("Cmd") or []),
        env=env,
        user=str(config.get("User", "")),
        workdir=str(config.get("WorkingDir", "")),
    )
    return image_config, sum(int(layer["size"]) for layer in manifest["layers"])


def tree_size(path: Path) -> int:
    """Bytes of the regular files under `path` (hard links counted once)."""
    seen: set[int] = set()
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            stat = os.lstat(os.path.join(directory, name))
            if stat.st_nlink > 1:
                if stat.st_ino in seen:
                    continue
                seen.add(stat.st_ino)
            total += stat.st_size if not os.path.islink(os.path.join(directory, name)) else 0
    return total


def _sbom(rootfs: Path, target: Path, workdir: Path) -> None:
    """CycloneDX JSON of what is installed in the image's venv (cyclonedx-py, ADR 20)."""
    site_packages = sorted((rootfs / VENV.lstrip("/") / "lib").glob("python3*/site-packages"))
    if len(site_packages) != 1:
        raise ImageError(f"{rootfs}{VENV}/lib: expected one site-packages, found {len(site_packages)}")
    # cyclonedx-py asks the interpreter it is given for sys.path; this one answers with the image's
    # site-packages as seen from the host, so the SBOM lists the image's packages and nothing else.
    interpreter = workdir / "image-python"
    interpreter.write_text(f"#!/bin/sh\nprintf '%s' {shlex.quote(json.dumps([str(site_packages[0])]))}\n")
    interpreter.chmod(0o755)
    _run(
        [
            sys.executable,
            "-m",
            "cyclonedx_py",
            "environment",
            "--of",
            "JSON",
            "--output-reproducible",
            "--mc-type",
            "application",
            "-o",
            str(target),
            str(interpreter),
        ],
        "generating the SBOM (cyclonedx-py)",
    )


def load_built(directory: Path) -> BuiltImage | None:
    """The image recorded in `directory`, or None if none was finished there."""
    record = directory / "built.json"
    if not record.is_file():
        return None
    data = json.loads(record.read_text())
    config = ImageConfig(**data.pop("config"))
    paths = {key: directory / data.pop(key) for key in ("layout", "rootfs", "sbom")}
    return BuiltImage(config=config, **paths, **data)


def build_image(progress: Progress = _stderr_progress) -> BuiltImage:
    """Build the image unless the cache holds one for this tree; return it."""
    root = repo_root()
    try:
        pins = check_lock(root / "pyproject.toml", root / RUNTIME_LOCK)
    except LockError as exc:
        raise ImageError(str(exc)) from exc
    target = image_dir(root)
    cached = load_built(target)
    if cached is not None:
        return cached
    _require_tools()
    tag = app_version(root)
    started = time.monotonic()
    base = ensure_base(progress)
    staging = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        work = staging / "work"
        work.mkdir()
        progress("Copying the base root filesystem...")
        rootfs = work / "rootfs"
        _run(["cp", "-a", str(base), str(rootfs)], "copying the base root filesystem")
        selected = image_pins(pins, rootfs)
        wheels = cache_root() / "image" / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        locked = work / "locked.txt"
        locked.write_text(requirements_text(selected))
        progress(f"Downloading {len(selected)} locked wheels (hashes checked)...")
        _run(
            [
                *(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes"),
                *("--only-binary=:all:", "--disable-pip-version-check", "-d", str(wheels), "-r", str(locked)),
            ],
            f"downloading the wheels of {RUNTIME_LOCK}",
        )
        progress("Building the project's wheel...")
        wheel = _build_wheel(root, work)
        own = Pin(
            "jesus-platform", wheel.name.split("-")[1], (hashlib.sha256(wheel.read_bytes()).hexdigest(),)
        )
        requirements = work / "requirements.txt"
        requirements.write_text(requirements_text([*selected, own]))
        house = work / "wheels"
        house.mkdir()
        for file in [*wheels.glob("*.whl"), wheel]:
            os.link(file, house / file.name) if file.parent == wheels else shutil.copy2(file, house)
        progress("Installing into the image (offline, --require-hashes)...")
        install_wheels(rootfs, requirements, house)
        _trim(rootfs)
        progress("Packing the OCI layout (umoci)...")
        layout = staging / "oci"
        bundle = work / "bundle"
        _umoci(layout, tag, rootfs, bundle)
        shutil.rmtree(bundle)
        _run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(staging / "unpacked")], "umoci unpack")
        progress("Generating the SBOM...")
        _sbom(staging / "unpacked" / "rootfs", staging / "sbom.cdx.json", work)
        config, compressed = _read_layout(layout, tag)
        shutil.rmtree(work)
        built = BuiltImage(
            ref=f"{IMAGE_REPOSITORY}:{tag}",
            layout=Path("oci"),
            rootfs=Path("unpacked/rootfs"),
            config=config,
            sbom=Path("sbom.cdx.json"),
            size_bytes=tree_size(staging / "unpacked" / "rootfs"),
            compressed_bytes=compressed,
            build_seconds=round(time.monotonic() - started, 1),
        )
        record = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(built).items()}
        (staging / "built.json").write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(target)
    result = load_built(target)
    assert result is not None
    progress(f"Built image {result.ref} size={result.size_bytes} seconds={result.build_seconds}")
    return result


def _prune(keep: Path) -> None:
    """Remove older images (every source change makes one, about half a gigabyte each) and what
    builds killed half-way left behind; the base and the wheel cache stay."""
    for sibling in keep.parent.iterdir():
        name, _, pid = sibling.name.partition(".partial-")
        if sibling == keep or name.startswith("base-") or name == "wheels":
            continue
        if pid and pid.isdigit() and Path(f"/proc/{pid}").exists():
            continue  # a build in progress
        if pid or re.fullmatch(r".+-[0-9a-f]{12}", name):
            shutil.rmtree(sibling, ignore_errors=True)


def _trim(rootfs: Path) -> None:
    """Drop what the image never runs: other shells' venv activation, the dependencies' own test suites,
    and the debug sections of their shared libraries (half the bytes of the compiled wheels)."""
    venv = rootfs / VENV.lstrip("/")
    for name in ("Activate.ps1", "activate.csh", "activate.fish"):
        (venv / "bin" / name).unlink(missing_ok=True)
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    for tests in sorted(site_packages.glob("*/**/tests")):
        if tests.is_dir() and not tests.is_symlink() and tests.parent.name != "jesus":
            shutil.rmtree(tests, ignore_errors=True)
    # Not the libraries auditwheel vendored (`<package>.libs/`): patchelf moved their segments, and
    # strip would leave them unloadable ("ELF load command address/offset not page-aligned").
    libraries = [
        str(path)
        for path in site_packages.rglob("*.so*")
        if not path.parent.name.endswith(".libs") and _is_elf(path)
    ]
    for start in range(0, len(libraries), 200):
        _run(["strip", "--strip-debug", *libraries[start : start + 200]], "stripping debug sections")


def _is_elf(path: Path) -> bool:
    if not path.is_file() or path.is_symlink():
        return False
    with path.open("rb") as file:
        return file.read(4) == b"\x7fELF"
