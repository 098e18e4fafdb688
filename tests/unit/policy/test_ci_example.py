"""The example CI workflow for a specs repository runs commands this CLI really accepts."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from jesus.cli import build_parser

WORKFLOW = Path(__file__).resolve().parents[3] / "examples" / "ci" / ".github" / "workflows" / "jesus.yaml"


def jesus_commands(workflow: dict[str, Any]) -> list[list[str]]:
    """Every `jesus ...` command line in the workflow's run steps, split into arguments."""
    commands = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            for line in str(step.get("run", "")).splitlines():
                words = shlex.split(line.split(">")[0])
                if words[:1] == ["jesus"]:
                    commands.append(words[1:])
    return commands


def test_workflow_validates_sanitizes_and_plans_on_pull_requests() -> None:
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    assert "pull_request" in workflow["on"]
    commands = jesus_commands(workflow)
    assert [c[0] for c in commands][:3] == ["validate", "sanitize", "plan"]
    # The gate reads what the plan reads: the specs and the policies.
    assert commands[1][1:] == ["$SPECS", "$POLICIES"]
    assert any(c[0] == "plan" and "--live" in c for c in commands)


def test_every_jesus_command_in_the_workflow_parses() -> None:
    parser = build_parser()
    workflow = YAML(typ="safe").load(WORKFLOW.read_text())
    for command in jesus_commands(workflow):
        args = parser.parse_args(command)  # exits (fails the test) on an unknown flag
        assert args.command == command[0]
        if command[0] == "plan":
            assert args.output in {"text", "markdown"}
