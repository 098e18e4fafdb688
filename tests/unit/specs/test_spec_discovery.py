"""Which files a specs tree names: symbolic links are read only inside the tree, and never loop."""

from __future__ import annotations

from pathlib import Path

from tests.builders.spec_files import complete_set, to_yaml

from jesus.specs import Severity, load_specs


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "specs"
    root.mkdir()
    (root / "set.yaml").write_text(to_yaml(*complete_set()))
    return root


def test_a_link_to_a_file_outside_the_tree_is_an_error_and_not_read(tmp_path: Path) -> None:
    """Argo CD refuses links out of the repository; reading one would plan what is never applied
    (and echo another file's values into a PR check)."""
    root = _tree(tmp_path)
    outside = tmp_path / "outside.yaml"
    outside.write_text("apiVersion: secret-value/v1\nkind: Nope\n")
    (root / "link.yaml").symlink_to(outside)
    spec_set = load_specs([root])
    (problem,) = [p for p in spec_set.problems if p.file == root / "link.yaml"]
    assert problem.severity is Severity.ERROR
    assert problem.message == f"a symbolic link to {outside}, outside {root}: not read"
    assert "secret-value" not in problem.message.replace(str(outside), "")


def test_a_link_inside_the_tree_is_read(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "sub").mkdir()
    (root / "set.yaml").rename(root / "sub" / "set.yaml")
    (root / "set.yaml").symlink_to(root / "sub" / "set.yaml")
    spec_set = load_specs([root / "set.yaml"])
    assert not spec_set.problems
    assert spec_set.objects


def test_a_linked_folder_is_not_followed_so_a_loop_ends(tmp_path: Path) -> None:
    """A folder linked to its parent once produced 41 copies of every object and 200 errors."""
    root = _tree(tmp_path)
    (root / "sub").mkdir()
    (root / "sub" / "loop").symlink_to(root)
    spec_set = load_specs([root])
    assert len(spec_set.files) == 1
    (problem,) = spec_set.problems
    assert problem.severity is Severity.WARNING
    assert problem.file == root / "sub" / "loop"
    assert problem.message == (
        "a symbolic link to a folder: not followed (kubectl apply -R does not follow it)"
    )
