"""Invalid specs, one per rule: the API server rejects each with the schema's or the CEL rule's message,
and `jesus validate` rejects the same file at the same field, with its line."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
from pathlib import Path

import pytest
from tests.builders.invalid_cases import INVALID_CASES, InvalidCase
from tests.builders.spec_files import line_of, to_yaml

from jesus.cli import main
from jesus.devcluster import ControlPlane


def jesus_validate(path: Path) -> subprocess.CompletedProcess[str]:
    """`jesus validate PATH` in-process (the CLI's start-up imports every command; 36 runs add up)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    return subprocess.CompletedProcess(["jesus", "validate", str(path)], code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("case", INVALID_CASES, ids=[c.id for c in INVALID_CASES])
def test_api_server_and_validate_reject_the_same_spec(
    crds: ControlPlane, namespace: str, tmp_path: Path, case: InvalidCase
) -> None:
    text = to_yaml(case.build())
    spec_file = tmp_path / f"{case.id}.yaml"
    spec_file.write_text(text)

    server = crds.kubectl("apply", "-n", namespace, "-f", str(spec_file), check=False)
    assert server.returncode != 0, f"the API server accepted {case.id}: {server.stdout}"
    expected = case.message if case.cel else case.server_message
    assert expected in server.stderr, server.stderr
    assert f"{case.api_field}" in server.stderr, server.stderr
    assert crds.kubectl("get", "jesus", "-n", namespace, "-o", "name").stdout.strip() == ""

    offline = jesus_validate(spec_file)
    assert offline.returncode == 1, offline.stdout + offline.stderr
    field_lines = [line for line in offline.stdout.splitlines() if f": {case.field}: " in line]
    assert field_lines, offline.stdout
    location = re.match(rf"^{re.escape(str(spec_file))}:(\d+): ", field_lines[0])
    assert location, field_lines[0]
    dotted = re.sub(r"\[(\d+)\]", r".\1", case.field)
    while True:
        try:
            expected_line = line_of(text, dotted)
            break
        except AssertionError:  # a missing field is reported where its parent is
            dotted = dotted.rsplit(".", 1)[0]
    assert int(location[1]) == expected_line
    if case.cel:
        assert case.message in field_lines[0]


def test_kubectl_and_validate_read_yaml_the_same_way(
    crds: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """An unquoted `yes` or `y` is a boolean to kubectl (YAML 1.1); validate must not read it as a string."""
    spec_file = tmp_path / "budget.yaml"
    spec_file.write_text(
        "apiVersion: jesus.dev/v1alpha1\nkind: Budget\nmetadata:\n  name: yaml11\n"
        "spec:\n  scope:\n    user: yes\n  period: Daily\n  limit: '1.00'\n"
    )
    server = crds.kubectl("apply", "-n", namespace, "-f", str(spec_file), check=False)
    assert server.returncode != 0
    assert "spec.scope.user" in server.stderr
    offline = jesus_validate(spec_file)
    assert offline.returncode == 1
    assert f"{spec_file}:7: Budget/yaml11: spec.scope.user: must be a string" in offline.stdout


def test_a_valid_file_passes_both(crds: ControlPlane, namespace: str, tmp_path: Path) -> None:
    from tests.builders.spec_files import complete_set

    spec_file = tmp_path / "ok.yaml"
    spec_file.write_text(to_yaml(*complete_set()))
    assert jesus_validate(spec_file).returncode == 0
    result = crds.kubectl("apply", "-n", namespace, "-f", str(spec_file))
    assert result.stdout.count(" created") == 4
    stored = json.loads(crds.kubectl("get", "agentrun", "run", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["limits"]["maxCost"] == "0.50"
