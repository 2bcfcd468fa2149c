"""The views of a conversation: a turn on screen, the log that holds turns, the update throttle.

A :class:`TurnView` shows one exchange as widgets: the user's message, then
runs of assistant text and tool cards, updated in place (chatlab's good idea);
only the views that changed are sent to the frontend and a finished view is
never sent again. Streaming text is coalesced by a :class:`Throttle`: whatever
the token rate, a streaming view is sent at most ``fps`` times a second, and
once more when it completes (Jupyter Server drops output messages beyond
``iopub_msg_rate_limit``, so this is correctness, not only speed).

Everything rendered goes through :mod:`nbchat.render`, which treats model
output and tool data as untrusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import ipywidgets as widgets

from .. import render
from ..attachments import describe
from ..protocol import (
    ErrorMessage,
    ReasoningMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    UserMessage,
)
from ..render.html import NO_RESULT, reasoning_html, thinking_html, usage_html
from ..reply import Reply, ReplyBuilder
from ..turn import Turn
from .cards import ToolCards

__all__ = ["Throttle", "TurnView", "close_tree"]


@dataclass(eq=False)
class _TextRun:
    """A run of assistant text between tool calls: one HTML child, re-rendered while it grows."""

    html: widgets.HTML
    parts: list[str] = field(default_factory=list)
    streaming: bool = True
    renderer: render.StreamingMarkdown = field(default_factory=render.StreamingMarkdown)
    """Keeps the HTML of finished Markdown blocks, so each update re-parses only the tail."""

    @property
    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


class TurnView:
    """One exchange on screen: the user's message, then the assistant's text runs and tool cards.

    Fed each server message of the reply with the reply so far, as the session
    assembled it (the client's ``reply`` event): it renders, it never assembles.
    Renders lazily through the owner's throttle.
    """

    def __init__(
        self,
        user_text: str,
        schedule: Callable[[TurnView], None],
        message: UserMessage | None = None,
        where: Callable[[ToolCall], str] | None = None,
        shown: Callable[[str | None, ToolCall], str | None] | None = None,
        mentions: tuple[str, ...] = (),
        recorded: Turn | None = None,
    ) -> None:
        self.user_text = user_text
        self.message = message
        """The user message this turn shows, when it came from the client."""
        self.attached = (
            list(recorded.attached)
            if recorded is not None
            else [describe(a) for a in (message.attachments or ())]
            if message is not None
            else []
        )
        """What the user attached, a line each, shown as chips under the text."""
        self.mentions = message.mentions if message is not None else mentions
        """The names the message carried as context: chips in its bubble."""
        bubble = render.user_message_html(user_text, self.mentions, self.attached)
        self.box = widgets.VBox([widgets.HTML(bubble)])
        self.box.add_class("nbchat-turn")
        self._schedule = schedule
        self._reply: ReplyBuilder | None = None
        """The session's reply so far, as last handed over (None before its first message)."""
        self._recorded = recorded
        """The turn a transcript recorded, for a view of the history."""
        self._runs: list[_TextRun] = []
        message_id = message.id if message is not None else None
        self.cards = ToolCards(
            self.box,
            self._settle,
            where,
            shown=None if shown is None else (lambda call: shown(message_id, call)),
        )
        """The turn's tool cards, and their approvals (:mod:`~nbchat.notebook.cards`)."""
        self._dirty: set[int] = set()
        self.note = ""
        """A line under the reply: why it stalled, or how it ended (:attr:`Turn.note`)."""
        self.done = False
        self._reasoning: widgets.HTML | None = None
        """The "Thinking" block: open while the model reasons, collapsed once it answers."""
        self._reasoning_open = False
        self._thinking: widgets.HTML | None = None
        """Shown from the send until the reply's first token or tool card (a live turn only)."""
        if recorded is not None:
            self._show_recorded(recorded)
        elif message is not None:
            self._think()

    @classmethod
    def of_turn(cls, turn: Turn, schedule: Callable[[TurnView], None]) -> TurnView:
        """A finished view of a recorded turn (a transcript), shown as the turn assembled it."""
        return cls(turn.user, schedule, mentions=turn.mentions, recorded=turn)

    # Feeding

    @property
    def thinking(self) -> bool:
        """True from the send until the reply's first token, tool card or ending."""
        return self._thinking is not None

    def feed(self, message: ServerMessage, reply: ReplyBuilder) -> None:
        """Show one server message of this turn's reply; ``reply`` is the reply so far."""
        self._reply = reply
        if isinstance(message, ReasoningMessage):
            self._show_reasoning(reply.reasoning, expanded=not reply.text and not self.cards)
        elif self._reasoning_open:  # the answer starts: the thinking folds away
            self._show_reasoning(reply.reasoning, expanded=False)
        if isinstance(message, TokenMessage):
            run = self._open_run()
            run.parts.append(message.response)
            self._dirty.add(id(run))
            self._schedule(self)
        elif isinstance(message, ToolCallMessage | ToolResultMessage):
            self._close_run()
            for call in message.tool_calls:
                self.cards.show(reply.tool_call(call.id) or call)
        elif isinstance(message, ErrorMessage):
            self._close_run()
            self._show_error(f"{message.error.code}: {message.error.message}")
        if reply.done:
            self.finish()

    def finish(self) -> None:
        """The reply is complete: render the last run one final time, with its ending's note."""
        self.done = True
        self._end(self._summary())

    @property
    def markdown(self) -> str:
        """The reply's text so far, as the Markdown the model wrote (what Copy copies)."""
        return self._summary().assistant

    def show_note(self, note: str) -> None:
        """Put a line under an unfinished reply (why it stalled); an empty note clears it."""
        if not self.done:
            self.note = note
            run = self._open_run()
            self._dirty.add(id(run))
            self.flush()

    def fail(self, note: str) -> None:
        """The reply will never be complete: say why under what arrived, and stop streaming."""
        if not self.done:
            self.show_note(note)
            self.done = True
            self._close_run()
            self.cards.end(note)

    def restart(self) -> None:
        """The server had lost the reply and begins it again: clear what was shown."""
        self._reply = None
        self._settle()
        waiting = self.cards.detach()  # shown again under their cards when they come back
        for child in self.box.children[1:]:
            if child not in waiting:
                close_tree(child)
        self.box.children = self.box.children[:1]
        self._runs.clear()
        self._reasoning, self._reasoning_open = None, False
        self._dirty.clear()
        self._think()

    def flush(self) -> int:
        """Send the views that changed since the last flush; return the characters sent."""
        sent = 0
        for run in self._runs:
            if id(run) in self._dirty:
                note = self.note if run is self._runs[-1] else ""
                run.html.value = render.assistant_message_html(
                    run.text + (f"\n\n*{note}*" if note else ""),
                    streaming=run.streaming,
                    renderer=run.renderer,
                )
                sent += len(run.html.value)
        self._dirty.clear()
        return sent

    @property
    def reply(self) -> Reply:
        """What has arrived so far, as a Reply (the session's, frozen now)."""
        if self._reply is not None:
            return self._reply.build()
        turn = self.turn
        return Reply(
            message_id=turn.message_id,
            conversation_id=turn.conversation_id,
            text=turn.assistant,
            tool_calls=list(turn.tool_calls),
            _entries=list(turn.messages),
            error=turn.error,
            cancelled=turn.cancelled,
        )

    @property
    def turn(self) -> Turn:
        """This exchange as the one turn type, for text fallbacks and exports."""
        if self._recorded is not None:
            return self._recorded
        if self._reply is not None:
            turn = Turn.from_reply(
                self.user_text,
                self._reply.build(),
                complete=self.done,
                attached=self.attached,
                mentions=self.mentions,
            )
            turn.shown = dict(self.cards.shown)
            return turn
        message = self.message
        return Turn(
            self.user_text,
            message_id=message.id if message is not None else None,
            conversation_id=message.conversation_id if message is not None else None,
            complete=self.done,
            attached=self.attached,
            mentions=self.mentions,
        )

    # Private

    def _show_recorded(self, turn: Turn) -> None:
        """Show a recorded turn whole, finished: its reasoning, text runs, cards and ending."""
        if turn.reasoning:
            self._show_reasoning(turn.reasoning, expanded=False)
        for segment in turn.segments():
            if isinstance(segment, str):
                run = self._open_run()
                run.parts.append(segment)
                self._close_run()
            else:
                self.cards.show(segment)
        if turn.error is not None:
            self._show_error(f"{turn.error.code}: {turn.error.message}")
        self._end(turn)

    def _summary(self) -> Turn:
        """The turn without its messages: how it ended and its text, at no cost per token."""
        if self._reply is not None and self._recorded is None:
            return Turn.from_reply(
                self.user_text,
                self._reply.build(),
                complete=self.done,
                messages=False,
                attached=self.attached,
                mentions=self.mentions,
            )
        return self.turn

    def _think(self) -> None:
        self._thinking = widgets.HTML(thinking_html())
        self.box.children += (self._thinking,)

    def _settle(self) -> None:
        """The reply showed a sign of its own (or ended): the thinking indicator goes."""
        thinking, self._thinking = self._thinking, None
        if thinking is not None:
            self.box.children = tuple(c for c in self.box.children if c is not thinking)
            thinking.close()

    def _end(self, turn: Turn) -> None:
        """Show how ``turn`` ended: its note, the blank bubble rule, the Copy button."""
        self._settle()
        self.done = True
        self.note = turn.note
        self.cards.end(self.note or NO_RESULT)
        if self.note and self._runs:
            self._dirty.add(id(self._runs[-1]))
        self._close_run()
        if not self._runs and (turn.blank or self.note):
            self._open_run()  # a blank bubble (Turn.blank), or a line of its own for the note
            self._close_run()
        self.flush()
        if self._reasoning_open:
            self._show_reasoning(turn.reasoning, expanded=False)
        if turn.usage is not None:
            self.box.children += (widgets.HTML(usage_html(turn.usage)),)
        if turn.assistant and turn.complete:
            self.box.children += (widgets.HTML(render.copy_button_html(turn.assistant)),)

    def _show_reasoning(self, text: str, *, expanded: bool) -> None:
        """Show the reasoning so far in its block (made where the reasoning first arrived)."""
        if self._reasoning is None:
            self._settle()
            self._reasoning = widgets.HTML()
            self.box.children += (self._reasoning,)
        self._reasoning_open = expanded
        self._reasoning.value = reasoning_html(text, expanded=expanded)

    def _show_error(self, text: str) -> None:
        self._settle()
        self.box.children += (widgets.HTML(render.error_banner_html(text)),)

    def _open_run(self) -> _TextRun:
        if self._runs and self._runs[-1].streaming:
            return self._runs[-1]
        self._settle()
        run = _TextRun(widgets.HTML())
        self._runs.append(run)
        self.box.children += (run.html,)
        return run

    def _close_run(self) -> None:
        if self._runs and self._runs[-1].streaming:
            run = self._runs[-1]
            run.streaming = False
            self._dirty.add(id(run))
            self.flush()

    def has_call(self, call_id: str) -> bool:
        """Whether this turn shows the card of tool call ``call_id``."""
        return call_id in self.cards


class Throttle:
    """Coalesces view updates to at most ``fps`` per second, with a trailing flush.

    A streaming message is re-sent whole on each update, so a very long one
    would cost its size times the frame rate. The interval therefore also
    stretches to keep the traffic under ``bandwidth`` characters a second: a
    short reply updates 30 times a second, a 100 kB one about 10 times, and the
    bytes sent stay proportional to the stream's duration.
    """

    def __init__(
        self,
        fps: float,
        clock: Callable[[], float] = time.monotonic,
        bandwidth: float = 1_000_000.0,
    ) -> None:
        self.min_interval = 1.0 / fps
        self.interval = self.min_interval
        self.bandwidth = bandwidth
        self._clock = clock
        self._last = 0.0
        self._pending: dict[int, TurnView] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, view: TurnView) -> None:
        self._pending[id(view)] = view
        now = self._clock()
        if now - self._last >= self.interval:
            self.flush()
        elif self._timer is None:
            with contextlib.suppress(RuntimeError):  # no loop: the next token or done flushes
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self.interval - (now - self._last), self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last = self._clock()
        pending, self._pending = self._pending, {}
        sent = sum(view.flush() for view in pending.values())
        self.interval = max(self.min_interval, sent / self.bandwidth)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()


def close_tree(widget: widgets.Widget) -> None:
    """Close a widget and every widget inside it (each holds a comm of its own).

    The one way nbchat closes widgets it made: closing only the outer box
    would leave every child's comm open in the kernel and the frontend.
    """
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()
