"""The panel tells the truth, in JupyterLab and Chromium: state, scrolling, actions, access.

One test per behaviour a newcomer relies on: what the header says after the
client gives up or the kernel is gone, a stopped reply marked stopped, a long
conversation that scrolls with the input in view, Retry / Copy / Clear, a
closed panel left readable, and the panel used from the keyboard alone through
its ARIA roles and names (Playwright's accessibility locators).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from nbchat.server import DemoServer
from tests.helpers import TIMEOUT

from .lab import JupyterLab
from .page import TIMEOUT_MS, Notebook, Panel, Watch
from .test_widget_browser import BUSY_CELL, WIDGET_CELL, open_widget_notebook

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(12 * TIMEOUT)]

_AT_BOTTOM = """(log) => log.scrollHeight - log.scrollTop - log.clientHeight < 8"""


def test_header_says_disconnected_with_the_reason_after_giving_up(
    page: Page, lab: JupyterLab
) -> None:
    """Stop marks a reply stopped; once the client gives up, the header says disconnected, why."""
    from playwright.sync_api import expect

    server = DemoServer.start_in_thread(port=0, delay=0.005)
    try:
        arguments = (
            f"url={server.url!r}, reconnect_interval=0.1, max_reconnect_interval=0.2,"
            " max_reconnect_attempts=2"
        )
        panel = open_widget_notebook(
            page, lab, "giveup.ipynb", WIDGET_CELL.format(arguments=arguments)
        )
        panel.send("count to 100000")
        expect(panel.stop_button).to_be_visible()
        expect(panel.assistant_messages.first).to_contain_text("1 2 3")
        panel.stop_button.click()
        expect(panel.finished_replies.first).to_contain_text("stopped")
        expect(panel.stop_button).to_be_hidden()
    finally:
        server.close_sync()
    panel.wait_state("disconnected", timeout=6 * TIMEOUT_MS)
    expect(panel.header).to_contain_text(re.compile("gave up|refused|could not", re.I))
    expect(panel.header).not_to_contain_text(re.compile(r"reconnecting|attempt \d+ of"))


def test_after_a_kernel_restart_the_panel_says_its_kernel_is_gone(
    page: Page, lab: JupyterLab, watch: Watch
) -> None:
    """A restarted kernel: no green "connected", and typed text stays in the box with a notice."""
    from playwright.sync_api import expect

    panel = open_widget_notebook(page, lab, "restart.ipynb", WIDGET_CELL.format(arguments=""))
    panel.send("echo before")
    expect(panel.finished_replies).to_have_text(["before"])
    # As a person does: Kernel > Restart Kernel…, then confirm.
    page.locator("#jp-MainMenu").get_by_text("Kernel", exact=True).click()
    page.locator(".lm-Menu-item").get_by_text("Restart Kernel…", exact=True).click()
    page.locator(".jp-Dialog").get_by_role("button", name="Confirm Kernel Restart").click()

    expect(panel.header).to_contain_text("kernel gone")
    expect(panel.root.locator(".nbchat-status-connected")).to_have_count(0)
    panel.input.fill("echo after")
    panel.input.press("Enter")
    expect(panel.notice).to_be_visible()
    expect(panel.notice).to_contain_text("kernel is gone")
    assert panel.input.input_value() == "echo after"  # not swallowed
    expect(panel.finished_replies).to_have_text(["before"])  # the conversation stays readable
    assert not [e for e in watch.page_errors if "Cannot send" in e], watch.page_errors
    Notebook(page).wait_idle()  # the new kernel is up: it can be shut down cleanly


def test_the_log_scrolls_follows_the_newest_and_keeps_the_input_in_view(
    page: Page, lab: JupyterLab
) -> None:
    """A long conversation scrolls in a bounded box that follows it unless scrolled up."""
    from playwright.sync_api import expect

    cells = [WIDGET_CELL.format(arguments="delay=0"), "chat.send('count to 400')"]
    panel = open_widget_notebook(page, lab, "scroll.ipynb", *cells)
    panel.wait_finished_replies(1)
    for n in range(6):
        panel.send(f"count to {300 + n}")
        panel.wait_finished_replies(n + 2)
    log = panel.log.element_handle()
    assert page.evaluate("(log) => log.scrollHeight > log.clientHeight + 100", log)
    page.wait_for_function(_AT_BOTTOM, arg=log)
    viewport = page.viewport_size
    box = panel.input.bounding_box()
    assert viewport is not None and box is not None
    assert box["y"] + box["height"] <= viewport["height"], "the input is off-screen"

    # Scrolled up to read: a reply sent from a cell does not pull the view down.
    page.evaluate("(log) => { log.scrollTop = 0; log.dispatchEvent(new Event('scroll')); }", log)
    send_cell = page.locator(".jp-CodeCell").nth(1).locator(".jp-InputArea-prompt")
    send_cell.click()
    page.keyboard.press("Control+Enter")
    panel.wait_finished_replies(8)
    assert page.evaluate("(log) => log.scrollTop", log) == 0, "the view was pulled away"

    # Back at the bottom, it follows again.
    page.evaluate(
        "(log) => { log.scrollTop = log.scrollHeight; log.dispatchEvent(new Event('scroll')); }",
        log,
    )
    send_cell.click()
    page.keyboard.press("Control+Enter")
    panel.wait_finished_replies(9)
    page.wait_for_function(_AT_BOTTOM, arg=log)
    expect(panel.turns).to_have_count(9)


def test_retry_copy_and_clear(page: Page, lab: JupyterLab) -> None:
    """Retry asks again, Copy puts the reply's Markdown on the clipboard, Clear starts afresh."""
    from playwright.sync_api import expect

    page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=f"http://127.0.0.1:{lab.port}"
    )
    cell = WIDGET_CELL.format(arguments="delay=0")
    panel = open_widget_notebook(page, lab, "actions.ipynb", cell)
    panel.send("echo **bold** and `code`")
    expect(panel.finished_replies).to_have_count(1)

    panel.retry_button.click()
    expect(panel.finished_replies).to_have_count(2)
    assert panel.user_messages.all_text_contents() == ["echo **bold** and `code`"] * 2

    copy = panel.turns.last.get_by_role("button", name="Copy this reply as Markdown")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "**bold** and `code`"

    panel.clear_button.click()
    expect(panel.turns).to_have_count(0)
    panel.send("echo fresh")
    expect(panel.finished_replies).to_have_text(["fresh"])


