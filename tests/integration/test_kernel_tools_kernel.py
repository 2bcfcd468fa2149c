"""The kernel tools in a real IPython kernel: a DataFrame, an API key, an error, run_code."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient

from nbchat.config import URL_ENV
from tests.integration.test_kernel import KERNEL_TIMEOUT, text_of

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(2 * KERNEL_TIMEOUT)]

KEY = "sk-" + "Kq7" * 14

SETUP = f"""\
import asyncio
import pandas as pd
import nbchat
df = pd.DataFrame({{"city": ["Paris", "Lima"], "temp": [21.5, 18.0]}})
OPENAI_API_KEY = "{KEY}"
"""

RUN_CODE = """\
code = "ran = 5\\\\nprint(df.shape)\\\\nran * 2"
task = asyncio.ensure_future(chat.ask('call run_code {"code": "' + code + '"}'))
await chat.next_pending(30)  # the call waits on its card
print("before approval:", "ran" in globals(), [p.tool for p in chat.pending])
chat.approve()
reply = await task
print(reply.tool_calls[0].result)
print("after:", ran)
"""


def ask(text: str) -> str:
    """A cell asking the panel ``text`` and printing the one tool call's result."""
    return f"print(chat.ask_sync({text!r}).tool_calls[0].result)"


def test_the_model_reads_the_kernel_and_runs_code_only_after_approval() -> None:
    """Listing and describing df, the key never shown, the last error read, run_code approved."""
    nb: nbformat.NotebookNode = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    sources = [
        SETUP,
        "raise ValueError('no column named temperature')",
        "chat = nbchat.ChatWidget(delay=0, kernel_tools=True, run_code=True)\nchat",
        ask("call list_variables {}"),
        ask('call describe_variable {"name": "df"}'),
        ask('call describe_variable {"name": "OPENAI_API_KEY"}'),
        ask("call last_error"),
        ask('call cell_history {"n": 8}'),
        RUN_CODE,
    ]
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]  # type: ignore[no-untyped-call]
    nb.cells[1].metadata["tags"] = ["raises-exception"]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    saved = os.environ.pop(URL_ENV, None)
    try:
        NotebookClient(nb, timeout=KERNEL_TIMEOUT, kernel_name="python3").execute()
    finally:
        if saved is not None:
            os.environ[URL_ENV] = saved
    cells = nb.cells
    listed, described, key, error, history, run = (text_of(cells[i]) for i in range(3, 9))
    assert "df: pandas.DataFrame, shape 2 x 2" in listed
    assert "OPENAI_API_KEY: str" in listed and "value withheld" in listed
    assert "chat:" not in listed and "pd:" not in listed and "In:" not in listed
    assert "temp (float64)" in described and "Paris" in described
    assert "looks like a credential: its value is not shared" in key
    assert error.startswith("ValueError: no column named temperature")
    assert "ChatWidget(delay=0" in history and "raise ValueError" in history
    assert "OPENAI_API_KEY = ***" in history
    assert "before approval: False ['run_code']" in run
    assert "stdout:\n(2, 2)\nvalue: 10" in run and "after: 5" in run
    assert all(KEY not in text_of(cell) for cell in cells[3:])


SHOWING = """\
code = (
    "from IPython.display import display\\\\n"
    "display(pd.DataFrame({'key': [OPENAI_API_KEY], 'n': [7]}))\\\\n"
    "import matplotlib\\\\nmatplotlib.use('Agg')\\\\nimport matplotlib.pyplot as plt\\\\n"
    "plt.figure(figsize=(2, 2), dpi=50)\\\\nplt.plot([1, 2, 3])\\\\n"
    "print('drawn')"
)
task = asyncio.ensure_future(chat.ask('call run_code {"code": "' + code + '"}'))
await chat.next_pending(30)  # the call waits on its card
chat.approve()
reply = await task
print(reply.tool_calls[0].result)
print("open figures:", plt.get_fignums())
"""


def test_run_code_shows_its_displays_and_figures_in_its_card() -> None:
    """What code displays and the figures it opens go to its card (secrets scrubbed), not the
    cell; the model reads the text and a line for each."""
    from tests.integration.test_kernel import run_notebook, widget_states
    from tests.render.audit import problems

    nb = run_notebook(
        SETUP,
        "chat = nbchat.ChatWidget(delay=0, kernel_tools=True, run_code=True)\nchat",
        SHOWING,
    )
    printed = text_of(nb.cells[2])
    assert "stdout:\ndrawn" in printed
    assert "displayed: key n 0 *** 7\n" in printed  # the table's text, the key scrubbed
    assert "displayed: a matplotlib figure, 100" in printed
    assert "open figures: []" in printed  # closed once drawn, as a cell's would be
    assert all(output.output_type == "stream" for output in nb.cells[2].outputs)
    cards = [
        state["value"]
        for state in widget_states(nb)
        if state.get("_model_name") == "HTMLModel"
        and "nbchat-rich-output" in state.get("value", "")
    ]
    assert len(cards) == 1
    card = cards[0]
    assert "nbchat-rich-html" in card and '<img src="data:image/png;base64,' in card
    assert "<td>***</td>" in card and KEY not in card
    assert problems(card) == []
    static = nb.cells[1].outputs[1].data["text/html"]
    assert "nbchat-rich-output" in static and KEY not in static
