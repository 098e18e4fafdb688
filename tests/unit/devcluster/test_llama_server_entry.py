"""The dev cluster's `llama-server` (tools/llamacpp/llama_server.py): llama.cpp's command line, as the
serving builder writes it, read into llama-cpp-python's settings; the model download into the cache;
flags and URLs it cannot honour refused by name (tests/cluster/test_llamacpp_serving.py runs it)."""

from __future__ import annotations

import importlib.util
import io
import re
import urllib.error
from email.message import Message
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.builders.adapters import llamacpp_adapter
from tests.builders.manifest import set_field

from jesus.api.modeladapter import ModelAdapter
from jesus.devcluster import llamacpp
from jesus.logic.serving import LLAMACPP_CACHE_PATH, llamacpp_args

ENTRY = Path(llamacpp.__file__).resolve().parents[3] / "tools" / "llamacpp" / "llama_server.py"
GGUF = b"GGUF" + bytes(60)


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llama_server_entry", ENTRY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


server = _load()


def adapter(**fields: Any) -> ModelAdapter:
    obj = set_field(llamacpp_adapter(), "metadata.namespace", "team-ml")
    for path, value in fields.items():
        obj = set_field(obj, path, value)
    return ModelAdapter.model_validate(obj)


def parse(argv: list[str]) -> Any:
    return server.parser().parse_args(argv)


def test_the_image_serves_the_entry_point_first_on_its_path() -> None:
    assert ENTRY.stat().st_mode & 0o111, "the entry point must be executable: pods run it by name"
    assert ENTRY.read_text().startswith("#!/usr/bin/env python3\n")


def test_the_builders_command_line_becomes_the_servers_settings(tmp_path: Path) -> None:
    uri = "http://models.example/tiny.gguf"
    args = parse(llamacpp_args(adapter(**{"spec.serving.modelURI": uri})))
    assert args.model_url == uri
    model = tmp_path / "tiny.gguf"
    served, loaded = server.settings(args, model, {"LLAMA_API_KEY": "k-123"})
    assert served == {"host": "0.0.0.0", "port": 8080, "api_key": "k-123"}
    assert loaded == {
        "model": str(model),
        "model_alias": "tiny-llama",
        "n_gpu_layers": 0,
        "n_ctx": 2048,
        "n_threads": 2,
        "verbose": False,
    }


