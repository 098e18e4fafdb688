"""Redaction throughput: milliseconds per KB of text with entities and with none, new and old redactor.

Run: .venv/bin/python -m tests.bench.bench_redaction [--documents 300] [--clean-kb 64] [--repeat 3]
The text with entities is the quality test's generated corpus (names, e-mails, phones, cards, IBANs,
addresses, keys, JWTs in prompts, transcripts and tool outputs); the text with none is tool output,
logs, code and prose without any. Each is measured twice: every string redacted alone (a log line,
an Event, a status message), and the strings gathered into records of `--per-record` strings each,
redacted as a structure (a transcript, a run record: one batch per structure); and each string alone
with the patterns-only redactor that log lines and the operator's Events use. After one warm-up
pass that loads the spaCy model; prints the best of `repeat` passes, and the old regex redactor
(over the same strings) as the baseline. Targets: <= 10 ms/KB with entities, <= 1 ms/KB with none.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from tests.bench.old_regex_redactor import redact_secrets
from tests.redaction_corpus import clean_text, generate

from jesus.redaction import PresidioRedactor, redact_structure

T = TypeVar("T")


def ms_per_kb(
    redact: Callable[[T], object], texts: Sequence[T], repeat: int, size_kb: float | None = None
) -> float:
    """The best of `repeat` passes over `texts`, in milliseconds per KB (1,024 characters of text)."""
    size_kb = size_kb or sum(len(str(text)) for text in texts) / 1024
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in texts:
            redact(text)
        best = min(best, time.perf_counter() - start)
    return best * 1000 / size_kb


def main(argv: Sequence[str] | None = None) -> None:
    """Print the figures as a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--clean-kb", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-record", type=int, default=20)
    args = parser.parse_args(argv)
    with_entities = [document.text for document in generate(11, args.documents)]
    # Clean text as a transcript holds it: messages of a few hundred characters to a few KB.
    clean = clean_text(12, args.clean_kb * 1024)
    without = [clean[i : i + 1500] for i in range(0, len(clean), 1500)]
    redactor = PresidioRedactor()
    start = time.perf_counter()
    redactor("Ada Lovelace, ada@example.com")  # loads the engines and the model
    print(f"first call (engines and spaCy model load): {time.perf_counter() - start:.2f} s\n")
    patterns_only = PresidioRedactor(names=False)
    print("| text | KB | strings alone | as records | patterns only, strings alone | old regex redactor |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, texts in (("with entities", with_entities), ("with none", without)):
        size = sum(len(text) for text in texts) / 1024
        alone = ms_per_kb(redactor, texts, args.repeat)
        records = [texts[i : i + args.per_record] for i in range(0, len(texts), args.per_record)]
        as_records = ms_per_kb(lambda record: redact_structure(record, redactor), records, args.repeat, size)
        patterns = ms_per_kb(patterns_only, texts, args.repeat)
        old = ms_per_kb(redact_secrets, texts, args.repeat)
        print(
            f"| {label} | {size:.0f} | {alone:.2f} ms/KB | {as_records:.2f} ms/KB | {patterns:.2f} ms/KB "
            f"| {old:.3f} ms/KB |"
        )


if __name__ == "__main__":
    main()
