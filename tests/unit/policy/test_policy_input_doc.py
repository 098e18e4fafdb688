"""docs/policy-input.md shows what build_policy_input really builds."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.builders.adapters import build_hosted_adapter, build_served_adapter
from tests.builders.policy import build_input

DOC = Path(__file__).resolve().parents[3] / "docs" / "policy-input.md"


def test_documented_example_is_the_built_document() -> None:
    example = re.search(r"```json\n(.*?)\n```", DOC.read_text(), re.DOTALL)
    assert example is not None, "docs/policy-input.md has no ```json example"
    adapters = {"claude": build_hosted_adapter(ready=True), "llama": build_served_adapter(ready=True)}
    assert json.loads(example.group(1)) == build_input(adapters=adapters)


def test_every_top_level_and_run_field_is_documented() -> None:
    text = DOC.read_text()
    document = build_input()
    for key in document:
        assert f"`{key}" in text, key
    for key in document["run"]:
        assert f"`run.{key}" in text, key
    for key in document["budgets"][0]:
        assert f"{key}`" in text, key
