"""Client tools in a real IPython kernel: a function defined in a cell, called by the demo agent."""

from __future__ import annotations

import pytest

from tests.test_kernel import KERNEL_TIMEOUT, run_notebook, text_of

pytestmark = pytest.mark.timeout(2 * KERNEL_TIMEOUT)


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
