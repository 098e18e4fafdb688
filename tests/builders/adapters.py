"""ModelAdapters: as spec-file JSON (scripted, hosted OpenAI, served vLLM), as parsed models of the standard
scenario (a hosted Anthropic model and a served Llama), and the adapter library's config."""

from __future__ import annotations

from typing import Any

from tests.builders.defaults import NAMESPACE
from tests.builders.manifest import Obj, manifest

from jesus.api import ModelAdapter
from jesus_adapters import AdapterConfig, Price

# --- spec-file JSON ------------------------------------------------------------------------------


def scripted_adapter(
    name: str = "scripted",
    *,
    text: str = "done",
    replies: list[Obj] | None = None,
    model: str = "scripted-1",
    input_price: str = "1.00",
    output_price: str = "2.00",
    classifications: tuple[str, ...] = ("public", "internal"),
    **kw: Any,
) -> Obj:
    """A ModelAdapter with provider scripted; by default one text reply, else the `replies` script."""
    spec: Obj = {
        "provider": "scripted",
        "model": model,
        "pricing": {"inputPerMillionTokens": input_price, "outputPerMillionTokens": output_price},
        "dataClassifications": list(classifications),
        "scripted": {
            "replies": replies
            if replies is not None
            else [{"text": text, "usage": {"inputTokens": 10, "outputTokens": 5}}]
        },
    }
    return manifest("ModelAdapter", name, spec, **kw)


def answering_adapter(
    name: str, *, replies: int = 50, errors: tuple[str, ...] = (), price: str = "1.00"
) -> Obj:
    """A scripted adapter that fails once with each of `errors`, then answers `replies` times (1000 in, 200
    out); every run (its attempts together) plays this script from the start."""
    script: list[Obj] = [{"error": {"class": e, "message": f"scripted {e}"}} for e in errors]
    script += [{"text": f"{name} answered", "usage": {"inputTokens": 1000, "outputTokens": 200}}] * replies
    return scripted_adapter(
        name, replies=script, model=f"{name}-model", input_price=price, output_price=price
    )


def openai_adapter(name: str = "openai", **kw: Any) -> Obj:
    """A ModelAdapter for the hosted OpenAI API, with a Secret reference and rate limits."""
    spec: Obj = {
        "provider": "openai",
        "model": "gpt-4.1-mini",
        "credentialsSecretRef": {"name": "openai-key", "key": "apiKey"},
        "pricing": {"inputPerMillionTokens": "0.40", "outputPerMillionTokens": "1.60"},
        "limits": {"requestsPerMinute": 500, "tokensPerMinute": 200000},
        "dataClassifications": ["public", "internal"],
    }
    return manifest("ModelAdapter", name, spec, **kw)


def vllm_adapter(name: str = "llama", **kw: Any) -> Obj:
    """A self-hosted ModelAdapter: vLLM served by the platform on one GPU."""
    spec: Obj = {
        "provider": "vllm",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "dataClassifications": ["public", "internal", "confidential"],
        "serving": {
            "image": "vllm/vllm-openai:v0.11.0",
            "modelURI": "hf://meta-llama/Llama-3.1-8B-Instruct",
            "gpu": {"count": 1, "type": "NVIDIA-H100-80GB-HBM3"},
            "replicas": 1,
            "extraArgs": ["--max-model-len=8192"],
        },
    }
    return manifest("ModelAdapter", name, spec, **kw)


def llamacpp_adapter(name: str = "tiny", **kw: Any) -> Obj:
    """A self-hosted ModelAdapter: llama.cpp's llama-server run by the platform on CPU."""
    spec: Obj = {
        "provider": "llamacpp",
        "model": "tiny-llama",
        "dataClassifications": ["public", "internal"],
        "serving": {
            "engine": "llamacpp",
            "image": "ghcr.io/ggml-org/llama.cpp:server",
            "modelURI": "hf://ggml-org/tiny-models/tiny.gguf",
            "gpu": {"count": 0},
            "threads": 2,
            "contextSize": 2048,
            "port": 8080,
        },
    }
    return manifest("ModelAdapter", name, spec, **kw)


# --- parsed models of the standard scenario ------------------------------------------------------


def build_hosted_adapter(
    *,
    name: str = "claude",
    model: str = "claude-sonnet-4-5",
    classifications: tuple[str, ...] = ("public", "internal"),
    input_price: str = "3.00",
    output_price: str = "15.00",
    ready: bool | None = None,
) -> ModelAdapter:
    """An Anthropic adapter; `ready` sets a Ready condition (None leaves status out, as in spec files)."""
    return _with_ready(
        {
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "provider": "anthropic",
                "model": model,
                "credentialsSecretRef": {"name": "anthropic", "key": "api-key"},
                "pricing": {"inputPerMillionTokens": input_price, "outputPerMillionTokens": output_price},
                "dataClassifications": list(classifications),
            },
        },
        ready,
    )


def build_served_adapter(
    *,
    name: str = "llama",
    model: str = "llama-3.3-70b",
    gpus: int = 1,
    classifications: tuple[str, ...] = ("public", "internal", "confidential", "restricted"),
    ready: bool | None = None,
) -> ModelAdapter:
    """A vLLM adapter the platform serves itself on `gpus` GPUs per replica."""
    return _with_ready(
        {
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "provider": "vllm",
                "model": model,
                "dataClassifications": list(classifications),
                "serving": {
                    "image": "vllm/vllm-openai:v0.11.0",
                    "modelURI": "hf://meta-llama/Llama-3.3-70B-Instruct",
                    "gpu": {"count": gpus, "type": "NVIDIA-H100-80GB-HBM3"},
                },
            },
        },
        ready,
    )


def _with_ready(body: dict[str, Any], ready: bool | None) -> ModelAdapter:
    if ready is not None:
        body["status"] = {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": "2026-11-22T03:00:00Z",
                    "reason": "AdapterReady" if ready else "DeploymentUnavailable",
                }
            ]
        }
    return ModelAdapter.model_validate(body)


def standard_adapters() -> dict[str, ModelAdapter]:
    """The two adapters of the standard scenario's route, by name."""
    return {"claude": build_hosted_adapter(), "llama": build_served_adapter()}


# --- the adapter library -------------------------------------------------------------------------


def adapter_config(provider: str, base_url: str | None, **overrides: Any) -> AdapterConfig:
    """A config for `provider` at `base_url`, with a test key and a model name."""
    fields: dict[str, Any] = {
        "provider": provider,
        "model": "test-model",
        "base_url": base_url,
        "api_key": "sk-test",
        "price": Price(input_micros_per_mtok=3_000_000, output_micros_per_mtok=15_000_000),
    }
    fields.update(overrides)
    return AdapterConfig(**fields)
