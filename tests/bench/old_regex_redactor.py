"""The regex redactor the runner used before jesus.redaction (kept as the benchmark's baseline).

It ran over serialized JSON; see ADR 12 for why that was replaced.

The patterns are those that leak most often through model transcripts and tool results: provider API
keys, cloud and code-hosting tokens, bearer tokens, JWTs, private keys, e-mail addresses. Each match
becomes `[REDACTED:<kind>]`, so a reader still sees that something was there. A Presidio analyzer (names,
phone numbers, addresses) can be chained in front of these with `chain`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

Redactor = Callable[[str], str]

# Order matters: specific key formats before the generic ones that would also match them.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "private-key",
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
    ),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    ("openai-key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("bearer-token", re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/-]{20,}=*")),
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
)


def redact_secrets(text: str) -> str:
    """`text` with every match of `SECRET_PATTERNS` replaced by `[REDACTED:<kind>]`."""
    for kind, pattern in SECRET_PATTERNS:
        text = pattern.sub(f"[REDACTED:{kind}]", text)
    return text


def chain(redactors: Iterable[Redactor]) -> Redactor:
    """One redactor that applies several in order."""
    steps = tuple(redactors)

    def redact(text: str) -> str:
        for step in steps:
            text = step(text)
        return text

    return redact
