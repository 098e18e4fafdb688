"""One redaction service for everything that leaves a component: Presidio plus secret patterns.

`PresidioRedactor` redacts a string (`[REDACTED:<kind>]` markers); `redact_structure` applies a
redactor to every string inside a structure before it is serialized; `install_log_redaction` makes
every log record of a process go through one. `default_redactor` is the process-wide instance (the
spaCy model loads once, lazily). See docs/adr/0012 and 0015.
"""

from __future__ import annotations

import functools

from jesus.redaction.config import RedactionConfig, RedactionConfigError
from jesus.redaction.logs import install_log_redaction
from jesus.redaction.patterns import SECRET_PATTERNS, SecretPattern, SitePattern
from jesus.redaction.structure import Redactor, redact_structure
from jesus.redaction.text import Finding, PresidioRedactor

__all__ = [
    "SECRET_PATTERNS",
    "Finding",
    "PresidioRedactor",
    "RedactionConfig",
    "RedactionConfigError",
    "Redactor",
    "SecretPattern",
    "SitePattern",
    "default_redactor",
    "install_log_redaction",
    "redact_structure",
]


@functools.cache
def default_redactor() -> PresidioRedactor:
    """The redactor with no site configuration, shared by the whole process."""
    return PresidioRedactor()
