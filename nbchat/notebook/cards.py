"""The tool cards of one turn on screen, and where each card stands with its approval.

A card shows its call as the reply last said (:meth:`ToolCards.show`); while the
call waits for the person (:meth:`ToolCards.ask`) it says "waiting for your
approval" and shows the arguments as asked, in full, with the approval controls
right under it; once answered without running (:meth:`ToolCards.answer`) it says
why; and when the reply ends with the call still running (:meth:`ToolCards.end`)
it says how the reply ended (:attr:`nbchat.turn.Turn.note`): no card stays
"running" after its reply. A done call of the client's own tools whose result
has a view (a table, an image: :mod:`nbchat.render.rich`) shows that view,
asked of the client once when the result arrives.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets

from ..protocol import ToolCall
from ..render.html import tool_call_html

__all__ = ["ToolCards"]


class ToolCards:
    """The cards of one turn, by call id, in the turn's box."""

    def __init__(
        self,
        box: widgets.Box,
        settle: Callable[[], None],
        where: Callable[[ToolCall], str] | None = None,
        shown: Callable[[ToolCall], str | None] | None = None,
    ) -> None:
        self._box = box
        self._lookup_shown = shown
        """The view of a client tool's rich result, asked once its call is done."""
        self.shown: dict[str, str] = {}
        """Each rich result's view, by call id (for the turn, and so the saved copy)."""
        self._lookup = where
        """Where a call of the client's own tools runs ("MCP: time"), asked once per card."""
        self._settle = settle
        """Called before a card is added: the turn's thinking indicator goes."""
        self._cards: dict[str, widgets.HTML] = {}
        self._calls: dict[str, ToolCall] = {}
        """Each call as the reply last said."""
        self._asked: dict[str, tuple[ToolCall, str | None, widgets.Widget]] = {}
        """Calls waiting for approval: the call as asked, where it runs, the controls."""
        self._answers: dict[str, str] = {}
        """Why a call answered without running does not run (until its result arrives)."""
        self._where: dict[str, str | None] = {}
        self._ended: str | None = None
        """How the reply ended, once it did."""

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._cards

    def __len__(self) -> int:
        return len(self._cards)

    def card(self, call_id: str) -> widgets.HTML:
        """The card of call ``call_id`` (KeyError if none shows it)."""
        return self._cards[call_id]

    def show(self, call: ToolCall) -> None:
        """Show ``call`` at its latest status (a new card, or its card updated)."""
        self._calls[call.id] = call
        if call.id not in self._where and call.runs_in == "client" and self._lookup is not None:
            self._where[call.id] = self._lookup(call)
        lookup = self._lookup_shown
        done = call.status == "done" and call.runs_in == "client"
        if done and lookup is not None and call.id not in self.shown:
            view = lookup(call)
            if view is not None:
                self.shown[call.id] = view
        if call.id not in self._cards:
            self._settle()
            card = self._cards[call.id] = widgets.HTML()
            asked = self._asked.get(call.id)
            self._box.children += (card,) if asked is None else (card, asked[2])
        self._render(call.id)

    def ask(self, call: ToolCall, where: str | None, controls: widgets.Widget) -> None:
        """``call`` waits for the person: its card says so, ``controls`` go right under it."""
        self._asked[call.id] = (call, where, controls)
        self._where[call.id] = where
        self._answers.pop(call.id, None)
        if call.id not in self._cards:
            self.show(call)  # asked before any card showed it: the card as asked
            return
        children = list(self._box.children)
        if controls not in children:
            at = children.index(self._cards[call.id]) + 1
            self._box.children = (*children[:at], controls, *children[at:])
        self._render(call.id)

    def answer(self, call_id: str, why: str | None = None) -> widgets.Widget | None:
        """The person answered: the controls leave (returned, to close); ``why`` it won't run."""
        asked = self._asked.pop(call_id, None)
        if why is not None:
            self._answers[call_id] = why
        if asked is not None:
            controls = asked[2]
            self._box.children = tuple(c for c in self._box.children if c is not controls)
        if call_id in self._cards:
            self._render(call_id)
        return asked[2] if asked is not None else None

    def end(self, note: str) -> None:
        """The reply ended (``note``: how): a card still running says so."""
        self._ended = note
        for call_id, call in self._calls.items():
            if call.status == "running":
                self._render(call_id)

    def detach(self) -> list[widgets.Widget]:
        """Forget every card (the reply restarts); controls still waiting are kept for it."""
        waiting = [asked[2] for asked in self._asked.values()]
        self._cards.clear()
        self._calls.clear()
        self.shown.clear()
        self._ended = None
        return waiting

    def _render(self, call_id: str) -> None:
        asked = self._asked.get(call_id)
        call = self._calls.get(call_id) or (asked[0] if asked is not None else None)
        if call is None:
            return
        if asked is not None and call.status == "running":
            call = asked[0]  # what the person approves is what runs: the call as asked
        self._cards[call_id].value = tool_call_html(
            call,
            where=self._where.get(call_id),
            waiting=asked is not None,
            ended=self._answers.get(call_id) or self._ended,
            shown=self.shown.get(call_id),
        )
