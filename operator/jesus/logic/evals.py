"""The golden eval harness's pure core: suites, graders, scores, and the regression rule.

An `EvalSuite` (YAML in the specs repo) names golden tasks, each an AgentRun of the suite's spec files
run by the same runner as `jesus run`, and graders that judge the run's record: its final answer
(exact, contains, regex, a JSON schema), its tool calls, its cost and tokens, its outcome, its
reflection, and a rubric that a judge AgentRun scores through the router. A task passes a repeat when
every grader passes. Against a baseline (passes out of repeats per task) a task
has regressed when the rule in `regressed` says so; see docs/evals.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EVAL_KIND = "EvalSuite"
EVAL_API_VERSION = "jesus.dev/v1alpha1"
# The confidence of the bounds the regression rule compares (two-sided, normal quantile).
CONFIDENCE_Z = 1.96
MAX_REPEAT = 100
# The most of a judged answer a rubric's judge sees (an AgentRun input holds at most 64 KiB).
RUBRIC_ANSWER_CHARS = 60_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ToolCalled(_Strict):
    """The run called `name` (a tool's name), with at least these `arguments` when given."""

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class ReflectionExpected(_Strict):
    """The run's LAW-REFLECT-001 verdict: passed, or failed on exactly the `failed` items."""

    passed: bool
    failed: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _items_when_failed(self) -> ReflectionExpected:
        from jesus.logic.reflection import Item

        unknown = sorted(set(self.failed) - {item.value for item in Item})
        if unknown:
            raise ValueError(
                f"failed: unknown checklist items {unknown}; the items are {[i.value for i in Item]}"
            )
        if self.passed and self.failed:
            raise ValueError("failed: a reflection that passed has no failed items")
        return self


class Rubric(_Strict):
    """A model-graded rubric: the `judge` AgentRun (among the suite's specs, so its route, budget and
    policy apply as to any run) scores the answer against `criteria` from 1 to 10; `passScore` passes."""

    judge: str = Field(min_length=1, max_length=253)
    criteria: str = Field(min_length=1, max_length=4096)
    pass_score: int = Field(default=7, alias="passScore", ge=1, le=10)


class Grader(_Strict):
    """One check of a run's record; exactly one field set."""

    exact: str | None = None
    contains: str | None = None
    regex: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="jsonSchema")
    tool_called: ToolCalled | None = Field(default=None, alias="toolCalled")
    max_cost: Decimal | None = Field(default=None, alias="maxCost", ge=0)
    max_tokens: int | None = Field(default=None, alias="maxTokens", ge=0)
    outcome: str | None = None
    reflection: ReflectionExpected | None = None
    rubric: Rubric | None = None

    @model_validator(mode="after")
    def _one_check(self) -> Grader:
        set_fields = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(set_fields) != 1:
            checks = ", ".join(f.alias or n for n, f in type(self).model_fields.items())
            raise ValueError(f"a grader has exactly one of {checks}; this one has {len(set_fields)}")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r}: {exc}") from exc
        if self.json_schema is not None:
            from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
            from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

            try:
                Draft202012Validator.check_schema(self.json_schema)
            except SchemaError as exc:
                raise ValueError(f"jsonSchema: {exc.message}") from exc
        return self

    @property
    def label(self) -> str:
        """What the grader checks, in a few words (for reports)."""
        name = next(n for n in type(self).model_fields if getattr(self, n) is not None)
        alias = type(self).model_fields[name].alias or name
        value = getattr(self, name)
        shown = (
            value.name
            if isinstance(value, ToolCalled)
            else f"by {value.judge}, pass at {value.pass_score}"
            if isinstance(value, Rubric)
            else value.model_dump()
            if isinstance(value, ReflectionExpected)
            else value
        )
        text = json.dumps(shown, default=str) if not isinstance(shown, str) else repr(shown)
        return f"{alias} {text[:60]}"


