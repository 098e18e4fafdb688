"""Admission policy engines: the embedded one (rego-cpp) and the OPA server client, one interface.

Both evaluate `data.jesus.admission.decision` from the Rego in policies/ over the input document of
jesus.logic.policy_input, and both fail closed.
"""

from __future__ import annotations

from jesus.policy.decision import (
    DECISION_PATH,
    DECISION_REF,
    Decision,
    PolicyEngine,
    PolicyLoadError,
    decision_from_result,
    fail_closed,
)
from jesus.policy.embedded import EmbeddedEngine
from jesus.policy.opa_server import OpaServerEngine
from jesus.policy.sources import PolicySource, default_policy_dir, load_policy_source

__all__ = [
    "DECISION_PATH",
    "DECISION_REF",
    "Decision",
    "EmbeddedEngine",
    "OpaServerEngine",
    "PolicyEngine",
    "PolicyLoadError",
    "PolicySource",
    "decision_from_result",
    "default_policy_dir",
    "fail_closed",
    "load_policy_source",
]
