"""Saved notebooks keep their conversation: in JupyterLab without the kernel's widgets, in
nbconvert's HTML offline, and under strict nbval with a replayed backend.

One notebook is run in JupyterLab, its conversation driven by cells (so a replay can
drive it again), saved with Ctrl+S, and then read back every way a person would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from nbchat.notebook.static_view import SLOTS
from tests.helpers import TIMEOUT

from .lab import JupyterLab
from .page import TIMEOUT_MS, Notebook, Watch

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(20 * TIMEOUT)]

PAYLOAD = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
CELLS = [
    "import nbchat\n\nchat = nbchat.ChatWidget(delay=0)\nchat.record('saved.jsonl')\nchat",
    "chat.ask_sync('What is 6*7?').text",
    f"chat.ask_sync({'echo ' + PAYLOAD!r}).text",
]
SANITIZE = Path(__file__).parents[2] / "notebooks" / "nbval_sanitize.cfg"

_INERT = """(root) => [...root.querySelectorAll('script, img, iframe, object, embed, svg')]
  .map((el) => el.outerHTML.slice(0, 80))"""


def save(page: Page) -> None:
    """File > Save Notebook, then wait until JupyterLab says nothing is unsaved."""
    from playwright.sync_api import expect

    page.locator("#jp-MainMenu").get_by_text("File", exact=True).click()
    page.locator(".lm-Menu-item").get_by_text("Save Notebook", exact=True).click()
    expect(page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty")).to_have_count(0)


def test_a_saved_conversation_shows_without_a_kernel_offline_and_validates(
    page: Page, lab: JupyterLab, browser: Browser, watch: Watch, tmp_path: Path
) -> None:
    """Run, save, reopen: the conversation is on the page, in offline HTML, and nbval passes."""
    from playwright.sync_api import expect

    notebook = Notebook.open(page, lab, lab.write_notebook("saved.ipynb", CELLS))
    notebook.run_all()
    panel = notebook.panel()
    panel.wait_finished_replies(2)
    expect(page.locator(".nbchat-static")).to_have_count(SLOTS)  # the copy's outputs
    # the live panel is on the page: no second copy shown, nor the blank outputs' room
    expect(page.locator(".jp-OutputArea-child:has(.nbchat-static):visible")).to_have_count(0)
    save(page)
    saved = json.loads((lab.root / "saved.ipynb").read_text(encoding="utf-8"))
    outputs = saved["cells"][0]["outputs"]
    assert outputs[1]["metadata"] == {"nbchat": {"static": True}}
    assert "6*7 = 42" in "".join(outputs[1]["data"]["text/plain"])  # saved as lines
    copy = lab.root / "reopened.ipynb"
    shutil.copyfile(lab.root / "saved.ipynb", copy)
    shutil.copyfile(lab.root / "saved.ipynb", tmp_path / "saved.ipynb")

    # JupyterLab, before running anything: the widgets are gone, the conversation is not.
    lab.shutdown_kernels()
    Notebook.open(page, lab, copy.name)
    static = page.locator(".nbchat-static").first  # a short conversation: the first output
    expect(static).to_be_visible()
    blank = page.locator(".jp-OutputArea-child:has(.nbchat-static:empty)")
    expect(blank).to_have_count(SLOTS - 1)
    expect(page.locator(".jp-OutputArea-child:has(.nbchat-static:empty):visible")).to_have_count(0)
    expect(static).to_contain_text("What is 6*7?")
    expect(static).to_contain_text("6*7 = 42.")
    expect(static.locator(".nbchat-tool")).to_contain_text("calculator")
    expect(static).to_contain_text("alert(2)")  # the payload, as text
    assert static.evaluate(_INERT) == []
    assert watch.dialogs == [] and not watch.foreign_requests()

    # nbconvert's HTML, opened with the network off.
    html = tmp_path / "saved.html"
    subprocess.run(
        [sys.executable, "-m", "nbconvert", "--to", "html", str(tmp_path / "saved.ipynb")],
        check=True,
        capture_output=True,
        timeout=4 * TIMEOUT,
    )
    offline = browser.new_context(offline=True, java_script_enabled=False)
    try:
        view = offline.new_page()
        view.goto(html.as_uri())
        static = view.locator(".nbchat-static").first
        expect(static).to_be_visible(timeout=TIMEOUT_MS)
        expect(static).to_contain_text("6*7 = 42.")
        expect(static.locator(".nbchat-tool")).to_contain_text("calculator")
        assert static.evaluate(_INERT) == []
    finally:
        offline.close()

    # Strict nbval on the saved file, its backend replayed from the recording.
    shutil.copyfile(lab.root / "saved.jsonl", tmp_path / "saved.jsonl")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            "--nbval",
            "--nbval-current-env",
            f"--nbval-sanitize-with={SANITIZE}",
            "--nbchat-replay=saved.jsonl",
            "saved.ipynb",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=8 * TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "nbchat saved conversations PASSED" in result.stdout, result.stdout[-3000:]


def test_the_live_panel_keeps_focus_typed_text_and_scroll_when_a_reply_completes(
    page: Page, lab: JupyterLab
) -> None:
    """Keeping the static copy current never re-renders the panel: focus, draft, scroll stay."""
    from playwright.sync_api import expect

    from .test_widget_browser import WIDGET_CELL, open_widget_notebook

    panel = open_widget_notebook(
        page, lab, "undisturbed.ipynb", WIDGET_CELL.format(arguments="delay=0.002")
    )
    for n in range(3):
        panel.send(f"count to {200 + n}")
        panel.wait_finished_replies(n + 1)
    panel.send("count to 600")
    panel.input.focus()
    panel.input.type("a draft")
    log = panel.log.element_handle()
    page.evaluate("(log) => { log.scrollTop = 0; log.dispatchEvent(new Event('scroll')); }", log)
    panel.wait_finished_replies(4)
    expect(page.locator(".nbchat-static").first).to_contain_text("600")  # the copy was updated
    expect(panel.input).to_be_focused()
    assert panel.input.input_value() == "a draft"
    assert page.evaluate("(log) => log.scrollTop", log) == 0
