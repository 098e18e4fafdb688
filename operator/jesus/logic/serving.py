"""Self-hosted models: the Deployment and Service of a ModelAdapter with a `serving` block (vLLM, or
llama.cpp's llama-server), and what the observed Deployment and pods say about it.

Pure: builders return plain Kubernetes JSON and `serving_status` reads plain JSON, so the reconciler only
creates, patches and lists. Every GPU decision lives here: the `nvidia.com/gpu` requests, the product
affinity, the taint toleration, vLLM's tensor parallelism across the replica's GPUs, and llama.cpp's
layer offload (all layers on GPUs, none on CPU).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from jesus.api.common import LABEL_ADAPTER, LABEL_MANAGED_BY, Condition
from jesus.api.modeladapter import (
    ModelAdapter,
    ModelAdapterConditionType,
    ModelAdapterReason,
    Serving,
    ServingStatus,
)
from jesus.api.objects import JsonObject, bounded_name, controller_of, owner_reference, spec_digest
from jesus.logic.conditions import set_condition
from jesus.logic.placement import RunnerPlacement

GPU_RESOURCE = "nvidia.com/gpu"
# Where a vLLM pod mounts its memory-backed emptyDir (shared memory for its workers).
POD_SHM = "/dev/shm"  # nosec B108
# Set by NVIDIA GPU feature discovery on every GPU node, e.g. NVIDIA-H100-80GB-HBM3.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# GPU node pools carry this taint so that only pods which ask for GPUs land there.
GPU_TAINT_KEY = "nvidia.com/gpu"

MANAGED_BY = "jesus"
COMPONENT = "inference"
ENGINE_VLLM = "vllm"
ENGINE_LLAMACPP = "llamacpp"
PORT_NAME = "http"
HEALTH_PATH = "/health"
# Annotation holding a digest of what the builders produced, so the reconciler patches only on change
# instead of comparing against fields the API server defaults.
SPEC_DIGEST_ANNOTATION = "jesus.dev/serving-digest"
# vLLM reads the API key it demands from this variable; the router sends the same key.
API_KEY_ENV = "VLLM_API_KEY"
MODEL_CACHE_PATH = "/root/.cache/huggingface"
# llama-server reads its API key from this variable, and downloads hf:// and URL models under LLAMA_CACHE.
LLAMACPP_API_KEY_ENV = "LLAMA_API_KEY"
LLAMACPP_CACHE_PATH = "/models"
# Inside a pod the server listens on every address of the pod's own network namespace; its Service fronts it.
POD_ALL_ADDRESSES = "0.0.0.0"  # nosec B104
# llama-server offloads up to this many layers to the GPUs: more than any model has, so all of them.
ALL_LAYERS = 999
# The llama.cpp pod runs as this user (Pod Security "restricted"; the image's own user may be root).
LLAMACPP_UID = 65532
# What the pod shows as app.kubernetes.io/name, per engine.
ENGINE_APP_NAMES = {ENGINE_VLLM: "vllm", ENGINE_LLAMACPP: "llama.cpp"}
# Loading weights takes minutes: the startup probe allows this long before the pod counts as failed.
STARTUP_SECONDS = 1800
PROBE_PERIOD_SECONDS = 10


def serving_name(adapter_name: str, engine: str = ENGINE_VLLM) -> str:
    """Name of the Deployment and Service of an adapter: `<engine>-<adapter>` as a DNS-1035 label.

    Adapter names are DNS subdomains (dots, up to 253 characters); Service names may hold neither, so
    dots become dashes and long names are cut and given a digest of the full adapter name (two names
    that differ only in a dot or a dash stay apart). The engine in the name means that switching engines
    builds new children; the reconciler retires the old ones.
    """
    return bounded_name(f"{engine}-{adapter_name.replace('.', '-')}", key=adapter_name)


def _child_name(adapter: ModelAdapter) -> str:
    return serving_name(_name(adapter), _serving(adapter).engine)


def retired_children(adapter: ModelAdapter) -> list[str]:
    """Names of Deployments and Services the adapter may still own but no longer wants: every engine's
    when it has no serving block, the other engines' when it switched engines."""
    wanted = _child_name(adapter) if adapter.spec.serving is not None else None
    names = (serving_name(_name(adapter), engine) for engine in ENGINE_APP_NAMES)
    return [name for name in names if name != wanted]


def adapter_label_value(adapter_name: str) -> str:
    """The adapter's name as a label value (at most 63 characters; long names keep a digest)."""
    return bounded_name(adapter_name)


