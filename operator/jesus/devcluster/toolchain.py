"""Build the control plane and tool binaries from pinned Go modules, once, into ~/.cache/jesus.

Each tool has a wrapper module under `tools/<name>/` (go.mod and go.sum pin every version). A build
lands in a directory keyed by the tool's version and a digest of its go.mod and go.sum, so changing a
pin rebuilds and an unchanged pin never does. Builds write to a temporary directory and are renamed
into place only when every binary of the tool built, so an interrupted build leaves nothing half-made.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KUBERNETES_VERSION = "v1.34.4"
# The Kueue the dev control plane runs; the CRDs are read from this module version too.
KUEUE_VERSION = "v0.17.0"

_K8S_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


def _kubernetes_ldflags(version: str) -> tuple[str, ...]:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for package in _K8S_VERSION_PACKAGES:
        flags += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate=1970-01-01T00:00:00Z",
        ]
    return tuple(flags)


@dataclass(frozen=True)
class Tool:
    """One wrapper module and the binaries built from it (binary name -> Go package)."""

    name: str
    version: str
    binaries: dict[str, str]
    ldflags: tuple[str, ...] = field(default=())
    # Go build tags, and whether the build needs cgo (a C compiler): off unless a tool needs it.
    tags: tuple[str, ...] = field(default=())
    cgo: bool = False


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool("etcd", "v3.6.16", {"etcd": "go.etcd.io/etcd/server/v3"}),
        Tool(
            "kubernetes",
            KUBERNETES_VERSION,
            {
                name: f"k8s.io/kubernetes/cmd/{name}"
                for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
            },
            _kubernetes_ldflags(KUBERNETES_VERSION),
        ),
        Tool("kwok", "v0.8.0", {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}),
        Tool("helm", "v3.22.0", {"helm": "helm.sh/helm/v3/cmd/helm"}),
        Tool("opa", "v1.22.2", {"opa": "github.com/open-policy-agent/opa"}),
        # Jaeger all-in-one (OTLP in, query API out): the trace backend of the observability tests.
        Tool("jaeger", "v1.75.0", {"jaeger": "github.com/jaegertracing/jaeger/cmd/jaeger"}),
        # Built without the `builtinassets` tag: the module carries no web UI assets, and the
        # server's HTTP API (all the project uses) does not need them.
        Tool(
            "prometheus",
            "v0.316.0",
            {name: f"github.com/prometheus/prometheus/cmd/{name}" for name in ("prometheus", "promtool")},
            # Only static and file discovery (all the tests use): leaving out the cloud providers' SDKs
            # roughly halves a cold build.
            tags=("remove_all_sd",),
        ),
        # ORY Hydra, the dev control plane's OIDC provider (`jesus dev up --oidc`, ADR 0026). Its
        # in-memory store is SQLite (mattn/go-sqlite3), hence cgo and the sqlite tags.
        Tool(
            "hydra",
            "v2.3.0",
            {"hydra": "github.com/ory/hydra/v2"},
            ("-X github.com/ory/hydra/v2/driver/config.Version=v2.3.0",),
            tags=("sqlite", "sqlite_omit_load_extension"),
            cgo=True,
        ),
        # Kueue's controller manager (`jesus dev up --kueue`, ADR 0029): quota, priority lanes and
        # preemption for runner Jobs. Its CRDs come from the same module (config/components/crd).
        Tool(
            "kueue",
            KUEUE_VERSION,
            {"kueue": "sigs.k8s.io/kueue/cmd/kueue"},
            (
                f"-X sigs.k8s.io/kueue/pkg/version.GitVersion={KUEUE_VERSION}",
                "-X sigs.k8s.io/kueue/pkg/version.BuildDate=1970-01-01T00:00:00Z",
            ),
        ),
        # SeaweedFS's `weed`: the dev S3-compatible server the artifact store is tested against (ADR 0030).
        # Its releases are not semver tags, so the module proxy serves a pseudo-version (pinned in go.mod).
        Tool("seaweedfs", "4.53-7506e5f91cd6", {"weed": "github.com/seaweedfs/seaweedfs/weed"}),
        # Our own small program (not a wrapper): the chart's Argo CD health checks in gopher-lua.
        Tool("argocd-health", "v1", {"argocd-health": "."}),
    )
}

# Which tool provides each binary, for callers that ask for a binary by name.
BINARY_TOOL: dict[str, str] = {binary: tool.name for tool in TOOLS.values() for binary in tool.binaries}

Progress = Callable[[str], None]


class ToolchainError(Exception):
    """A tool could not be built; the message says what to do."""


def _stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def repo_root() -> Path:
    """The checkout that holds `tools/` (the package is installed from it in editable mode)."""
    root = Path(__file__).resolve().parents[3]
    if not (root / "tools").is_dir():
        raise ToolchainError(
            f"no tools/ folder next to the jesus package (looked in {root}); "
            "the control plane is built from a checkout of the project: run from a clone"
        )
    return root


def cache_root() -> Path:
    """Where built binaries live: $JESUS_CACHE_DIR, else $XDG_CACHE_HOME/jesus, else ~/.cache/jesus."""
    override = os.environ.get("JESUS_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jesus"


def tool_dir(tool: Tool) -> Path:
    """The cache directory of one build of `tool`, keyed by version and the digest of its pins."""
    module = repo_root() / "tools" / tool.name
    digest = hashlib.sha256()
    for pin in ("go.mod", "go.sum"):
        digest.update((module / pin).read_bytes())
    for source in sorted(module.glob("*.go")):  # a module of our own: its code is part of the pin
        digest.update(source.read_bytes())
    digest.update("\n".join(tool.ldflags).encode())
    if tool.tags or tool.cgo:  # tools without either keep the directory they always had
        digest.update(f"tags={','.join(tool.tags)} cgo={tool.cgo}".encode())
    return cache_root() / "bin" / f"{tool.name}-{tool.version}-{digest.hexdigest()[:12]}"


def is_built(name: str) -> bool:
    """Whether every binary of tool `name` is in the cache."""
    tool = TOOLS[name]
    directory = tool_dir(tool)
    return all((directory / binary).is_file() for binary in tool.binaries)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolchainError(
            "Go is not installed (no `go` on PATH); install Go 1.24 or newer, "
            "then run `jesus dev build` again"
        )
    return go


def _explain_go_failure(output: str, tool: Tool) -> str:
    tail = "\n".join(output.strip().splitlines()[-15:])
    lowered = output.lower()
    if any(
        sign in lowered
        for sign in ("dial tcp", "no such host", "connection refused", "i/o timeout", "proxyconnect")
    ):
        hint = (
            "the Go module proxy could not be reached: check the network or GOPROXY, "
            "or build once where it can be reached (the cache is reused)"
        )
    elif tool.cgo and ("c compiler" in lowered or ("gcc" in lowered and "not found" in lowered)):
        hint = (
            f"{tool.name} is built with cgo and needs a C compiler: install gcc and the C library headers "
            "(Debian: gcc, libc6-dev; `make packages` does), then try again"
        )
    elif "no space left" in lowered:
        hint = "the disk is full: free space under ~/.cache and ~/go, then try again"
    else:
        hint = "see Go's output above"
    return f"building {tool.name} {tool.version} failed: {hint}\n{tail}"


def build_tool(name: str, progress: Progress = _stderr_progress) -> Path:
    """Build tool `name` into the cache unless it is there; return its directory."""
    tool = TOOLS[name]
    target = tool_dir(tool)
    if not is_built(name):
        build_module(tool, repo_root() / "tools" / tool.name, target, progress)
    return target


def build_module(tool: Tool, module: Path, target: Path, progress: Progress = _stderr_progress) -> None:
    """Build every binary of `tool` from the wrapper module in `module` into `target`, atomically."""
    go = _go()
    staging = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = {
        **os.environ,
        "CGO_ENABLED": "1" if tool.cgo else "0",
        "GOFLAGS": "-mod=mod -buildvcs=false -modcacherw",
    }
    tags = ["-tags", ",".join(tool.tags)] if tool.tags else []
    try:
        for index, (binary, package) in enumerate(tool.binaries.items(), start=1):
            progress(f"Building {binary} ({tool.name} {tool.version}, {index}/{len(tool.binaries)})...")
            started = time.monotonic()
            ldflags = " ".join(("-s", "-w", *tool.ldflags))
            command = [
                go,
                "build",
                "-trimpath",
                *tags,
                "-ldflags",
                ldflags,
                "-o",
                str(staging / binary),
                package,
            ]
            result = subprocess.run(command, cwd=module, env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise ToolchainError(_explain_go_failure(result.stdout + result.stderr, tool))
            progress(f"Built {binary} seconds={time.monotonic() - started:.0f}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure_tool(name: str, progress: Progress = _stderr_progress) -> Path:
    """Return the path of binary `name` (e.g. "kube-apiserver", "opa"), building its tool if needed."""
    tool_name = BINARY_TOOL.get(name, name)
    if tool_name not in TOOLS:
        raise ToolchainError(f"unknown tool {name!r}; known: {', '.join(sorted(BINARY_TOOL))}")
    tool = TOOLS[tool_name]
    binary = name if name in tool.binaries else next(iter(tool.binaries))
    return build_tool(tool_name, progress) / binary


def ensure_all(progress: Progress = _stderr_progress) -> dict[str, Path]:
    """Build every tool that is not cached yet; return binary name -> path."""
    paths: dict[str, Path] = {}
    for name, tool in TOOLS.items():
        if not is_built(name):
            progress(f"Building {name} {tool.version} from tools/{name} (first time only; takes minutes)")
        directory = build_tool(name, progress)
        paths.update({binary: directory / binary for binary in tool.binaries})
    return paths
