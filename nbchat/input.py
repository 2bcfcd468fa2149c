"""ChatInput: the panel's message box, a small anywidget whose submit carries its text.

The stock ipywidgets ``Text`` syncs its value and its "submit" event as separate
messages, and the frontend holds value updates back while an earlier one is
unacknowledged but sends the submit at once: a message typed while a cell was
running went out as its first letter (seen in the browser tests). Here Enter
and Send post ``{"event": "submit", "text": ...}`` in one message and clear the
box in the page, so what was typed is what is sent, whatever the kernel is doing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

__all__ = ["ChatInput", "ChatStyle", "shared_style"]

_STATIC = Path(__file__).resolve().parent / "static"


class ChatInput(anywidget.AnyWidget):
    """A text box with Send and Stop; Send and Enter submit the typed text in one message."""

    _esm = _STATIC / "input.js"
    placeholder = traitlets.Unicode("Ask something…").tag(sync=True)
    streaming = traitlets.Bool(False, help="Show Stop while a reply streams.").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_submit: list[Callable[[str], object]] = []
        self._on_stop: list[Callable[[], object]] = []
        self.on_msg(self._handle_message)

    def on_submit(self, callback: Callable[[str], object]) -> None:
        """Call ``callback(text)`` when the user sends a message."""
        self._on_submit.append(callback)

    def on_stop(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` when the user clicks Stop."""
        self._on_stop.append(callback)

    def _handle_message(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        event = content.get("event")
        if event == "submit" and isinstance(content.get("text"), str):
            text = content["text"].strip()
            if text:
                for submit in self._on_submit:
                    submit(text)
        elif event == "stop":
            for stop in self._on_stop:
                stop()


class ChatStyle(anywidget.AnyWidget):
    """The panel's stylesheet, as an invisible widget: anywidget loads its ``_css`` in the page.

    One instance per kernel (:func:`shared_style`) sits in every panel and every
    ``%chat`` output, so the stylesheet travels once, not once per panel.
    """

    _esm = "export default { render() {} };"
    _css = _STATIC / "chat.css"


_style: ChatStyle | None = None


def shared_style() -> ChatStyle:
    """The kernel's one :class:`ChatStyle` (made again if it was closed)."""
    global _style
    if _style is None or _style.comm is None:
        _style = ChatStyle()
    return _style
