"""CPU per call of one POST /chat/completions from this process: bare aiohttp, the openai SDK as the
router's adapter calls it (`AsyncOpenAI.post` over the SDK's aiohttp transport, the answer as JSON),
and `chat.completions.create` over aiohttp and over httpx. The upstream is the fake provider of the
peers benchmark, in its own process, so the CPU measured is the client's alone.

    .venv/bin/python -m tests.bench.bench_sdk_call [--calls 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import openai
import uvloop
from tests.bench.bench_router_peers import MESSAGES, MODEL, upstream_process

BODY: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "max_tokens": 64}
WARMUP = 200


async def measure(name: str, call: Callable[[], Awaitable[object]], calls: int) -> None:
    """Print the CPU time per call and the wall P50 of `calls` sequential calls."""
    for _ in range(WARMUP):
        await call()
    started_cpu = time.process_time()
    walls = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        walls.append(time.perf_counter() - started)
    cpu_ms = (time.process_time() - started_cpu) / calls * 1000
    print(f"{name:34s} CPU per call {cpu_ms:.3f} ms   wall P50 {statistics.median(walls) * 1000:.3f} ms")


async def bench(upstream: str, calls: int) -> None:
    """Each client in turn against `upstream`."""
    async with aiohttp.ClientSession() as session:

        async def bare() -> object:
            headers = {"authorization": "Bearer sk-bench"}
            async with session.post(f"{upstream}/chat/completions", json=BODY, headers=headers) as answer:
                return await answer.json()

        await measure("bare aiohttp", bare, calls)
    options: Any = {"timeout": 60, "security": {"bearer_auth": True}}
    over_aiohttp = openai.AsyncOpenAI(
        base_url=upstream, api_key="sk-bench", max_retries=0, http_client=openai.DefaultAioHttpClient()
    )
    over_httpx = openai.AsyncOpenAI(base_url=upstream, api_key="sk-bench", max_retries=0)

    async def post() -> object:
        return await over_aiohttp.post("/chat/completions", body=dict(BODY), options=options, cast_to=object)

    async def create() -> object:
        return await over_aiohttp.chat.completions.create(**BODY)

    async def create_httpx() -> object:
        return await over_httpx.chat.completions.create(**BODY)

    await measure("openai SDK post (the router's way)", post, calls)
    await measure("openai SDK create, aiohttp", create, calls)
    await measure("openai SDK create, httpx", create_httpx, calls)
    await over_aiohttp.close()
    await over_httpx.close()


def main() -> None:
    """Run and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with upstream_process() as upstream:
        uvloop.run(bench(upstream, args.calls))


if __name__ == "__main__":
    main()
