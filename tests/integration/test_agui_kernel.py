"""An AG-UI agent in a notebook: ChatWidget(url=..., protocol="ag-ui") in a real kernel."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.client.agents import Agents, serving
from tests.integration.test_kernel import KERNEL_TIMEOUT, run_notebook, text_of, widget_states
from tests.openai_upstream import Reply, text_chunks, tool_chunks

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(2 * KERNEL_TIMEOUT)]


@contextmanager
def agents_in_thread() -> Iterator[Agents]:
    """tests/client/agents.py's pydantic-ai agent, served on a loop of its own thread."""
    ready: queue.Queue[tuple[Agents, asyncio.AbstractEventLoop, asyncio.Event]] = queue.Queue()

    async def run() -> None:
        stop = asyncio.Event()
        async with serving() as agents:
            ready.put((agents, asyncio.get_running_loop(), stop))
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    agents, loop, stop = ready.get(timeout=KERNEL_TIMEOUT)
    try:
        yield agents
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(KERNEL_TIMEOUT)


def test_an_ag_ui_agent_streams_into_the_panel_and_runs_the_notebooks_function() -> None:
    """The agent's tool card, the cell's function run in the kernel, the follow-up run's text."""
    with agents_in_thread() as agents:
        agents.upstream.script.extend(
            [
                Reply(tool_chunks(("c1", "add", '{"a": 2, "b": 3}'))),
                Reply(tool_chunks(("k1", "smallest", '{"table": "sales"}'))),
                Reply(text_chunks("2 + 3 = 5, ", "and the smallest are 1 and 2.")),
            ]
        )
        nb = run_notebook(
            f"import nbchat\nchat = nbchat.ChatWidget(url={agents.agui!r}, protocol='ag-ui')\nchat",
            "frames = {'sales': [3, 1, 2]}\n"
            "@chat.tool\n"
            "def smallest(table: str, n: int = 2) -> list[int]:\n"
            '    """The n smallest values of one of the notebook\'s tables."""\n'
            "    return sorted(frames[table])[:n]",
            "reply = chat.ask_sync('add 2 and 3, then the smallest sales')\n"
            "print(reply.text)\n"
            "for call in reply.tool_calls:\n"
            "    print(call.name, call.runs_in, call.status, call.result)",
            "await chat.aclose()\nprint(chat.client.state.value)",
        )
        sent = agents.upstream.completion_requests()
    cells = nb.cells
    assert text_of(cells[2]).splitlines() == [
        "2 + 3 = 5, and the smallest are 1 and 2.",
        "add None done 5",
        "smallest client done [1, 2]",
    ]
    assert text_of(cells[3]).strip() == "disconnected"
    assert len(sent) == 3
    last = sent[-1]["messages"]
    assert json.loads(last[-1]["content"]) == [1, 2] and last[-1]["role"] == "tool"
    values = [s.get("value", "") for s in widget_states(nb) if s.get("_model_name") == "HTMLModel"]
    assert any("add" in v and "nbchat-tool-done" in v for v in values), "no server tool card"
    cards = [v for v in values if "smallest" in v and "nbchat-tool-done" in v]
    assert cards and "in this kernel" in cards[0], "no card of the notebook's function"
    assert any("the smallest are 1 and 2" in v and "nbchat-assistant" in v for v in values)
