"""Remote adapters and RoutePolicies on the real API server: credentials decide an adapter's readiness,
and a policy reports which adapters of its chain can serve."""

from __future__ import annotations

import base64
from typing import Any

from tests.builders.adapters import openai_adapter, scripted_adapter
from tests.builders.routes import route_policy
from tests.cluster.operator_process import (
    OperatorProcess,
    apply_objects,
    condition,
    get_object,
    wait_for,
)

from jesus.devcluster import ControlPlane

API_KEY = "sk-cluster-test-never-shown"


def api_key_secret(name: str = "openai-key") -> dict[str, Any]:
    """The Secret openai_adapter() refers to, with its apiKey."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"apiKey": base64.b64encode(API_KEY.encode()).decode()},
    }


def with_condition(
    plane: ControlPlane, namespace: str, what: str, type_: str, status: str, reason: str | None = None
) -> Any:
    obj = get_object(plane, namespace, *what.split("/"))
    found = condition(obj, type_)
    if found is None or found["status"] != status or (reason is not None and found["reason"] != reason):
        return None
    return obj


def test_a_remote_adapter_is_ready_only_with_its_secret(
    crds: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply_objects(crds, namespace, openai_adapter("gpt"))
    obj = wait_for(
        lambda: with_condition(crds, namespace, "modeladapter/gpt", "Ready", "False", "CredentialsMissing"),
        what="gpt not Ready for want of its Secret",
        operator=operator,
    )
    assert "openai-key" in condition(obj, "Ready")["message"]
    assert condition(obj, "CredentialsResolved")["reason"] == "SecretNotFound"
    assert obj["status"]["selfHosted"] is False
    events = crds.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=gpt", "-o", "name"
    ).stdout
    assert events.strip(), "a Warning event records why the adapter is not ready"

    apply_objects(crds, namespace, api_key_secret())
    obj = wait_for(
        lambda: with_condition(crds, namespace, "modeladapter/gpt", "Ready", "True", "AdapterReady"),
        what="gpt Ready once its Secret exists",
        operator=operator,
    )
    assert condition(obj, "CredentialsResolved")["reason"] == "CredentialsFound"
    assert API_KEY not in str(obj)


def test_a_route_policy_reports_which_adapters_of_its_chain_are_ready(
    crds: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply_objects(
        crds,
        namespace,
        openai_adapter("gpt"),
        scripted_adapter("canned"),
        route_policy("main", ("gpt", "canned", "ghost")),
    )
    obj = wait_for(
        lambda: (
            (found := get_object(crds, namespace, "routepolicy", "main"))
            and (found.get("status") or {}).get("resolvedChain") == ["canned"]
            # The chain can resolve before the operator has observed gpt at all ("not yet observed");
            # wait for the settled state, in which gpt's own reason is known.
            and "gpt (CredentialsMissing" in ((condition(found, "Ready") or {}).get("message") or "")
            and found
        ),
        what="RoutePolicy main resolving to canned, with gpt's reason",
        operator=operator,
    )
    ready, resolved = condition(obj, "Ready"), condition(obj, "AdaptersResolved")
    assert ready is not None
    assert resolved is not None
    assert (ready["status"], ready["reason"]) == ("True", "ChainReady")
    assert "gpt (CredentialsMissing" in ready["message"]
    assert "ghost (not found)" in ready["message"]
    assert (resolved["status"], resolved["reason"]) == ("False", "AdapterNotFound")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]

    # An adapter that becomes ready joins the chain in its place, without touching the policy.
    apply_objects(crds, namespace, api_key_secret())
    wait_for(
        lambda: (
            (get_object(crds, namespace, "routepolicy", "main").get("status") or {}).get("resolvedChain")
            == ["gpt", "canned"]
        ),
        what="gpt joining the resolved chain ahead of canned",
        operator=operator,
    )


def test_a_route_policy_without_a_ready_adapter_says_why(
    crds: ControlPlane, namespace: str, operator: OperatorProcess
) -> None:
    apply_objects(crds, namespace, openai_adapter("gpt"), route_policy("only-gpt", ("gpt",)))

    def unready_policy() -> Any:
        obj = with_condition(crds, namespace, "routepolicy/only-gpt", "Ready", "False", "NoReadyAdapter")
        return obj if obj and "gpt (CredentialsMissing" in condition(obj, "Ready")["message"] else None

    obj = wait_for(unready_policy, what="RoutePolicy only-gpt without a ready adapter", operator=operator)
    assert condition(obj, "Ready")["message"].startswith("no adapter of the chain is ready")
    assert obj["status"].get("resolvedChain", []) == []
