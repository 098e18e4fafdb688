"""What a site configures about redaction: its own patterns, and whether names are looked for.

The runner and the router read it from their environment: `JESUS_REDACTION_PATTERNS` holds a JSON
object of kind to regular expression (`{"employee-id": "EMP-[0-9]{6}"}`), and
`JESUS_REDACTION_NAMES=false` turns the spaCy stage off (patterns only) where the model cannot be had, and
`JESUS_REDACTION_ALLOW` lists texts never redacted, comma-separated (a product or team name).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass

from jesus.redaction.patterns import SitePattern
from jesus.redaction.text import PresidioRedactor

PATTERNS_VARIABLE = "JESUS_REDACTION_PATTERNS"
NAMES_VARIABLE = "JESUS_REDACTION_NAMES"
ALLOW_VARIABLE = "JESUS_REDACTION_ALLOW"


class RedactionConfigError(ValueError):
    """The redaction configuration cannot be used; says which variable and why."""


@dataclass(frozen=True, slots=True)
class RedactionConfig:
    """A site's redaction settings."""

    site_patterns: tuple[SitePattern, ...] = ()
    names: bool = True
    allow: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, names_default: bool = True) -> RedactionConfig:
        """The settings in `environ`; defaults where a variable is unset (`names_default` for
        `JESUS_REDACTION_NAMES`: the operator's default is patterns only, see docs/redaction.md)."""
        raw = environ.get(PATTERNS_VARIABLE, "").strip()
        try:
            table = json.loads(raw) if raw else {}
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                raise ValueError("expected a JSON object of kind to regular expression")
            patterns = tuple(SitePattern(kind, expression) for kind, expression in sorted(table.items()))
        except ValueError as exc:  # json's and regex's errors are ValueErrors too
            raise RedactionConfigError(f"{PATTERNS_VARIABLE}: {exc}") from exc
        names_value = environ.get(NAMES_VARIABLE, "").strip().lower()
        names = names_value not in ("false", "0", "no", "off") if names_value else names_default
        allow = tuple(word.strip() for word in environ.get(ALLOW_VARIABLE, "").split(",") if word.strip())
        return cls(site_patterns=patterns, names=names, allow=allow)

    def redactor(self) -> PresidioRedactor:
        """The redactor these settings describe."""
        return PresidioRedactor(self.site_patterns, names=self.names, allow=self.allow)

    def patterns_only(self) -> RedactionConfig:
        """These settings without the spaCy stage: for log lines, which are many and short."""
        return dataclasses.replace(self, names=False)
