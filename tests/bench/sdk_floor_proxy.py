"""The least a Python proxy that calls its provider through the official SDK can be: the floor.

It serves POST /v1/chat/completions on uvicorn with uvloop and httptools (as `jesus router` does) as a
bare ASGI app: it reads the body, sends it on with the openai SDK exactly as the router's
openai-compatible adapter does (`AsyncOpenAI.post` over the SDK's aiohttp transport, the answer read
as JSON), and writes the answer back (a stream event by event). No token, no route, no books, no
metrics, no logs. With `--presidio` it also builds the log redactor `jesus router` installs
(Presidio's pattern recognizers and anonymizer, spaCy among their imports) and redacts one line with
it, so that its memory is the floor of a proxy that redacts with Presidio.

    python -m tests.bench.sdk_floor_proxy UPSTREAM_BASE_URL PORT [--presidio]

The peers benchmark starts it as the `floor` series (--floor): the router's overhead over this
proxy's is what the router itself costs; this proxy's overhead over direct is what no SDK-based
router in Python can go under on the same machine.
"""

from __future__ import annotations

import argparse
import gc
import json
from typing import Any

import openai
import uvicorn

Scope = dict[str, Any]


def build_app(upstream: str) -> Any:
    """The ASGI app forwarding chat completions to `upstream` through the openai SDK."""
    client: openai.AsyncOpenAI | None = None

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal client
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                client = openai.AsyncOpenAI(
                    base_url=upstream,
                    api_key="sk-floor",
                    max_retries=0,
                    http_client=openai.DefaultAioHttpClient(),
                )
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert client is not None
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        payload = json.loads(body)
        stream = bool(payload.pop("stream", False))
        options: Any = {"timeout": 60, "security": {"bearer_auth": True}}
        if not stream:
            answer = await client.post("/chat/completions", body=payload, options=options, cast_to=object)
            await _start(send, b"application/json")
            await send({"type": "http.response.body", "body": json.dumps(answer).encode()})
            return
        payload["stream"] = True
        events = await client.post(
            "/chat/completions",
            body=payload,
            options=options,
            cast_to=object,
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
        await _start(send, b"text/event-stream")
        async for event in events:
            chunk = b"data: " + json.dumps(event).encode() + b"\n\n"
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    return app


async def _start(send: Any, content_type: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})


def main() -> None:
    """Serve until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream")
    parser.add_argument("port", type=int)
    parser.add_argument("--presidio", action="store_true", help="build and use the log redactor")
    args = parser.parse_args()
    if args.presidio:
        from jesus.redaction import RedactionConfig

        redact = RedactionConfig.from_environ({}).patterns_only().redactor()
        assert "127.0.0.1" not in redact(f"listening on 127.0.0.1:{args.port}")
    uvicorn.run(
        build_app(args.upstream),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
