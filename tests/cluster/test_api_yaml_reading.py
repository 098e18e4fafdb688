"""kubectl reads YAML 1.1 (plain `yes` is a boolean, `0x1F` a number, `1e3` a float); `jesus validate`
must see the same object, or the two would disagree about files they both accept as valid YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from jesus.devcluster import ControlPlane
from jesus.specs import load_specs

# Plain scalars whose type differs between YAML versions or is easy to get wrong.
TRICKY_SCALARS = (
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "true",
    "True",
    "~",
    "null",
    "0755",
    "0x1F",
    "1e3",
    "1_000",
    "12:30",
    "2026-01-01",
    ".inf",
    "+1",
    "-0",
    "0o17",
    "1.0",
    "'5'",
    "0b101",
)
# One string, one integer and one boolean field, each written with the scalar as is.
TEMPLATES = {
    "string": "kind: AgentRun\nmetadata: {{name: r}}\nspec:\n  owner: {{user: {v}, team: ml}}\n"
    "  task: {{instructions: x}}\n  routePolicyRef: {{name: p}}\n  limits: {{maxCost: '1'}}\n",
    "integer": "kind: AgentRun\nmetadata: {{name: r}}\nspec:\n  owner: {{user: u, team: ml}}\n"
    "  priority: {v}\n  task: {{instructions: x}}\n"
    "  routePolicyRef: {{name: p}}\n  limits: {{maxCost: '1'}}\n",
    "boolean": "kind: Budget\nmetadata: {{name: b}}\nspec:\n  scope: {{team: ml}}\n  period: Daily\n"
    "  limit: '1'\n  onExceeded: {{denyNewRuns: {v}}}\n",
}


@pytest.mark.parametrize("field_type", TEMPLATES)
def test_kubectl_and_validate_agree_on_plain_scalars(
    crds: ControlPlane, namespace: str, tmp_path: Path, field_type: str
) -> None:
    disagreements = []
    verdicts = set()
    for scalar in TRICKY_SCALARS:
        spec_file = tmp_path / "spec.yaml"
        spec_file.write_text("apiVersion: jesus.dev/v1alpha1\n" + TEMPLATES[field_type].format(v=scalar))
        server = crds.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(spec_file), check=False)
        offline = load_specs([spec_file])
        verdicts.add(server.returncode == 0)
        if (server.returncode == 0) == offline.has_errors:
            disagreements.append(
                f"{scalar}: kubectl {'accepts' if server.returncode == 0 else 'rejects'} "
                f"({server.stderr.strip()[-160:]}), validate says {[p.message for p in offline.problems]}"
            )
    assert disagreements == []
    assert verdicts == {True, False}, "the scalars should both pass and fail"
