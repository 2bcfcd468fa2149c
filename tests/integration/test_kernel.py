"""The widget, ask_sync and the magics in a real IPython kernel, driven by nbclient."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from nbchat.config import URL_ENV
from nbchat.notebook.static_view import SLOTS
from nbchat.notebook.widget import PANEL_TEXT
from tests.helpers import TIMEOUT

KERNEL_TIMEOUT = 6 * TIMEOUT
"""Seconds a kernel gets to start or run one cell: a cold start on 2 busy cores takes several."""

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(2 * KERNEL_TIMEOUT)]


def run_notebook(*sources: str) -> nbformat.NotebookNode:
    """Execute code cells in a fresh kernel, storing widget state, and return the notebook.

    The kernel inherits this process's environment without ``NBCHAT_WS_URL``, so a
    ``ChatWidget()`` starts its built-in server whatever the caller exported.
    """
    nb: nbformat.NotebookNode = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    saved = os.environ.pop(URL_ENV, None)
    try:
        client = NotebookClient(
            nb, timeout=KERNEL_TIMEOUT, kernel_name="python3", store_widget_state=True
        )
        client.execute()
    finally:
        if saved is not None:
            os.environ[URL_ENV] = saved
    return nb


def text_of(cell: nbformat.NotebookNode, mime: str = "text/plain") -> str:
    """All stream text and ``mime`` data a cell printed or displayed."""
    parts: list[str] = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "data" in output and mime in output.data:
            parts.append(output.data[mime])
    return "".join(parts)


def widget_states(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    """The saved state of every widget model in the notebook's metadata."""
    saved = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [model["state"] for model in saved.values()]


def test_widget_ask_sync_and_magic_in_a_kernel() -> None:
    """ask_sync blocks in the kernel's running loop; %%chat streams into its cell; state saved."""
    nb = run_notebook(
        "import nbchat\nchat = nbchat.ChatWidget(delay=0)\nchat",
        "reply = chat.ask_sync('What is 6*7?')\n"
        "print(reply.text)\nprint(reply.tool_calls[0].result)",
        "%load_ext nbchat",
        "%%chat\nmy name is Ada",
        "%chat what is my name",  # a trailing ? would ask IPython for help
        "import asyncio\nr = await chat.ask('count to 3')\nprint(r.text)",
        "print(sorted(t.done for t in chat.turns))",
    )
    cells = nb.cells
    assert "application/vnd.jupyter.widget-view+json" in cells[0].outputs[0].data
    printed = text_of(cells[1])
    assert "42" in printed.splitlines()[0] and printed.splitlines()[1] == "42"
    assert "Ada" in text_of(cells[3])
    assert "application/vnd.jupyter.widget-view+json" in cells[3].outputs[-1].data
    assert "Ada" in text_of(cells[4])  # the conversation's memory spans magics and widget
    assert text_of(cells[5]).strip() == "1 2 3"
    assert text_of(cells[6]).strip() == "[True, True, True, True]"
    values = [s.get("value", "") for s in widget_states(nb) if s.get("_model_name") == "HTMLModel"]
    assert any("calculator" in v and "done" in v for v in values), "no finished tool card saved"
    assert any("42" in v and "nbchat-assistant" in v for v in values), "no streamed reply saved"


def test_the_panel_cell_saves_the_conversation_as_it_ended() -> None:
    """The panel's static output takes later cells' updates, as JupyterLab saves it."""
    nb = run_notebook(
        "import nbchat\nchat = nbchat.ChatWidget(delay=0)\nchat",
        "chat.ask_sync('What is 6*7?')",
        "%load_ext nbchat",
        "%%chat\ncount to 3",
        "chat",
    )
    panel, static, *blank = nb.cells[0].outputs
    assert panel.data["text/plain"] == PANEL_TEXT
    assert static.metadata == {"nbchat": {"static": True}}
    assert len(blank) == SLOTS - 1  # room for a longer conversation, blank meanwhile
    assert all(b.metadata == static.metadata and b.data["text/plain"] == "" for b in blank)
    assert "6*7 = 42." in static.data["text/plain"] and "1 2 3" in static.data["text/plain"]
    assert "<script" not in static.data["text/html"]
    assert text_of(nb.cells[1]) == "<Reply '6*7 = 42.' tool_calls=[calculator: done]>"
    (final,) = nb.cells[3].outputs  # the live view was moved into the final output
    assert "application/vnd.jupyter.widget-view+json" in final.data
    assert "1 2 3" in final.data["text/plain"]
    assert "calculator" in nb.cells[4].outputs[1].data["text/html"]