def test_a_file_uri_serves_that_file_and_a_missing_one_is_named(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(GGUF)
    args = parse(llamacpp_args(adapter(**{"spec.serving.modelURI": f"file://{model}"})))
    assert server.model_file(args, {}) == model
    model.unlink()
    with pytest.raises(server.ServerError, match=f"--model {model}: no such file"):
        server.model_file(args, {})


def test_a_gpu_adapter_offloads_every_layer() -> None:
    gpu = adapter(**{"spec.serving.gpu.count": 1})
    _, loaded = server.settings(parse(llamacpp_args(gpu)), Path("/m.gguf"), {})
    assert loaded["n_gpu_layers"] == 999


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Careless: a llama-server flag this server does not honour, passed as an extra argument.
        (["--model", "/m.gguf", "--parallel", "4"], "unrecognized arguments: --parallel 4"),
        # Hostile: an abbreviation must not reach another flag.
        (["--model", "/m.gguf", "--api", "k"], "unrecognized arguments: --api k"),
        (["--model", "/m.gguf", "--port", "70000"], "70000 is not a TCP port"),
        (["--model", "/m.gguf", "--threads", "0"], "0 is less than 1"),
        (["--model", "/a", "--model-url", "http://h/b.gguf"], "not allowed with argument"),
        (["--port", "8080"], "one of the arguments -m/--model -mu/--model-url -hf/--hf-repo is required"),
    ],
)
def test_flags_it_cannot_honour_stop_it_naming_them(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_hugging_face_model_is_refused_with_what_to_use_instead() -> None:
    args = parse(llamacpp_args(adapter(**{"spec.serving.modelURI": "hf://ggml-org/tiny/tiny.gguf"})))
    with pytest.raises(server.ServerError, match=r"no Hugging Face client.*use modelURI https://"):
        server.model_file(args, {"LLAMA_CACHE": "/models"})


@pytest.mark.parametrize(
    "url",
    [
        "http://h/",  # careless: no file name
        "http://h/models/..",
        "http://h/models/%2e%2e",  # hostile: the parent directory, quoted
        "http://h/x/..%2Fetc%2Fpasswd",  # hostile: a path hidden in the name
        "http://h/.hidden.gguf",
        "ftp://h/m.gguf",
        "http:///m.gguf",
    ],
)
def test_a_url_whose_name_is_not_a_plain_file_name_is_refused(url: str) -> None:
    with pytest.raises(server.ServerError, match=r"--model-url"):
        server.cached_name(url)


class _Response(io.BytesIO):
    def __enter__(self) -> _Response:
        return self


def test_a_download_lands_in_the_cache_under_the_urls_name_and_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fetched: list[str] = []

    def urlopen(url: str, timeout: float) -> _Response:
        fetched.append(url)
        return _Response(GGUF)

    monkeypatch.setattr(server.urllib.request, "urlopen", urlopen)
    args = parse(["--model-url", "http://h/dir/tiny%2Dllama.gguf"])
    environ = {"LLAMA_CACHE": str(tmp_path)}
    assert server.model_file(args, environ) == tmp_path / "tiny-llama.gguf"
    assert server.model_file(args, environ) == tmp_path / "tiny-llama.gguf"
    assert fetched == ["http://h/dir/tiny%2Dllama.gguf"]  # a restarted container reuses the download
    assert [p.name for p in tmp_path.iterdir()] == ["tiny-llama.gguf"]


def test_a_download_that_is_not_gguf_or_fails_leaves_nothing_in_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def html(url: str, timeout: float) -> _Response:
        return _Response(b"<html>login</html>")

    monkeypatch.setattr(server.urllib.request, "urlopen", html)
    with pytest.raises(server.ServerError, match="is not a GGUF file"):
        server.download("http://h/m.gguf", tmp_path)

    def missing(url: str, timeout: float) -> _Response:
        raise urllib.error.HTTPError(url, 404, "Not Found", Message(), None)

    monkeypatch.setattr(server.urllib.request, "urlopen", missing)
    with pytest.raises(
        server.ServerError, match=re.escape("'http://h/m.gguf': the server answered 404 Not Found")
    ):
        server.download("http://h/m.gguf", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_download_needs_the_cache_directory_the_pod_mounts(tmp_path: Path) -> None:
    args = parse(["--model-url", "http://h/m.gguf"])
    with pytest.raises(server.ServerError, match=r"needs \$LLAMA_CACHE"):
        server.model_file(args, {})
    with pytest.raises(server.ServerError, match="not a directory"):
        server.model_file(args, {"LLAMA_CACHE": str(tmp_path / "absent")})
    assert LLAMACPP_CACHE_PATH == "/models"  # where the builder mounts the pod's emptyDir


def test_the_image_is_the_cached_environment_its_interpreter_and_the_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = tmp_path / "cache" / "llama-cpp-python"
    (environment / "bin").mkdir(parents=True)
    (environment / "bin" / "python").touch()
    (environment / "pyvenv.cfg").write_text("home = /opt/pythons/3.11.7/bin\nversion_info = 3.11.7\n")
    monkeypatch.setattr(llamacpp, "server_dir", lambda: environment)
    image = llamacpp.server_image(tmp_path / "images")
    assert image.env["PATH"].split(":")[:2] == [llamacpp.IMAGE_BIN, f"{environment}/bin"]
    assert image.mounts[f"{llamacpp.IMAGE_BIN}/llama-server"] == ENTRY
    assert image.mounts[str(environment)] == environment
    assert image.mounts["/opt/pythons/3.11.7"] == Path("/opt/pythons/3.11.7")
    assert image.entrypoint == ("llama-server",)
    # Careless: a cache without the server stops with the command that builds it.
    (environment / "bin" / "python").unlink()
    with pytest.raises(llamacpp.ToolchainError, match="jesus dev build --llamacpp"):
        llamacpp.server_image(tmp_path / "images")
