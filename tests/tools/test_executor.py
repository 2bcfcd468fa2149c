"""The one tool executor: every way a call ends is an outcome, never an exception."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from nbchat.tools import THREADS, execute, executor, still_running
from nbchat.tools.threads import ToolThreads
from nbchat.toolspec import ToolSpec, tool_spec

pytestmark = pytest.mark.unit


def add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


def fails(text: str) -> str:
    """Always raises."""
    raise ValueError(f"no {text}\nsecond line")


def which_thread() -> str:
    """The name of the thread running the tool."""
    return threading.current_thread().name


async def slow() -> str:
    """Never finishes in time."""
    await asyncio.Event().wait()
    return "never"


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec for spec in map(tool_spec, (add, fails, which_thread, slow))
}


async def test_a_valid_call_runs_and_its_result_is_serialized() -> None:
    """Arguments as JSON text or a mapping are validated, the function runs, the result is JSON."""
    from_text = await execute(TOOLS, "add", '{"a": 2, "b": 3}')
    from_mapping = await execute(TOOLS, "add", {"a": 2})
    assert (from_text.status, from_text.result, from_text.text) == ("done", 5, "5")
    assert (from_mapping.status, from_mapping.result) == ("done", 3)


async def test_a_plain_function_runs_off_the_event_loop() -> None:
    """A function that may block runs in a worker thread, not the loop's."""
    outcome = await execute(TOOLS, "which_thread", None)
    assert outcome.status == "done" and outcome.result != threading.current_thread().name


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("nope", "{}", "unknown server tool 'nope' (this server offers: add, fails, slow,"),
        ("add", '{"a": ', "not valid JSON"),
        ("add", '{"a": "x"}', "bad arguments for add: a:"),
        ("fails", '{"text": "table"}', "ValueError: no table second line"),
    ],
)
async def test_every_failure_is_an_error_outcome(name: str, arguments: str, says: str) -> None:
    """Unknown names, broken or wrong arguments and raising tools end as one-line errors."""
    outcome = await execute(TOOLS, name, arguments, side="server")
    assert outcome.status == "error" and says in outcome.result
    assert outcome.text == f"error: {outcome.result}" and "\n" not in outcome.text


async def test_a_time_limit_ends_a_call_that_does_not_finish() -> None:
    """Past ``timeout`` the call is stopped and says how long it was given."""
    outcome = await execute(TOOLS, "slow", {}, timeout=0.01)
    assert (outcome.status, outcome.result) == ("error", "slow did not finish within 0.01s")


async def test_a_refusal_stops_the_call_before_it_runs() -> None:
    """``approve`` sees the valid call's tool; a reason it returns is the error, nothing runs."""
    asked: list[str] = []

    async def refuse(spec: ToolSpec) -> str:
        asked.append(spec.name)
        return "denied"

    refused = await execute(TOOLS, "fails", {"text": "x"}, approve=refuse)
    invalid = await execute(TOOLS, "fails", {}, approve=refuse)
    assert (refused.status, refused.result) == ("error", "denied")
    assert invalid.status == "error" and asked == ["fails"]


# BaseException, stuck threads, results off the loop


def exits(code: int) -> str:
    """Stops the interpreter, as argparse does on bad input."""
    raise SystemExit(code)


def interrupts() -> str:
    """Raises KeyboardInterrupt itself."""
    raise KeyboardInterrupt


async def exits_async() -> str:
    """An async tool that raises SystemExit."""
    raise SystemExit("bye")


@pytest.mark.parametrize(
    ("function", "arguments", "timeout", "says"),
    [
        (exits, {"code": 2}, None, "SystemExit: 2"),
        (interrupts, {}, 5.0, "KeyboardInterrupt"),
        (exits_async, {}, None, "SystemExit: bye"),
        (exits_async, {}, 5.0, "SystemExit: bye"),
    ],
)
async def test_system_exit_and_keyboard_interrupt_from_a_tool_are_error_results(
    function: object, arguments: dict[str, int], timeout: float | None, says: str
) -> None:
    """A tool's own BaseException is a one-line error outcome; the loop goes on."""
    spec = tool_spec(function)  # type: ignore[arg-type]
    outcome = await execute({spec.name: spec}, spec.name, arguments, timeout=timeout)
    assert (outcome.status, outcome.result) == ("error", says)