def test_run_all_over_a_panel_and_a_slow_cell_shows_no_give_up() -> None:
    """A 10 s cell right after the panel's (Run All) blocks the loop, which is not counted."""
    nb = run_notebook(
        "import nbchat\nchat = nbchat.ChatWidget(delay=0)\nstates = []\n"
        "chat.client.on('state', lambda state: states.append(state.value))\nchat",
        "import time\ntime.sleep(10)",
        "print(chat.ask_sync('echo hi').text)\nprint(chat.client.failure, states)",
    )
    # One attempt, not timed out by the cell that blocked the loop during its handshake.
    assert text_of(nb.cells[2]) == "hi\nNone ['connecting', 'connected']\n"
    shown = json.dumps(widget_states(nb))
    assert "could not reach" not in shown and "for good" not in shown


def test_chat_magic_outputs_convert_to_html_without_a_warning() -> None:
    """nbconvert represents every output a %%chat cell leaves: none is empty."""
    from nbconvert import HTMLExporter

    nb = run_notebook("import nbchat\n%load_ext nbchat", "%%chat\ncount to 3", "%chat echo hi")
    for cell in nb.cells[1:]:
        assert all(output.get("data", True) for output in cell.outputs), cell.outputs
    for saved in (nb, nbformat.from_dict({**nb, "metadata": {}})):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            body, _ = HTMLExporter().from_notebook_node(saved)
        assert not [str(w.message) for w in caught if "represented" in str(w.message)]
        assert "1 2 3" in body and "hi" in body


@pytest.fixture
def kernel() -> Iterator[Any]:
    """A bare kernel client, for sending requests the way JupyterLab does."""
    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=KERNEL_TIMEOUT)
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)  # a killed kernel would save no coverage data


def execute_in_cell(kernel: Any, code: str, cell_id: str) -> str:
    """Run ``code`` as JupyterLab does for cell ``cell_id`` (metadata cellId); return stdout."""
    content = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    msg = kernel.session.msg("execute_request", content, metadata={"cellId": cell_id})
    kernel.shell_channel.send(msg)
    out: list[str] = []
    while True:
        reply = kernel.get_iopub_msg(timeout=KERNEL_TIMEOUT)
        if reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
            continue
        if reply["msg_type"] == "stream":
            out.append(reply["content"]["text"])
        elif reply["msg_type"] == "error":
            raise AssertionError("\n".join(reply["content"]["traceback"]))
        elif reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
            return "".join(out)


def test_rerunning_a_cell_does_not_pile_up_connections(kernel: Any) -> None:
    """Running the widget's cell again closes the previous widget's connection and server."""
    setup = (
        "import nbchat, asyncio\n"
        "from nbchat.server import DemoServer\n"
        "server = DemoServer.start_in_thread(port=0)\n"
    )
    execute_in_cell(kernel, setup, "setup")
    make = "chat = nbchat.ChatWidget(url=server.url)\nchat.ask_sync('hello') and None"
    for _ in range(3):
        execute_in_cell(kernel, make, "widget-cell")
    execute_in_cell(
        kernel, "other = nbchat.ChatWidget(url=server.url)\nawait other.client.connect()", "other"
    )
    count = execute_in_cell(
        kernel,
        f"deadline = asyncio.get_running_loop().time() + {TIMEOUT}\n"
        "while server.connection_count > 2 and asyncio.get_running_loop().time() < deadline:\n"
        "    await asyncio.sleep(0.01)  # closes are asynchronous: poll, with a deadline\n"
        "print(server.connection_count)",
        "count",
    )
    assert json.loads(count) == 2  # one per cell, not one per run
