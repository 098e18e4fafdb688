"""Folding a text for matching: invisible characters removed and compatibility forms made plain.

A secret split by a zero-width space or a soft hyphen, or written in fullwidth letters, is still the
secret to anyone who copies it, but no expression matches it as written. The credential expressions
therefore also run over the folded text (format characters such as U+200B, U+00AD, U+2060 and U+FEFF,
and NUL, removed; every other character NFKC-normalized on its own), and what they find there is
mapped back to the characters of the original it came from, so the marker replaces exactly those.
"""

from __future__ import annotations

import unicodedata

import regex

# Characters that change nothing a reader sees: Unicode's format characters (category Cf), and NUL.
_INVISIBLE = regex.compile(r"[\p{Cf}\x00]")


def fold(text: str) -> tuple[str, list[int]] | None:
    """`text` folded, with the index in `text` of each folded character; None when folding changes
    nothing (ASCII without NUL, or NFKC text without format characters: the cheap, common case)."""
    if text.isascii() and "\x00" not in text:
        return None
    if unicodedata.is_normalized("NFKC", text) and not _INVISIBLE.search(text):
        return None
    folded: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if _INVISIBLE.match(char):
            continue
        plain = unicodedata.normalize("NFKC", char) if not char.isascii() else char
        folded.append(plain)
        origin.extend([index] * len(plain))
    return "".join(folded), origin
