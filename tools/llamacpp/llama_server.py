#!/usr/bin/env python3
"""`llama-server` in the dev cluster's llama.cpp image: llama.cpp's server command line, served by
llama-cpp-python's OpenAI-compatible server (the one `jesus dev build --llamacpp` compiles).

A ModelAdapter with `serving.engine: llamacpp` runs `llama-server` with upstream llama.cpp's flags
(`jesus.logic.serving.llamacpp_args`). This program takes those flags, does what llama-server does
with them, and refuses every other flag by name instead of ignoring it:

- `--model PATH` serves a file; `--model-url URL` first downloads it into $LLAMA_CACHE (the pod's
  emptyDir) under the URL's file name, as llama-server does, and reuses a completed download;
  `--hf-repo` is refused: the image has no Hugging Face client.
- `--host`, `--port`, `--alias`, `--n-gpu-layers`, `--ctx-size` (0, the default, is the model's own
  context), `--threads`, and `--api-key` or $LLAMA_API_KEY, as llama-server reads them.
- `--jinja` is what llama-cpp-python does anyway: it formats chats with the model's own template.
- `GET /health` answers 200 once the model is loaded (the server starts listening only then), which
  is what llama-server's health endpoint says and what the pod's probes ask.

Runs with the server environment's interpreter (the image puts it first on PATH). The parsing and the
download are plain functions, tested without llama-cpp-python; only `serve` imports it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

CACHE_VARIABLE = "LLAMA_CACHE"
API_KEY_VARIABLE = "LLAMA_API_KEY"
DOWNLOAD_TIMEOUT_SECONDS = 60
GGUF_MAGIC = b"GGUF"
# A downloaded model's name in the cache: the URL's last path segment, if it is a plain file name.
_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")


class ServerError(Exception):
    """What stops the server before it serves; the message names the flag or URL."""


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is not a TCP port (1-65535)")
    return value


def _at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is less than {minimum}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    """llama-server's flags that this server honours; argparse refuses any other one by name."""
    parse = argparse.ArgumentParser(
        prog="llama-server",
        description="llama.cpp's server command line over llama-cpp-python's OpenAI-compatible server",
        allow_abbrev=False,
    )
    source = parse.add_mutually_exclusive_group(required=True)
    source.add_argument("-m", "--model", help="a GGUF file to serve")
    source.add_argument("-mu", "--model-url", help="a GGUF file to download into $LLAMA_CACHE, then serve")
    source.add_argument("-hf", "--hf-repo", help="refused: this image has no Hugging Face client")
    parse.add_argument("-hff", "--hf-file", help="refused with --hf-repo")
    parse.add_argument("--host", default="127.0.0.1")
    parse.add_argument("--port", type=_port, default=8080)
    parse.add_argument("-a", "--alias", help="the model name clients ask for (default: the file's path)")
    parse.add_argument("-ngl", "--n-gpu-layers", "--gpu-layers", type=_at_least(-1), default=0)
    parse.add_argument("-c", "--ctx-size", type=_at_least(0), default=0, help="0: the model's own context")
    parse.add_argument("-t", "--threads", type=_at_least(1), help="default: half the CPUs")
    parse.add_argument("--jinja", action="store_true", help="accepted: chats use the model's own template")
    parse.add_argument("--api-key", help=f"the key clients must send (default: ${API_KEY_VARIABLE})")
    return parse


def cached_name(url: str) -> str:
    """The file name a download of `url` gets in the cache; ServerError for a URL that names none."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ServerError(f"--model-url {url!r}: only http:// and https:// URLs with a host are served")
    name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1])
    if not _FILE_NAME.match(name):
        raise ServerError(
            f"--model-url {url!r}: the URL must end in a plain file name (letters, digits, '.', '_', '-'), "
            f"not {name!r}"
        )
    return name


def download(url: str, cache: Path) -> Path:
    """The model at `url` in `cache`: downloaded under a temporary name and renamed when complete and
    a GGUF file, so a restarted container reuses a finished download and never a half-made one."""
    target = cache / cached_name(url)
    if target.is_file():
        return target
    partial = cache / f".{target.name}.partial-{os.getpid()}"
    try:
        # The scheme is http or https (cached_name checked it).
        opened = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS)  # nosec B310
        with opened as response, partial.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        with partial.open("rb") as written:
            if written.read(len(GGUF_MAGIC)) != GGUF_MAGIC:
                raise ServerError(f"--model-url {url!r}: the download is not a GGUF file")
        partial.rename(target)
    except urllib.error.HTTPError as exc:
        raise ServerError(f"--model-url {url!r}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ServerError(f"--model-url {url!r}: could not download it into {cache}: {reason}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def model_file(args: argparse.Namespace, environ: dict[str, str]) -> Path:
    """The GGUF file to serve: the --model path, or the --model-url download in $LLAMA_CACHE."""
    if args.hf_repo is not None or args.hf_file is not None:
        raise ServerError(
            "--hf-repo/--hf-file: this image serves file:// and http(s):// models only (it has no Hugging "
            "Face client); use modelURI https://... or file://..."
        )
    if args.model is not None:
        path = Path(args.model)
        if not path.is_file():
            raise ServerError(f"--model {args.model}: no such file")
        return path
    cache = environ.get(CACHE_VARIABLE)
    if not cache:
        raise ServerError(f"--model-url needs ${CACHE_VARIABLE}, the directory downloads go to")
    directory = Path(cache)
    if not directory.is_dir():
        raise ServerError(f"${CACHE_VARIABLE}={cache}: not a directory")
    return download(args.model_url, directory)


Settings = dict[str, Any]


def settings(args: argparse.Namespace, model: Path, environ: dict[str, str]) -> tuple[Settings, Settings]:
    """llama-cpp-python's server and model settings for llama-server's flags."""
    server = {"host": args.host, "port": args.port, "api_key": args.api_key or environ.get(API_KEY_VARIABLE)}
    model_settings: Settings = {
        "model": str(model),
        "model_alias": args.alias or str(model),
        "n_gpu_layers": args.n_gpu_layers,
        "n_ctx": args.ctx_size,
        "verbose": False,
    }
    if args.threads is not None:
        model_settings["n_threads"] = args.threads
    return server, model_settings


def serve(server: dict[str, Any], model: dict[str, Any]) -> None:
    """Load the model, then serve the OpenAI-compatible API and /health until stopped."""
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    app = create_app(server_settings=ServerSettings(**server), model_settings=[ModelSettings(**model)])

    @app.get("/health")
    def health() -> dict[str, str]:
        # create_app loaded the model before the server listens: answering at all means loaded.
        return {"status": "ok"}

    uvicorn.run(app, host=server["host"], port=server["port"], log_level="warning")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    environ = dict(os.environ)
    try:
        model = model_file(args, environ)
    except ServerError as exc:
        print(f"llama-server: error: {exc}", file=sys.stderr)
        return 1
    serve(*settings(args, model, environ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
