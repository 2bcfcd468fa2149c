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
from typing import Any

import anywidget
import traitlets

__all__ = ["ChatInput"]

_ESM = """
function render({ model, el }) {
  const form = document.createElement("form");
  form.className = "nbchat-controls";
  // Keys typed here are text, not notebook commands (Lumino stops matching
  // keyboard shortcuts at an element carrying this attribute).
  form.setAttribute("data-lm-suppress-shortcuts", "true");
  const input = document.createElement("input");
  input.type = "text";
  input.className = "nbchat-input";
  input.setAttribute("aria-label", "Message");
  const send = document.createElement("button");
  send.type = "submit";
  send.className = "jupyter-button mod-primary nbchat-send";
  send.textContent = "Send";
  const stop = document.createElement("button");
  stop.type = "button";
  stop.className = "jupyter-button mod-warning nbchat-stop";
  stop.textContent = "Stop";
  const sync = () => {
    input.placeholder = model.get("placeholder");
    stop.hidden = !model.get("streaming");
  };
  const submit = () => {
    const text = input.value.trim();
    if (text) {
      model.send({ event: "submit", text });
      input.value = "";
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      event.stopPropagation();
      submit();
    }
  });
  stop.addEventListener("click", () => model.send({ event: "stop" }));
  model.on("change:streaming", sync);
  model.on("change:placeholder", sync);
  sync();
  form.append(input, send, stop);
  el.append(form);
  return () => {
    model.off("change:streaming", sync);
    model.off("change:placeholder", sync);
  };
}
export default { render };
"""


class ChatInput(anywidget.AnyWidget):
    """A text box with Send and Stop; Send and Enter submit the typed text in one message."""

    _esm = traitlets.Unicode(_ESM).tag(sync=True)
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
