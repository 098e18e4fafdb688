"""Redaction throughput: milliseconds per KB of text with entities and with none, new and old redactor.

Run: .venv/bin/python -m tests.bench.bench_redaction [--documents 300] [--clean-kb 64] [--repeat 3]
The text with entities is the quality test's generated corpus (names, e-mails, phones, cards, IBANs,
addresses, keys, JWTs in prompts, transcripts and tool outputs); the text with none is tool output,
logs, code and prose without any. Both are redacted as separate strings (as the structural redactor
sees them), after one warm-up pass that loads the spaCy model. Prints the best of `repeat` passes,
and the old regex redactor (over the same strings) as the baseline. Targets: <= 10 ms/KB with
entities, <= 1 ms/KB with none.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from tests.bench.old_regex_redactor import redact_secrets
from tests.redaction_corpus import clean_text, generate

from jesus.redaction import PresidioRedactor


def ms_per_kb(redact: Callable[[str], str], texts: Sequence[str], repeat: int) -> float:
    """The best of `repeat` passes over `texts`, in milliseconds per KB (1,024 characters)."""
    size_kb = sum(len(text) for text in texts) / 1024
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
    args = parser.parse_args(argv)
    with_entities = [document.text for document in generate(11, args.documents)]
    # Clean text as a transcript holds it: messages of a few hundred characters to a few KB.
    clean = clean_text(12, args.clean_kb * 1024)
    without = [clean[i : i + 1500] for i in range(0, len(clean), 1500)]
    redactor = PresidioRedactor()
    start = time.perf_counter()
    redactor("Ada Lovelace, ada@example.com")  # loads the engines and the model
    print(f"first call (engines and spaCy model load): {time.perf_counter() - start:.2f} s\n")
    print("| text | KB | jesus.redaction (Presidio + spaCy) | old regex redactor |")
    print("| --- | --- | --- | --- |")
    for label, texts in (("with entities", with_entities), ("with none", without)):
        size = sum(len(text) for text in texts) / 1024
        new = ms_per_kb(redactor, texts, args.repeat)
        old = ms_per_kb(redact_secrets, texts, args.repeat)
        print(f"| {label} | {size:.0f} | {new:.2f} ms/KB | {old:.3f} ms/KB |")


if __name__ == "__main__":
    main()
