"""run_sync: the running loop made reentrant in notebooks, one idle loop elsewhere, Ctrl-C.

nest_asyncio2 patches asyncio for a whole process (the Task class, the loop's
class), as it does in a kernel. So every scenario that blocks inside a running
loop runs in a fresh Python process: the patch starts from nothing there, as in
a fresh kernel, and never leaks into the other tests of this session. Terminal
IPython is a real ``ipython`` process on a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nbchat.client.blocking import run_sync
from nbchat.exceptions import ServerError
from tests.helpers import TIMEOUT

pytestmark = pytest.mark.loopback

ROOT = Path(__file__).resolve().parents[2]


def start_in_fresh_process(scenario: Callable[[], None]) -> subprocess.Popen[str]:
    """Start ``scenario`` (a function of this module) in a new interpreter, its output piped."""
    code = f"from tests.client.test_blocking import {scenario.__name__}; {scenario.__name__}()"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    """Wait for ``process``; return what it printed, failing if it erred or wrote to stderr."""
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert err == "", err  # no traceback, no "Task was destroyed", no "Event loop is closed"
    return out


def in_fresh_process(scenario: Callable[[], None]) -> str:
    """Run ``scenario`` in a new interpreter; return what it printed (see :func:`finish`)."""
    return finish(start_in_fresh_process(scenario))


def interrupt_when_blocking(process: subprocess.Popen[str]) -> str:
    """Send Ctrl-C's SIGINT once ``process`` prints ``blocking``; return all it printed."""
    assert process.stdout is not None
    first = process.stdout.readline()  # the scenario prints this line, then blocks
    assert first == "blocking\n", first + finish(process)
    process.send_signal(signal.SIGINT)
    return first + finish(process)


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


async def wait_forever() -> None:
    """Say that the caller now blocks, wait until cancelled, and show that cleanup ran."""
    print("blocking", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.sleep(0)  # cleanup that needs the loop, as ask's cancel to the server does
        print("cleaned up", flush=True)


def interrupted_without_a_running_loop() -> None:
    """Ctrl-C during a blocking call in a script, then another call on the same loop."""
    try:
        run_sync(wait_forever())
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
    print(run_sync(asyncio.sleep(0, "still usable")))


def interrupted_inside_a_running_loop() -> None:
    """Ctrl-C during a blocking call in a cell, as a kernel interrupt delivers it."""
    loop = FreshLoop()
    asyncio.set_event_loop(loop)

    def cell() -> None:
        try:
            run_sync(wait_forever())
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
        print(run_sync(asyncio.sleep(0, "still usable")))
        loop.call_later(0, loop.stop)

    loop.call_soon(cell)
    loop.run_forever()
    loop.close()


def interrupted_while_nested() -> None:
    """Ctrl-C during a blocking call made inside a coroutine that a blocking call runs."""
    loop = FreshLoop()
    asyncio.set_event_loop(loop)

    async def outer() -> None:
        await asyncio.sleep(0)
        run_sync(wait_forever())

    def cell() -> None:
        try:
            run_sync(outer())
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
        print(run_sync(asyncio.sleep(0, "still usable")))
        loop.call_later(0, loop.stop)

    loop.call_soon(cell)
    loop.run_forever()
    loop.close()


def tasks_left_on_the_private_loop() -> None:
    """A script whose blocking call leaves a task running, as a client's connection does."""

    async def connection() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # closing a connection needs the loop
            print("connection closed", flush=True)

    async def start() -> None:
        asyncio.get_running_loop().create_task(connection())
        await asyncio.sleep(0)

    run_sync(start())
    print("exiting", flush=True)


def client_script() -> None:
    """A plain script using a client synchronously, against the built-in server in a thread."""
    from nbchat import ChatClient
    from nbchat.server import DemoServer

    server = DemoServer.start_in_thread(port=0, delay=0)
    client = ChatClient(url=server.url)
    print(client.ask_sync("What is 6*7?", timeout=TIMEOUT).text)
    print(client.ask_sync("count to 3", timeout=TIMEOUT).text)


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


def test_ctrl_c_cancels_a_blocking_call_in_a_script() -> None:
    """Ctrl-C cancels the coroutine, its cleanup runs, then KeyboardInterrupt; the loop lives on."""
    printed = interrupt_when_blocking(start_in_fresh_process(interrupted_without_a_running_loop))
    assert printed.splitlines() == ["blocking", "cleaned up", "KeyboardInterrupt", "still usable"]


def test_ctrl_c_cancels_a_blocking_call_in_a_running_loop() -> None:
    """In a running loop too, Ctrl-C cancels the coroutine first, then raises KeyboardInterrupt."""
    printed = interrupt_when_blocking(start_in_fresh_process(interrupted_inside_a_running_loop))
    assert printed.splitlines() == ["blocking", "cleaned up", "KeyboardInterrupt", "still usable"]


def test_ctrl_c_during_nested_blocking_calls() -> None:
    """Ctrl-C during a nested blocking call cancels it and ends the outer call too."""
    printed = interrupt_when_blocking(start_in_fresh_process(interrupted_while_nested))
    assert printed.splitlines() == ["blocking", "cleaned up", "KeyboardInterrupt", "still usable"]


def test_tasks_left_by_a_script_are_finished_at_exit() -> None:
    """At exit the private loop's tasks are cancelled and finished, then it closes, silently."""
    assert in_fresh_process(tasks_left_on_the_private_loop).split("\n") == [
        "exiting",
        "connection closed",
        "",
    ]


def test_a_client_script_exits_cleanly() -> None:
    """A script that used ask_sync exits silently: no destroyed task, no closed loop on stderr."""
    assert in_fresh_process(client_script).split() == ["6*7", "=", "42.", "1", "2", "3"]


# Terminal IPython, driven through a pseudo-terminal as a person types into it


class Terminal:
    """A real ``ipython`` process on a pseudo-terminal: type lines, read until the next prompt."""

    def __init__(self) -> None:
        self._fd, child = pty.openpty()
        self.output = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "IPython", "--no-banner", "--colors=NoColor"],
            stdin=child,
            stdout=child,
            stderr=child,
            cwd=ROOT,
            env={**os.environ, "TERM": "dumb"},
            start_new_session=True,
        )
        os.close(child)
        self.prompt = 1
        self._read_until(f"In [{self.prompt}]")

    def run(self, line: str) -> str:
        """Type ``line`` and Enter; return what IPython printed before the next prompt."""
        start = self.type(line)
        self.prompt += 1
        self._read_until(f"In [{self.prompt}]")
        return self.output[start:]

    def type(self, line: str) -> int:
        """Type ``line`` and Enter without waiting; return where its output starts."""
        start = len(self.output)
        os.write(self._fd, line.encode() + b"\r")
        return start

    def wait_for(self, text: str, start: int) -> None:
        """Wait until ``text`` is printed after position ``start``."""
        self._read_until(text, start)

    def interrupt(self) -> str:
        """Press Ctrl-C (SIGINT, as the terminal sends it); return the output to the next prompt."""
        start = len(self.output)
        self.process.send_signal(signal.SIGINT)
        self.prompt += 1
        self._read_until(f"In [{self.prompt}]")
        return self.output[start:]

    def close(self) -> None:
        """Kill IPython and release the terminal."""
        self.process.kill()
        self.process.wait(TIMEOUT)
        os.close(self._fd)

    def _read_until(self, marker: str, start: int = 0) -> None:
        deadline = time.monotonic() + TIMEOUT
        while marker not in self.output[start:]:
            readable, _, _ = select.select([self._fd], [], [], deadline - time.monotonic())
            assert readable, f"no {marker!r} within {TIMEOUT} s; IPython printed:\n{self.output}"
            self.output += os.read(self._fd, 65536).decode(errors="replace")


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    """A terminal IPython with a client of the built-in server in a thread."""
    term = Terminal()
    try:
        term.run(
            "import nbchat; from nbchat.server import DemoServer; "
            "server = DemoServer.start_in_thread(port=0); "
            "client = nbchat.ChatClient(url=server.url)"
        )
        yield term
    finally:
        term.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("first", ["sync", "await"])
