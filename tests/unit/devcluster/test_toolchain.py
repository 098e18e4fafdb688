"""Building tools: clear errors when Go is missing or the module proxy cannot be reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from jesus.devcluster import toolchain
from jesus.devcluster.controlplane import free_port
from jesus.devcluster.toolchain import Tool, ToolchainError, build_module


@pytest.fixture
def wrapper_module(tmp_path: Path) -> Path:
    module = tmp_path / "module"
    module.mkdir()
    (module / "go.mod").write_text(
        "module jesus.dev/tools/probe\n\ngo 1.24.0\n\nrequire github.com/google/uuid v1.6.0\n"
    )
    (module / "main.go").write_text(
        'package main\n\nimport "github.com/google/uuid"\n\nfunc main() { println(uuid.NewString()) }\n'
    )
    return module


def test_missing_go_says_to_install_it(
    monkeypatch: pytest.MonkeyPatch, wrapper_module: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tool = Tool("probe", "v0", {"probe": "."})
    with pytest.raises(ToolchainError, match="Go is not installed"):
        build_module(tool, wrapper_module, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreachable_module_proxy_is_explained_and_leaves_no_partial_build(
    monkeypatch: pytest.MonkeyPatch, wrapper_module: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOPROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("GOMODCACHE", str(tmp_path / "modcache"))
    monkeypatch.setenv("GONOSUMDB", "*")
    monkeypatch.setenv("GOFLAGS", "")
    tool = Tool("probe", "v0", {"probe": "."})
    messages: list[str] = []
    with pytest.raises(ToolchainError, match="module proxy could not be reached"):
        build_module(tool, wrapper_module, tmp_path / "out", messages.append)
    assert messages and "Building probe" in messages[0]
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.glob("out.partial-*")) == []


def test_unknown_tool_names_the_known_ones() -> None:
    with pytest.raises(ToolchainError, match="kube-apiserver"):
        toolchain.ensure_tool("no-such-tool")


def test_cache_key_changes_with_the_pins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JESUS_CACHE_DIR", str(tmp_path))
    etcd = toolchain.TOOLS["etcd"]
    first = toolchain.tool_dir(etcd)
    other = Tool(etcd.name, etcd.version, etcd.binaries, ("-X main.changed=1",))
    assert first.parent == tmp_path / "bin"
    assert toolchain.tool_dir(other) != first


def test_a_tool_that_needs_cgo_and_tags_is_built_with_them_and_others_without(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir, module = tmp_path / "bin", tmp_path / "module"
    bin_dir.mkdir()
    module.mkdir()
    calls = tmp_path / "calls"
    fake_go = bin_dir / "go"
    # A stand-in for go: records its arguments and CGO_ENABLED, and writes the binary it is asked for.
    fake_go.write_text(
        "#!/bin/sh\n"
        f'echo "CGO_ENABLED=$CGO_ENABLED $*" >> {calls}\n'
        'while [ "$1" != "-o" ]; do shift; done\n'
        'touch "$2"\n'
    )
    fake_go.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    hydra = toolchain.TOOLS["hydra"]
    build_module(hydra, module, tmp_path / "hydra-out")
    build_module(toolchain.TOOLS["kwok"], module, tmp_path / "kwok-out")
    hydra_call, kwok_call = calls.read_text().splitlines()
    assert hydra_call.startswith("CGO_ENABLED=1 build -trimpath -tags sqlite,sqlite_omit_load_extension ")
    assert "config.Version=v2.3.0" in hydra_call and hydra_call.endswith(" github.com/ory/hydra/v2")
    assert kwok_call.startswith("CGO_ENABLED=0 build -trimpath -ldflags ") and "-tags" not in kwok_call
    assert (tmp_path / "hydra-out" / "hydra").is_file()


def test_the_cache_key_of_a_tool_without_tags_or_cgo_is_what_it_was(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JESUS_CACHE_DIR", str(tmp_path))
    kwok = toolchain.TOOLS["kwok"]
    assert toolchain.tool_dir(kwok) == toolchain.tool_dir(Tool(kwok.name, kwok.version, kwok.binaries))
    hydra = toolchain.TOOLS["hydra"]
    untagged = Tool(hydra.name, hydra.version, hydra.binaries, hydra.ldflags)
    assert toolchain.tool_dir(untagged) != toolchain.tool_dir(hydra)


def test_a_missing_c_compiler_is_explained_for_a_cgo_tool() -> None:
    output = 'runtime/cgo\ncgo: C compiler "gcc" not found: exec: "gcc": executable file not found in $PATH\n'
    message = toolchain._explain_go_failure(output, toolchain.TOOLS["hydra"])
    assert message.startswith("building hydra v2.3.0 failed: hydra is built with cgo and needs a C compiler")
    assert "libc6-dev" in message and 'cgo: C compiler "gcc" not found' in message
