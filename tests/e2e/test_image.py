"""The platform image, built without a daemon (docs/image.md, ADR 20): it runs as uid 65532 from a
read-only root, carries no pip and no compiler, holds exactly the locked packages (its SBOM says which),
loads every native library the platform needs, is a valid OCI layout, and is built once: a second call
finds it in the cache. A wheel that does not match its locked hash is refused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from jesus.devcluster.image import (
    USER_ID,
    BuiltImage,
    ImageError,
    build_image,
    cache_root,
    container_argv,
    ensure_base,
    image_pins,
    install_wheels,
    tree_size,
)
from jesus.devcluster.lockfile import RUNTIME_LOCK, check_lock

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
COMPILERS_AND_INSTALLERS = ("pip", "pip3", "pip3.11", "gcc", "cc", "c++", "g++", "clang", "make", "as", "ld")


@pytest.fixture(scope="module")
def built() -> BuiltImage:
    return build_image()


def run_in_image(
    built: BuiltImage, *args: str, command: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the image as a pod would (read-only root, its env and user): `args` after the entrypoint."""
    argv = container_argv(built, command=command, args=list(args))
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def test_the_config_runs_the_jesus_program_as_the_unprivileged_user(built: BuiltImage) -> None:
    assert built.ref == "jesus/jesus:0.1.0"
    assert built.config.user == f"{USER_ID}:{USER_ID}"
    (entrypoint,) = built.config.entrypoint
    assert (built.rootfs / entrypoint.lstrip("/")).is_file()
    # The chart's runner Job says `command: ["jesus", "runner"]`: `jesus` must be on the image's PATH.
    assert any(
        (built.rootfs / d.lstrip("/") / "jesus").is_file() for d in built.config.env["PATH"].split(":")
    )
    passwd = (built.rootfs / "etc/passwd").read_text().splitlines()
    assert any(line.split(":")[2:4] == [str(USER_ID), str(USER_ID)] for line in passwd)


@pytest.mark.parametrize("command", ["operator", "router", "runner"])
def test_each_component_starts_from_a_read_only_root_as_uid_65532(built: BuiltImage, command: str) -> None:
    result = run_in_image(built, command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: jesus {command}" in result.stdout


def test_the_root_is_read_only_and_the_process_is_not_root(built: BuiltImage) -> None:
    probe = (
        "import os\n"
        "print(os.getuid(), os.getgid())\n"
        "try:\n    open(os.path.expanduser('~/probe'), 'w')\nexcept OSError as exc:\n    print(exc.errno)\n"
    )
    result = run_in_image(built, "-c", probe, command=["python3"])
    assert result.returncode == 0, result.stderr
    ids, errno = result.stdout.split("\n")[:2]
    assert ids == f"{USER_ID} {USER_ID}"
    assert int(errno) == 30  # EROFS: even the user's own home refuses writes


def test_no_pip_and_no_compiler_at_run_time(built: BuiltImage) -> None:
    directories = [built.rootfs / d.lstrip("/") for d in built.config.env["PATH"].split(":")]
    found = [str(d / name) for d in directories for name in COMPILERS_AND_INSTALLERS if (d / name).exists()]
    assert found == []
    packages = [p for p in built.rootfs.glob("**/*-packages/pip") if p.is_dir()]
    assert packages == []
    result = run_in_image(built, "-m", "pip", "--version", command=["python3"])
    assert result.returncode != 0 and "No module named pip" in result.stderr


def test_the_native_libraries_load(built: BuiltImage) -> None:
    # What stripping or a missing Debian library breaks: numpy's OpenBLAS, regopy's libatomic, spaCy.
    probe = (
        "import numpy, regopy, spacy, uvloop, blis, cryptography.hazmat.bindings._rust\n"
        "import jesus.redaction, jesus.router, jesus.policy\n"
        "import json\n"
        "rego = json.loads(str(regopy.Interpreter().query('x := 1 + 2')))\n"
        "print(int(numpy.ones(4).sum()), rego['bindings']['x'])\n"
    )
    result = run_in_image(built, "-c", probe, command=["python3"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "3"]


def test_the_sbom_lists_exactly_the_locked_packages_installed(built: BuiltImage) -> None:
    sbom = json.loads(built.sbom.read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    listed = {canonicalize_name(c["name"]): c["version"] for c in sbom["components"]}
    pins = check_lock(REPO / "pyproject.toml", REPO / RUNTIME_LOCK)
    locked = {pin.name: pin.version for pin in image_pins(pins, built.rootfs)}
    project = next(
        line for line in (REPO / "pyproject.toml").read_text().splitlines() if line.startswith("version")
    )
    assert listed == {**locked, "jesus-platform": project.split('"')[1]}
    # And the SBOM describes what is on disk, not what the lock says.
    site = next(built.rootfs.glob("opt/jesus/lib/python3*/site-packages"))
    stems = [d.name.removesuffix(".dist-info").rsplit("-", 1) for d in site.glob("*.dist-info")]
    installed = {canonicalize_name(name): version for name, version in stems}
    assert installed == listed


def test_the_layout_is_a_valid_oci_image_whose_blobs_match_their_digests(built: BuiltImage) -> None:
    index = json.loads((built.layout / "index.json").read_text())
    assert json.loads((built.layout / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    (entry,) = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == built.ref.split(":")[1]
    blobs = sorted((built.layout / "blobs" / "sha256").iterdir())
    for blob in blobs:
        digest = hashlib.sha256()
        with blob.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        assert digest.hexdigest() == blob.name
    manifest = json.loads((built.layout / "blobs/sha256" / entry["digest"].split(":")[1]).read_text())
    assert built.compressed_bytes == sum(layer["size"] for layer in manifest["layers"])


def test_the_size_is_reported_and_stays_within_its_budget(built: BuiltImage) -> None:
    assert built.size_bytes == tree_size(built.rootfs)
    unpacked, gzipped = built.size_bytes / 1e6, built.compressed_bytes / 1e6
    print(f"image {built.ref}: {unpacked:.0f} MB unpacked, {gzipped:.0f} MB gzipped")
    # docs/image.md: 381 MB today, a third of it spaCy's stack (Presidio); this catches a regression.
    assert built.size_bytes < 450_000_000


def test_a_second_build_is_the_cached_one(built: BuiltImage) -> None:
    messages: list[str] = []
    again = build_image(messages.append)
    assert again == built
    assert messages == []


def test_a_wheel_that_does_not_match_its_locked_hash_is_refused(built: BuiltImage, tmp_path: Path) -> None:
    pins = check_lock(REPO / "pyproject.toml", REPO / RUNTIME_LOCK)
    sniffio = pins["sniffio"]
    (original,) = (cache_root() / "image" / "wheels").glob(f"sniffio-{sniffio.version}-*.whl")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    tampered = wheels / original.name
    tampered.write_bytes(original.read_bytes() + b"\0")  # one byte more: another file, same name
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"sniffio=={sniffio.version} --hash=sha256:{sniffio.hashes[0]}\n")
    rootfs = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(ensure_base()), str(rootfs)], check=True)
    try:
        with pytest.raises(ImageError, match="DO NOT MATCH THE HASHES"):
            install_wheels(rootfs, requirements, wheels)
        assert not list(rootfs.glob("opt/jesus/lib/python3*/site-packages/sniffio"))
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    assert os.path.exists(original)
