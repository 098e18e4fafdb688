"""A real llama.cpp server behind the llamacpp adapter, the router and `jesus run --live`.

The server is llama-cpp-python's OpenAI-compatible server, compiled once from source by `make tools`,
serving a tiny random-weight model: its words are nonsense, but its protocol, streaming, token counts
and errors are the real server's. Nothing here is a fake.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.builders.adapters import adapter_config
from tests.builders.chat import chat_request
from tests.builders.llamacpp_server import ALIAS, LlamaCppServer
from tests.providers.calls import collect, failure_of, response_of

from jesus.cli import main
from jesus_adapters import ErrorKind, Message, ModelAdapter, StreamDone, TextDelta, build_adapter
from jesus_adapters.types import Price

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "llamacpp-local.yaml"
PRICE = Price(input_micros_per_mtok=100_000, output_micros_per_mtok=200_000)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppServer]:
    server = LlamaCppServer(tmp_path_factory.mktemp("llamacpp"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def adapter(llama: LlamaCppServer) -> AsyncIterator[ModelAdapter]:
    """The llamacpp profile's adapter, pointed at the server (closed after the test)."""
    built = build_adapter(adapter_config("llamacpp", llama.base_url, model=ALIAS, price=PRICE))
    try:
        yield built
    finally:
        await built.aclose()


def test_the_server_lists_the_model_under_the_name_clients_ask_for(llama: LlamaCppServer) -> None:
    assert llama.models() == [ALIAS]


async def test_a_call_returns_the_servers_text_and_token_counts(adapter: ModelAdapter) -> None:
    response = await response_of(adapter, chat_request(max_tokens=12), stream=False, timeout_seconds=60)
    assert response.provider == "llamacpp"
    assert not response.usage_estimated  # counted by the server, not estimated by us
    assert response.usage.input_tokens > 5  # the system prompt and question, in the chat template
    # llama-cpp-python counts the sampled token that reached the limit too: 13 for a limit of 12. We
    # meter what the server reports.
    assert 1 <= response.usage.output_tokens <= 13
    assert response.finish_reason in ("length", "stop")


async def test_a_stream_without_usage_from_the_server_is_estimated_and_says_so(adapter: ModelAdapter) -> None:
    # llama-cpp-python's server sends no usage on streams (llama-server does, on its last chunk): the
    # adapter estimates the tokens and marks the figures as estimated, never as the server's.
    response = await response_of(adapter, chat_request(max_tokens=12), stream=True, timeout_seconds=60)
    assert response.usage_estimated
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0


async def test_a_stream_is_deltas_then_done_and_the_deltas_are_the_text(adapter: ModelAdapter) -> None:
    events = await collect(adapter, chat_request(max_tokens=12), timeout_seconds=60)
    done = events[-1]
    assert isinstance(done, StreamDone)
    deltas = [e.text for e in events[:-1] if isinstance(e, TextDelta)]
    assert "".join(deltas) == done.response.content
    assert done.response.usage.output_tokens >= 1


async def test_a_prompt_longer_than_the_context_is_context_too_long_and_not_retried(
    adapter: ModelAdapter,
) -> None:
    # Careless input: about 4,000 tokens into a 2,048-token context.
    long = chat_request(Message("user", "the model run " * 1400), max_tokens=8)
    error = await failure_of(adapter, long, timeout_seconds=60)
    assert error.kind is ErrorKind.CONTEXT_TOO_LONG, error
    assert not error.retryable


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    import json

    code = main(["run", *args, "--output", "json"])
    return code, json.loads(capsys.readouterr().out)


def example_at(server: LlamaCppServer, tmp_path: Path) -> Path:
    """The shipped example with its llama.cpp endpoint pointed at `server`."""
    documents = list(yaml.safe_load_all(EXAMPLE.read_text()))
    for document in documents:
        if document["kind"] == "ModelAdapter" and document["spec"]["provider"] == "llamacpp":
            document["spec"]["endpoint"] = server.base_url
    path = tmp_path / EXAMPLE.name
    path.write_text(yaml.safe_dump_all(documents))
    return path


def test_a_live_run_falls_back_from_a_dead_gateway_to_llamacpp_and_meters_its_tokens(
    llama: LlamaCppServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, record = run_json(
        capsys, str(example_at(llama, tmp_path)), "--live", "--artifacts", str(tmp_path / "a")
    )
    assert code == 0, record
    assert (record["outcome"], record["dryRun"]) == ("Succeeded", False)
    [call] = record["calls"]
    assert (call["adapter"], call["provider"], call["model"]) == ("tiny-llama", "llamacpp", ALIAS)
    [fallback] = call["fallbacks"]
    assert (fallback["from"], fallback["to"], fallback["errorClass"]) == (
        "hosted-gateway",
        "tiny-llama",
        "Connection",
    )
    tokens_in, tokens_out = call["inputTokens"], call["outputTokens"]
    assert tokens_in > 0 and tokens_out > 0
    assert record["usage"] == {"inputTokens": tokens_in, "outputTokens": tokens_out}
    # The example's prices: 0.10 and 0.20 per million tokens, rounded up to a whole micro-unit.
    assert call["costMicros"] == math.ceil((tokens_in * 100_000 + tokens_out * 200_000) / 1_000_000)
    assert record["finalAnswer"]  # nonsense words, but the server's


def test_a_live_run_whose_whole_chain_is_down_fails_naming_each_adapter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Hostile to the route: the llama.cpp server is gone too (nothing listens on the example's port 9).
    documents = list(yaml.safe_load_all(EXAMPLE.read_text()))
    for document in documents:
        if document["kind"] == "ModelAdapter" and document["spec"]["provider"] == "llamacpp":
            document["spec"]["endpoint"] = "http://127.0.0.1:9/v1"
    path = tmp_path / "down.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    code, record = run_json(capsys, str(path), "--live", "--artifacts", str(tmp_path / "a"))
    assert code == 1
    assert record["outcome"] == "ModelFailed"
    [call] = record["calls"]
    assert [a["adapter"] for a in call["attempts"]] == ["hosted-gateway", "tiny-llama"]
    assert {a["errorKind"] for a in call["attempts"]} == {"Connection"}
