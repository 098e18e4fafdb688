"""Reading bwrap's --info-fd on the event loop: the pid when it comes (whole or in pieces), None when
bwrap ends first or says nothing in time, and never a thread held."""

from __future__ import annotations

import asyncio
import os
import threading

from jesus.devcluster.kubelet import _child_pid


async def test_the_pid_is_read_whole_or_in_pieces() -> None:
    read, write = os.pipe()
    os.write(write, b'{\n    "child-pid": 4')

    async def rest() -> None:
        await asyncio.sleep(0.05)
        os.write(write, b"2\n}\n")

    task = asyncio.create_task(rest())
    assert await _child_pid(read, 5) == 42
    await task
    os.close(write)


async def test_bwrap_ending_first_gives_none() -> None:
    read, write = os.pipe()
    os.write(write, b"not json")
    os.close(write)
    assert await _child_pid(read, 5) is None


async def test_a_silent_sandbox_gives_none_in_time_and_holds_no_thread() -> None:
    read, write = os.pipe()
    threads = threading.active_count()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _child_pid(read, 0.2) is None
    assert 0.2 <= loop.time() - started < 5
    assert threading.active_count() == threads
    # The read end is closed (the transport closes it on the loop's next turn): a write has no reader.
    await asyncio.sleep(0.05)
    try:
        os.write(write, b"x")
    except BrokenPipeError:
        pass
    else:
        raise AssertionError("the read end was left open")
    finally:
        os.close(write)
