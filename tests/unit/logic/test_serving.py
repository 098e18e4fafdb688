"""The vLLM Deployment and Service of a serving ModelAdapter, and what live Deployments and pods say."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.builders.adapters import llamacpp_adapter, vllm_adapter
from tests.builders.manifest import drop_field, set_field

from jesus.api.common import LABEL_ADAPTER
from jesus.api.modeladapter import (
    ModelAdapter,
    ModelAdapterConditionType,
    ModelAdapterReason,
    ModelAdapterStatus,
)
from jesus.logic.conditions import find_condition
from jesus.logic.placement import parse_placement
from jesus.logic.serving import (
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    GPU_TAINT_KEY,
    HEALTH_PATH,
    build_inference_deployment,
    build_inference_service,
    endpoint_url,
    llamacpp_model_arguments,
    model_argument,
    needs_update,
    retired_children,
    serving_conflict,
    serving_name,
    serving_status,
    update_patch,
)

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
UID = "6f1c2a7e-0000-4000-8000-000000000001"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def live(
    obj: dict[str, Any], *, namespace: str = "team-ml", uid: str = UID, generation: int = 1
) -> ModelAdapter:
    """A ModelAdapter as the API server returns it: namespace, uid and generation set."""
    obj = set_field(obj, "metadata.namespace", namespace)
    obj = set_field(obj, "metadata.uid", uid)
    obj = set_field(obj, "metadata.generation", generation)
    return ModelAdapter.model_validate(obj)


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def nulls(value: Any, path: str = "") -> list[str]:
    """Paths of None values: the API server would reject or drop them."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
    return []


# --- builders ----------------------------------------------------------------------------------


@pytest.mark.parametrize("gpus", [1, 2, 8])
def test_the_server_runs_tensor_parallel_over_the_replicas_gpus(gpus: int) -> None:
    adapter = live(set_field(vllm_adapter(), "spec.serving.gpu.count", gpus))
    container = container_of(build_inference_deployment(adapter))
    assert container["command"] == ["vllm", "serve"]
    assert f"--tensor-parallel-size={gpus}" in container["args"]
    assert container["resources"]["requests"][GPU_RESOURCE] == str(gpus)
    assert container["resources"]["limits"][GPU_RESOURCE] == str(gpus)


