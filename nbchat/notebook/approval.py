"""A panel's approvals: the calls of ``confirm=True`` tools waiting for the person.

:class:`Approvals` is the client's approver while a :class:`~nbchat.ChatWidget`
shows the chat. Each call asked becomes a :class:`PendingCall` (the id, the tool,
the arguments exactly as shown, where it runs) and its card says "waiting for
your approval" with Run, Deny and "Always allow <tool>" under it; the same
answers come from code (``chat.pending``, ``chat.approve``, ``chat.deny``),
oldest first when no id is given.

What an answer is bound to: one question, the call as the runner asked it, with
the arguments it will run shown on the card (even if the reply later shows the
card with others). A call asked again, even with the same id and after a Run, is
a new question. "Always allow" is per tool name, for this panel only.

Every question is answered: Stop, Clear, close and a failed reply deny what
waits, with the reason, and the card says so (:meth:`Approvals.settle`).

Accessibility: the controls are a ``role="group"`` named after the call ("Approve
wipe, in this kernel"), set by the panel's script (``static/input.js``), and each
button's ``aria-label`` names the tool ("Run wipe"). The group is not an
``alertdialog``: it never takes the focus from a person typing; it appears inside
the conversation's polite live region (``role="log"``), which announces it.
"""

from __future__ import annotations

import asyncio
import copy
import html
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from ..client.blocking import running_loop
from ..client.tools import Denial
from ..exceptions import ConfigError
from ..protocol import ToolCall
from ..render.html import approval_text, confirm_question_html
from .views import TurnView, close_tree

__all__ = ["Approvals", "PendingCall"]

STOPPED = "the reply was stopped"
CLEARED = "the conversation was cleared"
CLOSED = "the chat was closed"


@dataclass(frozen=True)
class PendingCall:
    """A call waiting for the person's approval, as its card shows it."""

    id: str
    """The call id the model gave it."""
    tool: str
    arguments: dict[str, Any]
    """The arguments exactly as shown and as they run (a copy, for reading)."""
    where: str
    """Where it runs: "in this kernel", or "MCP: <server>"."""


@dataclass(eq=False)
class _Question:
    call: PendingCall
    asked: ToolCall
    """The call as the runner asked it: what runs if approved."""
    view: TurnView
    answer: asyncio.Future[bool | Denial]
    controls: widgets.Widget | None = field(default=None)


