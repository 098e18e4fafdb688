"""Adapter overhead: one call through an adapter against the same call made directly with the SDK.

Run: .venv/bin/python -m tests.bench.bench_adapters [--calls N]
Both clients call the same local fake provider (tests/providers) in the same process, one call at a
time, interleaved; the first sixth of the calls are warm-up and dropped. Prints P50 and P99 of each
kind of call and the median of the paired differences (adapter minus direct).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import anthropic
import openai
from tests.builders.adapters import adapter_config
from tests.builders.chat import chat_request
from tests.providers import Reply, serve_anthropic, serve_openai

from jesus_adapters import ModelAdapter, build_adapter
from jesus_adapters.anthropic_messages import to_anthropic_messages
from jesus_adapters.openai_chat import to_openai_messages

Call = Callable[[], Awaitable[object]]


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def timed(call: Call) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


async def compare(label: str, direct: Call, adapted: Call, streamed: Call, calls: int) -> None:
    """Interleave the three kinds of call, so machine noise falls on all of them alike."""
    results: dict[str, list[float]] = {"sdk direct": [], "adapter complete": [], "adapter stream": []}
    differences: list[float] = []
    for number in range(calls):
        # Swap who goes first every round: the call after another one finds a warmer loop.
        if number % 2:
            direct_ms, adapted_ms = await timed(direct), await timed(adapted)
        else:
            adapted_ms, direct_ms = await timed(adapted), await timed(direct)
        streamed_ms = await timed(streamed)
        if number < calls // 6:
            continue  # warm-up
        results["sdk direct"].append(direct_ms)
        results["adapter complete"].append(adapted_ms)
        results["adapter stream"].append(streamed_ms)
        differences.append(adapted_ms - direct_ms)
    for name, samples in results.items():
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        print(f"{label:9s} {name:17s} P50 {p50:6.3f} ms  P99 {p99:6.3f} ms")
    overhead_us = statistics.median(differences) * 1000
    print(f"{label:9s} adapter overhead (median of paired differences): {overhead_us:.0f} µs")


def adapter_calls(adapter: ModelAdapter) -> tuple[Call, Call]:
    request = chat_request()

    async def complete() -> object:
        return await adapter.complete(request, timeout_seconds=5)

    async def stream() -> object:
        return [event async for event in adapter.stream(request, timeout_seconds=5)]

    return complete, stream


async def compare_and_close(
    label: str,
    direct: Call,
    adapter: ModelAdapter,
    client: openai.AsyncOpenAI | anthropic.AsyncAnthropic,
    calls: int,
) -> None:
    """Compare the SDK's own call with the adapter's, then close both clients."""
    complete, stream = adapter_calls(adapter)
    await compare(label, direct, complete, stream, calls)
    await adapter.aclose()
    await client.close()


async def bench_openai(calls: int) -> None:
    async with serve_openai("vllm", default=Reply(text="A haiku is a short poem.")) as fake:
        adapter = build_adapter(adapter_config("vllm", fake.base_url))
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0)
        messages = to_openai_messages(chat_request().messages)

        async def direct() -> object:
            return await client.chat.completions.create(
                model="test-model",
                messages=messages,  # type: ignore[arg-type]  # the adapters' plain dicts
                max_tokens=256,
                timeout=5,
            )

        await compare_and_close("vllm", direct, adapter, client, calls)


async def bench_anthropic(calls: int) -> None:
    async with serve_anthropic(default=Reply(text="A haiku is a short poem.")) as fake:
        adapter = build_adapter(adapter_config("anthropic", fake.base_url, model="claude-haiku-4-5"))
        client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="sk-test", max_retries=0)
        system, messages = to_anthropic_messages(chat_request().messages)

        async def direct() -> object:
            return await client.messages.create(
                model="claude-haiku-4-5",
                system=system,
                messages=messages,  # type: ignore[arg-type]  # the adapters' plain dicts
                max_tokens=256,
                timeout=5,
            )

        await compare_and_close("anthropic", direct, adapter, client, calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600, help="calls per series")
    args = parser.parse_args()
    asyncio.run(bench_openai(args.calls))
    asyncio.run(bench_anthropic(args.calls))


if __name__ == "__main__":
    main()
