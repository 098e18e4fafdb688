"""The chart's tracing values: the OTEL_* variables on the operator and the router when an endpoint
is given, none without one, and careless or hostile values refused with their path."""

from __future__ import annotations

import pytest
from tests.cluster.test_chart import CHART, KUBE_VERSION, container, helm, one, render

OPERATOR, ROUTER = ("jesus-operator", "operator"), ("jesus-router", "router")


def otel_env(manifests: list[dict[str, object]], deployment: str, name: str) -> dict[str, str]:
    env = container(one(manifests, "Deployment", deployment), name).get("env", [])
    return {e["name"]: e.get("value") for e in env if e["name"].startswith("OTEL_")}


def test_an_endpoint_gives_the_operator_and_the_router_their_otel_settings() -> None:
    manifests = render(
        "tracing.otlpEndpoint=http://collector.observability:4318",
        "tracing.samplerArg=0.25",
        "tracing.resourceAttributes=deployment.environment=prod",
    )
    for (deployment, name), service in ((OPERATOR, "jesus-operator"), (ROUTER, "jesus-router")):
        assert otel_env(manifests, deployment, name) == {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.observability:4318",
            "OTEL_SERVICE_NAME": service,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
        }


def test_a_sampler_share_written_as_a_number_is_taken() -> None:
    manifests = render("tracing.otlpEndpoint=http://c:4318", "tracing.samplerArg=1")
    assert otel_env(manifests, *ROUTER)["OTEL_TRACES_SAMPLER_ARG"] == "1"


def test_without_an_endpoint_nothing_traces() -> None:
    manifests = render()
    assert otel_env(manifests, *OPERATOR) == {}
    assert otel_env(manifests, *ROUTER) == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tracing.otlpEndpoint=collector:4318", "/tracing/otlpEndpoint"),  # careless: no scheme
        ("tracing.otlpEndpoint=http://c:4318 x", "/tracing/otlpEndpoint"),  # hostile: a space
        ("tracing.sampler=sometimes", "/tracing/sampler"),
        ("tracing.samplerArg=2", "/tracing/samplerArg"),
        ("tracing.samplerArg=half", "/tracing/samplerArg"),
        ("tracing.exporter=grpc", "additional properties 'exporter' not allowed"),
    ],
)
def test_bad_tracing_values_fail_with_a_message_naming_them(value: str, message: str) -> None:
    result = helm(
        "template", "jesus", str(CHART), f"--kube-version={KUBE_VERSION}", "--set", value, check=False
    )
    assert result.returncode != 0, value
    assert message in result.stderr, result.stderr
