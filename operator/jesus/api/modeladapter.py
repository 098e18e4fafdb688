"""ModelAdapter: one model endpoint, its price, limits and the data it may receive.

With a `serving` block the platform runs the model itself (a vLLM Deployment and Service with GPU
requests); provider `scripted` replays canned replies so runs work offline and in tests.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from jesus.api.common import (
    ApiModel,
    CommonConditionType,
    Conditions,
    DataClassification,
    Money,
    ObjectMeta,
    SecretKeyReference,
    Url,
    parse_money,
    present,
)
from jesus.api.rules import CelRule, ListType
from jesus_adapters.errors import ErrorKind

KIND = "ModelAdapter"
PLURAL = "modeladapters"


class Provider(enum.StrEnum):
    """Which wire protocol and SDK the adapter uses."""

    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    OPENAI_COMPATIBLE = "openai-compatible"
    VLLM = "vllm"
    LLAMACPP = "llamacpp"
    SCRIPTED = "scripted"


# Providers that need an endpoint (their own, or the one a serving block creates).
ENDPOINT_PROVIDERS = frozenset({Provider.OPENAI_COMPATIBLE, Provider.VLLM, Provider.LLAMACPP})
# Providers whose API needs a key.
KEYED_PROVIDERS = frozenset({Provider.ANTHROPIC, Provider.OPENAI})
SELF_HOSTED_PROVIDERS = frozenset({Provider.VLLM, Provider.LLAMACPP})
# The classifications personal data belongs to: an adapter that accepts neither may not receive it, so
# the router redacts personal data and secrets from every prompt it sends there (docs/redaction.md).
PERSONAL_DATA_CLASSIFICATIONS = frozenset({DataClassification.CONFIDENTIAL, DataClassification.RESTRICTED})


class ModelAdapterConditionType(enum.StrEnum):
    """Condition types of a ModelAdapter."""

    READY = CommonConditionType.READY.value
    CREDENTIALS_RESOLVED = "CredentialsResolved"
    SERVING_AVAILABLE = "ServingAvailable"


class ModelAdapterReason(enum.StrEnum):
    """Reasons on ModelAdapter conditions."""

    ADAPTER_READY = "AdapterReady"
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_KEY_MISSING = "SecretKeyMissing"
    CREDENTIALS_FOUND = "CredentialsFound"
    NO_CREDENTIALS_NEEDED = "NoCredentialsNeeded"
    DEPLOYMENT_PROGRESSING = "DeploymentProgressing"
    DEPLOYMENT_AVAILABLE = "DeploymentAvailable"
    DEPLOYMENT_UNAVAILABLE = "DeploymentUnavailable"
    NOT_SELF_HOSTED = "NotSelfHosted"
    CREDENTIALS_MISSING = "CredentialsMissing"
    UNSCHEDULABLE = "Unschedulable"
    SCALED_TO_ZERO = "ScaledToZero"
    DEPLOYMENT_CONFLICT = "DeploymentConflict"
    QUEUED_IN_KUEUE = "QueuedInKueue"
    """With Kueue: serving pods wait for Kueue to admit them (the message is Kueue's)."""
    INVALID_QUEUE_NAME = "InvalidQueueName"
    """With Kueue: the LocalQueue naming rule makes no valid name for the adapter's team."""


class Pricing(ApiModel):
    """What the provider charges; prices are decimal strings per million tokens."""

    input_per_million_tokens: Money = "0"
    """Price of one million input (prompt) tokens."""
    output_per_million_tokens: Money = "0"
    """Price of one million output (completion) tokens."""
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    """ISO 4217 currency of the prices; must match the currency of the Budgets that pay for the calls."""

    @property
    def input_micros_per_million(self) -> int:
        """Input price in micro-units per million tokens."""
        return parse_money(self.input_per_million_tokens)

    @property
    def output_micros_per_million(self) -> int:
        """Output price in micro-units per million tokens."""
        return parse_money(self.output_per_million_tokens)


class RateLimits(ApiModel):
    """Client-side rate limits the router enforces before the provider does."""

    requests_per_minute: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """Most requests per minute sent to this adapter; unset means no limit."""
    tokens_per_minute: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    """Most tokens (input plus output) per minute; unset means no limit."""


class GpuRequest(ApiModel):
    """GPUs per serving replica."""

    count: Annotated[int, Field(ge=0, le=16)] = 1
    """GPUs per replica (`nvidia.com/gpu` requests and limits); 0 runs llamacpp on CPU only."""
    type: (
        Annotated[
            str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
        ]
        | None
    ) = None
    """GPU product to schedule on (the `nvidia.com/gpu.product` node label), e.g. NVIDIA-H100-80GB-HBM3."""


# Where llama.cpp's server can load a model from: a Hugging Face repo, a URL it downloads, a local file.
LLAMACPP_MODEL_SCHEMES = ("hf://", "http://", "https://", "file://")


class Serving(ApiModel):
    """How the platform runs the model itself: a Deployment and Service."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self.engine == 'llamacpp' || self.gpu.count >= 1",
            message="vllm needs at least one GPU per replica; only llamacpp runs on CPU (gpu.count 0)",
            check=lambda s: s.engine == "llamacpp" or s.gpu.count >= 1,
            field="gpu.count",
        ),
        CelRule(
            rule="self.engine == 'llamacpp' || !has(self.threads)",
            message="threads is a llamacpp setting: vllm sizes its own workers",
            check=lambda s: s.engine == "llamacpp" or s.threads is None,
            field="threads",
        ),
        CelRule(
            rule=(
                "self.engine != 'llamacpp' || "
                + " || ".join(f"self.modelURI.startsWith('{scheme}')" for scheme in LLAMACPP_MODEL_SCHEMES)
            ),
            message="llamacpp loads models from hf://, http://, https:// or file:// URIs",
            check=lambda s: s.engine != "llamacpp" or s.model_uri.startswith(LLAMACPP_MODEL_SCHEMES),
            field="modelURI",
        ),
    )

    engine: Literal["vllm", "llamacpp"] = "vllm"
    """Inference engine: vllm (GPUs), or llamacpp (llama.cpp's llama-server, on CPU or GPUs)."""
    image: Annotated[str, Field(min_length=1, max_length=512)]
    """Container image of the engine, e.g. vllm/vllm-openai:v0.11.0 or ghcr.io/ggml-org/llama.cpp:server."""
    model_uri: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[a-z][a-z0-9+.-]*://\S+$")] = (
        Field(alias="modelURI")
    )
    """Where the weights come from, e.g. hf://meta-llama/Llama-3.1-8B-Instruct or s3://bucket/path (vllm);
    hf://owner/repo[:quant], hf://owner/repo/file.gguf, https://host/file.gguf or file:///path (llamacpp)."""
    context_size: Annotated[int, Field(ge=1, le=10_485_760)] | None = None
    """Context length in tokens (vllm --max-model-len, llamacpp --ctx-size); the engine's default if unset."""
    threads: Annotated[int, Field(ge=1, le=1024)] | None = None
    """CPU threads for generation (llamacpp only); also the pod's CPU request on CPU."""
    gpu: GpuRequest = Field(default_factory=GpuRequest)
    """GPUs per replica."""
    replicas: Annotated[int, Field(ge=0, le=64)] = 1
    """Number of serving replicas; 0 scales the model down."""
    extra_args: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=64)] | None = None
    """Extra command-line arguments for the engine, e.g. --max-model-len=8192."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    """Port the engine listens on inside the pod."""


class ScriptedUsage(ApiModel):
    """Token usage the scripted reply reports."""

    input_tokens: Annotated[int, Field(ge=0)] = 0
    """Input tokens charged for the reply."""
    output_tokens: Annotated[int, Field(ge=0)] = 0
    """Output tokens charged for the reply."""


class ScriptedToolCall(ApiModel):
    """A tool call the scripted model makes."""

    name: Annotated[str, Field(min_length=1, max_length=128)]
    """Tool name, as the MCP server publishes it."""
    arguments: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Arguments of the call, a JSON object."""


