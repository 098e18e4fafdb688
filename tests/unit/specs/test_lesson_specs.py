"""`jesus validate` on the fifth kind and on spec.reflection: every error names the file, the line, the
object and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from jesus.cli import main
from jesus.specs import load_text, validate_specs

CARELESS = """\
apiVersion: jesus.dev/v1alpha1
kind: AgentRun
metadata:
  name: careless
spec:
  owner: {user: a@example.com, team: t}
  task: {instructions: x}
  routePolicyRef: {name: r}
  reflection: Sometimes
  limits: {maxCost: "0.10"}
---
apiVersion: jesus.dev/v1alpha1
kind: Lesson
metadata:
  name: bad-lesson
spec:
  text: ""
  scope: {team: Not_A_Label, runLabels: {"bad key!": x}}
  memory: Forever
  evidence:
    - run: r1
      role: Witness
      artifacts: [{name: a, digest: "md5:abc"}]
      extra: 1
---
apiVersion: jesus.dev/v1alpha1
kind: Lesson
metadata:
  name: too-early
spec:
  text: fine
  scope: {team: t}
  evidence: [{run: r1}, {run: r2, role: Reuse}, {run: r3, role: Reuse}]
---
apiVersion: jesus.dev/v1alpha1
kind: Lesson
metadata:
  name: short-term-is-fine-with-one-run
spec:
  text: fine
  scope: {team: t}
  memory: ShortTerm
  evidence: [{run: r1}]
"""


def test_each_bad_field_is_named_with_its_file_line_and_object(tmp_path: Path) -> None:
    where = str(tmp_path / "bad.yaml")
    problems = [p.format().replace(where, "b.yaml") for p in validate_specs(load_text(CARELESS, Path(where)))]
    assert problems == [
        "b.yaml:9: AgentRun/careless: spec.reflection: must be one of 'Checklist' or 'none'; got 'Sometimes'",
        "b.yaml:17: Lesson/bad-lesson: spec.text: string should have at least 1 character",
        "b.yaml:18: Lesson/bad-lesson: spec.scope.runLabels.bad key!: must match the pattern "
        r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}"
        r"[A-Za-z0-9])?$",
        "b.yaml:18: Lesson/bad-lesson: spec.scope.team: must be a DNS label: lower-case letters, digits and "
        "'-', alphanumeric at both ends",
        "b.yaml:19: Lesson/bad-lesson: spec.memory: must be one of 'ShortTerm' or 'LongTerm'; got 'Forever'",
        "b.yaml:22: Lesson/bad-lesson: spec.evidence[0].role: must be 'Origin' or 'Reuse'",
        "b.yaml:23: Lesson/bad-lesson: spec.evidence[0].artifacts[0].digest: must match the pattern "
        "^sha256:[0-9a-f]{64}$",
        "b.yaml:24: Lesson/bad-lesson: spec.evidence[0].extra: unknown field",
        "b.yaml:33: Lesson/too-early: spec.evidence: a LongTerm lesson cites at least 3 runs that reused it "
        "(role Reuse)",
    ]


@pytest.mark.parametrize("value", ["none", "Checklist"])
def test_both_reflection_modes_validate(value: str) -> None:
    text = CARELESS.split("---")[0].replace("Sometimes", value)
    assert validate_specs(load_text(text)) == [] or all(
        "reflection" not in p.format() for p in validate_specs(load_text(text))
    )


def test_jesus_validate_exits_1_on_a_bad_lesson(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(CARELESS)
    assert main(["validate", str(path)]) == 1
    assert "Lesson/too-early: spec.evidence: a LongTerm lesson cites" in capsys.readouterr().out
