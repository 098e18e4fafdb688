"""The named inputs of the Rego tests (policies/admission/cases_test.rego), read through the opa binary."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def rego_cases(opa: Path) -> dict[str, Any]:
    """Every named input of the Rego tests: admitted runs, denials for every rule, failures of each kind."""
    result = subprocess.run(
        [str(opa), "eval", "--data", str(POLICIES), "--format", "raw", "data.jesus.admission_test.cases"],
        capture_output=True,
        text=True,
        check=True,
    )
    cases: dict[str, Any] = json.loads(result.stdout)
    return cases
