"""`jesus eval SUITE`: run a golden eval suite's tasks through the runner and catch regressions.

Runs every task of an EvalSuite (an AgentRun of the suite's spec files, as `jesus run` runs it:
offline with stand-in models unless --live) --repeat times (default: the suite's), grades each run's
record (a rubric by running its judge AgentRun on the answer), and compares the passes with a
baseline file (--baseline) by the rule in docs/evals.md:
repeats are judged by confidence bounds, so a sometimes-wrong grader does not fail the suite by
chance. Prints a markdown report (also to --report FILE); --write-baseline FILE records this run as
the next baseline. Exits 0 without a regression, 1 with one (without a baseline: when any task failed
a repeat), 2 when the suite or the baseline cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

from jesus.cli import CommandError, command_parser
from jesus.cli.run import local_lesson_policy, local_policy_engine, quiet_libraries
from jesus.logic.evals import (
    EVAL_KIND,
    MAX_REPEAT,
    EvalSuite,
    Grader,
    GraderResult,
    TaskScore,
    baseline_of,
    compare,
    grade,
    grade_rubric,
    parse_baseline,
    render_markdown,
    rubric_inputs,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `eval` sub-command."""
    parser = command_parser(subparsers, __doc__)
    parser.add_argument("suite", type=Path, metavar="SUITE", help="the EvalSuite YAML file")
    parser.add_argument(
        "--baseline", type=Path, metavar="FILE", help="passes per task to compare with (JSON)"
    )
    parser.add_argument("--repeat", type=int, metavar="N", help="runs per task (default: the suite's repeat)")
    parser.add_argument(
        "--live", action="store_true", help="call the real providers (keys from the environment)"
    )
    parser.add_argument("--policies", type=Path, metavar="DIR", help="Rego policies (as for jesus run)")
    parser.add_argument("--report", type=Path, metavar="FILE", help="also write the markdown report here")
    parser.add_argument(
        "--write-baseline", type=Path, metavar="FILE", help="write this run's passes as a baseline"
    )
    parser.set_defaults(handler=handle)


def load_suite(path: Path) -> EvalSuite:
    """The suite in `path`; CommandError naming the file, the line, the suite and the field when it is
    wrong (the same checks as `jesus validate`)."""
    from ruamel.yaml import YAML

    from jesus.specs import SpecPathError, load_specs

    try:
        problems = load_specs([path]).problems
    except SpecPathError as exc:
        raise CommandError(str(exc)) from exc
    if problems:
        raise CommandError("; ".join(p.format() for p in problems))
    suites = [
        d
        for d in YAML(typ="safe").load_all(path.read_text())
        if isinstance(d, dict) and d.get("kind") == EVAL_KIND
    ]
    if len(suites) != 1:
        raise CommandError(f"{path}: expected one {EVAL_KIND} document, found {len(suites)}")
    return EvalSuite.model_validate(suites[0])


def load_baseline(path: Path) -> dict[str, tuple[int, int]]:
    """The baseline file's passes per task; CommandError naming the file and the field."""
    try:
        return parse_baseline(json.loads(path.read_text()), str(path))
    except OSError as exc:
        raise CommandError(f"--baseline {path}: {exc.strerror}") from exc
    except ValueError as exc:  # JSON's errors and parse_baseline's
        raise CommandError(f"--baseline {path}: {exc}" if str(path) not in str(exc) else str(exc)) from exc


async def run_suite(
    suite: EvalSuite, folder: Path, *, repeat: int, live: bool, policies: Path | None
) -> list[TaskScore]:
    """Every task, `repeat` times each, through the local runner; each repeat graded."""
    from jesus.api.agentrun import AgentRun
    from jesus.router.config import EnvironmentCredentials
    from jesus.runner.local import execute_local_run, prepare_local_run, select_run
    from jesus.specs import LoadedObject, Severity, SpecPathError, load_specs, validate_specs

    try:
        spec_set = load_specs([folder / p for p in suite.spec.specs])
    except SpecPathError as exc:
        raise CommandError(f"EvalSuite/{suite.metadata.name}: spec.specs: {exc}") from exc
    errors = [p for p in validate_specs(spec_set) if p.severity is Severity.ERROR]
    if errors:
        raise CommandError(
            f"EvalSuite/{suite.metadata.name}: spec.specs: " + "; ".join(p.format() for p in errors)
        )
    policy = local_policy_engine(policies)

    async def run(loaded: LoadedObject) -> dict[str, Any]:
        prepared = await prepare_local_run(
            spec_set,
            loaded,
            live=live,
            credentials=EnvironmentCredentials(),
            policy=policy,
            lesson_policy=local_lesson_policy(policy),
        )
        return (await execute_local_run(prepared)).to_dict()

    async def judged(grader: Grader, record: dict[str, Any], judge: LoadedObject) -> GraderResult:
        assert grader.rubric is not None and isinstance(judge.obj, AgentRun)
        spec = judge.obj.spec
        task = spec.task.model_copy(update={"inputs": rubric_inputs(grader.rubric, record)})
        run_with_answer = judge.obj.model_copy(update={"spec": spec.model_copy(update={"task": task})})
        return grade_rubric(grader, await run(dataclasses.replace(judge, obj=run_with_answer)))

    scores = []
    for index, task in enumerate(suite.spec.tasks):
        where = f"EvalSuite/{suite.metadata.name}: spec.tasks[{index}]"
        try:
            loaded = select_run(spec_set, task.run)
        except ValueError as exc:
            raise CommandError(f"{where}.run: {exc}") from exc
        judges: dict[int, LoadedObject] = {}
        for number, grader in enumerate(task.graders):
            if grader.rubric is not None:
                try:
                    judges[number] = select_run(spec_set, grader.rubric.judge)
                except ValueError as exc:
                    raise CommandError(f"{where}.graders[{number}].rubric.judge: {exc}") from exc
        score = TaskScore(task.name)
        for _ in range(repeat):
            record = await run(loaded)
            score.add(
                [
                    await judged(grader, record, judges[number])
                    if number in judges
                    else grade(record, grader)
                    for number, grader in enumerate(task.graders)
                ]
            )
        scores.append(score)
    return scores


def handle(args: argparse.Namespace) -> int:
    """Run the suite, print the report; 1 on a regression."""
    quiet_libraries()
    suite = load_suite(args.suite)
    repeat = args.repeat if args.repeat is not None else suite.spec.repeat
    if not 1 <= repeat <= MAX_REPEAT:
        raise CommandError(f"--repeat: between 1 and {MAX_REPEAT}, not {repeat}")
    baseline = load_baseline(args.baseline) if args.baseline else None
    scores = asyncio.run(
        run_suite(suite, args.suite.parent, repeat=repeat, live=args.live, policies=args.policies)
    )
    verdicts = compare(scores, baseline)
    report = render_markdown(suite.metadata.name, verdicts)
    print(report, end="")
    if args.report:
        args.report.write_text(report)
    if args.write_baseline:
        args.write_baseline.write_text(json.dumps(baseline_of(scores), indent=2) + "\n")
    return 1 if any(v.regression for v in verdicts) else 0
