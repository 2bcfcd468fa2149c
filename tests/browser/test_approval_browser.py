"""The approval card in JupyterLab and Chromium: what a person reviews, and answering it by key.

A ``confirm=True`` notebook function called by the demo agent: its card shows
the arguments while it waits, the approval is a named group whose buttons name
the tool, Tab from the card reaches Run and Enter runs it, and "Always allow"
lets later calls of the tool run without asking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.helpers import TIMEOUT

from .lab import JupyterLab
from .test_widget_browser import WIDGET_CELL, open_widget_notebook

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(12 * TIMEOUT)]

TOOL_CELL = '''@chat.tool(confirm=True)
def wipe(table: str, rows: list[int]) -> str:
    """Delete rows of one of the notebook's tables."""
    return f"wiped {table}"'''


def test_the_approval_card_shows_its_arguments_and_answers_to_the_keyboard(
    page: Page, lab: JupyterLab
) -> None:
    """Waiting shows the arguments; Tab reaches Run, Enter runs; Always allow stops the asking."""
    from playwright.sync_api import expect

    panel = open_widget_notebook(
        page, lab, "approval.ipynb", WIDGET_CELL.format(arguments="delay=0"), TOOL_CELL
    )
    waiting = panel.root.locator(".nbchat-tool-waiting")
    group = panel.root.get_by_role("group", name="Approval: Run wipe in this kernel?")

    panel.send('call wipe {"table": "t1", "rows": [1, 2, 3]}')
    expect(waiting).to_have_count(1)
    expect(waiting).to_contain_text("waiting for your approval")
    expect(waiting).not_to_contain_text("running")
    arguments = waiting.locator("pre.nbchat-tool-args")
    expect(arguments).to_be_visible()  # open while it waits, not hidden in a fold
    expect(arguments).to_contain_text('"table": "t1"')
    expect(arguments).to_contain_text('"rows": [\n    1,')
    expect(group).to_be_visible()
    run = group.get_by_role("button", name="Run wipe", exact=True)
    expect(run).to_be_visible()
    expect(group.get_by_role("button", name="Deny wipe", exact=True)).to_be_visible()

    waiting.locator("summary").focus()
    page.keyboard.press("Tab")
    expect(run).to_be_focused()
    page.keyboard.press("Enter")
    expect(panel.finished_replies.first).to_contain_text("wiped t1")
    expect(group).to_have_count(0)

    panel.send('call wipe {"table": "t2", "rows": []}')
    always = panel.root.get_by_role("button", name="Always allow wipe in this panel")
    always.click()
    expect(panel.finished_replies.nth(1)).to_contain_text("wiped t2")
    panel.send('call wipe {"table": "t3", "rows": []}')
    expect(panel.finished_replies.nth(2)).to_contain_text("wiped t3")
    expect(panel.root.locator(".nbchat-confirm")).to_have_count(0)  # never asked
    expect(panel.root.locator(".nbchat-tool-done")).to_have_count(3)
