"""The panel in JupyterLab, issue 19: keys that reach the application, signs of life, no noise.

Ctrl+S typed in the panel's input saves the notebook; a sent message shows
"thinking…" until its first token; a give-up notice leaves once the client is
connected again; a kernel restart or a page reload leaves no JavaScript error
box and no broken image over the panel, only the "kernel gone" notice.
"""

from __future__ import annotations

import re
import socket
from typing import TYPE_CHECKING

import pytest

from nbchat.server import DemoServer
from tests.helpers import TIMEOUT

from .lab import JupyterLab
from .page import TIMEOUT_MS, Notebook
from .test_widget_browser import WIDGET_CELL, open_widget_notebook

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(12 * TIMEOUT)]

_NOISE = """() => {
  const found = [];
  for (const el of document.querySelectorAll('.jupyter-widgets-error-widget'))
    found.push('error widget: ' + el.textContent.trim().slice(0, 80));
  for (const img of document.querySelectorAll('.jp-OutputArea img'))
    if (!img.complete || img.naturalWidth === 0) found.push('broken image: ' + img.outerHTML);
  for (const el of document.querySelectorAll('.jp-OutputArea-output'))
    if (/Error displaying widget|javascript error/i.test(el.textContent))
      found.push('error text: ' + el.textContent.trim().slice(0, 80));
  return found;
}"""


def test_ctrl_s_in_the_panel_input_saves_the_notebook(page: Page, lab: JupyterLab) -> None:
    """Ctrl+S pressed while typing in the panel reaches JupyterLab, which saves the notebook."""
    from playwright.sync_api import expect

    panel = open_widget_notebook(page, lab, "save.ipynb", WIDGET_CELL.format(arguments=""))
    saved = lab.root / "save.ipynb"
    before = saved.read_text()
    assert "nbchat ChatWidget" not in before  # written without outputs
    expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(1)  # Run All changed it
    panel.input.click()
    panel.input.press_sequentially("draft")
    panel.input.press("Control+s")
    expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)
    assert "nbchat ChatWidget" in saved.read_text()  # the outputs are on disk now
    assert panel.input.input_value() == "draft"  # the key was not typed, nor the text lost


def test_thinking_shows_from_send_until_the_first_token(page: Page, lab: JupyterLab) -> None:
    """A sent message shows a "thinking…" status until its reply's first token arrives."""
    from playwright.sync_api import expect

    cell = WIDGET_CELL.format(arguments="delay=1.0")
    panel = open_widget_notebook(page, lab, "thinking.ipynb", cell)
    panel.send("echo hello")
    thinking = panel.root.get_by_role("status", name="The assistant is thinking")
    expect(thinking).to_be_visible()
    expect(thinking).to_contain_text("thinking…")
    expect(panel.finished_replies).to_have_text(["hello"], timeout=3 * TIMEOUT_MS)
    expect(thinking).to_have_count(0)


def test_a_give_up_notice_leaves_once_the_server_answers(page: Page, lab: JupyterLab) -> None:
    """After a give-up, a send to the server now up connects: the notice goes, the reply shows."""
    from playwright.sync_api import expect

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    arguments = f"url='ws://127.0.0.1:{port}/ws', connect_timeout=1, max_reconnect_attempts=50"
    notebook = Notebook.open(
        page, lab, lab.write_notebook("gaveup.ipynb", [WIDGET_CELL.format(arguments=arguments)])
    )
    notebook.run_all()
    panel = notebook.panel()
    panel.wait_state("disconnected", timeout=6 * TIMEOUT_MS)
    banner = panel.log.locator(".nbchat-error", has_text="Disconnected: could not reach")
    expect(banner).to_have_count(1)
    server = DemoServer.start_in_thread(port=port, delay=0.005)
    try:
        panel.send("echo back")
        panel.wait_state("connected")
        expect(panel.finished_replies).to_have_text(["back"])
        expect(banner).to_have_count(0)
        expect(panel.root).not_to_contain_text(re.compile("for good|resumes|could not reach"))
    finally:
        server.close_sync()


def test_a_restart_and_a_reload_leave_no_error_box_or_broken_image(
    page: Page, lab: JupyterLab
) -> None:
    """After a kernel restart, then a reload, the panel shows no error box and no broken image."""
    from playwright.sync_api import expect

    panel = open_widget_notebook(
        page,
        lab,
        "noise.ipynb",
        WIDGET_CELL.format(arguments=""),
        "%load_ext nbchat",
        "%%chat\necho magic",
    )
    panel.send("echo before")
    expect(panel.finished_replies.filter(has_text="before")).to_have_count(1)
    assert page.evaluate(_NOISE) == []
    page.locator("#jp-MainMenu").get_by_text("Kernel", exact=True).click()
    page.locator(".lm-Menu-item").get_by_text("Restart Kernel…", exact=True).click()
    page.locator(".jp-Dialog").get_by_role("button", name="Confirm Kernel Restart").click()
    expect(panel.header).to_contain_text("kernel gone")
    notebook = Notebook(page)
    notebook.wait_idle()
    assert page.evaluate(_NOISE) == []
    page.keyboard.press("Control+s")
    expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)
    page.reload()
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=6 * TIMEOUT_MS)
    notebook.wait_idle()
    page.locator(".jp-OutputArea-output").first.wait_for()
    assert page.evaluate(_NOISE) == []
