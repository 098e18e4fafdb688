"""Redaction of one string: find what must go (Presidio), replace each finding by `[REDACTED:<kind>]`.

Two fast paths keep ordinary text cheap. A string with nothing any pattern could start with (no digit,
no `@`, no key prefix, ...) skips the pattern analyzer; a string with no candidate name (a capitalised
word that is not a common English word) skips spaCy. Where candidates exist, spaCy reads only the
stretch of text around them, not the whole string: a transcript's code and JSON cost it nothing.
"""

from __future__ import annotations

import bisect
import importlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

import regex

from jesus.redaction.common_words import COMMON_WORDS
from jesus.redaction.folding import fold
from jesus.redaction.patterns import ADDRESS_PATTERN, CUED_NAME_PATTERN, SECRET_PATTERNS, SitePattern

if TYPE_CHECKING:  # the engines are imported on first use (`_engines`), not with this module
    from jesus.redaction.engines import Span

# Words that look like a name to spaCy but are the platform's own ("Hello from Jesus!").
ALWAYS_ALLOWED = ("Jesus",)
# Below these scores a finding is too unsure to redact (Presidio's phone and IBAN scores start at 0.4).
SCORE_THRESHOLD = 0.35
# Anything Presidio's own recognizers could match contains one of these: an e-mail's `x@y.`, seven or
# more digits in a row or with separators (phone, card, IBAN), an IPv4 or IPv6 address.
_PII_TRIGGER = regex.compile(
    r"[\w.+\-]@[\w\-]+\.|\d(?:[ \t().\-/]{0,3}\d){6,}|\d{1,3}(?:\.\d{1,3}){3}"
    r"|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}"
)
# A capitalised word: the start of every name spaCy could find.
_CANDIDATE = regex.compile(r"(?<![\p{L}\p{N}_])\p{Lu}[\p{Ll}'\u2019\-]+(?![\p{L}\p{N}_])")
# How much text around a trigger the pattern stage reads, and around a candidate name spaCy reads.
_PATTERN_MARGIN = 40
_NAME_MARGIN = 80
# How far a window's edge moves to reach whitespace, at most.
_CUT_LIMIT = 40


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """Something to redact: where it is in the text, and its kind (the marker's name)."""

    start: int
    end: int
    kind: str
    score: float