def test_close_leaves_the_conversation_read_only_and_marked_closed(
    page: Page, lab: JupyterLab
) -> None:
    """chat.close() in a cell: the turns stay, the header says closed, the box takes no input."""
    from playwright.sync_api import expect

    cells = [WIDGET_CELL.format(arguments="delay=0"), "chat.ask_sync('echo kept')\nchat.close()"]
    notebook = Notebook.open(page, lab, lab.write_notebook("close.ipynb", cells))
    notebook.run_all()
    panel = notebook.panel()
    panel.wait_state("closed")
    expect(panel.finished_replies).to_have_text(["kept"])
    expect(panel.input).to_have_attribute("readonly", "")
    expect(panel.send_button).to_be_disabled()


def test_the_panel_works_from_the_keyboard_with_aria_roles_and_names(
    page: Page, lab: JupyterLab
) -> None:
    """Roles and names for the log, box and buttons; Tab moves a visible focus; Enter, Escape."""
    from playwright.sync_api import expect

    panel = open_widget_notebook(
        page, lab, "keyboard.ipynb", WIDGET_CELL.format(arguments="delay=0.005")
    )
    log = panel.root.get_by_role("log", name="Conversation")
    expect(log).to_have_attribute("aria-live", "polite")
    box = panel.root.get_by_role("textbox", name="Message")
    for name in ("Send", "Regenerate the last reply", "Clear: start a new conversation"):
        expect(panel.root.get_by_role("button", name=name)).to_be_visible()
    expect(panel.root.get_by_role("status")).to_contain_text("connected")

    box.focus()
    page.keyboard.type("echo by keyboard")
    page.keyboard.press("Enter")
    expect(log.locator(".nbchat-assistant:not(.nbchat-streaming)")).to_have_text(["by keyboard"])

    page.keyboard.type("count to 100000")
    page.keyboard.press("Enter")
    expect(log).to_have_attribute("aria-busy", "true")
    expect(log.locator(".nbchat-assistant").last).to_contain_text("1 2 3")
    page.keyboard.press("Escape")  # stops the reply
    expect(log.locator(".nbchat-assistant").last).to_contain_text("stopped")
    expect(log).to_have_attribute("aria-busy", "false")

    page.keyboard.press("Tab")
    send = panel.root.get_by_role("button", name="Send")
    expect(send).to_be_focused()
    outline = send.evaluate("(b) => getComputedStyle(b).outlineStyle")
    assert outline not in ("", "none"), "focus is not visible"
    page.keyboard.press("Tab")
    expect(panel.root.get_by_role("button", name="Regenerate the last reply")).to_be_focused()
    page.keyboard.press("Enter")  # Retry from the keyboard
    expect(panel.turns).to_have_count(3)


