"""A real llama.cpp server for local runs and the tests: llama-cpp-python's OpenAI-compatible server, built
once from source into ~/.cache/jesus, and the tiny random-weight model it serves.

The server lives in an environment of its own (tools/llamacpp/requirements.lock, with hashes), apart
from the project's: its web stack pins differ from ours, and nothing of the platform imports it. Its
build directory is keyed by the version and a digest of the locks and build flags, so a changed pin
rebuilds and an unchanged one never does; a build goes to a staging directory renamed into place only
when complete, so an interrupted build leaves nothing half-made. llama-cpp-python ships only its source:
compiling llama.cpp takes about ten minutes on two cores, once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from jesus.devcluster.images import ContainerImage, host_image
from jesus.devcluster.toolchain import Progress, ToolchainError, cache_root, repo_root

VERSION = "0.3.36"
# The image reference the sandbox kubelet maps to `server_image`: a serving block's `image:` for the
# dev cluster. Named for what it holds, so nobody mistakes it for llama.cpp's own server image.
IMAGE = f"jesus.dev/llama-server:llama-cpp-python-{VERSION}"
# Where the image has its `llama-server` (tools/llamacpp/llama_server.py), first on its PATH.
IMAGE_BIN = "/opt/llama-server/bin"
# Portable code (no -march=native: a cache may move between machines of a kind) and only the library:
# no llava, examples, tests, tools or llama.cpp's own server; the Python server is what runs.
CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF"
    " -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF"
)


def _stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _pins() -> Path:
    return repo_root() / "tools" / "llamacpp"


def server_dir() -> Path:
    """The cache directory of this build of the server's environment."""
    digest = hashlib.sha256()
    for pin in ("requirements.lock", "build.lock"):
        digest.update((_pins() / pin).read_bytes())
    digest.update(CMAKE_ARGS.encode())
    return cache_root() / "llamacpp" / f"llama-cpp-python-{VERSION}-{digest.hexdigest()[:12]}"


def python(directory: Path | None = None) -> Path:
    """The server environment's interpreter."""
    return (directory or server_dir()) / "bin" / "python"


def is_built() -> bool:
    """Whether the server's environment is in the cache."""
    return python(server_dir()).exists()


def model_path() -> Path:
    """Where the tiny model is cached: keyed by the digest of the script that writes it."""
    digest = hashlib.sha256((_pins() / "tiny_model.py").read_bytes()).hexdigest()[:12]
    return cache_root() / "llamacpp" / "models" / f"tiny-llama-{digest}.gguf"


def _uv() -> str:
    # The project's environment installs uv (make setup); a checkout without it has uv on PATH.
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.exists() else shutil.which("uv")
    if found is None:
        raise ToolchainError("uv is not installed: run `make setup` first (it installs uv into .venv)")
    return found


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise ToolchainError(f"{what} failed (exit {result.returncode}):\n{tail}")


def ensure_server(progress: Progress = _stderr_progress) -> Path:
    """The server's environment and its tiny model, built into the cache when missing; returns the
    environment's directory."""
    directory = _build_environment(progress)
    model = model_path()
    if not model.is_file():
        model.parent.mkdir(parents=True, exist_ok=True)
        partial = model.with_name(model.name + f".partial-{os.getpid()}")
        try:
            _run(
                [str(python(directory)), str(_pins() / "tiny_model.py"), str(partial)],
                "writing the tiny model",
            )
            partial.rename(model)
        finally:
            partial.unlink(missing_ok=True)
    return directory


def _build_environment(progress: Progress) -> Path:
    target = server_dir()
    if is_built():
        return target
    progress(f"Building the llama.cpp server (llama-cpp-python {VERSION}; first time only, about 10 min)")
    started = time.monotonic()
    staging = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    uv = _uv()
    try:
        _run([uv, "venv", "--quiet", "--relocatable", "--python", sys.executable, str(staging)], "uv venv")
        env = {
            **os.environ,
            "CMAKE_ARGS": CMAKE_ARGS,
            "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2),
        }
        install = [
            uv, "pip", "install", "--quiet", "--python", str(python(staging)),
            "--require-hashes", "--no-deps", "--only-binary", ":all:", "--no-binary", "llama-cpp-python",
            "--build-constraint", str(_pins() / "build.lock"),
            "-r", str(_pins() / "requirements.lock"),
        ]  # fmt: skip
        _run(install, f"installing llama-cpp-python {VERSION} from tools/llamacpp/requirements.lock", env)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(f"Built the llama.cpp server seconds={time.monotonic() - started:.0f}")
    return target


def server_command(port: int, *, alias: str, context: int = 2048, model: Path | None = None) -> list[str]:
    """The command that serves `model` (the tiny one by default) as `alias` on 127.0.0.1:`port`."""
    return [
        str(python()), "-m", "llama_cpp.server",
        "--model", str(model or model_path()),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(context),
        "--n_threads", "1",
        "--verbose", "False",
    ]  # fmt: skip


def _base_prefix(directory: Path) -> Path:
    """The installation the environment's interpreter belongs to (pyvenv.cfg's `home` is its bin)."""
    config = directory / "pyvenv.cfg"
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return Path(value.strip()).parent
    raise ToolchainError(f"{config}: no `home` line, so the environment's interpreter cannot be found")


def server_image(directory: Path) -> ContainerImage:
    """The dev cluster's llama.cpp image (`IMAGE`), for the sandbox kubelet: the host's /usr (Debian's
    C and C++ runtimes, libgomp), the cached server environment and its interpreter's installation at
    their own paths, read-only, and `llama-server` (tools/llamacpp/llama_server.py: llama.cpp's
    command line over llama-cpp-python's server) first on PATH. `directory` holds its small root
    filesystem (/etc and empty mount points). ToolchainError when the server is not built."""
    if not is_built():
        raise ToolchainError(
            f"the llama.cpp server is not built: run `jesus dev build --llamacpp` (it builds {server_dir()})"
        )
    environment = server_dir()
    image = host_image(
        directory / "llama-server",
        entrypoint=("llama-server",),
        env={
            "PATH": f"{IMAGE_BIN}:{environment / 'bin'}:/usr/bin:/bin",
            # The root is read-only: nothing may try to write bytecode.
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        },
        host_paths=(_base_prefix(environment), environment),
    )
    entry = _pins() / "llama_server.py"
    return dataclasses.replace(image, mounts={**image.mounts, f"{IMAGE_BIN}/llama-server": entry})
