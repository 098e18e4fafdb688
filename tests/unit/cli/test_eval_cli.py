"""`jesus eval`: the shipped suite passes against its baseline; a worse answer fails the suite naming
the task; a careless suite or baseline is refused naming the file, the suite and the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jesus.cli import main

REPO = Path(__file__).resolve().parents[3]
SUITE = REPO / "examples" / "eval" / "suite.yaml"
BASELINE = REPO / "examples" / "eval" / "baseline.json"


@pytest.fixture
def at_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    # The example tool server's command is relative to the repository root, as `jesus run`'s is.
    monkeypatch.chdir(REPO)


def greet_suite(tmp_path: Path, answer: str) -> Path:
    """The example suite's greet task alone, over a copy of its specs with the scripted `answer`."""
    specs = (REPO / "examples" / "eval" / "specs.yaml").read_text()
    assert "Hello, Ada!" in specs
    (tmp_path / "specs.yaml").write_text(specs.replace("Hello, Ada!", answer))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "apiVersion: jesus.dev/v1alpha1\nkind: EvalSuite\nmetadata: {name: greet-only}\nspec:\n"
        "  specs: [specs.yaml]\n  tasks:\n    - name: greet\n      run: eval-greet\n      graders:\n"
        "        - regex: '^Hello, .+!$'\n        - maxCost: '0.001'\n"
    )
    return suite


@pytest.mark.usefixtures("at_repo")
def test_the_shipped_suite_passes_against_its_baseline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, written = tmp_path / "report.md", tmp_path / "baseline.json"
    code = main(
        [
            "eval",
            str(SUITE),
            "--baseline",
            str(BASELINE),
            "--report",
            str(report),
            "--write-baseline",
            str(written),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    for task in ("greet", "extract-json", "count-words-with-a-tool"):
        assert f"| {task} | 1/1 | 1/1 | ok |" in out
    assert report.read_text() == out
    assert json.loads(written.read_text()) == json.loads(BASELINE.read_text())


@pytest.mark.usefixtures("at_repo")
def test_a_worse_answer_fails_the_suite_naming_the_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline.json"
    assert main(["eval", str(greet_suite(tmp_path, "Hello, Ada!")), "--write-baseline", str(baseline)]) == 0
    capsys.readouterr()
    worse = tmp_path / "worse"
    worse.mkdir()
    code = main(["eval", str(greet_suite(worse, "Goodbye.")), "--baseline", str(baseline)])
    out = capsys.readouterr().out
    assert code == 1
    assert "| greet | 1/1 | 0/1 | **regressed** |" in out
    assert "### greet" in out and "answer 'Goodbye.'" in out


@pytest.mark.usefixtures("at_repo")
def test_careless_suites_and_baselines_are_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = greet_suite(tmp_path, "Hello, Ada!")
    missing_run = tmp_path / "missing-run.yaml"
    missing_run.write_text(suite.read_text().replace("run: eval-greet", "run: no-such-run"))
    assert main(["eval", str(missing_run)]) == 2
    assert "EvalSuite/greet-only: spec.tasks[0].run" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    for content in ("{not json", '{"tasks": {"greet": {"passes": 3, "runs": 1}}}'):
        bad.write_text(content)
        assert main(["eval", str(suite), "--baseline", str(bad)]) == 2
        assert str(bad) in capsys.readouterr().err
    assert main(["eval", str(suite), "--repeat", "0"]) == 2
    assert "--repeat" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nowhere.yaml")]) == 2
    assert "nowhere.yaml" in capsys.readouterr().err
    no_specs = tmp_path / "no-specs.yaml"
    no_specs.write_text(suite.read_text().replace("specs: [specs.yaml]", "specs: [absent.yaml]"))
    assert main(["eval", str(no_specs)]) == 2
    assert "spec.specs" in capsys.readouterr().err


def test_a_suite_file_of_another_kind_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(REPO / "examples" / "hello.yaml", tmp_path / "hello.yaml")
    assert main(["eval", str(tmp_path / "hello.yaml")]) == 2
    assert "expected one EvalSuite document, found 0" in capsys.readouterr().err


def rubric_suite(tmp_path: Path, verdict: str, *, judge: str = "eval-judge") -> Path:
    """The greet task graded only by the rubric, its judge scripted to answer `verdict`."""
    specs = (REPO / "examples" / "eval" / "specs.yaml").read_text()
    shipped = '{"score": 9, "reason": "greets Ada by name in one short sentence"}'
    assert shipped in specs
    (tmp_path / "specs.yaml").write_text(specs.replace(f"'{shipped}'", json.dumps(verdict)))
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "apiVersion: jesus.dev/v1alpha1\nkind: EvalSuite\nmetadata: {name: rubric-only}\nspec:\n"
        "  specs: [specs.yaml]\n  tasks:\n    - name: greet\n      run: eval-greet\n      graders:\n"
        f"        - rubric: {{judge: {judge}, criteria: 'Greets Ada by name.', passScore: 7}}\n"
    )
    return suite


@pytest.mark.parametrize(
    ("verdict", "passes", "detail"),
    [
        ('{"score": 9, "reason": "warm"}', True, "score 9/10: warm"),
        ('{"score": 6, "reason": "curt"}', False, "score 6/10: curt"),
        # Careless and hostile judges: prose, a score out of range, a score as text, JSON that is no object.
        ("Looks good to me!", False, "the judge did not answer JSON"),
        ('{"score": 11}', False, 'no "score" from 1 to 10'),
        ('{"score": "10"}', False, 'no "score" from 1 to 10'),
        ("[10]", False, 'no "score" from 1 to 10'),
    ],
)
def test_a_rubric_is_scored_by_its_judge_run_through_the_router(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verdict: str, passes: bool, detail: str
) -> None:
    code = main(["eval", str(rubric_suite(tmp_path, verdict))])
    out = capsys.readouterr().out
    assert code == (0 if passes else 1), out
    assert ("| greet | — | 1/1 | ok |" in out) is passes
    if not passes:
        assert detail in out


def test_a_rubric_naming_no_judge_run_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(rubric_suite(tmp_path, "{}", judge="no-such-judge"))]) == 2
    assert "EvalSuite/rubric-only: spec.tasks[0].graders[0].rubric.judge" in capsys.readouterr().err
