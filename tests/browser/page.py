"""Driving JupyterLab and the chat panel in a Playwright page, the way a person would.

Cells run through JupyterLab's own menu; messages are typed into the panel's
input box and sent with its Send button. Every wait is on a condition in the
page, with a timeout; nothing sleeps.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tests.helpers import TIMEOUT

from .lab import JupyterLab

if TYPE_CHECKING:
    from playwright.sync_api import Dialog, Locator, Page, Request

__all__ = [
    "IMAGES",
    "LOOPBACK",
    "RESULTS",
    "TIMEOUT_MS",
    "Notebook",
    "Panel",
    "Watch",
    "screenshot",
]

RESULTS = Path(__file__).parents[2] / "test-results" / "browser"
"""Screenshots of this run, and the page of a failed test (ignored by git)."""

IMAGES = Path(__file__).parents[2] / "docs" / "images"
"""The README's pictures: written only with NBCHAT_UPDATE_SCREENSHOTS=1, so a test run
does not rewrite tracked files (the port in the header changes every run)."""

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}

TIMEOUT_MS = 1000 * TIMEOUT
"""The suite's TIMEOUT in Playwright's unit: every wait in the page is a multiple of it."""

CELLS_TIMEOUT = 9 * TIMEOUT_MS
"""Milliseconds for Run All: a kernel start plus the cells (a cold start takes about 3 s)."""

_KERNEL_IDLE = """() => [...document.querySelectorAll('#jp-main-statusbar .jp-StatusBar-TextItem')]
  .some((item) => /^(?!No Kernel).+ \\| Idle$/.test(item.textContent.trim()))"""
"""The status bar says "<kernel> | Idle": the session is up (the execution indicator
also reads idle before any kernel exists, so it cannot tell)."""

_ALL_CELLS_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every((p) => /\\[\\d+\\]/.test(p.textContent));
}"""


class Notebook:
    """A notebook open in JupyterLab, with its cells run from the Run menu."""

    def __init__(self, page: Page) -> None:
        self.page = page

    @classmethod
    def open(cls, page: Page, lab: JupyterLab, name: str) -> Notebook:
        """Open ``name`` from the server's root and wait until its kernel is idle.

        Running cells before the session is up makes JupyterLab ask which kernel to use.
        A workspace of its own, reset, keeps JupyterLab from reopening the notebooks of
        earlier tests next to it.
        """
        workspace = re.sub(r"[^A-Za-z0-9_-]", "-", Path(name).stem)  # a dot breaks the route
        page.goto(lab.url(f"lab/workspaces/{workspace}/tree/{name}") + "&reset")
        page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=6 * TIMEOUT_MS)
        page.wait_for_function(_KERNEL_IDLE, timeout=6 * TIMEOUT_MS)
        return cls(page)

    def wait_idle(self, timeout: float = 6 * TIMEOUT_MS) -> None:
        """Wait until the status bar says the kernel is idle (after a restart, say)."""
        self.page.wait_for_function(_KERNEL_IDLE, timeout=timeout)

    def run_all(self, timeout: float = CELLS_TIMEOUT) -> None:
        """Run > Run All Cells, then wait until every code cell has an execution count."""
        self.page.locator("#jp-MainMenu").get_by_text("Run", exact=True).click()
        self.page.locator(".lm-Menu-item").get_by_text("Run All Cells", exact=True).click()
        try:
            self.page.wait_for_function(_ALL_CELLS_RAN, timeout=timeout)
        except Exception as exc:
            raise AssertionError(f"the cells did not all run; errors: {self.errors()}") from exc
        assert not self.errors(), f"a cell failed: {self.errors()}"

    def errors(self) -> list[str]:
        """Tracebacks and "Error displaying widget" notices shown in the outputs."""
        shown = self.page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'],"
            ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']"
        ).all_text_contents()
        broken = self.page.get_by_text(re.compile("Error displaying widget")).all_text_contents()
        return [text for text in shown + broken if text.strip()]

    def panel(self, index: int = 0) -> Panel:
        """The ``index``-th chat panel on the page, once it has rendered."""
        root = self.page.locator(".nbchat").nth(index)
        root.wait_for(timeout=3 * TIMEOUT_MS)
        return Panel(self.page, root)


