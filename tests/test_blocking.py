"""run_sync: a private loop in scripts, the running loop made reentrant in notebooks.

nest_asyncio2 patches asyncio for a whole process (the Task class, the loop's
class), as it does in a kernel. So every scenario that blocks inside a running
loop runs in a fresh Python process: the patch starts from nothing there, as in
a fresh kernel, and never leaks into the other tests of this session.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nbchat.blocking import run_sync
from tests.helpers import TIMEOUT

ROOT = Path(__file__).resolve().parent.parent


def in_fresh_process(scenario: Callable[[], None]) -> str:
    """Run ``scenario`` (a function of this module) in a new interpreter; return what it printed.

    Fails with the child's stderr if it exits with an error or prints one.
    """
    code = f"from tests.test_blocking import {scenario.__name__}; {scenario.__name__}()"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COV_CORE")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


class FreshLoop(asyncio.selector_events.BaseSelectorEventLoop):
    """A loop class nothing has patched yet, as the kernel's is before its first blocking cell.

    nest_asyncio2 patches the class of the loop it is given; a subclass of its
    own keeps each scenario's starting point the same whatever ran before.
    """


# Scenarios, each run by in_fresh_process


def two_blocking_calls_in_one_step() -> None:
    """A cell that blocks twice, run by a loop that was not reentrant when the cell started.

    The outer loop is asyncio's own ``_run_once``: it counts the ready handles
    (the cell and one more, as when a comm or zmq callback arrives with the
    execute request) and then pops exactly that many.
    """
    loop = FreshLoop()
    asyncio.set_event_loop(loop)
    ran: list[str] = []

    def cell() -> None:
        ran.append(str(run_sync(asyncio.sleep(0, "first"))))
        ran.append(str(run_sync(asyncio.sleep(0, "second"))))
        # Stop at the next iteration; a timer, so the ready queue stays as the calls left it.
        loop.call_later(0, loop.stop)

    loop.call_soon(cell)
    loop.call_soon(ran.append, "other")  # ready in the same iteration as the cell
    loop.run_forever()
    loop.close()
    print(" ".join(ran))


def blocking_in_later_steps() -> None:
    """Blocking calls in several steps of a running loop, each seeing the loop it runs in."""
    loop = FreshLoop()
    asyncio.set_event_loop(loop)
    seen: list[bool] = []

    async def where() -> bool:
        return asyncio.get_running_loop() is loop

    async def main() -> None:
        for _ in range(3):
            seen.append(run_sync(where()))
            await asyncio.sleep(0)

    loop.run_until_complete(main())
    loop.close()
    print(seen)


def other_tasks_run_while_blocked() -> None:
    """A task started before a blocking call keeps running while the call waits for it."""
    loop = FreshLoop()
    asyncio.set_event_loop(loop)

    async def main() -> str:
        answered: asyncio.Future[str] = loop.create_future()

        async def server() -> None:
            await asyncio.sleep(0.01)
            answered.set_result("answered")

        task = loop.create_task(server())
        result = run_sync(asyncio.wait_for(answered, TIMEOUT))  # blocks this step
        await task
        return result

    print(loop.run_until_complete(main()))
    loop.close()


def nested_blocking_calls() -> None:
    """A blocking call made from inside a coroutine that a blocking call is running."""
    loop = FreshLoop()
    asyncio.set_event_loop(loop)

    async def inner() -> str:
        await asyncio.sleep(0)
        return "inner"

    async def outer() -> str:
        await asyncio.sleep(0)
        return "outer(" + run_sync(inner()) + ")"

    def cell() -> None:
        print(run_sync(outer()))
        loop.call_soon(loop.stop)

    loop.call_soon(cell)
    loop.run_forever()
    loop.close()


# Tests


def test_two_blocking_calls_in_the_cell_that_patches_the_loop() -> None:
    """Two blocking calls in the cell that patches the loop keep asyncio's ready count true."""
    assert in_fresh_process(two_blocking_calls_in_one_step).split() == ["other", "first", "second"]


def test_blocking_calls_run_on_the_running_loop() -> None:
    """Inside a running loop every blocking call runs its coroutine on that same loop."""
    assert in_fresh_process(blocking_in_later_steps).strip() == "[True, True, True]"


def test_other_tasks_progress_while_a_call_blocks() -> None:
    """The loop keeps running other tasks while a blocking call waits, so it cannot deadlock."""
    assert in_fresh_process(other_tasks_run_while_blocked).strip() == "answered"


def test_nested_blocking_calls() -> None:
    """A blocking call inside a coroutine run by another blocking call completes both."""
    assert in_fresh_process(nested_blocking_calls).strip() == "outer(inner)"


def test_no_running_loop_reuses_one_private_loop() -> None:
    """Without a running loop every call runs on the same loop, so tasks survive between calls."""

    async def start() -> tuple[asyncio.AbstractEventLoop, asyncio.Task[str]]:
        gate = asyncio.Event()

        async def waiter() -> str:
            await gate.wait()
            return "kept"

        task = asyncio.get_running_loop().create_task(waiter())
        started.append(gate)
        return asyncio.get_running_loop(), task

    async def finish(task: asyncio.Task[str]) -> tuple[asyncio.AbstractEventLoop, str]:
        started[0].set()
        return asyncio.get_running_loop(), await asyncio.wait_for(task, TIMEOUT)

    started: list[asyncio.Event] = []
    first, task = run_sync(start())
    second, result = run_sync(finish(task))
    assert first is second
    assert result == "kept"
    assert not first.is_running()


def test_no_running_loop_raises_the_coroutines_error() -> None:
    """An exception from the coroutine reaches the caller unchanged."""

    async def fail() -> None:
        raise LookupError("from the coroutine")

    with pytest.raises(LookupError, match="from the coroutine"):
        run_sync(fail())