async def test_six_stuck_sync_tools_do_not_stop_a_seventh_quick_one() -> None:
    """Calls given up keep their threads, but neither later tools nor the loop's executor starve."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=6))  # the default on 2 cores
    release = threading.Event()

    def block() -> str:
        """Blocks until the test ends."""
        release.wait()
        return "late"

    tools = {spec.name: spec for spec in map(tool_spec, (block, which_thread))}
    try:
        stuck = await asyncio.gather(*(execute(tools, "block", {}, timeout=0.05) for _ in range(6)))
        quick = await asyncio.wait_for(execute(tools, "which_thread", {}), 5)
        other = await asyncio.wait_for(loop.run_in_executor(None, threading.get_ident), 5)
    finally:
        release.set()
    assert {outcome.result for outcome in stuck} == {
        "block did not finish within 0.05s and is still running in a thread that could not "
        "be stopped"
    }
    assert quick.status == "done" and quick.result.startswith("nbchat tool") and other
    assert await asyncio.to_thread(THREADS.wait_unstuck, 5)


async def test_a_stopped_sync_call_says_it_still_runs_and_its_thread_is_reclaimed() -> None:
    """Cancelled, a running plain function is reported; a bounded pool refuses, then recovers."""
    threads = ToolThreads(workers=1, max_threads=2)
    release, started = threading.Event(), threading.Event()

    def block() -> str:
        """Blocks until released."""
        started.set()
        release.wait()
        return "late"

    tools = {spec.name: spec for spec in map(tool_spec, (block, add))}
    notes = []
    for _ in range(2):
        started.clear()
        call = asyncio.ensure_future(execute(tools, "block", {}, threads=threads))
        await asyncio.to_thread(started.wait, 5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError) as cancelled:
            await call
        notes.append(still_running(cancelled.value))
    refused = await execute(tools, "add", {"a": 1}, threads=threads)
    release.set()
    assert notes == ["block is still running in a thread that could not be stopped"] * 2
    assert refused.status == "error" and "all 2 tool threads are held" in refused.result
    assert await asyncio.to_thread(threads.wait_unstuck, 5)
    assert (await execute(tools, "add", {"a": 1}, threads=threads)).result == 2


class Endless:
    """An iterator that notes the thread reading it, and never ends."""

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def __iter__(self) -> Endless:
        return self

    def __next__(self) -> int:
        self.threads.add(threading.current_thread().name)
        return 1


async def test_a_result_is_read_off_the_loop_and_an_endless_one_is_cut() -> None:
    """An async tool's endless iterator is read in a tool thread, within the budget."""
    endless = Endless()

    async def forever() -> Endless:
        """Returns an endless iterator."""
        return endless

    spec = tool_spec(forever)
    outcome = await asyncio.wait_for(execute({"forever": spec}, "forever", {}), 5)
    assert outcome.status == "done" and "was not read to its end" in outcome.result
    assert endless.threads and threading.current_thread().name not in endless.threads


async def test_a_result_that_takes_too_long_to_read_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reading a result is bounded in time: a blocking __next__ ends as an error outcome."""
    monkeypatch.setattr(executor, "SERIALIZE_SECONDS", 0.05)
    release = threading.Event()

    class Stuck(Endless):
        def __next__(self) -> int:
            release.wait()
            raise StopIteration

    def stuck() -> Stuck:
        """Returns an iterator that blocks."""
        return Stuck()

    spec = tool_spec(stuck)
    try:
        outcome = await asyncio.wait_for(execute({"stuck": spec}, "stuck", {}), 5)
    finally:
        release.set()
    assert outcome.status == "error" and outcome.result.startswith(
        "the result of stuck did not finish within 0.05s"
    )


def frame() -> Any:
    """A small table."""
    import pandas as pd

    return pd.DataFrame({"region": ["north", "south"], "total": [120, 95]})


async def test_a_rich_result_gives_the_model_text_and_the_card_its_view() -> None:
    """With rich=True a DataFrame's result is its summary text and its view is a table;
    without, the result goes the JSON way it always did and has no view."""
    spec = tool_spec(frame)
    rich = await execute({"frame": spec}, "frame", {}, rich=True)
    assert rich.status == "done" and rich.html is not None and "nbchat-table" in rich.html
    assert isinstance(rich.result, str) and rich.result.startswith("a pandas DataFrame: 2 rows")
    assert json.loads(rich.text) == rich.result and "<" not in rich.result
    plain = await execute({"frame": spec}, "frame", {})
    assert plain.html is None and "nbchat" not in plain.text


async def test_a_figure_too_slow_to_draw_is_an_error_within_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Drawing a rich result shares the result's time limit: a savefig that blocks is an error."""
    from matplotlib.figure import Figure

    monkeypatch.setattr(executor, "SERIALIZE_SECONDS", 0.05)
    release = threading.Event()

    class Slow(Figure):
        def savefig(self, *args: Any, **kwargs: Any) -> None:
            release.wait()

    def slow_figure() -> Any:
        """A figure that takes forever to draw."""
        return Slow()

    try:
        outcome = await asyncio.wait_for(
            execute({"slow_figure": tool_spec(slow_figure)}, "slow_figure", {}, rich=True), 5
        )
    finally:
        release.set()
    assert outcome.status == "error" and outcome.html is None
    assert outcome.result.startswith("the result of slow_figure did not finish within 0.05s")
