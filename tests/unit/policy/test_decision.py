"""Turning a raw policy result into a Decision: only the documented shape gets through."""

from __future__ import annotations

from typing import Any

import pytest

from jesus.api import PolicyDecision
from jesus.policy import DECISION_REF, decision_from_result, fail_closed


def test_well_formed_denial_keeps_reasons_and_warnings() -> None:
    decision = decision_from_result({"allow": False, "reasons": ["r1", "r2"], "warnings": ["w"]}, "test")
    assert (decision.allow, decision.reasons, decision.warnings) == (False, ("r1", "r2"), ("w",))
    assert decision.decided
    assert decision.engine == "test"
    assert decision.as_json() == {"allow": False, "reasons": ["r1", "r2"], "warnings": ["w"]}


def test_well_formed_admission() -> None:
    decision = decision_from_result({"allow": True, "reasons": [], "warnings": []}, "test")
    assert decision.allow
    assert decision.decided


@pytest.mark.parametrize(
    ("result", "complaint"),
    [
        (None, f"{DECISION_REF} is missing, not an object"),
        ([True], "not an object"),
        ({"allow": "yes", "reasons": [], "warnings": []}, ".allow is str 'yes', not a boolean"),
        ({"reasons": [], "warnings": []}, ".allow is missing, not a boolean"),
        ({"allow": True, "warnings": []}, ".reasons is missing, not a list of strings"),
        ({"allow": True, "reasons": [1], "warnings": []}, ".reasons is list [1], not a list of strings"),
        ({"allow": True, "reasons": [], "warnings": "w"}, ".warnings is str 'w', not a list of strings"),
        ({"allow": True, "reasons": ["why"], "warnings": []}, "allows the run but gives reasons to deny it"),
    ],
)
def test_malformed_results_fail_closed(result: Any, complaint: str) -> None:
    decision = decision_from_result(result, "test")
    assert not decision.allow
    assert not decision.decided
    assert decision.error is not None
    assert complaint in decision.error
    assert complaint in decision.reasons[0]


def test_denial_without_reasons_is_explained() -> None:
    decision = decision_from_result({"allow": False, "reasons": [], "warnings": []}, "test")
    assert not decision.allow
    assert decision.reasons == ("the policy denied the run without giving a reason",)


def test_fail_closed_names_the_engine_and_the_cause() -> None:
    decision = fail_closed("opa-server", "the OPA server is unreachable")
    assert not decision.allow
    assert decision.error == "the OPA server is unreachable"
    assert decision.reasons == (
        "no policy decision (opa-server): the OPA server is unreachable; the run is not admitted without one",
    )


@pytest.mark.parametrize(
    ("decision", "reason"),
    [
        (decision_from_result({"allow": True, "reasons": [], "warnings": []}, "t"), "PolicyAllowed"),
        (decision_from_result({"allow": False, "reasons": ["no"], "warnings": []}, "t"), "PolicyDenied"),
        (fail_closed("t", "server down"), "PolicyUnavailable"),
    ],
)
def test_condition_reason_tells_denied_from_unavailable(decision: Any, reason: str) -> None:
    assert decision.condition_reason.value == reason


def test_status_form_fits_the_api_bounds() -> None:
    reasons = [f"reason {i} " + "x" * 2000 for i in range(70)]
    decision = decision_from_result({"allow": False, "reasons": reasons, "warnings": ["w"]}, "t")
    status = decision.to_status("2026-11-22T04:00:00Z")
    assert status.allowed is False
    assert status.reasons is not None
    assert len(status.reasons) == 64
    assert all(len(reason) <= 1024 for reason in status.reasons)
    assert status.reasons[0].startswith("reason 0 ")
    assert status.reasons[-1] == "... and 7 more"
    assert status.warnings == ["w"]
    assert status.evaluated_at == "2026-11-22T04:00:00Z"
    # It validates as part of an AgentRun status: the API server would accept it.
    assert PolicyDecision.model_validate(status.model_dump(by_alias=True)) == status


def test_status_form_of_an_admission_has_no_reasons() -> None:
    status = decision_from_result({"allow": True, "reasons": [], "warnings": []}, "t").to_status(
        "2026-11-22T04:00:00Z"
    )
    assert (status.allowed, status.reasons, status.warnings) == (True, None, None)


def test_reasons_and_warnings_come_in_code_point_order() -> None:
    result = {"allow": False, "reasons": ['tool "0"', 'tool ""', "b"], "warnings": ["é", "e"]}
    decision = decision_from_result(result, "t")
    assert decision.reasons == ("b", 'tool ""', 'tool "0"')
    assert decision.warnings == ("e", "é")