def test_terminal_ipython_mixes_ask_sync_and_await(terminal: Terminal, first: str) -> None:
    """In terminal IPython, ask_sync and top-level await share one client, in either order."""
    sync = f"client.ask_sync('What is 6*7?', timeout={TIMEOUT}).text"
    awaited = f"(await client.ask('What is 2+3?', timeout={TIMEOUT})).text"
    lines = [sync, awaited] if first == "sync" else [awaited, sync]
    outputs = [terminal.run(line) for line in lines]
    expected = ["6*7 = 42.", "2+3 = 5."] if first == "sync" else ["2+3 = 5.", "6*7 = 42."]
    for output, text in zip(outputs, expected, strict=True):
        assert f"'{text}'" in output, output


@pytest.mark.timeout(60)
def test_ctrl_c_in_terminal_ipython_stops_the_reply(terminal: Terminal) -> None:
    """Ctrl-C during ask_sync in terminal IPython: KeyboardInterrupt, the server stops the reply."""
    terminal.run(
        "streaming = []; stopped = []; client.on('message', lambda m: ("
        "m.type == 'token' and not streaming and (print('streaming'), streaming.append(m)), "
        "m.type == 'done' and m.cancelled and stopped.append(m)))"
    )
    start = terminal.type("client.ask_sync('count to 300')")  # 6 s of tokens
    terminal.wait_for("streaming", start)
    assert "KeyboardInterrupt" in terminal.interrupt()
    answer = terminal.run(f"client.ask_sync('What is 6*7?', timeout={TIMEOUT}).text")
    assert "'6*7 = 42.'" in answer, answer
    assert "stopped 1" in terminal.run("print('stopped', len(stopped))")


def test_an_nbchat_error_comes_with_the_callers_frame_and_its_reason() -> None:
    """A ServerError raised deep in a task prints no asyncio frame and no nbchat internals."""

    async def deep() -> None:
        await asyncio.sleep(0)
        raise ServerError("not_in_transcript", "the transcript holds no reply to 'What is 3+3?'")

    async def ask() -> None:
        await asyncio.wait_for(deep(), TIMEOUT)

    with pytest.raises(ServerError) as info:
        run_sync(ask())
    frames = traceback.extract_tb(info.value.__traceback__)
    assert [(Path(frame.filename).name, frame.name) for frame in frames] == [
        (Path(__file__).name, "test_an_nbchat_error_comes_with_the_callers_frame_and_its_reason"),
        ("blocking.py", "run_sync"),  # the raise itself: hidden from pytest by __tracebackhide__
    ]
    printed = "".join(traceback.format_exception(info.value))
    assert "asyncio" not in printed and "deep()" not in printed
    assert printed.rstrip().endswith("server error not_in_transcript: the transcript holds no "
                                     "reply to 'What is 3+3?'")  # fmt: skip
