"""A container's probes as a kubelet runs them: httpGet and tcpSocket on 127.0.0.1 (the pods share the
host's network; named ports resolved from the container's ports), exec in a sandbox like the
container's (its root, volumes, user and environment; not inside the running container's
namespaces)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
from collections.abc import Mapping
from typing import Any

import httpx

from jesus.devcluster.podspec import PodSpecError, probe_port
from jesus.devcluster.sandbox import SandboxSpec, bwrap_argv


async def probe_succeeds(
    probe: Mapping[str, Any], container: Mapping[str, Any], sandbox: SandboxSpec, env: Mapping[str, str]
) -> bool:
    """Whether one run of `probe` succeeds within its timeoutSeconds."""
    timeout = float(probe.get("timeoutSeconds", 1))
    try:
        if "httpGet" in probe:
            action = probe["httpGet"]
            port = probe_port(action["port"], container)
            scheme = str(action.get("scheme", "HTTP")).lower()
            url = f"{scheme}://127.0.0.1:{port}{action.get('path', '/')}"
            headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
            # A kubelet does not verify an HTTPS probe's certificate either.
            async with httpx.AsyncClient(verify=False, timeout=timeout) as client:  # nosec B501
                response = await client.get(url, headers=headers)
            return 200 <= response.status_code < 400
        if "tcpSocket" in probe:
            port = probe_port(probe["tcpSocket"]["port"], container)
            _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
            writer.close()
            return True
        if "exec" in probe:
            return await _exec(
                dataclasses.replace(sandbox, argv=list(probe["exec"]["command"])), env, timeout
            )
    except (httpx.HTTPError, OSError, TimeoutError, PodSpecError):
        return False
    return False


async def _exec(sandbox: SandboxSpec, env: Mapping[str, str], seconds: float) -> bool:
    process = await asyncio.create_subprocess_exec(
        *bwrap_argv(sandbox),
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        return await asyncio.wait_for(process.wait(), seconds) == 0
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        return False