def test_the_command_line_names_model_port_and_served_name_with_extra_args_last() -> None:
    obj = set_field(vllm_adapter(), "spec.serving.port", 8080)
    obj = set_field(obj, "spec.serving.extraArgs", ["--max-model-len=4096", "--enforce-eager"])
    adapter = live(obj)
    args = container_of(build_inference_deployment(adapter))["args"]
    assert args[0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert "--port=8080" in args
    assert f"--served-model-name={adapter.spec.model}" in args
    assert args[-2:] == ["--max-model-len=4096", "--enforce-eager"]


@pytest.mark.parametrize(
    ("uri", "argument"),
    [
        ("hf://meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"),
        ("file:///models/llama", "/models/llama"),
        ("s3://weights/llama-3.1-8b", "s3://weights/llama-3.1-8b"),
        ("gs://weights/qwen", "gs://weights/qwen"),
    ],
)
def test_model_uris_become_what_vllm_loads(uri: str, argument: str) -> None:
    assert model_argument(uri) == argument


@pytest.mark.parametrize(
    ("gpu_type", "affinity_values"),
    [("NVIDIA-H100-80GB-HBM3", ["NVIDIA-H100-80GB-HBM3"]), ("NVIDIA-A10G", ["NVIDIA-A10G"]), (None, None)],
)
def test_a_gpu_type_becomes_required_node_affinity_on_the_product_label(
    gpu_type: str | None, affinity_values: list[str] | None
) -> None:
    obj = vllm_adapter()
    obj = (
        set_field(obj, "spec.serving.gpu.type", gpu_type)
        if gpu_type
        else drop_field(obj, "spec.serving.gpu.type")
    )
    pod_spec = build_inference_deployment(live(obj))["spec"]["template"]["spec"]
    if affinity_values is None:
        assert "affinity" not in pod_spec
        return
    terms = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    [expression] = terms["nodeSelectorTerms"][0]["matchExpressions"]
    assert expression == {"key": GPU_PRODUCT_LABEL, "operator": "In", "values": affinity_values}


def test_serving_pods_tolerate_the_gpu_taint_and_probe_health() -> None:
    deployment = build_inference_deployment(live(vllm_adapter()))
    pod_spec = deployment["spec"]["template"]["spec"]
    assert {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"} in pod_spec["tolerations"]
    container = container_of(deployment)
    port = container["ports"][0]
    assert port["containerPort"] == 8000
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": HEALTH_PATH, "port": port["name"]}


def test_labels_select_the_pods_and_name_the_adapter() -> None:
    adapter = live(vllm_adapter("llama"))
    deployment = build_inference_deployment(adapter)
    selector = deployment["spec"]["selector"]["matchLabels"]
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template_labels.items()
    assert template_labels[LABEL_ADAPTER] == "llama"
    assert template_labels["app.kubernetes.io/managed-by"] == "jesus"
    assert {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"} <= set(
        template_labels
    )


def test_children_are_owned_by_the_adapter_and_hold_no_nulls() -> None:
    adapter = live(vllm_adapter())
    for child in (build_inference_deployment(adapter), build_inference_service(adapter)):
        [owner] = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "ModelAdapter",
            "llama",
            UID,
            True,
        )
        assert child["metadata"]["namespace"] == "team-ml"
        assert nulls(child) == []


def test_the_service_selects_the_deployments_pods_on_the_serving_port() -> None:
    adapter = live(set_field(vllm_adapter(), "spec.serving.port", 9000))
    deployment = build_inference_deployment(adapter)
    service = build_inference_service(adapter)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["port"] == 9000
    assert service["metadata"]["name"] == deployment["metadata"]["name"]
    assert endpoint_url(adapter) == f"http://{service['metadata']['name']}.team-ml.svc:9000/v1"


def test_a_credentials_secret_becomes_the_servers_api_key() -> None:
    with_key = set_field(vllm_adapter(), "spec.credentialsSecretRef", {"name": "llama-key", "key": "token"})
    [env] = container_of(build_inference_deployment(live(with_key)))["env"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "llama-key", "key": "token"}
    assert "env" not in container_of(build_inference_deployment(live(vllm_adapter())))


@pytest.mark.parametrize(
    "name", ["llama", "llama.3.1-8b", "a" * 63, "b" * 200, "x" * 120 + ".y" * 60, "0-starts-with-a-digit"]
)
def test_serving_names_are_dns_1035_labels(name: str) -> None:
    assert DNS_1035.match(serving_name(name))
    assert len(serving_name(name)) <= 63


def test_long_names_that_share_a_prefix_get_different_serving_names() -> None:
    assert serving_name("m" * 100 + "-one") != serving_name("m" * 100 + "-two")


def test_a_spec_change_is_an_update_and_the_same_spec_is_not() -> None:
    adapter = live(vllm_adapter())
    first = build_inference_deployment(adapter)
    assert not needs_update(first, build_inference_deployment(adapter))
    scaled = live(set_field(vllm_adapter(), "spec.serving.replicas", 3), generation=2)
    desired = build_inference_deployment(scaled)
    assert needs_update(first, desired)
    patch = update_patch(desired)
    assert patch["spec"]["replicas"] == 3
    assert not needs_update(patch, desired)
    assert needs_update({"metadata": {}}, desired)


def test_a_hand_scaled_deployment_is_scaled_back() -> None:
    desired = build_inference_deployment(live(vllm_adapter()))
    scaled = {**desired, "spec": {**desired["spec"], "replicas": 5}}
    assert needs_update(scaled, desired)


def test_the_update_patch_removes_an_affinity_the_adapter_no_longer_asks_for() -> None:
    typed = build_inference_deployment(live(vllm_adapter()))
    assert "affinity" in typed["spec"]["template"]["spec"]
    untyped = build_inference_deployment(live(drop_field(vllm_adapter(), "spec.serving.gpu.type")))
    assert needs_update(typed, untyped)
    assert update_patch(untyped)["spec"]["template"]["spec"]["affinity"] is None
    assert (
        update_patch(typed)["spec"]["template"]["spec"]["affinity"]
        == typed["spec"]["template"]["spec"]["affinity"]
    )


SANDBOX_PLACEMENT = parse_placement(
    '{"nodeSelector": {"jesus.dev/sandbox": "true"}, "tolerations": '
    '[{"key": "jesus.dev/sandbox", "operator": "Exists", "effect": "NoSchedule"}]}',
    source="--serving-placement",
)


def test_the_serving_placement_puts_a_cpu_model_on_the_selected_nodes() -> None:
    spec = build_inference_deployment(live(llamacpp_adapter()), SANDBOX_PLACEMENT)["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"jesus.dev/sandbox": "true"}
    assert spec["tolerations"] == [{"key": "jesus.dev/sandbox", "operator": "Exists", "effect": "NoSchedule"}]


def test_a_gpu_model_keeps_its_gpu_toleration_beside_the_placements() -> None:
    spec = build_inference_deployment(live(vllm_adapter()), SANDBOX_PLACEMENT)["spec"]["template"]["spec"]
    assert [t["key"] for t in spec["tolerations"]] == [GPU_TAINT_KEY, "jesus.dev/sandbox"]
    assert GPU_PRODUCT_LABEL in str(spec["affinity"])  # the GPU type's affinity stays too


def test_a_placement_change_is_an_update_and_dropping_it_clears_the_fields() -> None:
    placed = build_inference_deployment(live(llamacpp_adapter()), SANDBOX_PLACEMENT)
    plain = build_inference_deployment(live(llamacpp_adapter()))
    assert needs_update(placed, plain)
    cleared = update_patch(plain)["spec"]["template"]["spec"]
    # A merge patch keeps keys it does not mention: the old selector and tolerations must be nulled.
    assert (cleared["nodeSelector"], cleared["tolerations"], cleared["affinity"]) == (None, None, None)
    kept = update_patch(placed)["spec"]["template"]["spec"]
    assert kept["nodeSelector"] == {"jesus.dev/sandbox": "true"}


# --- observation -------------------------------------------------------------------------------

SCHEDULER_MESSAGE = (
    "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, "
    "2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."
)


def deployment_state(
    *,
    generation: int = 1,
    observed: int = 1,
    available: int = 0,
    ready: int = 0,
    conditions: list[Any] | None = None,
) -> dict[str, Any]:
    """A live Deployment's metadata and status as the Deployment controller writes them."""
    status: dict[str, Any] = {
        "observedGeneration": observed,
        "availableReplicas": available,
        "readyReplicas": ready,
    }
    if conditions:
        status["conditions"] = conditions
    return {"metadata": {"name": "vllm-llama", "generation": generation}, "status": status}


def pod(
    name: str, *, unschedulable: str | None = None, waiting: tuple[str, str] | None = None
) -> dict[str, Any]:
    """A serving pod: placed, or Pending with the scheduler's message, or with a waiting container."""
    status: dict[str, Any] = {"phase": "Pending" if unschedulable else "Running"}
    if unschedulable is not None:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable}
        ]
    if waiting is not None:
        status["containerStatuses"] = [
            {"name": "vllm", "state": {"waiting": {"reason": waiting[0], "message": waiting[1]}}}
        ]
    return {"metadata": {"name": name}, "status": status}


