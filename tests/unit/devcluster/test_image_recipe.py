"""The image recipe's pure parts: the Debian mirror read from the host's apt sources, the cache key, the
requirements file handed to pip inside the image (tests/e2e/test_image.py builds the image itself)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from packaging.markers import Marker

from jesus.devcluster import image
from jesus.devcluster.image import ImageError, debian_mirror, image_key, requirements_text
from jesus.devcluster.lockfile import Pin

REPO = Path(__file__).resolve().parents[3]
MIRROR = "http://mirror.invalid/debian"


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JESUS_DEBIAN_MIRROR", raising=False)


def apt_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "apt"
    (root / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_the_mirror_comes_from_a_deb822_source_and_skips_security_and_disabled_ones(tmp_path: Path) -> None:
    sources = (
        "Types: deb\nURIs: http://disabled.invalid/debian\nSuites: bookworm\n"
        "Components: main\nEnabled: no\n\n"
        "Types: deb\nURIs: http://security.invalid/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        f"Types: deb deb-src\n# a comment\nURIs: {MIRROR}\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n"
    )
    assert debian_mirror(apt_dir(tmp_path, {"sources.list.d/debian.sources": sources})) == MIRROR


def test_the_mirror_comes_from_a_one_line_source_with_options(tmp_path: Path) -> None:
    text = (
        "# deb http://commented.invalid/debian bookworm main\n"
        "deb-src http://src.invalid/debian bookworm main\n"
        f"deb [arch=amd64 signed-by=/k.gpg] {MIRROR} bookworm main\n"
    )
    assert debian_mirror(apt_dir(tmp_path, {"sources.list": text})) == MIRROR


def test_no_bookworm_source_says_where_it_looked_and_what_to_set(tmp_path: Path) -> None:
    root = apt_dir(tmp_path, {"sources.list": "deb http://x.invalid/debian trixie main\n"})
    with pytest.raises(
        ImageError, match=rf"no apt source for Debian bookworm in {root}.*JESUS_DEBIAN_MIRROR"
    ):
        debian_mirror(root)


def test_the_override_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JESUS_DEBIAN_MIRROR", "file:///srv/debian")
    assert debian_mirror(apt_dir(tmp_path, {})) == "file:///srv/debian"


@pytest.mark.parametrize("uri", ["--keyring=/tmp/evil.gpg", "javascript:alert(1)", "ftp://x.invalid/debian"])
def test_a_hostile_mirror_is_refused_naming_its_origin(tmp_path: Path, uri: str) -> None:
    # It reaches debootstrap's command line: an option there would change what is trusted.
    root = apt_dir(tmp_path, {"sources.list": f"deb {uri} bookworm main\n"})
    with pytest.raises(ImageError, match=rf"{root}/sources.list: .* is not an http\(s\) or file URL"):
        debian_mirror(root)


def test_requirements_pin_exactly_with_every_hash_and_no_marker() -> None:
    pins = [
        Pin("zeta", "2", ("b" * 64, "a" * 64)),
        Pin("async-timeout", "5.0.1", ("c" * 64,), Marker('python_full_version < "3.11.3"')),
    ]
    assert requirements_text(pins) == (
        f"async-timeout==5.0.1 --hash=sha256:{'c' * 64}\n"
        f"zeta==2 --hash=sha256:{'b' * 64} --hash=sha256:{'a' * 64}\n"
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for name in ("operator/jesus", "adapters/jesus_adapters", "requirements"):
        (root / name).mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\n")
    (root / "README.md").write_text("readme\n")
    (root / "operator/jesus/cli.py").write_text("x = 1\n")
    shutil.copy(REPO / "requirements/runtime.lock", root / "requirements/runtime.lock")
    return root


def test_the_cache_key_follows_the_lock_and_the_wheel_sources_only(tree: Path) -> None:
    first = image_key(tree)
    (tree / "operator/jesus/__pycache__").mkdir()
    (tree / "operator/jesus/__pycache__/cli.cpython-311.pyc").write_bytes(b"\0")
    (tree / "docs").mkdir()
    (tree / "docs/image.md").write_text("not in the wheel\n")
    assert image_key(tree) == first
    (tree / "operator/jesus/cli.py").write_text("x = 2\n")
    second = image_key(tree)
    assert second != first
    with (tree / "requirements/runtime.lock").open("a") as lock:
        lock.write("\n")
    assert image_key(tree) != second
    # A file moved keeps its bytes but changes the wheel: the key follows names as well as contents.
    (tree / "operator/jesus/cli.py").rename(tree / "operator/jesus/main.py")
    assert image_key(tree) not in {first, second}


def test_the_image_is_tagged_with_the_charts_app_version() -> None:
    assert image.app_version(REPO) == next(
        line.split(":", 1)[1].strip().strip('"')
        for line in (REPO / "charts/jesus/Chart.yaml").read_text().splitlines()
        if line.startswith("appVersion:")
    )


def test_the_containerfile_builds_what_the_daemonless_recipe_builds() -> None:
    # No daemon here to build the Containerfile with; what keeps it honest is agreeing with the recipe
    # that the end-to-end tier builds and runs (tests/e2e/test_image.py).
    text = (REPO / "Containerfile").read_text()
    assert re.search(rf"^ARG BASE=debian:{image.DEBIAN_SUITE}-\d{{8}}-slim$", text, re.MULTILINE)
    build, final = text.split("\nFROM ${BASE}\n")
    assert "--require-hashes" in build and "-r requirements/runtime.lock" in build and "--no-index" in build
    assert "strip --strip-debug" in build and "-not -path '*.libs/*'" in build
    assert f"--no-install-recommends {' '.join(image.BASE_PACKAGES)}" in final
    assert re.search(r"\bpip\b|gcc|binutils|build-essential", final) is None
    assert f"--uid {image.USER_ID} --gid {image.USER_ID}" in final
    assert f"USER {image.USER_ID}:{image.USER_ID}" in final
    assert f'ENTRYPOINT ["{image.VENV}/bin/jesus"]' in final
    for entry in image.IMAGE_ENV:
        assert entry in final
    assert f"org.opencontainers.image.version={image.app_version(REPO)}" in final


def test_jesus_dev_image_prints_the_built_image_and_turns_a_build_error_into_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from jesus.cli import main

    built = image.BuiltImage(
        ref="jesus/jesus:0.1.0",
        layout=tmp_path / "oci",
        rootfs=tmp_path / "unpacked/rootfs",
        config=image.ImageConfig(
            entrypoint=["/opt/jesus/bin/jesus"], cmd=["--help"], env={}, user="65532:65532", workdir="/"
        ),
        sbom=tmp_path / "sbom.cdx.json",
        size_bytes=3,
        compressed_bytes=2,
        build_seconds=1.0,
    )
    monkeypatch.setattr(image, "build_image", lambda progress: built)
    assert main(["dev", "image", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rootfs"] == str(tmp_path / "unpacked/rootfs")
    assert printed["config"]["user"] == "65532:65532"

    def refuse(progress: object) -> image.BuiltImage:
        raise ImageError("requirements/runtime.lock is out of date: ...; run `make lock`")

    monkeypatch.setattr(image, "build_image", refuse)
    assert main(["dev", "image"]) != 0
    assert "requirements/runtime.lock is out of date" in capsys.readouterr().err


def fake_image(tmp_path: Path, user: str = "65532:65532") -> image.BuiltImage:
    return image.BuiltImage(
        ref="jesus/jesus:0.1.0",
        layout=tmp_path / "oci",
        rootfs=tmp_path / "rootfs",
        config=image.ImageConfig(
            entrypoint=["/opt/jesus/bin/jesus"],
            cmd=["--help"],
            env={"A": "1", "B": "2"},
            user=user,
            workdir="/w",
        ),
        sbom=tmp_path / "sbom.cdx.json",
        size_bytes=1,
        compressed_bytes=1,
        build_seconds=0.0,
    )


@pytest.mark.parametrize(
    ("command", "args", "program"),
    [
        (None, None, ["/opt/jesus/bin/jesus", "--help"]),
        (None, ["router"], ["/opt/jesus/bin/jesus", "router"]),
        (["jesus", "runner"], None, ["jesus", "runner"]),  # a command drops the image's cmd
        (["python3"], ["-c", "pass"], ["python3", "-c", "pass"]),
    ],
)
def test_container_argv_follows_a_pods_command_and_args(
    tmp_path: Path, command: list[str] | None, args: list[str] | None, program: list[str]
) -> None:
    argv = image.container_argv(fake_image(tmp_path), command=command, args=args, env={"B": "3"})
    assert argv[-len(program) :] == program
    options = argv[: -len(program)]
    assert options[:4] == ["bwrap", "--ro-bind", str(tmp_path / "rootfs"), "/"]
    assert "--bind" not in options and "--share-net" not in options
    assert " ".join(options).count("--setenv") == 2
    assert "--setenv A 1" in " ".join(options) and "--setenv B 3" in " ".join(options)
    assert "--uid 65532 --gid 65532 --chdir /w" in " ".join(options)


def test_container_argv_shares_the_network_only_when_asked(tmp_path: Path) -> None:
    assert "--share-net" in image.container_argv(fake_image(tmp_path), network=True)


@pytest.mark.parametrize("user", ["jesus", "65532:staff", "0;rm -rf /"])
def test_a_user_that_is_not_numeric_is_refused(tmp_path: Path, user: str) -> None:
    # bwrap maps ids, not names: a name would be read on the host, not in the image.
    with pytest.raises(ImageError, match=r"jesus/jesus:0.1.0: the config's user .* is not numeric"):
        image.container_argv(fake_image(tmp_path, user))


def test_a_new_build_prunes_older_images_and_dead_partial_builds_only(tmp_path: Path) -> None:
    cache = tmp_path / "image"
    keep = cache / "0.1.0-aaaaaaaaaaaa"
    older = cache / "0.1.0-bbbbbbbbbbbb"
    dead = cache / "0.1.0-cccccccccccc.partial-999999999"
    alive = cache / f"0.1.0-dddddddddddd.partial-{os.getpid()}"
    kept = [keep, alive, cache / "base-bookworm-eeeeeeeeeeee", cache / "wheels", cache / "notes"]
    for directory in [*kept, older, dead]:
        directory.mkdir(parents=True)
    image._prune(keep)
    assert sorted(cache.iterdir()) == sorted(kept)
