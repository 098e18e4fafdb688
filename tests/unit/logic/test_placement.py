"""Where runner pods may be scheduled: the operator's --runner-placement, parsed and put on the Job."""

from __future__ import annotations

import json

import pytest
from tests.builders.agentrun import reconciled_run

from jesus.logic import manifests
from jesus.logic.placement import PlacementError, RunnerPlacement, parse_placement

OWNER = {"apiVersion": "jesus.dev/v1alpha1", "kind": "AgentRun", "metadata": {"name": "r", "uid": "u-1"}}
SANDBOX = {
    "nodeSelector": {"jesus.dev/sandbox": "true"},
    "tolerations": [{"key": "jesus.dev/sandbox", "operator": "Exists", "effect": "NoSchedule"}],
}


def pod_spec(placement: RunnerPlacement) -> dict[str, object]:
    settings = manifests.RunnerSettings(placement=placement)
    job = manifests.build_runner_job(
        reconciled_run(), OWNER, 1, settings, traceparent="00-x-y-01", sealed_token="sealed"
    )
    spec: dict[str, object] = job["spec"]["template"]["spec"]
    return spec


def test_the_runner_pod_gets_the_node_selector_and_tolerations() -> None:
    spec = pod_spec(parse_placement(json.dumps(SANDBOX), source="--runner-placement"))
    assert spec["nodeSelector"] == {"jesus.dev/sandbox": "true"}
    assert spec["tolerations"] == SANDBOX["tolerations"]


def test_without_placement_the_pod_spec_names_no_nodes() -> None:
    spec = pod_spec(RunnerPlacement())
    assert "nodeSelector" not in spec
    assert "tolerations" not in spec


def test_empty_fields_are_no_placement() -> None:
    placement = parse_placement('{"nodeSelector": {}, "tolerations": []}', source="--runner-placement")
    assert placement == RunnerPlacement()
    assert placement.pod_spec_fields() == {}


def test_a_timed_no_execute_toleration_is_kept_as_given() -> None:
    toleration = {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 30,
    }
    placement = parse_placement(json.dumps({"tolerations": [toleration]}), source="f")
    assert placement.tolerations == (toleration,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "--runner-placement: not JSON"),
        ("[]", "--runner-placement: must be a JSON object"),
        ('{"affinity": {}}', "--runner-placement: unknown field 'affinity'"),
        ('{"nodeSelector": ["a"]}', "--runner-placement: nodeSelector must be an object"),
        (
            '{"nodeSelector": {"bad key!": "x"}}',
            "--runner-placement: nodeSelector key 'bad key!' is not a label",
        ),
        ('{"nodeSelector": {"a": 1}}', "--runner-placement: nodeSelector['a'] must be a label value"),
        (
            '{"nodeSelector": {"a": "has space"}}',
            "--runner-placement: nodeSelector['a'] must be a label value",
        ),
        ('{"nodeSelector": {"../../etc": "x"}}', "--runner-placement: nodeSelector key '../../etc' is not"),
        ('{"tolerations": {}}', "--runner-placement: tolerations must be a list"),
        ('{"tolerations": ["x"]}', "--runner-placement: tolerations[0] must be an object"),
        ('{"tolerations": [{"key": "a", "op": "Exists"}]}', "tolerations[0]: unknown field 'op'"),
        (
            '{"tolerations": [{"key": "a", "operator": "In"}]}',
            "tolerations[0].operator must be Equal or Exists",
        ),
        ('{"tolerations": [{"operator": "Exists", "value": "v"}]}', "tolerations[0].value must be empty"),
        ('{"tolerations": [{"value": "v"}]}', "tolerations[0].key is needed when operator is Equal"),
        ('{"tolerations": [{"key": "a", "effect": "Never"}]}', "tolerations[0].effect must be one of"),
        ('{"tolerations": [{"key": 1}]}', "tolerations[0].key must be a string"),
        (
            '{"tolerations": [{"key": "a", "effect": "NoSchedule", "tolerationSeconds": 5}]}',
            "tolerations[0].tolerationSeconds applies only to the NoExecute effect",
        ),
        (
            '{"tolerations": [{"key": "a", "effect": "NoExecute", "tolerationSeconds": true}]}',
            "tolerations[0].tolerationSeconds must be a whole number",
        ),
    ],
)
def test_bad_placement_is_refused_naming_the_source_and_field(text: str, message: str) -> None:
    with pytest.raises(PlacementError) as caught:
        parse_placement(text, source="--runner-placement")
    assert message in str(caught.value)