class Panel:
    """A ChatWidget's view: its header, turns, tool cards, input box and buttons."""

    def __init__(self, page: Page, root: Locator) -> None:
        self.page = page
        self.root = root
        self.header = root.locator(".nbchat-status")
        self.input = root.locator(".nbchat-controls .nbchat-input")
        self.send_button = root.locator(".nbchat-controls button", has_text="Send")
        self.stop_button = root.locator(".nbchat-controls .nbchat-stop")
        self.retry_button = root.locator(".nbchat-controls .nbchat-retry")
        self.clear_button = root.locator(".nbchat-controls .nbchat-clear")
        self.log = root.locator(".nbchat-log").first
        self.queued = root.locator(".nbchat-queued")
        self.notice = root.locator(".nbchat-notice")
        self.turns = root.locator(".nbchat-turn")
        self.user_messages = root.locator(".nbchat-user")
        self.assistant_messages = root.locator(".nbchat-assistant")
        self.finished_replies = root.locator(".nbchat-assistant:not(.nbchat-streaming)")

    def send(self, text: str, *, key: str | None = None) -> None:
        """Type ``text`` into the input box and click Send (or press ``key``, e.g. Enter).

        Returns once a new user message shows and the box is cleared, as a person
        would wait: the kernel clears the box, and text typed before that lands can
        be wiped by it.
        """
        before = self.user_messages.count()
        self.input.fill(text)
        if key is None:
            self.send_button.click()
        else:
            self.input.press(key)
        self.page.wait_for_function(
            """([root, before]) => root.querySelectorAll('.nbchat-user').length > before
                 && root.querySelector('.nbchat-controls .nbchat-input').value === ''""",
            arg=[self.root.element_handle(), before],
        )

    def wait_state(self, state: str, timeout: float = 3 * TIMEOUT_MS) -> None:
        """Wait until the header shows ``state`` (connected, reconnecting, ...)."""
        self.root.locator(f".nbchat-status-{state}").wait_for(timeout=timeout)

    def reply_text(self, turn: Locator) -> str:
        """The assistant text of one turn so far (textContent: no layout needed)."""
        return (turn.locator(".nbchat-assistant").last.text_content() or "").strip()

    def wait_finished_replies(self, count: int, timeout: float = 6 * TIMEOUT_MS) -> None:
        """Wait until ``count`` replies are shown complete (no streaming cursor)."""
        self.page.wait_for_function(
            """([root, count]) => root.querySelectorAll(
                 '.nbchat-assistant:not(.nbchat-streaming)').length >= count""",
            arg=[self.root.element_handle(), count],
            timeout=timeout,
        )


def screenshot(element: Locator, path: Path, attempts: int = 20) -> bytes:
    """An element screenshot, retried until the element kept its size while captured.

    Saved at ``path``, or in docs/images under the same name with
    NBCHAT_UPDATE_SCREENSHOTS=1.

    A streaming message grows a line now and then; a capture that overlapped a
    change would cut the panel short.
    """
    if os.environ.get("NBCHAT_UPDATE_SCREENSHOTS") == "1":
        path = IMAGES / path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(attempts):
        before: Any = element.bounding_box()
        image = element.screenshot(path=path, animations="disabled", caret="hide")
        if element.bounding_box() == before:
            return image
    raise AssertionError(f"{path.name}: the element kept changing size")


@dataclass
class Watch:
    """What a page did besides rendering: dialogs, requests, uncaught errors."""

    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def foreign_requests(self) -> list[str]:
        """Requests to anything but this machine (data: URLs, and blob: URLs of other origins).

        A ``blob:`` URL of the page's own loopback origin is how anywidget loads the
        input box's module; its content was made in the page, never fetched.
        """
        return [url for url in self.requests if _host(url) not in LOOPBACK]


def _host(url: str) -> str | None:
    if url.startswith("blob:"):
        url = url[len("blob:") :]
    return urlsplit(url).hostname