@dataclass(frozen=True)
class Observation:
    """One row: the live state, and what ServingAvailable must say."""

    name: str
    deployment: dict[str, Any] | None
    pods: list[dict[str, Any]] = field(default_factory=list)
    replicas: int = 1
    available: bool = False
    reason: ModelAdapterReason = ModelAdapterReason.DEPLOYMENT_PROGRESSING
    message_contains: str = ""
    ready_replicas: int = 0


OBSERVATIONS = [
    Observation("not created yet", None, message_contains="not created yet"),
    Observation(
        "all replicas available",
        deployment_state(available=2, ready=2),
        replicas=2,
        available=True,
        reason=ModelAdapterReason.DEPLOYMENT_AVAILABLE,
        message_contains="2/2 replicas available at http://vllm-llama.team-ml.svc:8000/v1",
        ready_replicas=2,
    ),
    Observation(
        "one of two available",
        deployment_state(available=1, ready=1),
        pods=[pod("vllm-llama-a")],
        replicas=2,
        message_contains="1/2 replicas available",
        ready_replicas=1,
    ),
    Observation(
        "no GPU node has room",
        deployment_state(),
        pods=[pod("vllm-llama-b", unschedulable=SCHEDULER_MESSAGE)],
        reason=ModelAdapterReason.UNSCHEDULABLE,
        message_contains=SCHEDULER_MESSAGE,
    ),
    Observation(
        "the first unschedulable pod by name speaks",
        deployment_state(available=1),
        pods=[pod("vllm-llama-z", unschedulable="z says"), pod("vllm-llama-a", unschedulable="a says")],
        replicas=2,
        reason=ModelAdapterReason.UNSCHEDULABLE,
        message_contains="a says (pod vllm-llama-a)",
    ),
    Observation(
        "image cannot be pulled",
        deployment_state(),
        pods=[pod("vllm-llama-c", waiting=("ImagePullBackOff", "Back-off pulling image"))],
        reason=ModelAdapterReason.DEPLOYMENT_UNAVAILABLE,
        message_contains="ImagePullBackOff: Back-off pulling image",
    ),
    Observation(
        "rollout past its deadline",
        deployment_state(
            conditions=[
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "stuck",
                }
            ]
        ),
        reason=ModelAdapterReason.DEPLOYMENT_UNAVAILABLE,
        message_contains="stuck",
    ),
    Observation(
        "counts of an older spec do not count",
        deployment_state(generation=3, observed=2, available=1, ready=1),
        message_contains="1/1 replicas available",
        ready_replicas=1,
    ),
    Observation(
        "scaled to zero",
        deployment_state(),
        replicas=0,
        reason=ModelAdapterReason.SCALED_TO_ZERO,
        message_contains="scaled down",
    ),
]


