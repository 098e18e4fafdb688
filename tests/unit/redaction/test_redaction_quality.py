"""Redaction quality on a generated corpus: recall and precision per entity type, with thresholds.

The figures are in docs/redaction.md; `python -m tests.unit.redaction.test_redaction_quality` prints
them. Recall counts a planted entity as found when findings cover every character of it; precision
counts a finding as right when it overlaps a planted entity.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest
from tests.redaction_corpus import NAME_KINDS, SECRET_KINDS, STRUCTURED_KINDS, Document, generate

from jesus.redaction import PresidioRedactor, default_redactor

SEED, DOCUMENTS = 20261202, 300
RECALL = {**dict.fromkeys(SECRET_KINDS, 0.99), **dict.fromkeys(STRUCTURED_KINDS, 0.95), "person": 0.85}
PRECISION = 0.80


def measure(
    redactor: PresidioRedactor, documents: Sequence[Document]
) -> tuple[dict[str, float], dict[str, float]]:
    """Recall per planted kind and precision per found kind."""
    planted, found, predicted, right = Counter[str](), Counter[str](), Counter[str](), Counter[str]()
    for document in documents:
        findings = redactor.analyze(document.text)
        for entity in document.planted:
            planted[entity.kind] += 1
            covered = {i for f in findings for i in range(max(f.start, entity.start), min(f.end, entity.end))}
            found[entity.kind] += len(covered) == entity.end - entity.start
        for finding in findings:
            predicted[finding.kind] += 1
            right[finding.kind] += any(
                finding.start < e.end and e.start < finding.end for e in document.planted
            )
    recall = {kind: found[kind] / planted[kind] for kind in planted}
    precision = {kind: right[kind] / predicted[kind] for kind in predicted}
    return recall, precision


@pytest.fixture(scope="module")
def figures(redactor: PresidioRedactor) -> tuple[dict[str, float], dict[str, float]]:
    return measure(redactor, generate(SEED, DOCUMENTS))


def test_every_kind_is_in_the_corpus(figures: tuple[dict[str, float], dict[str, float]]) -> None:
    recall, _ = figures
    assert set(recall) == set(SECRET_KINDS + STRUCTURED_KINDS + NAME_KINDS)


@pytest.mark.parametrize("kind", sorted(RECALL))
def test_recall_per_kind(figures: tuple[dict[str, float], dict[str, float]], kind: str) -> None:
    recall, _ = figures
    assert recall[kind] >= RECALL[kind], f"{kind}: recall {recall[kind]:.3f} < {RECALL[kind]}"


def test_precision_per_kind(figures: tuple[dict[str, float], dict[str, float]]) -> None:
    _, precision = figures
    low = {kind: value for kind, value in precision.items() if value < PRECISION}
    assert not low, f"precision below {PRECISION}: {low}"


if __name__ == "__main__":
    recall, precision = measure(default_redactor(), generate(SEED, DOCUMENTS))
    print("| kind | recall | target | precision |\n| --- | --- | --- | --- |")
    for kind in sorted(set(recall) | set(precision)):
        r = f"{recall[kind]:.3f}" if kind in recall else "-"
        target = f"{RECALL[kind]:.2f}" if kind in RECALL else "-"
        p = f"{precision[kind]:.3f}" if kind in precision else "-"
        print(f"| {kind} | {r} | {target} | {p} |")