class Approvals:
    """The questions a panel asks, oldest first, and the tools always allowed in it."""

    def __init__(
        self,
        views: Callable[[], Iterable[TurnView]],
        where: Callable[[ToolCall], str],
        each_time: Callable[[ToolCall], bool] = lambda call: False,
    ) -> None:
        self._views = views
        """The panel's turns, oldest first."""
        self._where = where
        self._each_time = each_time
        """Whether a call's tool asks every time (run_code): no "Always allow" for it."""
        self._waiting: list[_Question] = []
        self.always: set[str] = set()
        """Tool names the person allowed for this panel: their calls run without asking."""
        self._asked: asyncio.Future[None] | None = None
        """Resolved when a question is asked, for :meth:`next_pending` (made on demand)."""

    # Asking (the client's approver, on the client's loop)

    async def ask(self, call: ToolCall) -> bool | Denial:
        """Show the question on the call's card and wait for the answer."""
        if call.name in self.always and not self._each_time(call):
            return True
        view = self._view_of(call)
        shown = PendingCall(call.id, call.name, _copy(call.arguments), self._where(call))
        loop = asyncio.get_running_loop()
        question = _Question(shown, call, view, loop.create_future())
        question.controls = self._controls(question)
        self._waiting.append(question)
        if self._asked is not None and not self._asked.done():
            self._asked.set_result(None)
        view.cards.ask(
            call.model_copy(update={"arguments": shown.arguments}), shown.where, question.controls
        )
        try:
            return await question.answer
        except asyncio.CancelledError:  # Stop, a timeout, a disconnect: the runner says why
            self._close(question, None)
            raise

    async def next_pending(self, timeout: float | None = None) -> PendingCall:
        """The oldest call waiting, once one waits: code answers what the model asks, unpolled."""
        while not self._waiting:
            if self._asked is None or self._asked.done():
                self._asked = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(asyncio.shield(self._asked), timeout)
        return self._waiting[0].call

    @property
    def pending(self) -> list[PendingCall]:
        """The calls waiting, oldest first."""
        return [question.call for question in self._waiting]

    def approve(self, call_id: str | None = None, *, always: bool = False) -> PendingCall:
        """Run a waiting call (the oldest without an id); ``always``: its tool, from now on."""
        question = self._find(call_id)
        if always and self._each_time(question.asked):
            raise ConfigError(
                f"{question.call.tool} asks before every call: it cannot be always allowed "
                "(approve this call without always=True)"
            )
        if always:
            self.always.add(question.call.tool)
        self._decide(question, True)
        return question.call

    def deny(self, call_id: str | None = None, reason: str | None = None) -> PendingCall:
        """Refuse a waiting call (the oldest without an id); ``reason`` is told to the model."""
        question = self._find(call_id)
        self._decide(question, Denial(reason) if reason else False)
        return question.call

    def settle(self, reason: str, views: Iterable[TurnView] | None = None) -> int:
        """Deny every call waiting (in ``views`` only, when given), saying ``reason``."""
        within = None if views is None else set(map(id, views))
        settled = [q for q in self._waiting if within is None or id(q.view) in within]
        for question in settled:
            self._decide(question, Denial(reason))
        return len(settled)

    # Private

    def _find(self, call_id: str | None) -> _Question:
        if not self._waiting:
            raise ConfigError("no tool call is waiting for approval")
        if call_id is None:
            return self._waiting[0]
        for question in self._waiting:
            if question.call.id == call_id:
                return question
        waiting = ", ".join(repr(q.call.id) for q in self._waiting)
        raise ConfigError(f"no tool call {call_id!r} is waiting for approval (waiting: {waiting})")

    def _decide(self, question: _Question, answer: bool | Denial) -> None:
        """Answer ``question`` on its loop (a click may come on another thread)."""
        loop = question.answer.get_loop()
        if running_loop() is not loop and not loop.is_closed():
            loop.call_soon_threadsafe(self._decide, question, answer)
            return
        if question not in self._waiting:
            return  # answered already: a second click, or Stop first
        self._close(question, None if answer is True else _why(answer))
        if not question.answer.done():
            question.answer.set_result(answer)

    def _close(self, question: _Question, why: str | None) -> None:
        if question in self._waiting:
            self._waiting.remove(question)
        controls = question.view.cards.answer(question.call.id, why)
        if controls is not None:
            close_tree(controls)

    def _view_of(self, call: ToolCall) -> TurnView:
        views = list(self._views())
        for view in reversed(views):  # the newest turn still going that shows the call
            if not view.done and view.has_call(call.id):
                return view
        for view in reversed(views):  # no card yet: the newest turn still going
            if not view.done:
                return view
        raise ConfigError(f"no turn shows the call of {call.name}: it cannot be confirmed")

    def _controls(self, question: _Question) -> widgets.Widget:
        """The question line and its buttons; a click is answered on the client's loop."""
        call = question.call
        ask = question.asked.model_copy(update={"arguments": call.arguments})
        line = widgets.HTML(confirm_question_html(ask, call.where))
        run = widgets.Button(description="Run", button_style="primary", tooltip=f"Run {call.tool}")
        deny = widgets.Button(description="Deny", tooltip=f"Deny {call.tool}")
        always = widgets.Button(
            description=f"Always allow {call.tool}",
            tooltip=f"Always allow {call.tool} in this panel",
        )
        for button, kind in ((run, "run"), (deny, "deny"), (always, "always")):
            button.add_class(f"nbchat-approve-{kind}")
        run.on_click(lambda _: self._decide(question, True))
        deny.on_click(lambda _: self._decide(question, False))
        always.on_click(lambda _: self._always(question))
        if not self._each_time(question.asked):
            controls = widgets.HBox([line, run, deny, always])
            controls.add_class("nbchat-confirm")
            return controls
        close_tree(always)  # run_code asks every time: its code shown as code, no Always allow
        code = call.arguments.get("code")
        shown = [widgets.HBox([line, run, deny])]
        if isinstance(code, str):
            shown.insert(0, widgets.HTML(code_block_html(code)))
        controls = widgets.VBox(shown)
        controls.add_class("nbchat-confirm")
        return controls

    def _always(self, question: _Question) -> None:
        if question in self._waiting and not self._each_time(question.asked):
            self.always.add(question.call.tool)
            self._decide(question, True)


def _copy(arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments as shown, detached from the call's own (a JSON copy when possible)."""
    try:
        copied: dict[str, Any] = json.loads(json.dumps(arguments))
    except (TypeError, ValueError, RecursionError):
        copied = copy.deepcopy(arguments)
    return copied


def code_block_html(code: str) -> str:
    """Code waiting for approval as it will run: in full, its lines kept, invisibles shown."""
    return (
        '<div class="nbchat-tool-label">code, as it will run</div>'
        f'<pre class="nbchat-tool-args nbchat-code"><code class="language-python">'
        f"{html.escape(approval_text(code))}</code></pre>"
    )


def _why(answer: bool | Denial) -> str:
    return f"denied: {answer.reason}" if isinstance(answer, Denial) else "denied"
