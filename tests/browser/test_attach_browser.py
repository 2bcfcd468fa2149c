"""Attaching in JupyterLab and Chromium: a file picked with Attach and an image pasted go with
the message, each a chip; a file over the bound is refused in one line and never kept."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

import pytest

from tests.helpers import TIMEOUT, png

from .lab import JupyterLab
from .test_widget_browser import _AUDIT, ALLOWED, INJECTED, WIDGET_CELL, open_widget_notebook

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(12 * TIMEOUT)]

_PASTE_IMAGE = """([input, data]) => {
  // What a browser hands a paste of a screenshot: a File in the clipboard data.
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
  input.dispatchEvent(new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true }));
}"""


def test_a_picked_file_and_a_pasted_image_go_with_the_message(page: Page, lab: JupyterLab) -> None:
    """Attach and paste add chips; Send carries both; the reply names them; too big: one line."""
    from playwright.sync_api import expect

    panel = open_widget_notebook(page, lab, "attach.ipynb", WIDGET_CELL.format(arguments="delay=0"))
    picker = panel.root.locator(".nbchat-controls .nbchat-picker")
    picker.set_input_files(
        [{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": b"\0" * 600_000}]
    )
    expect(panel.notice).to_contain_text("Not attached: big.bin is 586 KB, over the 512 KB")
    tray = panel.root.locator(".nbchat-tray")
    expect(tray).to_be_hidden()

    picker.set_input_files([{"name": "notes.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"}])
    image = png()
    page.evaluate(_PASTE_IMAGE, [panel.input.element_handle(), base64.b64encode(image).decode()])
    expect(tray.locator(".nbchat-attachment")).to_have_count(2)
    expect(tray).to_contain_text("notes.csv")

    panel.send("echo look")
    expect(panel.finished_replies.last).to_contain_text(
        "I received 2 attachments: notes.csv (text/csv, 8 B), "
        f"image.png (image/png, {len(image)} B)."
    )
    chips = panel.user_messages.last.locator(".nbchat-attachment")
    expect(chips).to_have_count(2)
    expect(tray).to_be_hidden()  # sent: the tray is empty for the next message
    found = page.evaluate(_AUDIT, [panel.root.element_handle(), INJECTED, ALLOWED])
    assert found == [], found
