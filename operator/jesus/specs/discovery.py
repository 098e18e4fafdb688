"""Which files a set of paths names, and in which namespace their objects land.

A folder with a kustomization file is read the way `kubectl apply -k` builds it: its `resources`
(files, and folders with their own kustomization) in order, with the outermost `namespace:` winning,
so a platform base included by several team overlays lands once in each team's namespace. A folder
without one is walked for *.yaml / *.yml files, except that sub-folders with a kustomization are read
as above. Patches and generators are not applied: validation sees the objects as written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jesus.specs.problems import Problem, Severity
from jesus.specs.source import SourceError, read_documents

YAML_SUFFIXES = (".yaml", ".yml")
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(frozen=True)
class SpecFile:
    """A file to load, and the namespace its objects get when they name none ("" = kubectl's)."""

    path: Path
    namespace: str = ""


class SpecPathError(Exception):
    """A path given to the loader that does not exist."""


def kustomization_file(folder: Path) -> Path | None:
    """The kustomization file of `folder`, if it has one."""
    for name in KUSTOMIZATION_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    return None


def _kustomize(
    folder: Path, namespace: str, problems: list[Problem], visiting: tuple[Path, ...]
) -> Iterator[SpecFile]:
    kustomization = kustomization_file(folder)
    assert kustomization is not None
    resolved = folder.resolve()
    if resolved in visiting:
        problems.append(Problem(kustomization, 1, "kustomization includes itself through its resources"))
        return
    try:
        documents = read_documents(kustomization)
    except SourceError as exc:
        problems.append(Problem(kustomization, exc.line, exc.message))
        return
    data = documents[0].data if documents else {}
    if not isinstance(data, dict):
        problems.append(Problem(kustomization, 1, "a kustomization must be a mapping"))
        return
    # kustomize applies the outermost namespace to everything below it
    own = data.get("namespace")
    effective = namespace or (own if isinstance(own, str) else "")
    resources = data.get("resources") or []
    if not isinstance(resources, list):
        problems.append(
            Problem(kustomization, documents[0].line_of(("resources",)), "resources must be a list")
        )
        return
    for index, entry in enumerate(resources):
        line = documents[0].line_of(("resources", index))
        if not isinstance(entry, str):
            problems.append(Problem(kustomization, line, f"resources[{index}] must be a path"))
            continue
        if "://" in entry or entry.startswith(("github.com/", "git@")):
            problems.append(
                Problem(kustomization, line, f"skipped remote resource {entry}", severity=Severity.WARNING)
            )
            continue
        target = folder / entry
        if target.is_dir() and kustomization_file(target) is not None:
            yield from _kustomize(target, effective, problems, (*visiting, resolved))
        elif target.is_file():
            yield SpecFile(target, effective)
        else:
            problems.append(Problem(kustomization, line, f"resource {entry} does not exist"))


def _walk(folder: Path, problems: list[Problem], root: Path) -> Iterator[SpecFile]:
    if kustomization_file(folder) is not None:
        yield from _kustomize(folder, "", problems, ())
        return
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_symlink() and not _linked_inside(child, root, problems):
            continue
        if child.is_dir():
            yield from _walk(child, problems, root)
        elif child.is_file() and child.suffix in YAML_SUFFIXES:
            yield SpecFile(child)


def _linked_inside(link: Path, root: Path, problems: list[Problem]) -> bool:
    """Whether to read what `link` points at: a file inside the tree. A link out of it is an error
    (Argo CD refuses the repository; reading it would plan what is never applied); a linked folder is
    not followed, as `kubectl apply -R` does not follow it, so a link to a parent cannot loop."""
    target = link.resolve()
    if link.suffix not in YAML_SUFFIXES and not target.is_dir():
        return False
    if not target.is_relative_to(root.resolve()):
        problems.append(Problem(link, 1, f"a symbolic link to {target}, outside {root}: not read"))
        return False
    if target.is_dir():
        message = "a symbolic link to a folder: not followed (kubectl apply -R does not follow it)"
        problems.append(Problem(link, 1, message, severity=Severity.WARNING))
        return False
    return True


def discover(paths: list[Path], problems: list[Problem]) -> list[SpecFile]:
    """The files `paths` name, with their namespaces; problems of kustomization files go to `problems`.

    Raises SpecPathError for a path that does not exist.
    """
    files: list[SpecFile] = []
    for path in paths:
        if path.is_dir():
            files.extend(_walk(path, problems, path))
        elif path.is_file():
            if path.name in KUSTOMIZATION_NAMES:
                files.extend(_kustomize(path.parent, "", problems, ()))
            else:
                files.append(SpecFile(path))
        else:
            raise SpecPathError(f"{path}: no such file or directory")
    return files
