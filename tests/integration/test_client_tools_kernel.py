"""Client tools in a real IPython kernel: a function defined in a cell, called by the demo agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_kernel import KERNEL_TIMEOUT, run_notebook, text_of

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(2 * KERNEL_TIMEOUT)]


def test_a_function_defined_in_a_cell_runs_in_the_kernel_when_the_agent_calls_it() -> None:
    """call NAME runs the cell's function on the kernel's data; an error leaves the kernel going."""
    nb = run_notebook(
        "from nbchat import ChatClient\n"
        "from nbchat.server import DemoServer\n"
        "server = DemoServer.start_in_thread(port=0)\n"
        "client = ChatClient(url=server.url)",
        "frames = {'sales': [3, 1, 2]}\n"
        "@client.tool\n"
        "def smallest(table: str, n: int = 2) -> list[int]:\n"
        '    """The n smallest values of one of the notebook\'s tables."""\n'
        "    return sorted(frames[table])[:n]",
        'reply = client.ask_sync(\'call smallest {"table": "sales"}\')\n'
        "print(reply.text)\n"
        "print(reply.tool_calls[0].runs_in, reply.tool_calls[0].result)",
        'print(client.ask_sync(\'call smallest {"table": "costs"}\').text)',
        "frames['costs'] = [9, 7]\n"
        'print(client.ask_sync(\'call smallest {"table": "costs"}\').text)',
        "client.close_sync()\nserver.close_sync()\nprint('closed')",
    )
    cells = nb.cells
    assert text_of(cells[2]).splitlines() == ["smallest returned [1,2].", "client [1, 2]"]
    assert text_of(cells[3]).strip() == "smallest failed: KeyError: 'costs'"
    assert text_of(cells[4]).strip() == "smallest returned [7,9]."
    assert text_of(cells[5]).strip() == "closed"


def test_a_cell_function_through_the_bridge_and_through_replay(tmp_path: Path) -> None:
    """The bridge routes a model's call to the cell's function; a replay runs it again."""
    record = tmp_path / "tools.jsonl"
    nb = run_notebook(
        "from nbchat import ChatClient, ServerError\n"
        "from nbchat.server import ChatServer, OpenAIAgent, ReplayServer\n"
        "from tests.openai_upstream import Reply, Upstream, text_chunks, tool_chunks\n"
        "frames = {'sales': [3, 1, 2]}\n"
        "def smallest(table: str, n: int = 2) -> list[int]:\n"
        '    """The n smallest values of one of the notebook\'s tables."""\n'
        "    return sorted(frames[table])[:n]",
        "upstream = await Upstream().__aenter__()\n"
        "upstream.script.extend([Reply(tool_chunks(('call_1', 'smallest', "
        "'{\"table\": \"sales\"}'))), Reply(text_chunks('The two smallest are 1 and 2.'))])\n"
        "agent = OpenAIAgent(base_url=upstream.base_url, model='scripted', api_key='sk-test')\n"
        "server = await ChatServer(agent)\n"
        f"client = ChatClient(url=server.url, tools=[smallest], record={str(record)!r})\n"
        "reply = await client.ask('the smallest sales')\n"
        "await client.disconnect()\n"
        "print(reply.text)\n"
        "print(reply.tool_calls[0].runs_in, reply.tool_calls[0].result)\n"
        "print(upstream.completion_requests()[1]['messages'][-1]['content'])",
        f"replay = await ReplayServer({str(record)!r})\n"
        "again = ChatClient(url=replay.url, tools=[smallest])\n"
        "print((await again.ask('the smallest sales')).text)\n"
        "await again.disconnect()\n"
        "frames['sales'] = [5, 4]\n"
        "changed = ChatClient(url=replay.url, tools=[smallest])\n"
        "try:\n"
        "    await changed.ask('the smallest sales')\n"
        "except ServerError as exc:\n"
        "    print(exc.code)\n"
        "await changed.disconnect()\n"
        "await replay.close()\n"
        "await server.close()",
    )
    cells = nb.cells
    assert text_of(cells[1]).splitlines() == [
        "The two smallest are 1 and 2.",
        "client [1, 2]",
        "[1,2]",
    ]
    assert text_of(cells[2]).splitlines() == [
        "The two smallest are 1 and 2.",
        "tool_result_differs",
    ]


def test_in_a_kernel_stop_cancels_a_slow_async_tool_and_a_drop_runs_a_call_once() -> None:
    """A cell's async tool stops on cancel(); a call cut by a dropped connection runs once."""
    nb = run_notebook(
        "import asyncio\n"
        "from nbchat import ChatClient\n"
        "from nbchat.server import DemoServer\n"
        "from tests.server.helpers import drop_connections\n"
        "server = await DemoServer.start(port=0, delay=0)\n"
        "client = ChatClient(url=server.url, reconnect_interval=0.05)\n"
        "started, release, runs = asyncio.Event(), asyncio.Event(), []\n"
        "@client.tool\n"
        "async def slow(x: int) -> int:\n"
        '    """Wait for the test, then return x."""\n'
        "    runs.append(x)\n"
        "    started.set()\n"
        "    await release.wait()\n"
        "    return x",
        "ask = asyncio.ensure_future(client.ask('call slow {\"x\": 1}'))\n"
        "await asyncio.wait_for(started.wait(), 10)\n"
        "client.cancel()\n"
        "reply = await asyncio.wait_for(ask, 10)\n"
        "print(reply.cancelled, runs)",
        "started.clear()\n"
        "ask = asyncio.ensure_future(client.ask('call slow {\"x\": 2}'))\n"
        "await asyncio.wait_for(started.wait(), 10)\n"
        "await drop_connections(server)\n"
        "release.set()\n"
        "reply = await asyncio.wait_for(ask, 10)\n"
        "print(reply.text, runs)",
        "await client.aclose()\nawait server.close()\nprint('closed')",
    )
    cells = nb.cells
    assert text_of(cells[1]).strip() == "True [1]"
    assert text_of(cells[2]).strip() == "slow returned 2. [1, 2]"
    assert text_of(cells[3]).strip() == "closed"
