"""Rich tool results in a real kernel: a notebook tool's DataFrame and figure in its cards."""

from __future__ import annotations

import re

import pytest

from tests.integration.test_kernel import KERNEL_TIMEOUT, run_notebook, text_of, widget_states
from tests.render.audit import problems

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(2 * KERNEL_TIMEOUT)]

IMAGE = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{100,}" alt="[^"]*">')


def test_a_tools_dataframe_and_figure_show_as_a_table_and_an_image_live_and_saved() -> None:
    """The cards show a table and a PNG, the saved copy too, and the model read only text."""
    nb = run_notebook(
        "import nbchat\nchat = nbchat.ChatWidget()\nchat",
        "import pandas as pd\n"
        "from matplotlib.figure import Figure\n"
        "@chat.tool\n"
        "def sales(n: int) -> object:\n"
        '    """The first n rows of the sales table."""\n'
        "    return pd.DataFrame({'region': ['north', 'south', 'east'], 'total': [120, 95, 143]})"
        ".head(n)\n"
        "@chat.tool\n"
        "def plot() -> object:\n"
        '    """A chart of the sales."""\n'
        "    figure = Figure(figsize=(4, 3), dpi=100)\n"
        "    figure.subplots().bar(['north', 'south'], [120, 95])\n"
        "    return figure",
        "table = chat.ask_sync('call sales {\"n\": 2}')\n"
        "figure = chat.ask_sync('call plot')\n"
        "print(table.tool_calls[0].result)\n"
        "print(figure.tool_calls[0].result)",
    )
    printed = text_of(nb.cells[2])
    assert printed.startswith("a pandas DataFrame: 2 rows × 2 columns\n")  # noqa: RUF001
    assert "a matplotlib figure, 400×300 (PNG), shown to the person" in printed  # noqa: RUF001
    assert "<" not in printed  # the model never reads HTML
    cards = [
        state["value"]
        for state in widget_states(nb)
        if state.get("_model_name") == "HTMLModel" and "nbchat-tool" in state.get("value", "")
    ]
    table = next(card for card in cards if "nbchat-rich-table" in card)
    assert "<td>north</td>" in table and '<td align="right">95</td>' in table
    assert "east" not in table
    image = next(card for card in cards if "nbchat-rich-image" in card)
    assert IMAGE.search(image)
    assert problems(table) == [] and problems(image) == []
    static = nb.cells[0].outputs[1].data["text/html"]
    assert "nbchat-rich-table" in static and IMAGE.search(static)