class PresidioRedactor:
    """The platform's redactor: a `Callable[[str], str]`, with `analyze` for the findings themselves.

    `site_patterns` adds a site's own expressions (configuration, see `RedactionConfig`); `names`
    turns the spaCy stage off where a caller wants patterns only (the model is then never loaded);
    `allow` lists exact texts never redacted (besides `ALWAYS_ALLOWED`).
    """

    def __init__(
        self, site_patterns: tuple[SitePattern, ...] = (), *, names: bool = True, allow: tuple[str, ...] = ()
    ) -> None:
        self.names = names
        self.allow = frozenset(ALWAYS_ALLOWED + allow)
        # Credentials, addresses and a site's patterns are plain expressions, each finding final: they
        # run once over the whole text. Presidio's recognizers (checksums, libphonenumber, the e-mail
        # domain check, cued names) run only on windows around what could start one of theirs.
        self._expressions = (
            *((p.kind, regex.compile(p.expression), p.score) for p in SECRET_PATTERNS),
            *((p.kind, regex.compile(p.expression), 1.0) for p in site_patterns),
            ("address", regex.compile(ADDRESS_PATTERN), 0.9),
        )
        self._triggers = (_PII_TRIGGER, regex.compile(CUED_NAME_PATTERN))

    def __call__(self, text: str) -> str:
        """`text` with every finding replaced by `[REDACTED:<kind>]`."""
        return self.redact_many([text])[0]

    def redact_many(self, texts: Sequence[str]) -> list[str]:
        """Each of `texts` redacted; cheaper than one call each, because spaCy reads them in one batch."""
        redacted: list[str] = []
        for text, findings in zip(texts, self.analyze_many(texts), strict=True):
            spans = [(f.start, f.end, f.kind, f.score) for f in findings]
            redacted.append(_engines().replace(text, spans) if spans else text)
        return redacted

    def analyze(self, text: str) -> list[Finding]:
        """Every finding in `text`, in order of position."""
        return self.analyze_many([text])[0]

    def analyze_many(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Every finding in each of `texts`, in order of position."""
        findings = [self._expression_findings(text) for text in texts]
        pattern_windows = [
            (index, window)
            for index, text in enumerate(texts)
            for window in _windows(text, self._trigger_spans(text), _PATTERN_MARGIN)
        ]
        self._analyze_windows(texts, pattern_windows, findings, self._patterns)
        if self.names:
            # A candidate a pattern already settled (a cued name, a word inside a key) needs no spaCy.
            name_windows = [
                (index, window)
                for index, text in enumerate(texts)
                for window in _windows(
                    text, _unsettled(_candidate_spans(text), findings[index]), _NAME_MARGIN
                )
            ]
            self._analyze_windows(texts, name_windows, findings, self._names)
        return [
            _outermost([f for f in found if text[f.start : f.end] not in self.allow])
            for text, found in zip(texts, findings, strict=True)
        ]

    def _expression_findings(self, text: str) -> list[Finding]:
        """What the credential, address and site expressions find in `text`, and in its folded form
        (`jesus.redaction.folding`) mapped back onto `text`."""
        found = [
            Finding(*match.span(), kind, score)
            for kind, expression, score in self._expressions
            for match in expression.finditer(text)
        ]
        folded = fold(text)
        if folded is not None:
            view, origin = folded
            found += [
                Finding(origin[match.start()], origin[match.end() - 1] + 1, kind, score)
                for kind, expression, score in self._expressions
                for match in expression.finditer(view)
                if match.end() > match.start()
            ]
        return found

    def _trigger_spans(self, text: str) -> list[tuple[int, int]]:
        return [match.span() for trigger in self._triggers for match in trigger.finditer(text)]

    def _patterns(self, windows: list[str]) -> list[list[Span]]:
        spans: list[list[Span]] = _engines().analyze_patterns(windows, SCORE_THRESHOLD)
        return spans

    @staticmethod
    def _names(windows: list[str]) -> list[list[Span]]:
        spans: list[list[Span]] = _engines().analyze_names(windows, SCORE_THRESHOLD)
        return spans

    @staticmethod
    def _analyze_windows(
        texts: Sequence[str],
        windows: list[tuple[int, tuple[int, int]]],
        findings: list[list[Finding]],
        analyze: Callable[[list[str]], list[list[Span]]],
    ) -> None:
        """Run `analyze` over every window at once and add what it finds to its text's findings."""
        if not windows:
            return
        found = analyze([texts[index][start:end] for index, (start, end) in windows])
        for (index, (start, _)), spans in zip(windows, found, strict=True):
            findings[index] += [Finding(b + start, e + start, kind, score) for b, e, kind, score in spans]


def _unsettled(spans: list[tuple[int, int]], findings: list[Finding]) -> list[tuple[int, int]]:
    """The spans no finding covers whole (by bisection over the findings' starts: linear in both)."""
    ordered = sorted(findings)
    starts = [f.start for f in ordered]
    reach = list(itertools.accumulate((f.end for f in ordered), max))  # the furthest end so far
    unsettled = []
    for start, end in spans:
        covering = bisect.bisect_right(starts, start)  # findings that start at or before the span
        if covering == 0 or reach[covering - 1] < end:
            unsettled.append((start, end))
    return unsettled


def _candidate_spans(text: str) -> list[tuple[int, int]]:
    """Where a name could be: capitalised words that are not common English words."""
    return [m.span() for m in _CANDIDATE.finditer(text) if m.group().lower() not in COMMON_WORDS]


def _outermost(findings: list[Finding]) -> list[Finding]:
    """The findings that do not overlap a surer one, in order of position: a key spaCy took for part
    of a name is marked as the key, and of two on the same span the specific key format wins over the
    generic keyword rule. What a dropped finding covered beyond the kept one was its own mistake.
    Empty findings (a site pattern that can match nothing) hide nothing and are dropped.

    The kept spans never overlap, so sorted by start they are sorted by end too: each finding is checked
    against its one neighbour by bisection (text with a finding every few characters is O(k log k))."""
    starts: list[int] = []
    ends: list[int] = []
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (-f.score, f.start - f.end, f.start)):
        if finding.start >= finding.end:
            continue
        at = bisect.bisect_right(ends, finding.start)  # the first kept span that ends after this starts
        if at == len(starts) or starts[at] >= finding.end:
            starts.insert(at, finding.start)
            ends.insert(at, finding.end)
            kept.insert(at, finding)
    return kept


def _engines() -> ModuleType:
    """The Presidio engines' module, imported on first use: importing Presidio and spaCy takes seconds,
    which a process that imports the runner but redacts nothing (or only ordinary text) never pays."""
    return importlib.import_module("jesus.redaction.engines")


def _windows(text: str, spans: list[tuple[int, int]], margin: int) -> list[tuple[int, int]]:
    """The stretches of `text` that cover `spans` and `margin` characters each side, merged, and cut
    at whitespace so no recognizer sees half a word (Presidio's context words fit in the margin)."""
    windows: list[tuple[int, int]] = []
    for span_start, span_end in sorted(spans):
        start = _cut(text, max(0, span_start - margin), backwards=True)
        end = _cut(text, min(len(text), span_end + margin), backwards=False)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(end, windows[-1][1]))
        else:
            windows.append((start, end))
    return windows


def _cut(text: str, at: int, *, backwards: bool) -> int:
    """`at` moved to the nearest whitespace (or the end of `text`) away from the candidate, by
    `_CUT_LIMIT` characters at most (text without spaces, such as minified JSON, is cut where it is)."""
    step = -1 if backwards else 1
    for _ in range(_CUT_LIMIT):
        if at <= 0 or at >= len(text) or text[at - 1 if backwards else at].isspace():
            break
        at += step
    return at