class ScriptedErrorClass(enum.StrEnum):
    """Error classes a scripted reply can simulate (the adapters' error taxonomy)."""

    # A chosen subset of the taxonomy, in the order the CRD lists it; a unit test holds it inside.
    RATE_LIMITED = ErrorKind.RATE_LIMITED.value
    OVERLOADED = ErrorKind.OVERLOADED.value
    TIMEOUT = ErrorKind.TIMEOUT.value
    CONNECTION = ErrorKind.CONNECTION.value
    INVALID_REQUEST = ErrorKind.INVALID_REQUEST.value
    MALFORMED_RESPONSE = ErrorKind.MALFORMED_RESPONSE.value


class ScriptedError(ApiModel):
    """A failure the scripted model simulates instead of replying, to exercise fallback chains."""

    error_class: ScriptedErrorClass = Field(alias="class")
    """Which failure to simulate."""
    message: Annotated[str, Field(max_length=1024)] = ""
    """Message of the simulated failure."""


def _one_reply_form(reply: ScriptedReply) -> bool:
    return sum(present(v) for v in (reply.text, reply.tool_calls, reply.error)) == 1


class ScriptedReply(ApiModel):
    """One canned model turn: text, tool calls, or a simulated error."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="[has(self.text), has(self.toolCalls), has(self.error)].filter(x, x).size() == 1",
            message="a scripted reply has exactly one of text, toolCalls or error",
            check=_one_reply_form,
        ),
    )

    text: Annotated[str, Field(max_length=65536)] | None = None
    """The assistant's text answer."""
    tool_calls: Annotated[list[ScriptedToolCall], Field(min_length=1, max_length=32)] | None = None
    """Tool calls the assistant makes in this turn."""
    error: ScriptedError | None = None
    """A failure to simulate instead of replying."""
    usage: ScriptedUsage | None = None
    """Token usage to report; unset estimates it from the text (about four characters a token)."""


