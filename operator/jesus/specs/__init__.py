"""Spec files: loading them into typed objects with source lines, and validating the whole set.

spec_set = load_specs(["examples/"])        # never raises for bad content
problems = validate_specs(spec_set)         # schema problems plus cross-object rules
for run in spec_set.agent_runs: ...
"""

from __future__ import annotations

from jesus.specs.checks import CHECKS, validate_specs
from jesus.specs.discovery import SpecFile, SpecPathError, discover
from jesus.specs.loader import (
    LoadedObject,
    SpecSet,
    load_documents,
    load_specs,
    load_text,
)
from jesus.specs.problems import Problem, Severity, format_field_path
from jesus.specs.source import Document, SourceError, parse_documents, read_documents

__all__ = [
    "CHECKS",
    "Document",
    "LoadedObject",
    "Problem",
    "Severity",
    "SourceError",
    "SpecFile",
    "SpecPathError",
    "SpecSet",
    "discover",
    "format_field_path",
    "load_documents",
    "load_specs",
    "load_text",
    "parse_documents",
    "read_documents",
    "validate_specs",
]