@pytest.mark.parametrize("case", OBSERVATIONS, ids=[case.name for case in OBSERVATIONS])
def test_serving_status(case: Observation) -> None:
    adapter = live(set_field(vllm_adapter(), "spec.serving.replicas", case.replicas), generation=4)
    conditions, status = serving_status(adapter, case.deployment, case.pods, now=T0)
    condition = find_condition(conditions, ModelAdapterConditionType.SERVING_AVAILABLE)
    assert condition is not None
    assert (condition.status == "True", condition.reason) == (case.available, case.reason)
    assert case.message_contains in condition.message
    assert condition.observed_generation == 4
    assert (status.deployment_name, status.service_name) == ("vllm-llama", "vllm-llama")
    assert (status.replicas, status.ready_replicas) == (case.replicas, case.ready_replicas)


def test_the_transition_time_moves_only_when_availability_flips() -> None:
    pending = [pod("vllm-llama-a", unschedulable=SCHEDULER_MESSAGE)]
    adapter = live(vllm_adapter())
    first, _ = serving_status(adapter, deployment_state(), pending, now=T0)
    adapter.status = ModelAdapterStatus(conditions=first)
    again, _ = serving_status(adapter, deployment_state(), [], now=T0 + timedelta(minutes=1))
    [kept] = again
    assert kept.reason == ModelAdapterReason.DEPLOYMENT_PROGRESSING
    assert kept.last_transition_time == first[0].last_transition_time
    adapter.status = ModelAdapterStatus(conditions=again)
    flipped, _ = serving_status(adapter, deployment_state(available=1), [], now=T0 + timedelta(minutes=2))
    assert flipped[0].status == "True"
    assert flipped[0].last_transition_time == "2026-11-22T10:02:00Z"


def test_a_foreign_deployment_of_our_name_is_a_conflict_naming_its_controller() -> None:
    foreign = {
        "kind": "Deployment",
        "metadata": {"ownerReferences": [{"kind": "ModelAdapter", "name": "llama-old", "controller": True}]},
    }
    conditions, status = serving_conflict(live(vllm_adapter()), foreign, now=T0)
    [condition] = conditions
    assert (condition.status, condition.reason) == ("False", ModelAdapterReason.DEPLOYMENT_CONFLICT)
    assert "Deployment vllm-llama" in condition.message
    assert "ModelAdapter llama-old" in condition.message
    assert status.deployment_name == "vllm-llama"


# --- llama.cpp ---------------------------------------------------------------------------------


def test_llamacpp_on_cpu_runs_llama_server_with_threads_context_and_no_gpu() -> None:
    deployment = build_inference_deployment(live(llamacpp_adapter()))
    pod_spec = deployment["spec"]["template"]["spec"]
    container = container_of(deployment)
    assert deployment["metadata"]["name"] == "llamacpp-tiny"
    # The image's entrypoint is llama-server (llama.cpp's image has it at /app, not on PATH).
    assert "command" not in container
    args = container["args"]
    pairs = dict(zip(args[::2], args[1::2], strict=False))
    assert pairs["--hf-repo"] == "ggml-org/tiny-models"
    assert pairs["--hf-file"] == "tiny.gguf"
    assert (pairs["--port"], pairs["--alias"], pairs["--ctx-size"]) == ("8080", "tiny-llama", "2048")
    assert args[args.index("--threads") + 1] == "2"
    assert args[args.index("--n-gpu-layers") + 1] == "0"
    assert "--jinja" in args
    # On CPU: a CPU request the size of its threads, no GPU, no GPU taint to tolerate, no /dev/shm.
    assert container["resources"] == {"requests": {"cpu": "2"}}
    assert "tolerations" not in pod_spec and "affinity" not in pod_spec
    assert [v["name"] for v in pod_spec["volumes"]] == ["model-cache"]
    assert {"name": "LLAMA_CACHE", "value": "/models"} in container["env"]
    assert nulls(deployment) == []


