"""The regular expressions of the redaction service: credentials, street addresses, and site patterns.

Each pattern is data: a kind (the marker's name, `[REDACTED:<kind>]`), a regular expression, and a
score for Presidio. The credential formats follow detect-secrets' plugins (AWS, GitHub, GitLab, Slack,
Stripe, JWT, private keys, keyword assignments) plus our providers' key formats. The expressions run
on raw strings, never on serialized JSON, and are anchored with look-arounds rather than `\\b`, so a key
at the start of a line or glued to punctuation is found all the same; the left guard also keeps `sk-`
inside a word such as `task-...` from matching.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

# Not preceded by a character a token could continue with.
_START = r"(?<![A-Za-z0-9_\-])"
# Not followed by one.
_END = r"(?![A-Za-z0-9_\-])"


@dataclass(frozen=True, slots=True)
class SecretPattern:
    """One kind of secret: its marker name, its expression, and how sure a match is (0..1)."""

    kind: str
    expression: str
    score: float = 1.0


SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern(
        "private-key",
        r"-----BEGIN[A-Z ]{0,40} PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END[A-Z ]{0,40} PRIVATE KEY(?: BLOCK)?-----|\Z)",
    ),
    # A specific prefix is found even glued to what precedes it; a bare `sk-` only after no letter,
    # or after an escape such as a literal `\\n`, so `task-<20 characters>` is no key.
    SecretPattern("anthropic-key", r"sk-ant-[A-Za-z0-9_\-]{20,}"),
    SecretPattern(
        "openai-key",
        r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}|(?:(?<![A-Za-z])|(?<=\\[nrt]))sk-[A-Za-z0-9_\-]{20,}",
    ),
    SecretPattern("aws-access-key", r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}" + _END),
    SecretPattern(
        "aws-secret-key",
        r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s*[:=]\s*[\"']?\K[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])",
    ),
    SecretPattern("github-token", r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    SecretPattern("gitlab-token", r"glpat-[A-Za-z0-9_\-]{20,}"),
    # Bounded parts: an unbounded `(?:[0-9A-Za-z]+-)*` took quadratic time and more on `xoxb-xoxb-...`.
    SecretPattern("slack-token", r"xox[abposr]-(?:[0-9A-Za-z]{1,64}-){0,8}[0-9A-Za-z]{6,}"),
    SecretPattern(
        "slack-webhook", r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"
    ),
    SecretPattern("google-api-key", r"AIza[0-9A-Za-z_\-]{35}"),
    SecretPattern("google-oauth-token", r"ya29\.[0-9A-Za-z_\-]{20,}"),
    SecretPattern("stripe-key", r"(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,}"),
    SecretPattern("huggingface-token", r"hf_[A-Za-z0-9]{30,}"),
    SecretPattern("npm-token", r"npm_[A-Za-z0-9]{36}"),
    # Only at the start of a token (or after an escape): from every `eyJ` inside a long run of token
    # characters the scan went to the run's end, quadratic in the run's length.
    SecretPattern(
        "jwt",
        r"(?:(?<![A-Za-z0-9_\-])|(?<=\\[nrt]))eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
    ),
    # Only what follows the word: "Authorization: Bearer [REDACTED:bearer-token]" still reads.
    SecretPattern("bearer-token", r"(?i:bearer)[ \t]+\K[A-Za-z0-9._~+/\-]{16,}=*"),
    # An Authorization header's value: after a scheme (Basic's base64 has no format of its own; Bearer is
    # the pattern above, which wins on the same span), or a long raw key. Prose ("Authorization:
    # required") names no scheme and has no 16-character word.
    SecretPattern(
        "authorization",
        r"(?i:authorization)[\"']?[ \t]*[:=][ \t]*[\"']?"
        r"(?:(?i:basic|token|digest|apikey|api-key|key|ssws|jwt|dpop|negotiate|ntlm|oauth|signature)[ \t]+"
        r"\K[A-Za-z0-9._~+/\-]{8,}=*|\K[A-Za-z0-9._~+/\-]{16,}=*)",
        0.95,
    ),
    # The password of credentials in a URL: scheme://user:PASSWORD@host.
    SecretPattern("url-password", r"://[^/\s:@\"']{0,128}:\K[^/\s@\"']{3,}(?=@)"),
    # detect-secrets' keyword plugin, narrowed: an assignment of a long value to a secret-sounding name.
    SecretPattern(
        "secret",
        r"(?i:(?:api[_-]?key|secret|token|passw(?:or)?d|pwd|client[_-]?secret|(?:access|account)[_-]?key))"
        r"[\"']?[ \t]*[:=][ \t]*[\"']?\K[^\s\"',;]{8,}",
        0.9,
    ),
)

# A street address: a house number, one to three capitalised words and a street type, then optionally
# the city and a UK or US postcode.
ADDRESS_PATTERN = (
    r"(?<![A-Za-z0-9])\d{1,5}[A-Za-z]?,?[ \t]+(?:[A-Z][a-z]+[ \t]+){1,3}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Way|Place|Pl|Square|Sq"
    r"|Terrace|Close|Crescent|Parkway|Highway|Hwy|Strasse|Straße)\b\.?"
    r"(?:,[ \t]*(?:[A-Z][a-z]+[ \t]?){1,3}"
    r"(?:,?[ \t]*(?:[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2}|[A-Z]{2}[ \t]+\d{5}(?:-\d{4})?|\d{5}))?)?"
)


_NAME = r"\p{Lu}\p{Ll}+(?:-\p{Lu}\p{Ll}+)?"
# A person's name by its cue, for what spaCy's small model misses: after a greeting or a title one
# capitalised word is enough; after a weaker cue (by, from, to, cc, holder is...) it takes two; before
# "wrote" or "said", two. `CuedNameRecognizer` drops candidates made of common words ("by Friday").
CUED_NAME_PATTERN = (
    r"(?:(?<=(?i:\b(?:dear|hi|hello|hey|thanks|mr|mrs|ms|dr|prof)\.?)[ \t]+)"
    + _NAME
    + r"(?:[ \t]+"
    + _NAME
    + r")?"
    r"|(?<=(?i:\b(?:by|from|to|cc|for|with|holder is|name is|name:|customer|contact|owner|assignee|author"
    r"|reporter|ask|tell|call|email))[ \t]+)"
    + _NAME
    + r"[ \t]+"
    + _NAME
    + r"|"
    + _NAME
    + r"[ \t]+"
    + _NAME
    + r"(?=[ \t]+(?:wrote|said|asked|called|agreed)\b))"
)


@dataclass(frozen=True, slots=True)
class SitePattern:
    """A pattern a site adds in configuration (an internal host name, an employee id format)."""

    kind: str
    expression: str

    def __post_init__(self) -> None:
        # Fail when the configuration is read, not on the first text that would have matched.
        try:
            regex.compile(self.expression)
        except regex.error as exc:
            raise ValueError(f"site pattern {self.kind!r}: {exc}") from exc
        if not regex.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", self.kind):
            raise ValueError(f"site pattern kind {self.kind!r} must be lower-case letters, digits and '-'")