class EvalTask(_Strict):
    """A golden task: the AgentRun to run (by name, among the suite's specs) and its graders."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    run: str = Field(min_length=1)
    graders: list[Grader] = Field(min_length=1)


class EvalSuiteSpec(_Strict):
    """What a suite runs: its spec files (relative to the suite's file), how often, which tasks."""

    specs: list[str] = Field(min_length=1)
    repeat: int = Field(default=1, ge=1, le=MAX_REPEAT)
    tasks: list[EvalTask] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_tasks(self) -> EvalSuiteSpec:
        names = [task.name for task in self.tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"task names must be unique: {', '.join(duplicates)}")
        return self


class EvalMetadata(_Strict):
    name: str = Field(min_length=1)


class EvalSuite(_Strict):
    """The `EvalSuite` document."""

    api_version: Literal["jesus.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["EvalSuite"]
    metadata: EvalMetadata
    spec: EvalSuiteSpec


@dataclass(frozen=True, slots=True)
class GraderResult:
    """One grader's verdict on one repeat, and why when it failed."""

    grader: str
    passed: bool
    detail: str = ""


def grade(record: Mapping[str, Any], grader: Grader) -> GraderResult:
    """Judge a run's record (the runner's JSON record) with one grader; a rubric is judged by
    `grade_rubric` on its judge's record instead."""
    label = grader.label
    if grader.rubric is not None:
        raise ValueError("a rubric is graded by its judge's run: use rubric_inputs and grade_rubric")
    answer = record.get("finalAnswer") or ""
    if grader.exact is not None:
        return GraderResult(label, answer.strip() == grader.exact.strip(), _quoted(answer))
    if grader.contains is not None:
        return GraderResult(label, grader.contains in answer, _quoted(answer))
    if grader.regex is not None:
        return GraderResult(label, re.search(grader.regex, answer) is not None, _quoted(answer))
    if grader.json_schema is not None:
        return _grade_json(label, answer, grader.json_schema)
    if grader.tool_called is not None:
        wanted = grader.tool_called
        calls = [c for c in record.get("toolCalls") or [] if c.get("tool") == wanted.name]
        matched = any(
            not c.get("isError") and _includes(c.get("arguments") or {}, wanted.arguments) for c in calls
        )
        seen = ", ".join(sorted({str(c.get("tool")) for c in record.get("toolCalls") or []})) or "none"
        return GraderResult(label, matched, f"tools called: {seen}")
    if grader.max_cost is not None:
        cost = Decimal(int(record.get("costMicros") or 0)) / 1_000_000
        return GraderResult(label, cost <= grader.max_cost, f"cost {cost}")
    if grader.max_tokens is not None:
        usage = record.get("usage") or {}
        tokens = int(usage.get("inputTokens") or 0) + int(usage.get("outputTokens") or 0)
        return GraderResult(label, tokens <= grader.max_tokens, f"{tokens} tokens")
    if grader.reflection is not None:
        return _grade_reflection(label, record.get("reflection"), grader.reflection)
    outcome = str(record.get("outcome"))
    return GraderResult(label, outcome == grader.outcome, f"outcome {outcome}")


def rubric_inputs(rubric: Rubric, record: Mapping[str, Any]) -> dict[str, str]:
    """The judge run's inputs: the criteria, and the judged answer as quoted data (angle brackets
    escaped, so an answer cannot close its input element and speak as the harness; cut past
    RUBRIC_ANSWER_CHARS, and said so)."""
    answer = str(record.get("finalAnswer") or "")
    if len(answer) > RUBRIC_ANSWER_CHARS:
        answer = answer[:RUBRIC_ANSWER_CHARS] + f"\n[cut: the answer had {len(answer)} characters]"
    escaped = answer.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {"criteria": rubric.criteria, "answer": escaped}


def grade_rubric(grader: Grader, judged: Mapping[str, Any]) -> GraderResult:
    """A rubric's verdict from its judge's run record: the judge must succeed and answer a JSON object
    `{"score": 1..10, "reason": "..."}`; the grader passes when the score reaches `passScore`. Anything
    else fails the grader (never the suite's run) and says what the judge did."""
    rubric = grader.rubric
    if rubric is None:
        raise ValueError("grade_rubric takes a rubric grader")
    label = grader.label
    outcome = str(judged.get("outcome"))
    if outcome != "Succeeded":
        return GraderResult(label, False, f"the judge {rubric.judge} ended {outcome}: {judged.get('reason')}")
    answer = str(judged.get("finalAnswer") or "").strip()
    try:
        verdict = json.loads(answer)
    except ValueError:
        return GraderResult(label, False, f"the judge did not answer JSON: {_quoted(answer)}")
    score = verdict.get("score") if isinstance(verdict, dict) else None
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 10:
        return GraderResult(label, False, f'the judge answered no "score" from 1 to 10: {_quoted(answer)}')
    reason = verdict.get("reason")
    because = f": {str(reason)[:80]}" if isinstance(reason, str) and reason else ""
    return GraderResult(label, score >= rubric.pass_score, f"score {score}/10{because}")


def _grade_reflection(label: str, block: Any, wanted: ReflectionExpected) -> GraderResult:
    if not isinstance(block, Mapping):
        return GraderResult(label, False, "the run has no reflection")
    failed = sorted(str(item) for item in block.get("failed") or [])
    passed = bool(block.get("passed"))
    detail = "passed" if passed else f"failed on {', '.join(failed)}"
    return GraderResult(label, passed == wanted.passed and failed == sorted(wanted.failed), detail)


def _grade_json(label: str, answer: str, schema: dict[str, Any]) -> GraderResult:
    from jsonschema import Draft202012Validator

    try:
        document = json.loads(answer)
    except ValueError as exc:
        return GraderResult(label, False, f"not JSON: {exc}")
    errors = sorted(Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(root)"
        return GraderResult(label, False, f"{where}: {errors[0].message[:120]}")
    return GraderResult(label, True)


def _includes(actual: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    return all(key in actual and actual[key] == value for key, value in wanted.items())


def _quoted(answer: str) -> str:
    return f"answer {answer[:80]!r}" + ("…" if len(answer) > 80 else "")


@dataclass(slots=True)
class TaskScore:
    """A task's repeats: how many passed, and each failed grader's first reason."""

    task: str
    passes: int = 0
    runs: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    def add(self, results: Sequence[GraderResult]) -> None:
        """One repeat's grader results."""
        self.runs += 1
        if all(r.passed for r in results):
            self.passes += 1
        for result in results:
            if not result.passed:
                self.failures.setdefault(result.grader, result.detail)

    @property
    def rate(self) -> float:
        """Share of repeats that passed."""
        return self.passes / self.runs if self.runs else 0.0


def wilson_bounds(passes: int, runs: int, z: float = CONFIDENCE_Z) -> tuple[float, float]:
    """The Wilson score interval of a pass rate: honest at 0 and at every pass, and for few runs."""
    if runs <= 0:
        return 0.0, 1.0
    rate = passes / runs
    denominator = 1 + z * z / runs
    centre = (rate + z * z / (2 * runs)) / denominator
    margin = z * math.sqrt(rate * (1 - rate) / runs + z * z / (4 * runs * runs)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


def regressed(now: TaskScore, baseline_passes: int, baseline_runs: int) -> bool:
    """The regression rule. One run on each side (no repeats): any drop in the pass rate, as a
    deterministic task's one answer is the whole evidence. With repeats: only when the two rates'
    Wilson intervals (95 %) do not overlap, now's upper bound below the baseline's lower bound, so
    that a grader or model that is sometimes wrong does not fail the suite by chance."""
    if now.runs == 1 and baseline_runs == 1:
        return now.passes < baseline_passes
    _, upper = wilson_bounds(now.passes, now.runs)
    lower, _ = wilson_bounds(baseline_passes, baseline_runs)
    return upper < lower


@dataclass(frozen=True, slots=True)
class TaskVerdict:
    """A task's score against its baseline entry (None when the baseline has none)."""

    score: TaskScore
    baseline: tuple[int, int] | None
    regression: bool


def compare(scores: Sequence[TaskScore], baseline: Mapping[str, tuple[int, int]] | None) -> list[TaskVerdict]:
    """Each task against the baseline; without one, a task that failed any repeat is a regression."""
    verdicts = []
    for score in scores:
        entry = baseline.get(score.task) if baseline is not None else None
        if entry is None:
            bad = score.passes < score.runs if baseline is None else False
            verdicts.append(TaskVerdict(score, None, bad))
        else:
            verdicts.append(TaskVerdict(score, entry, regressed(score, *entry)))
    return verdicts


def parse_baseline(data: Any, where: str) -> dict[str, tuple[int, int]]:
    """A baseline file's content ({"tasks": {name: {"passes": k, "runs": n}}}); ValueError naming
    `where` and the field when it is malformed."""
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        raise ValueError(f"{where}: expected an object with a 'tasks' object")
    table: dict[str, tuple[int, int]] = {}
    for name, entry in data["tasks"].items():
        passes = entry.get("passes") if isinstance(entry, dict) else None
        runs = entry.get("runs") if isinstance(entry, dict) else None
        if not (isinstance(passes, int) and isinstance(runs, int) and 0 <= passes <= runs and runs >= 1):
            raise ValueError(
                f"{where}: tasks.{name}: expected passes and runs, 0 <= passes <= runs, runs >= 1"
            )
        table[str(name)] = (passes, runs)
    return table


def baseline_of(scores: Sequence[TaskScore]) -> dict[str, Any]:
    """The baseline file's content for these scores."""
    return {"tasks": {s.task: {"passes": s.passes, "runs": s.runs} for s in scores}}


def render_markdown(suite: str, verdicts: Sequence[TaskVerdict]) -> str:
    """The report for a pull request: a table of tasks, then why each failing task failed."""
    regressions = [v for v in verdicts if v.regression]
    head = "regressed" if regressions else "no regression"
    lines = [
        f"## Eval `{suite}`: {head}",
        "",
        "| task | baseline | now | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for verdict in verdicts:
        score = verdict.score
        base = f"{verdict.baseline[0]}/{verdict.baseline[1]}" if verdict.baseline else "—"
        mark = "**regressed**" if verdict.regression else "ok"
        lines.append(f"| {score.task} | {base} | {score.passes}/{score.runs} | {mark} |")
    for verdict in verdicts:
        if verdict.score.failures:
            lines += ["", f"### {verdict.score.task}", ""]
            lines += [f"- {grader}: {detail}" for grader, detail in verdict.score.failures.items()]
    return "\n".join(lines) + "\n"