def test_a_message_sent_while_a_cell_runs_shows_at_once_as_queued(
    page: Page, lab: JupyterLab
) -> None:
    """While the kernel is busy a sent message shows as queued, then as sent once it is taken."""
    from playwright.sync_api import expect

    panel: Panel = open_widget_notebook(
        page, lab, "queued.ipynb", WIDGET_CELL.format(arguments="delay=0"), BUSY_CELL
    )
    gate = lab.root / "busy.gate"
    gate.touch()
    try:
        busy = page.locator(".jp-CodeCell").nth(1)
        busy.locator(".jp-InputArea-prompt").click()
        page.keyboard.press("Shift+Enter")
        expect(busy.locator(".jp-InputArea-prompt")).to_have_text("[*]:")
        panel.input.fill("echo queued")
        panel.input.press("Enter")
        expect(panel.queued).to_have_count(1)
        expect(panel.queued).to_contain_text("echo queued")
        expect(panel.queued).to_contain_text("queued")
        assert panel.user_messages.count() == 0
    finally:
        gate.unlink()
    expect(panel.queued).to_have_count(0)
    expect(panel.user_messages).to_have_text(["echo queued"])
    expect(panel.finished_replies).to_have_text(["queued"])


TOOL_CELL = '''@chat.tool(confirm=True)
def wipe(table: str) -> str:
    """Delete one of the notebook's tables."""
    return f"wiped {table}"'''


def test_a_confirmed_notebook_tool_runs_only_when_run_is_clicked(
    page: Page, lab: JupyterLab
) -> None:
    """The model's call of a notebook function waits on its card: Deny refuses it, Run runs it."""
    from playwright.sync_api import expect

    panel = open_widget_notebook(
        page, lab, "tools.ipynb", WIDGET_CELL.format(arguments="delay=0"), TOOL_CELL
    )
    card = panel.root.locator(".nbchat-tool")
    run = panel.root.get_by_role("button", name="Run")
    deny = panel.root.get_by_role("button", name="Deny")

    panel.send('call wipe {"table": "t1"}')
    expect(card.first).to_contain_text("in this kernel")
    expect(panel.root.locator(".nbchat-confirm")).to_contain_text("Run wipe in this kernel?")
    deny.click()
    expect(panel.finished_replies.first).to_contain_text("denied")
    expect(run).to_have_count(0)

    panel.send('call wipe {"table": "t2"}')
    run.click()
    expect(panel.finished_replies.nth(1)).to_contain_text("wiped t2")
    expect(card.nth(1)).to_contain_text("done")
    expect(deny).to_have_count(0)