class Scripted(ApiModel):
    """Canned replies for provider scripted, one per model call, in order; a run that needs more fails."""

    replies: Annotated[list[ScriptedReply], Field(min_length=1, max_length=256)]
    """The replies, in the order the model gives them."""


def _endpoint_present(spec: ModelAdapterSpec) -> bool:
    return spec.provider not in ENDPOINT_PROVIDERS or present(spec.endpoint) or present(spec.serving)


class ModelAdapterSpec(ApiModel):
    """Desired state of a ModelAdapter."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule=(
                "self.provider in ['openai-compatible', 'vllm', 'llamacpp']"
                " ? (has(self.endpoint) || has(self.serving)) : true"
            ),
            message=(
                "endpoint is required for providers openai-compatible, vllm and llamacpp"
                " unless serving runs the model"
            ),
            check=_endpoint_present,
            field="endpoint",
        ),
        CelRule(
            rule="self.provider in ['anthropic', 'openai'] ? has(self.credentialsSecretRef) : true",
            message="credentialsSecretRef is required for providers anthropic and openai",
            check=lambda s: s.provider not in KEYED_PROVIDERS or present(s.credentials_secret_ref),
            field="credentialsSecretRef",
        ),
        CelRule(
            rule="!has(self.serving) || self.provider == self.serving.engine",
            message=(
                "serving runs the model with its engine: set provider to serving.engine (vllm or llamacpp)"
            ),
            check=lambda s: s.serving is None or s.provider.value == s.serving.engine,
            field="serving",
        ),
        CelRule(
            rule="(self.provider == 'scripted') == has(self.scripted)",
            message="the scripted block is required for provider scripted and allowed only there",
            check=lambda s: (s.provider is Provider.SCRIPTED) == present(s.scripted),
            field="scripted",
        ),
    )

    provider: Provider
    """The provider: anthropic, openai, openai-compatible, vllm, llamacpp, or scripted (canned replies)."""
    model: Annotated[str, Field(min_length=1, max_length=256)]
    """The provider's model name, e.g. claude-sonnet-4-5 or gpt-4.1-mini."""
    endpoint: Url | None = None
    """Base URL of the API; defaults to the provider's public API, or the serving Service with serving."""
    credentials_secret_ref: SecretKeyReference | None = None
    """Secret key holding the API key; only the router reads it, runners never see it."""
    pricing: Pricing = Field(default_factory=Pricing)
    """Prices per million tokens; used to meter cost and reserve budgets."""
    limits: RateLimits | None = None
    """Rate limits the router enforces for this adapter."""
    data_classifications: Annotated[
        list[DataClassification],
        Field(min_length=1, max_length=4),
        ListType.as_set(),
    ] = Field(default_factory=lambda: [DataClassification.PUBLIC])
    """Data classifications this adapter may receive; runs with other classifications never reach it."""
    serving: Serving | None = None
    """Run the model in the cluster (a vLLM or llama.cpp Deployment and Service) and call that Service."""
    scripted: Scripted | None = None
    """Canned replies for provider scripted."""

    @property
    def self_hosted(self) -> bool:
        """Whether the model runs on infrastructure the platform controls (serving block, vLLM, llama.cpp)."""
        return self.serving is not None or self.provider in SELF_HOSTED_PROVIDERS

    @property
    def receives_personal_data(self) -> bool:
        """Whether prompts may reach this adapter unredacted: it accepts a classification personal data
        belongs to (confidential, restricted), or it is scripted and nothing leaves the process."""
        return self.provider is Provider.SCRIPTED or not PERSONAL_DATA_CLASSIFICATIONS.isdisjoint(
            self.data_classifications
        )


class ServingStatus(ApiModel):
    """What the operator observed of the serving Deployment."""

    deployment_name: str | None = None
    """Name of the Deployment that runs the model."""
    service_name: str | None = None
    """Name of the Service in front of it."""
    replicas: Annotated[int, Field(ge=0)] = 0
    """Desired replicas."""
    ready_replicas: Annotated[int, Field(ge=0)] = 0
    """Replicas that pass their readiness probe."""


class ModelAdapterStatus(ApiModel):
    """Observed state of a ModelAdapter, written by the operator."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """The metadata.generation this status describes."""
    conditions: Conditions | None = None
    """Ready, CredentialsResolved and (when serving) ServingAvailable."""
    endpoint: Url | None = None
    """Where the router reaches the model (the serving Service URL for self-hosted models)."""
    self_hosted: bool | None = None
    """Whether the platform runs this model itself."""
    serving: ServingStatus | None = None
    """State of the serving Deployment, when there is one."""


class ModelAdapter(ApiModel):
    """A model endpoint the router may call: provider, model, credentials, prices, limits, data rules."""

    api_version: Literal["jesus.dev/v1alpha1"] = "jesus.dev/v1alpha1"
    """jesus.dev/v1alpha1"""
    kind: Literal["ModelAdapter"] = "ModelAdapter"
    """ModelAdapter"""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    """Standard object metadata."""
    spec: ModelAdapterSpec
    """Desired state."""
    status: ModelAdapterStatus | None = None
    """Observed state; written by the operator only."""