def selector_labels(adapter: ModelAdapter) -> dict[str, str]:
    """The labels that select the serving pods of `adapter` (immutable once the Deployment exists)."""
    name = _name(adapter)
    return {LABEL_ADAPTER: adapter_label_value(name), "app.kubernetes.io/instance": _child_name(adapter)}


def serving_labels(adapter: ModelAdapter) -> dict[str, str]:
    """Every label the Deployment, its pods and the Service carry."""
    return {
        **selector_labels(adapter),
        "app.kubernetes.io/name": ENGINE_APP_NAMES[_serving(adapter).engine],
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/part-of": "jesus",
        LABEL_MANAGED_BY: MANAGED_BY,
    }


def endpoint_url(adapter: ModelAdapter) -> str:
    """The in-cluster OpenAI-compatible base URL of the serving Service."""
    serving = _serving(adapter)
    return f"http://{_child_name(adapter)}.{_namespace(adapter)}.svc:{serving.port}/v1"


def model_argument(model_uri: str) -> str:
    """What vLLM's `serve` takes for a model URI: a Hugging Face repo id for hf://, a local path for
    file://, and the URI itself for object stores (s3://, gs://), which vLLM streams from."""
    scheme, _, rest = model_uri.partition("://")
    if scheme == "hf":
        return rest
    if scheme == "file":
        return rest if rest.startswith("/") else f"/{rest}"
    return model_uri


def vllm_args(adapter: ModelAdapter) -> list[str]:
    """The OpenAI-compatible server's arguments: model, address, the name clients ask for, tensor
    parallelism over the replica's GPUs, then the spec's extra arguments (last, so they can override)."""
    serving = _serving(adapter)
    return [
        model_argument(serving.model_uri),
        f"--host={POD_ALL_ADDRESSES}",
        f"--port={serving.port}",
        f"--served-model-name={adapter.spec.model}",
        f"--tensor-parallel-size={serving.gpu.count}",
        *([f"--max-model-len={serving.context_size}"] if serving.context_size is not None else []),
        *(serving.extra_args or []),
    ]


def llamacpp_model_arguments(model_uri: str) -> list[str]:
    """What llama-server takes for a model URI: --hf-repo (and --hf-file when the URI names a file) for
    hf://, --model-url for http(s)://, --model for file://. The API model admits no other scheme."""
    scheme, _, rest = model_uri.partition("://")
    if scheme == "hf":
        owner, _, after = rest.partition("/")
        repo, _, file = after.partition("/")
        return ["--hf-repo", f"{owner}/{repo}", *(["--hf-file", file] if file else [])]
    if scheme in ("http", "https"):
        return ["--model-url", model_uri]
    if scheme == "file":
        return ["--model", rest if rest.startswith("/") else f"/{rest}"]
    raise ValueError(f"llamacpp cannot load modelURI {model_uri!r}: use hf://, http(s):// or file://")


def llamacpp_args(adapter: ModelAdapter) -> list[str]:
    """llama-server's arguments: model, address, the name clients ask for (--alias), every layer on the
    replica's GPUs (or none on CPU), context and threads when set, chat templates with tool calls
    (--jinja), then the spec's extra arguments (last, so they can override)."""
    serving = _serving(adapter)
    return [
        *llamacpp_model_arguments(serving.model_uri),
        "--host",
        POD_ALL_ADDRESSES,
        "--port",
        str(serving.port),
        "--alias",
        adapter.spec.model,
        "--n-gpu-layers",
        str(ALL_LAYERS if serving.gpu.count else 0),
        *(["--ctx-size", str(serving.context_size)] if serving.context_size is not None else []),
        *(["--threads", str(serving.threads)] if serving.threads is not None else []),
        "--jinja",
        *(serving.extra_args or []),
    ]


def _owner_reference(adapter: ModelAdapter) -> JsonObject:
    """So deleting the adapter garbage-collects its Deployment and Service."""
    identity = {"apiVersion": adapter.api_version, "kind": adapter.kind}
    return owner_reference({**identity, "metadata": adapter.metadata.to_kubernetes()})


def _child_metadata(adapter: ModelAdapter) -> JsonObject:
    """The metadata of the Deployment and the Service: one name, our labels, owned by the adapter."""
    return {
        "name": _child_name(adapter),
        "namespace": _namespace(adapter),
        "labels": serving_labels(adapter),
        "ownerReferences": [_owner_reference(adapter)],
    }


