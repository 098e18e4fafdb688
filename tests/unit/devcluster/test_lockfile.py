"""The dependency locks: the repository's locks agree with pyproject.toml, and a lock that drifted,
lost its hashes or was tampered with is refused with an error that names the file and the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from jesus.devcluster.lockfile import DEV_LOCK, RUNTIME_LOCK, LockError, check_lock, parse_lock, read_lock

REPO = Path(__file__).resolve().parents[3]
HASH_A = "a" * 64
HASH_B = "b" * 64


def write_project(tmp_path: Path, *dependencies: str, dev: tuple[str, ...] = ()) -> Path:
    pyproject = tmp_path / "pyproject.toml"
    listed = ", ".join(f'"{d}"' for d in dependencies)
    extras = ", ".join(f'"{d}"' for d in dev)
    pyproject.write_text(
        f'[project]\nname = "p"\nversion = "1"\ndependencies = [{listed}]\n'
        f"[project.optional-dependencies]\ndev = [{extras}]\n"
    )
    return pyproject


def write_lock(tmp_path: Path, text: str) -> Path:
    lock = tmp_path / "runtime.lock"
    lock.write_text(text)
    return lock


def test_the_repository_locks_satisfy_pyproject() -> None:
    runtime = check_lock(REPO / "pyproject.toml", REPO / RUNTIME_LOCK)
    dev = check_lock(REPO / "pyproject.toml", REPO / DEV_LOCK, extras=("dev",))
    assert "pydantic" in runtime and "pytest" not in runtime
    assert "pytest" in dev and "cyclonedx-bom" in dev
    # The dev lock is resolved within the runtime lock: every shared package has the same version.
    assert {name: pin.version for name, pin in runtime.items()} == {
        name: dev[name].version for name in runtime
    }
    assert all(pin.hashes for pin in (*runtime.values(), *dev.values()))


def test_pins_markers_and_hashes_are_read() -> None:
    text = (
        "# header\n"
        f"Foo_Bar==1.2 \\\n    --hash=sha256:{HASH_A} \\\n    --hash=sha256:{HASH_B}\n    # via x\n"
        f'async-timeout==5.0.1 ; python_full_version < "3.11.3" \\\n    --hash=sha256:{HASH_A}\n'
    )
    pins = parse_lock(text, Path("x.lock"))
    assert pins["foo-bar"].version == "1.2"
    assert pins["foo-bar"].hashes == (HASH_A, HASH_B)
    timeout = pins["async-timeout"]
    assert timeout.applies({"python_full_version": "3.11.2"})
    assert not timeout.applies({"python_full_version": "3.11.7"})


def test_a_range_raised_in_pyproject_names_the_lock_the_package_and_the_fix(tmp_path: Path) -> None:
    pyproject = write_project(tmp_path, "foo>=2")
    lock = write_lock(tmp_path, f"foo==1.9 \\\n    --hash=sha256:{HASH_A}\n")
    with pytest.raises(LockError) as caught:
        check_lock(pyproject, lock)
    message = str(caught.value)
    assert str(lock) in message and "foo==1.9 does not satisfy foo>=2" in message
    assert "make lock" in message


def test_a_dependency_added_to_pyproject_but_not_locked_is_named(tmp_path: Path) -> None:
    pyproject = write_project(tmp_path, "foo", "new-thing>=1")
    lock = write_lock(tmp_path, f"foo==1.9 \\\n    --hash=sha256:{HASH_A}\n")
    with pytest.raises(LockError, match=r"new-thing is required by .*pyproject.toml but not pinned"):
        check_lock(pyproject, lock)


def test_a_dev_extra_is_checked_only_when_asked_for(tmp_path: Path) -> None:
    pyproject = write_project(tmp_path, "foo", dev=("pytest>=9",))
    lock = write_lock(tmp_path, f"foo==1.9 \\\n    --hash=sha256:{HASH_A}\n")
    assert set(check_lock(pyproject, lock)) == {"foo"}
    with pytest.raises(LockError, match="pytest"):
        check_lock(pyproject, lock, extras=("dev",))


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("foo==1.0\n", r"x.lock:1: foo==1.0 has no --hash"),
        ("", r"x.lock: no pins"),
        (f"foo>=1.0 \\\n    --hash=sha256:{HASH_A}\n", r"x.lock:1: not a `name==version` pin"),
        (
            f"foo==1.0 \\\n    --hash=sha256:{HASH_A}\nfoo==2.0 \\\n    --hash=sha256:{HASH_B}\n",
            "pinned twice",
        ),
        # Hostile: a lock that would send pip to another index, or fetch from a URL.
        (f"--index-url http://127.0.0.1:1/simple\nfoo==1.0 \\\n    --hash=sha256:{HASH_A}\n", "options"),
        (f"foo @ http://127.0.0.1:1/foo.whl \\\n    --hash=sha256:{HASH_A}\n", "not a `name==version`"),
        (f"foo==1.0 ; os_name == \\\n    --hash=sha256:{HASH_A}\n", "is not a marker"),
    ],
)
def test_a_careless_or_hostile_lock_is_refused_with_its_line(text: str, complaint: str) -> None:
    with pytest.raises(LockError, match=complaint):
        parse_lock(text, Path("x.lock"))


def test_a_missing_lock_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(LockError, match=r"missing.lock: cannot read the lock .*make lock"):
        read_lock(tmp_path / "missing.lock")
