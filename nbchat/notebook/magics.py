"""``%chat`` and ``%%chat``: send a line or a cell to the backend, stream the reply into the cell.

``%load_ext nbchat`` registers them. They use the notebook's current
:class:`~nbchat.ChatWidget` (its panel shows the exchange too) or, if there is
none, start one without displaying it.
"""

from __future__ import annotations

import sys
from typing import Any

import ipywidgets as widgets
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import clear_output, display

from .. import render
from ..exceptions import NbchatError
from ..protocol import ServerMessage, UserMessage
from ..reply import ReplyBuilder
from .input import shared_style
from .views import Throttle, TurnView
from .widget import ChatWidget, current_widget

__all__ = ["ChatMagics", "TurnDisplay", "load_ipython_extension"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class TurnDisplay:
    """A TurnView in a cell's output, with a plain fallback for viewers without widgets.

    The view sits in a small panel of its own that carries the ``nbchat`` class
    and the shared stylesheet, so it looks like the chat panel's turns.
    """

    def __init__(self, view: TurnView) -> None:
        self.view = view
        self.panel = widgets.VBox([shared_style(), view.box])
        self.panel.add_class("nbchat")

    def widget_view(self) -> dict[str, Any]:
        """The bundle of the live view alone, without any text fallback."""
        return {WIDGET_VIEW: self.panel._repr_mimebundle_()[WIDGET_VIEW]}

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = dict(self.panel._repr_mimebundle_(**kwargs) or {})
        turn = self.view.turn
        bundle["text/plain"] = render.conversation_text([turn])
        bundle["text/markdown"] = render.conversation_markdown([turn])
        return bundle


@magics_class
class ChatMagics(Magics):
    """The ``chat`` line and cell magic."""

    @line_cell_magic
    def chat(self, line: str, cell: str | None = None) -> None:
        """Send the line (``%chat``) or the cell body (``%%chat``); render the reply here."""
        text = (cell if cell is not None else line).strip()
        if not text:
            print("nbchat: nothing to send: write a message after %chat", file=sys.stderr)
            return
        widget = current_widget() or ChatWidget()
        client = widget.client
        throttle = Throttle(widget.max_fps)
        message = UserMessage(message=text, conversation_id=client.conversation_id)
        view = TurnView(
            text,
            throttle,
            message,
            shown=lambda reply_to, call: client.tool_result_html(reply_to, call.id),
        )
        # The live view goes out with the widget mimetype only; once the reply is
        # complete it moves to a new output that also carries the text fallback.
        # So every text output is final when first sent, as nbval requires. The
        # live output is cleared then (not updated to an empty bundle, which
        # nbconvert cannot represent and warns about): the cell keeps one output.
        shown = TurnDisplay(view)
        display(shown.widget_view(), raw=True)

        def follow(answer: ServerMessage, reply: ReplyBuilder) -> None:
            # The session decided which message this answers (this cell's, or
            # another) and assembled the reply so far; acks never come here.
            if answer.reply_to == message.id:
                view.feed(answer, reply)

        def restart(message_id: str) -> None:
            if message_id == message.id:
                view.restart()

        unsubscribe = [client.on("reply", follow), client.on("restart", restart)]
        failure: NbchatError | None = None
        try:
            client.ask_sync(message)
        except NbchatError as exc:
            failure = exc
        finally:
            for off in unsubscribe:
                off()
            if not view.done:
                view.finish()
            throttle.flush()
            clear_output(wait=True)  # the live output goes when the final one comes
            display(shown)
        if failure is not None:
            print(f"nbchat: {failure}", file=sys.stderr)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics: ``%load_ext nbchat``."""
    ipython.register_magics(ChatMagics)
