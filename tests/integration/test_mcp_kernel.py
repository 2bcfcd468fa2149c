"""MCP servers from a real IPython kernel: chat.mcp in a cell, the server ending with the panel."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.helpers import alive
from tests.integration.test_kernel import KERNEL_TIMEOUT, run_notebook, text_of

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(2 * KERNEL_TIMEOUT)]

SERVER = str(Path(__file__).parents[1] / "client" / "mcp_server.py")


def test_chat_mcp_in_a_cell_offers_the_tools_and_the_server_ends_with_the_kernel() -> None:
    """chat.mcp works in a cell; close() ends its server, the kernel's end ends the other."""
    nb = run_notebook(
        "import json, os, sys\nfrom nbchat import ChatClient, ChatWidget\nchat = ChatWidget()",
        f"names = chat.mcp([sys.executable, {SERVER!r}])\nprint(sorted(names)[:3])",
        "reply = chat.ask_sync('call pid {}')\n"
        "first = reply.tool_calls[0].result['result']\n"
        "print(reply.tool_calls[0].status, chat.tools['pid'].where)",
        "await chat.aclose()\nprint('gone' if not os.path.exists(f'/proc/{first}') else 'alive')",
        "other = ChatClient(url='ws://127.0.0.1:1/ws')\n"
        f"other.mcp_sync([sys.executable, {SERVER!r}])\n"
        "from nbchat.tools import execute\n"
        "specs = {n: t.spec for n, t in other.tools.items()}\n"
        "print((await execute(specs, 'pid', {})).result['result'])",
    )
    cells = nb.cells
    assert text_of(cells[1]).strip() == "['crash', 'erase', 'fail']"
    assert text_of(cells[2]).strip() == "done MCP: mcp_server"
    assert text_of(cells[3]).strip() == "gone"
    pid = int(text_of(cells[4]).strip())
    deadline = time.monotonic() + 15  # the kernel has shut down: the server sees its stdin close
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), f"MCP server {pid} outlived its kernel ({sys.platform})"
