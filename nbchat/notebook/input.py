"""ChatInput: the panel's controls, and the one scripted view that runs its page behaviours.

The stock ipywidgets ``Text`` syncs its value and its "submit" event as separate
messages, and the frontend holds value updates back while an earlier one is
unacknowledged but sends the submit at once: a message typed while a cell was
running went out as its first letter (seen in the browser tests). Here Enter
and Send post ``{"event": "submit", "text": ..., "echo": n}`` in one message
and clear the box in the page, so what was typed is what is sent, whatever the
kernel is doing. Until the kernel takes it (:meth:`ChatInput.accept`), the
page shows the message as queued. With ``mentions`` on (``kernel_tools=True``),
typing ``@`` asks the kernel for its variables (``{"event": "complete", "prefix"}``)
and the page lists the names and types it answers (:attr:`ChatInput.completer`).

The rest of the panel is plain ipywidgets, which run no code of ours in the
page; this view's script (``static/input.js``) therefore also does what only
the page can: keep the conversation scrolled to the newest message, mark the
log as an ARIA live region, copy a reply's Markdown to the clipboard, and say
when the panel's kernel is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..attachments import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS
from ..render import STYLESHEET

__all__ = ["ChatInput", "ChatStyle", "shared_style"]

_STATIC = Path(__file__).resolve().parent / "static"
MAX_PREFIX = 200
"""Characters of a completion's prefix read at most (a name is shorter)."""
logger = logging.getLogger("nbchat.notebook")

Picked = tuple[str, str, bytes]
"""A file the page attached: its name, its type as the browser saw it, its bytes."""
SubmitCallback = Callable[[str, "int | None", list[Picked]], object]
"""Called with the text, the page's echo number (to :meth:`ChatInput.accept` it) and the
files attached to it."""


class ChatInput(anywidget.AnyWidget):
    """A message box with Send, Stop, Retry and Clear; Send and Enter submit in one message."""

    _esm = _STATIC / "input.js"
    placeholder = traitlets.Unicode("Ask something…").tag(sync=True)
    streaming = traitlets.Bool(False, help="A reply streams: show Stop.").tag(sync=True)
    closed = traitlets.Bool(False, help="The panel was closed: read-only.").tag(sync=True)
    mentions = traitlets.Bool(False, help="Typing @ completes the kernel's names.").tag(sync=True)
    max_attachments = traitlets.Int(MAX_ATTACHMENTS).tag(sync=True)
    max_attachment_bytes = traitlets.Int(MAX_ATTACHMENT_BYTES).tag(sync=True)
    """The bounds the page checks a file against before keeping it (the kernel checks too)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_submit: list[SubmitCallback] = []
        self._actions: dict[str, list[Callable[[], object]]] = {}
        self.completer: Callable[[str], list[dict[str, str]]] | None = None
        """The names (and types) offered after ``@`` + a prefix: set with ``mentions``."""
        self.on_msg(self._handle_message)

    def on_submit(self, callback: SubmitCallback) -> None:
        """Call ``callback(text, echo, files)`` when the user sends a message."""
        self._on_submit.append(callback)

    def on_action(self, action: str, callback: Callable[[], object]) -> None:
        """Call ``callback()`` when the user clicks ``action``: "stop", "retry" or "clear"."""
        self._actions.setdefault(action, []).append(callback)

    def accept(self, echo: int | None, *, text: str | None = None) -> None:
        """The kernel took the message the page shows as queued; ``text`` gives it back.

        Pass ``text`` when the message could not be sent: the page puts it back
        in an empty box instead of losing it.
        """
        if echo is not None and self.comm is not None:
            self.send({"event": "accepted", "echo": echo, "text": text})

    def _handle_message(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        event = content.get("event")
        if event == "submit" and isinstance(content.get("text"), str):
            echo = content.get("echo")
            echo = echo if isinstance(echo, int) and not isinstance(echo, bool) else None
            text = content["text"].strip()
            if not text:
                self.accept(echo)
                return
            files = _picked(content.get("attachments"), buffers)
            for submit in self._on_submit:
                submit(text, echo, files)
        elif event == "complete" and isinstance(content.get("prefix"), str):
            self._complete(content["prefix"][:MAX_PREFIX], content.get("seq"))
        elif isinstance(event, str):
            for callback in self._actions.get(event, ()):
                callback()

    def _complete(self, prefix: str, seq: Any) -> None:
        """Answer the page's question: the names starting with ``prefix``, as text."""
        items: list[dict[str, str]] = []
        if self.completer is not None and self.mentions:
            try:
                items = self.completer(prefix)
            except Exception:  # a namespace that cannot be read offers nothing, never a crash
                logger.warning("listing the kernel's names for @ failed", exc_info=True)
        if self.comm is not None:
            self.send({"event": "completions", "seq": seq, "items": items})


def _picked(meta: Any, buffers: Any) -> list[Picked]:
    """The files sent with a message: each one's name and type beside its buffer."""
    if not isinstance(meta, list) or not buffers:
        return []
    files = []
    for about, buffer in zip(meta, buffers, strict=False):
        about = about if isinstance(about, dict) else {}
        name, mime = about.get("name"), about.get("mime")
        name = name[:200] if isinstance(name, str) and name else "attachment"
        files.append((name, mime[:100] if isinstance(mime, str) else "", bytes(buffer)))
    return files


class ChatStyle(anywidget.AnyWidget):
    """The panel's stylesheet, as an invisible widget: anywidget loads its ``_css`` in the page.

    One instance per kernel (:func:`shared_style`) sits in every panel and every
    ``%chat`` output, so the stylesheet travels once, not once per panel.
    """

    _esm = "export default { render() {} };"
    _css = STYLESHEET


_style: ChatStyle | None = None


def shared_style() -> ChatStyle:
    """The kernel's one :class:`ChatStyle` (made again if it was closed)."""
    global _style
    if _style is None or _style.comm is None:
        _style = ChatStyle()
    return _style