def test_llamacpp_on_gpus_offloads_every_layer_and_asks_for_the_gpus() -> None:
    obj = set_field(llamacpp_adapter(), "spec.serving.gpu", {"count": 2, "type": "NVIDIA-L4"})
    deployment = build_inference_deployment(live(obj))
    container = container_of(deployment)
    assert container["args"][container["args"].index("--n-gpu-layers") + 1] == "999"
    assert container["resources"]["limits"] == {GPU_RESOURCE: "2"}
    pod_spec = deployment["spec"]["template"]["spec"]
    assert {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"} in pod_spec["tolerations"]
    assert "affinity" in pod_spec


def test_the_llamacpp_pod_is_pod_security_restricted_and_its_api_key_comes_from_the_secret() -> None:
    obj = set_field(llamacpp_adapter(), "spec.credentialsSecretRef", {"name": "llama-key", "key": "token"})
    deployment = build_inference_deployment(live(obj))
    pod_security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True and pod_security["runAsUser"] > 0
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    container = container_of(deployment)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert {
        "name": "LLAMA_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "llama-key", "key": "token"}},
    } in container["env"]


@pytest.mark.parametrize(
    ("uri", "arguments"),
    [
        ("hf://ggml-org/gemma-3-1b-it-GGUF", ["--hf-repo", "ggml-org/gemma-3-1b-it-GGUF"]),
        ("hf://ggml-org/gemma-3-1b-it-GGUF:Q4_K_M", ["--hf-repo", "ggml-org/gemma-3-1b-it-GGUF:Q4_K_M"]),
        ("hf://owner/repo/sub/dir/m.gguf", ["--hf-repo", "owner/repo", "--hf-file", "sub/dir/m.gguf"]),
        ("https://models.example.com/m.gguf", ["--model-url", "https://models.example.com/m.gguf"]),
        ("file:///models/m.gguf", ["--model", "/models/m.gguf"]),
    ],
)
def test_model_uris_become_what_llama_server_loads(uri: str, arguments: list[str]) -> None:
    assert llamacpp_model_arguments(uri) == arguments


def test_a_model_uri_llama_server_cannot_load_is_refused_by_the_builder_too() -> None:
    with pytest.raises(ValueError, match="s3://"):
        llamacpp_model_arguments("s3://weights/m.gguf")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("spec.serving.modelURI", "s3://weights/m.gguf"), "llamacpp loads models from hf://"),
        (("spec.provider", "vllm"), "set provider to serving.engine"),
    ],
)
def test_a_llamacpp_spec_that_cannot_run_is_refused(change: tuple[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        live(set_field(llamacpp_adapter(), *change))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("spec.serving.gpu.count", 0), "vllm needs at least one GPU"),
        (("spec.serving.threads", 4), "threads is a llamacpp setting"),
        (("spec.serving.engine", "llamacpp"), "set provider to serving.engine"),
    ],
)
def test_a_vllm_spec_with_llamacpp_settings_is_refused(change: tuple[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        live(set_field(vllm_adapter(), *change))


def test_vllm_takes_the_context_size_as_its_max_model_len() -> None:
    obj = set_field(drop_field(vllm_adapter(), "spec.serving.extraArgs"), "spec.serving.contextSize", 16384)
    assert "--max-model-len=16384" in container_of(build_inference_deployment(live(obj)))["args"]


def test_switching_engines_retires_the_other_engines_children_and_removing_serving_all() -> None:
    llama = live(llamacpp_adapter())
    assert retired_children(llama) == ["vllm-tiny"]
    unserved = set_field(
        drop_field(llamacpp_adapter(), "spec.serving"), "spec.endpoint", "http://llama:8080/v1"
    )
    assert retired_children(live(unserved, generation=2)) == ["vllm-tiny", "llamacpp-tiny"]
