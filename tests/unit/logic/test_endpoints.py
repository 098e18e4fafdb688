"""Where an adapter's calls go, established from the endpoint URL and the serving block, never the label."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jesus.api.modeladapter import ModelAdapter
from jesus.logic.endpoints import AdapterEndpoint, adapter_endpoint, is_cluster_url

SERVING = {"image": "vllm/vllm-openai:v0.11.0", "modelURI": "hf://meta-llama/Llama-3.1-8B-Instruct"}


def adapter(provider: str, **spec: Any) -> ModelAdapter:
    body: dict[str, Any] = {"provider": provider, "model": "m", **spec}
    if provider in ("anthropic", "openai"):
        body["credentialsSecretRef"] = {"name": "k", "key": "k"}
    if provider == "scripted":
        body["scripted"] = {"replies": [{"text": "hi"}]}
    return ModelAdapter.model_validate({"metadata": {"name": "a", "namespace": "team"}, "spec": body})


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (adapter("anthropic"), AdapterEndpoint(None, served=False, in_cluster=False)),
        (
            adapter("openai", endpoint="https://api.openai.com/v1"),
            AdapterEndpoint("https://api.openai.com/v1", False, False),
        ),
        (adapter("scripted"), AdapterEndpoint(None, served=False, in_cluster=True)),
        (adapter("vllm", serving=SERVING), AdapterEndpoint("http://vllm-a.team.svc:8000/v1", True, True)),
        # the provider label says self-hosted; the URL says the internet
        (
            adapter("vllm", endpoint="https://llm.evil.example/v1"),
            AdapterEndpoint("https://llm.evil.example/v1", False, False),
        ),
        (
            adapter("llamacpp", endpoint="http://10.0.0.7:8080/v1"),
            AdapterEndpoint("http://10.0.0.7:8080/v1", False, False),
        ),
        # an endpoint overrides the serving Service, as the router reads it: not served, not inside
        (
            adapter("vllm", serving=SERVING, endpoint="https://llm.evil.example/v1"),
            AdapterEndpoint("https://llm.evil.example/v1", False, False),
        ),
        (
            adapter("openai-compatible", endpoint="http://llama-8b.models.svc:8000/v1"),
            AdapterEndpoint("http://llama-8b.models.svc:8000/v1", False, True),
        ),
        (
            adapter("anthropic", endpoint="http://proxy.ai.svc.cluster.local/v1"),
            AdapterEndpoint("http://proxy.ai.svc.cluster.local/v1", False, True),
        ),
    ],
)
def test_adapter_endpoint_facts(model: ModelAdapter, expected: AdapterEndpoint) -> None:
    assert adapter_endpoint(model) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://llama.models.svc:8000/v1",
        "http://llama.models.svc/v1",
        "https://llama.models.svc.cluster.local:8443/v1",
        "http://LLAMA.Models.SVC:8000/v1",
        "http://llama.models.svc.:8000/v1",
        "http://user:pw@llama.models.svc:8000/v1",
    ],
)
def test_service_names_are_inside(url: str) -> None:
    assert is_cluster_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.anthropic.com/v1",
        "http://llama.models.svc.evil.example/v1",  # a Service-like prefix on a public domain
        "http://llama.models.svc.cluster.local.evil.example/v1",
        "http://evil.example/llama.models.svc",  # in the path, not the host
        "http://llama.models.svc@evil.example/v1",  # user info, not the host
        "http://evil.example?x=.svc",
        "http://evil.example#a.b.svc",
        "http://vllm:8000/v1",  # a bare name may resolve outside the cluster
        "http://models.svc/v1",  # no namespace: not a Service name
        "http://a.b.c.svc/v1",
        "http://a..svc/v1",
        "http://localhost:8080/v1",
        "http://127.0.0.1:8080/v1",
        "http://[::1]:8080/v1",
        "http://10.96.0.10/v1",
        "http://192.168.1.2/v1",
        "http://llama.models.svc.other-domain/v1",
        "http://llama.models.svc:99999999/v1",
        "http://[broken/v1",
        "",
        "not a url",
    ],
)
def test_everything_else_is_outside(url: str) -> None:
    assert not is_cluster_url(url)


def test_another_cluster_domain() -> None:
    assert is_cluster_url("http://a.b.svc.corp.internal/v1", cluster_domain="corp.internal")
    assert not is_cluster_url("http://a.b.svc.cluster.local/v1", cluster_domain="corp.internal")


@given(st.text(max_size=80))
def test_never_raises_and_only_service_hosts_are_inside(text: str) -> None:
    if is_cluster_url(text):
        assert ".svc" in text.lower()