def _affinity(serving: Serving) -> JsonObject | None:
    if serving.gpu.type is None:
        return None
    term = {"matchExpressions": [{"key": GPU_PRODUCT_LABEL, "operator": "In", "values": [serving.gpu.type]}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def _resources(serving: Serving) -> JsonObject:
    if serving.gpu.count:
        # Extended resources need requests equal to limits; the device plugin hands out whole GPUs.
        gpus = {GPU_RESOURCE: str(serving.gpu.count)}
        return {"requests": dict(gpus), "limits": dict(gpus)}
    return {"requests": {"cpu": str(serving.threads or 1)}}


def _api_key_env(adapter: ModelAdapter, variable: str) -> list[JsonObject]:
    secret = adapter.spec.credentials_secret_ref
    if secret is None:
        return []
    return [{"name": variable, "valueFrom": {"secretKeyRef": {"name": secret.name, "key": secret.key}}}]


def _container(adapter: ModelAdapter) -> JsonObject:
    serving = _serving(adapter)
    probe = {"httpGet": {"path": HEALTH_PATH, "port": PORT_NAME}, "periodSeconds": PROBE_PERIOD_SECONDS}
    llamacpp = serving.engine == ENGINE_LLAMACPP
    container: JsonObject = {
        "name": serving.engine,
        "image": serving.image,
        "args": llamacpp_args(adapter) if llamacpp else vllm_args(adapter),
        "ports": [{"name": PORT_NAME, "containerPort": serving.port, "protocol": "TCP"}],
        "resources": _resources(serving),
        "readinessProbe": {**probe, "failureThreshold": 3},
        "livenessProbe": {**probe, "failureThreshold": 6},
        "startupProbe": {**probe, "failureThreshold": STARTUP_SECONDS // PROBE_PERIOD_SECONDS},
    }
    if llamacpp:
        # llama.cpp's server image has llama-server as its entrypoint (/app/llama-server, not on its
        # PATH): the image's entrypoint runs, only the arguments are ours.
        container["volumeMounts"] = [{"name": "model-cache", "mountPath": LLAMACPP_CACHE_PATH}]
        cache = {"name": "LLAMA_CACHE", "value": LLAMACPP_CACHE_PATH}
        container["env"] = [cache, *_api_key_env(adapter, LLAMACPP_API_KEY_ENV)]
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        return container
    container["command"] = ["vllm", "serve"]
    container["volumeMounts"] = [
        {"name": "shm", "mountPath": POD_SHM},
        {"name": "model-cache", "mountPath": MODEL_CACHE_PATH},
    ]
    env = _api_key_env(adapter, API_KEY_ENV)
    if env:
        container["env"] = env
    return container


def _pod_spec(adapter: ModelAdapter, placement: RunnerPlacement) -> JsonObject:
    serving = _serving(adapter)
    pod_spec: JsonObject = {
        "containers": [_container(adapter)],
        # The inference server needs no Kubernetes API access.
        "automountServiceAccountToken": False,
    }
    tolerations = [dict(t) for t in placement.tolerations]
    if serving.gpu.count:
        tolerations.insert(0, {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if placement.node_selector:
        pod_spec["nodeSelector"] = dict(placement.node_selector)
    if serving.engine == ENGINE_LLAMACPP:
        # Pod Security "restricted": llama-server needs no root, and writes only its model cache.
        pod_spec["securityContext"] = {
            "runAsNonRoot": True,
            "runAsUser": LLAMACPP_UID,
            "runAsGroup": LLAMACPP_UID,
            "fsGroup": LLAMACPP_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        pod_spec["volumes"] = [{"name": "model-cache", "emptyDir": {}}]
    else:
        pod_spec["volumes"] = [
            # Tensor parallelism shares tensors between GPU workers through /dev/shm.
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
            {"name": "model-cache", "emptyDir": {}},
        ]
    affinity = _affinity(serving)
    if affinity is not None:
        pod_spec["affinity"] = affinity
    return pod_spec


def build_inference_deployment(
    adapter: ModelAdapter,
    placement: RunnerPlacement | None = None,
    queue_labels: Mapping[str, str] | None = None,
) -> JsonObject:
    """The Deployment that runs `adapter`'s model with its engine on `serving.gpu.count` GPUs per replica
    (llamacpp with 0: on CPU), its pods placed by the operator's `--serving-placement` (a node selector,
    and tolerations besides the GPU one). `queue_labels` (Kueue's queue name and priority class) hand
    it to Kueue: its webhook copies them to the pods, which wait gated until Kueue admits them."""
    serving = _serving(adapter)
    labels = serving_labels(adapter)
    pod_spec = _pod_spec(adapter, placement or RunnerPlacement())
    metadata = _child_metadata(adapter)
    if queue_labels:
        metadata["labels"] = {**metadata["labels"], **queue_labels}
    deployment: JsonObject = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": selector_labels(adapter)},
            # Replace one replica at a time without a surge: a surge pod would need GPUs nobody has spare.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "revisionHistoryLimit": 3,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
    return _with_digest(deployment)


def build_inference_service(adapter: ModelAdapter) -> JsonObject:
    """The ClusterIP Service in front of the serving pods; the router calls it."""
    serving = _serving(adapter)
    service: JsonObject = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _child_metadata(adapter),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(adapter),
            "ports": [{"name": PORT_NAME, "port": serving.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
    return _with_digest(service)


def decided_digest(obj: Mapping[str, Any]) -> str:
    """The digest of what a builder decided for `obj` (labels and spec), stable across runs."""
    return spec_digest({"labels": obj["metadata"].get("labels", {}), "spec": obj["spec"]})


def _with_digest(obj: JsonObject) -> JsonObject:
    obj["metadata"]["annotations"] = {SPEC_DIGEST_ANNOTATION: decided_digest(obj)}
    return obj


def needs_update(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """Whether the live object was built from something other than `desired` (or by someone else), or
    was scaled by hand: the adapter's `serving.replicas` decides how many GPUs the model holds."""
    annotations = live.get("metadata", {}).get("annotations") or {}
    if annotations.get(SPEC_DIGEST_ANNOTATION) != desired["metadata"]["annotations"][SPEC_DIGEST_ANNOTATION]:
        return True
    return bool(live.get("spec", {}).get("replicas") != desired["spec"].get("replicas"))


_PLACEMENT_FIELDS = ("affinity", "nodeSelector", "tolerations")


def update_patch(desired: Mapping[str, Any]) -> JsonObject:
    """The merge patch that brings a live object to `desired` (labels, annotations, owner, spec).

    A Deployment's selector is immutable, and ours depends only on the adapter's name, so sending it
    again is harmless.
    """
    metadata = desired["metadata"]
    spec = desired["spec"]
    pod_spec = spec.get("template", {}).get("spec")
    if pod_spec is not None:
        # A merge patch keeps keys it does not mention: an affinity from an earlier gpu.type, or a node
        # selector and tolerations from an earlier placement or GPU count, must go.
        cleared = {key: None for key in _PLACEMENT_FIELDS if key not in pod_spec}
        spec = {**spec, "template": {**spec["template"], "spec": {**pod_spec, **cleared}}}
    return {
        "metadata": {
            "labels": metadata["labels"],
            "annotations": metadata["annotations"],
            "ownerReferences": metadata["ownerReferences"],
        },
        "spec": spec,
    }


# --- observation -------------------------------------------------------------------------------


def _pod_condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") == type_), None)


def unschedulable_message(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """The scheduler's message for the first pod (by name) it could not place, with the pod's name."""
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", ""))):
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        scheduled = _pod_condition(pod, "PodScheduled")
        if scheduled is not None and scheduled.get("status") == "False":
            message = scheduled.get("message") or scheduled.get("reason") or "the scheduler cannot place it"
            return f"{message} (pod {pod['metadata']['name']})"
    return None


def waiting_message(pods: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a placed pod's container does not run, e.g. ImagePullBackOff or CrashLoopBackOff."""
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", ""))):
        for status in pod.get("status", {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting")
            if waiting and waiting.get("reason") not in (None, "ContainerCreating", "PodInitializing"):
                detail = f": {waiting['message']}" if waiting.get("message") else ""
                where = f"container {status.get('name')} of pod {pod['metadata']['name']}"
                return f"{where} is {waiting['reason']}{detail}"
    return None


def _deployment_failure(deployment: Mapping[str, Any]) -> str | None:
    for condition in deployment.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return str(condition.get("message") or "the Deployment exceeded its progress deadline")
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return str(condition.get("message") or "the Deployment cannot create its pods")
    return None


def serving_status(
    adapter: ModelAdapter,
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    queued: str | None = None,
) -> tuple[list[Condition], ServingStatus]:
    """The ServingAvailable condition and the serving status, from the live Deployment and its pods
    (and, with Kueue, `queued`: what it says of the pods it holds back)."""
    name = _child_name(adapter)
    status = deployment.get("status", {}) if deployment is not None else {}
    observed = ServingStatus(
        deployment_name=name,
        service_name=name,
        replicas=_serving(adapter).replicas,
        ready_replicas=int(status.get("readyReplicas") or 0),
    )
    available, reason, message = serving_availability(adapter, deployment, pods, queued)
    return _serving_condition(adapter, available, reason, message, now), observed


def serving_availability(
    adapter: ModelAdapter,
    deployment: Mapping[str, Any] | None,
    pods: Sequence[Mapping[str, Any]],
    queued: str | None = None,
) -> tuple[bool, ModelAdapterReason, str]:
    """Whether the served model is available, with the condition's reason and message.

    Available when the Deployment has seen its latest spec and as many available replicas as desired;
    otherwise why not: Kueue's word on the pods it holds back (`queued`), the scheduler's message when a
    pod cannot be placed (no GPU node with room, no node of the GPU type), a container's waiting reason,
    a failed rollout, or progress so far.
    """
    replicas = _serving(adapter).replicas
    if deployment is None:
        name = _child_name(adapter)
        return False, ModelAdapterReason.DEPLOYMENT_PROGRESSING, f"Deployment {name} is not created yet"
    if replicas == 0:
        return False, ModelAdapterReason.SCALED_TO_ZERO, "serving.replicas is 0: the model is scaled down"
    status = deployment.get("status", {})
    available = int(status.get("availableReplicas") or 0)
    # Until the Deployment controller has seen the latest spec, its counts describe the previous one.
    current = int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
    if current and available >= replicas:
        message = f"{available}/{replicas} replicas available at {endpoint_url(adapter)}"
        return True, ModelAdapterReason.DEPLOYMENT_AVAILABLE, message
    if queued is not None:
        # Before the scheduler's word: a pod Kueue holds back reads as unschedulable (SchedulingGated).
        return False, ModelAdapterReason.QUEUED_IN_KUEUE, queued
    unschedulable = unschedulable_message(pods)
    if unschedulable is not None:
        return False, ModelAdapterReason.UNSCHEDULABLE, unschedulable
    failure = _deployment_failure(deployment) or waiting_message(pods)
    if failure is not None:
        return False, ModelAdapterReason.DEPLOYMENT_UNAVAILABLE, failure
    ready = int(status.get("readyReplicas") or 0)
    return (
        False,
        ModelAdapterReason.DEPLOYMENT_PROGRESSING,
        f"{available}/{replicas} replicas available, {ready} ready",
    )


def serving_conflict(
    adapter: ModelAdapter, live: Mapping[str, Any], *, now: datetime
) -> tuple[list[Condition], ServingStatus]:
    """ServingAvailable False when a Deployment or Service of our name belongs to another object."""
    name = _child_name(adapter)
    message = (
        f"{live.get('kind', 'object')} {name} already exists and is controlled by {controller_of(live)}; "
        "rename the adapter or remove that object"
    )
    conditions = _serving_condition(adapter, False, ModelAdapterReason.DEPLOYMENT_CONFLICT, message, now)
    return conditions, ServingStatus(
        deployment_name=name, service_name=name, replicas=_serving(adapter).replicas
    )


def serving_unqueued(
    adapter: ModelAdapter, why: str, *, now: datetime
) -> tuple[list[Condition], ServingStatus]:
    """ServingAvailable False when, with Kueue, the adapter's team has no valid LocalQueue name: the
    Deployment is not made (outside a queue it would take GPUs past every quota)."""
    name = _child_name(adapter)
    conditions = _serving_condition(adapter, False, ModelAdapterReason.INVALID_QUEUE_NAME, why, now)
    return conditions, ServingStatus(
        deployment_name=name, service_name=name, replicas=_serving(adapter).replicas
    )


def _serving_condition(
    adapter: ModelAdapter, available: bool, reason: ModelAdapterReason, message: str, now: datetime
) -> list[Condition]:
    return set_condition(
        adapter.status.conditions if adapter.status else None,
        ModelAdapterConditionType.SERVING_AVAILABLE,
        available,
        reason,
        message,
        adapter.metadata.generation,
        now,
    )


def _serving(adapter: ModelAdapter) -> Serving:
    if adapter.spec.serving is None:
        raise ValueError(f"ModelAdapter {adapter.metadata.name!r} has no serving block")
    return adapter.spec.serving


def _name(adapter: ModelAdapter) -> str:
    if not adapter.metadata.name:
        raise ValueError("a ModelAdapter needs metadata.name to be served")
    return adapter.metadata.name


def _namespace(adapter: ModelAdapter) -> str:
    if not adapter.metadata.namespace:
        raise ValueError(f"ModelAdapter {adapter.metadata.name!r} needs metadata.namespace to be served")
    return adapter.metadata.namespace
