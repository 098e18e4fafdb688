"""Local fakes of the model providers' HTTP APIs, for tests and benchmarks.

Each fake is a real HTTP server on 127.0.0.1 (a free port) that speaks one provider's wire
protocol, so the official SDKs are the clients, unchanged. Script what it does per request:

    async with serve_openai("vllm") as fake:           # or serve_anthropic()
        fake.script(Reply(text="hi"), Fail(429, headers={"retry-after": "1"}), Hang(), Drop())
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="x", max_retries=0)
        ...
        assert fake.requests[0].json["messages"][0]["content"] == "hello"

Behaviours: `Reply` (text and/or tool calls, usage, streamed or not as the request asks, with
optional delay, mid-stream drop or missing end), `Fail` (status + the provider's error body and
headers), `StreamFail` (an error event inside a 200 stream), `Hang` (no answer), `Drop` (close the
connection), `Raw` (any body: malformed answers). When the queue is empty, `default` answers
(`serve_openai(default=Reply())` for benchmarks); with no default, a 500 says nothing was scripted.
Requests the real provider would refuse (a tool result without its call, a call left unanswered,
missing fields; see `request_rules`) get the provider's 400 unless the fake is built with
`strict=False`. `unused_base_url()` gives a URL whose connections are refused. See docs/adapters.md.
"""

from tests.providers.behaviours import Behaviour, Drop, Fail, FakeToolCall, Hang, Raw, Reply, StreamFail
from tests.providers.openai_wire import DIALECTS, Dialect
from tests.providers.server import (
    FakeProvider,
    RecordedRequest,
    serve,
    serve_anthropic,
    serve_in_thread,
    serve_openai,
    unused_base_url,
)

__all__ = [
    "DIALECTS",
    "Behaviour",
    "Dialect",
    "Drop",
    "Fail",
    "FakeProvider",
    "FakeToolCall",
    "Hang",
    "Raw",
    "RecordedRequest",
    "Reply",
    "StreamFail",
    "serve",
    "serve_anthropic",
    "serve_in_thread",
    "serve_openai",
    "unused_base_url",
]
