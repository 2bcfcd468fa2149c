"""The views of a conversation without a frontend: a recording comm stands in for the browser."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import ipywidgets as widgets
import pytest

from nbchat.notebook.turnlog import TurnLog
from nbchat.notebook.views import Throttle, TurnView
from nbchat.protocol import (
    DoneMessage,
    ReasoningMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    Usage,
    UserMessage,
    new_id,
)
from nbchat.session import ReplyPart, Session
from nbchat.turn import TRUNCATED_NOTE, Turn
from tests.notebook.widget_comm import RecordingComm, recording_comms

pytestmark = pytest.mark.unit


class Shown:
    """A view fed as the client feeds it: each message through a real session, with its reply."""

    def __init__(
        self,
        text: str,
        throttle: Throttle,
        shown: Callable[[str | None, ToolCall], str | None] | None = None,
    ) -> None:
        self.session = Session()
        self.message = UserMessage(id=new_id(), conversation_id="c", message=text)
        self.session.submit(self.message)
        self.view = TurnView(text, throttle, self.message, shown=shown)

    def feed(self, message: ServerMessage) -> None:
        routed = message.model_copy(update={"reply_to": self.message.id})
        for outcome in self.session.receive(routed):
            if isinstance(outcome, ReplyPart):
                self.view.feed(outcome.message, outcome.reply)


@pytest.fixture
def comms() -> Iterator[list[RecordingComm]]:
    """Every widget made in the test records what it sends."""
    with recording_comms() as log:
        yield log


async def test_streaming_updates_are_coalesced(comms: list[RecordingComm]) -> None:
    """Five thousand tokens pushed at once cost a handful of updates and one final render."""
    throttle = Throttle(30.0, clock=lambda: 100.0)  # at once: however slow the machine is
    shown = Shown("count", throttle)
    shown.feed(TokenMessage(response="0 "))  # first update goes out at once
    html_comm = comms[-1]
    sent_before = len(html_comm.messages)
    for i in range(1, 5000):
        shown.feed(TokenMessage(response=f"{i} "))
    shown.feed(DoneMessage())
    updates = len(html_comm.messages) - sent_before
    assert updates <= 5
    assert html_comm.values()[-1].count(" ") >= 4999  # the final render holds every token
    assert "4999" in html_comm.values()[-1]


async def test_a_finished_message_is_never_sent_again(comms: list[RecordingComm]) -> None:
    """After done, later turns send nothing for the earlier turn's views."""
    throttle = Throttle(1000.0)
    first = Shown("one", throttle)
    first.feed(TokenMessage(response="first"))
    first.feed(DoneMessage())
    frozen = {id(c): len(c.messages) for c in comms}
    second = Shown("two", throttle)
    for i in range(50):
        second.feed(TokenMessage(response=f"{i} "))
    second.feed(DoneMessage())
    assert all(len(c.messages) == frozen[id(c)] for c in comms if id(c) in frozen)


async def test_tool_card_moves_from_running_to_done(comms: list[RecordingComm]) -> None:
    """A tool card shows running first, then done with its result, in the same view."""
    shown = Shown("calc", Throttle(30.0))
    call = ToolCall(id="t1", name="calculator", arguments={"expression": "6*7"})
    shown.feed(ToolCallMessage(tool_calls=[call]))
    card = shown.view.cards.card("t1")
    assert "running" in card.value
    done = call.model_copy(update={"status": "done", "result": 42})
    shown.feed(ToolResultMessage(tool_calls=[done]))
    assert shown.view.cards.card("t1") is card
    assert "done" in card.value and "42" in card.value


async def test_a_client_tools_rich_view_shows_once_done_and_in_the_turn(
    comms: list[RecordingComm],
) -> None:
    """A done client call's card shows the view the client kept for (this message, the call),
    asked once; the turn carries it for the saved copy; a server call is never asked."""
    view = '<div class="nbchat-rich nbchat-rich-table">the table</div>'
    asked: list[tuple[str | None, str]] = []

    def lookup(reply_to: str | None, call: ToolCall) -> str | None:
        asked.append((reply_to, call.id))
        return view

    shown = Shown("table", Throttle(30.0), lookup)
    call = ToolCall(id="t1", name="table", runs_in="client")
    shown.feed(ToolCallMessage(tool_calls=[call, ToolCall(id="s1", name="search")]))
    assert asked == []  # running: nothing to show yet
    done = call.model_copy(update={"status": "done", "result": "a pandas DataFrame"})
    server = ToolCall(id="s1", name="search", status="done", result="x")
    shown.feed(ToolResultMessage(tool_calls=[done, server]))
    shown.feed(DoneMessage())
    assert asked == [(shown.message.id, "t1")]
    assert view in shown.view.cards.card("t1").value
    assert "a pandas DataFrame" not in shown.view.cards.card("t1").value
    assert shown.view.turn.shown == {"t1": view}


async def test_tool_card_keeps_arguments_a_result_leaves_out(comms: list[RecordingComm]) -> None:
    """A tool_result without arguments still shows the arguments announced with the call."""
    shown = Shown("calc", Throttle(30.0))
    call = ToolCall(id="t1", name="calculator", arguments={"expression": "6*7"})
    shown.feed(ToolCallMessage(tool_calls=[call]))
    shown.feed(ToolResultMessage(tool_calls=[ToolCall(id="t1", name="calculator", status="done")]))
    assert "expression" in shown.view.cards.card("t1").value


async def test_a_new_turn_costs_the_same_however_many_came_before(
    comms: list[RecordingComm],
) -> None:
    """Appending turn 500 sends as many bytes as appending turn 20 (no whole-list resend)."""
    log = TurnLog(page_size=16)

    def cost_of_append() -> int:
        before = sum(c.bytes_sent for c in comms)
        log.append(TurnView("hi", Throttle(30.0)).box)
        return sum(c.bytes_sent for c in comms) - before

    costs = [cost_of_append() for _ in range(500)]
    early, late = max(costs[16:40]), max(costs[476:500])
    assert late <= early * 1.05, (early, late)


def test_a_banner_on_a_later_page_is_removed_from_its_page(comms: list[RecordingComm]) -> None:
    """A banner two pages deep leaves its page, and the next turn still fills that page."""
    log = TurnLog(page_size=2)
    turns = [widgets.HTML(f"turn {i}") for i in range(4)]
    banner = widgets.HTML("reconnecting")
    for turn in turns[:2]:
        log.append(turn)
    log.append(turns[2])
    log.append(banner)  # the second page is full: turns[2] and the banner
    log.remove(banner)
    log.append(turns[3])
    first = log.box.children
    second = first[-1].children
    assert first[:2] == tuple(turns[:2])
    assert second == (turns[2], turns[3])


async def test_a_stopped_reply_is_marked_stopped(comms: list[RecordingComm]) -> None:
    """A reply that ends cancelled says so under what arrived; a complete one does not."""
    stopped = Shown("count", Throttle(30.0))
    stopped.feed(TokenMessage(response="1 2 3"))
    stopped.feed(DoneMessage(cancelled=True))
    complete = Shown("count", Throttle(30.0))
    complete.feed(TokenMessage(response="1 2 3"))
    complete.feed(DoneMessage())
    last = [comm.values() for comm in comms if comm.values()]
    texts = [values[-1] for values in last if isinstance(values[-1], str)]
    assert sum("stopped" in text for text in texts) == 1


async def test_the_live_view_and_the_static_copy_word_an_ending_alike(
    comms: list[RecordingComm],
) -> None:
    """A stopped reply and a recorded one both carry the turn's note and bubble rule."""
    stopped = Shown("count", Throttle(30.0))
    stopped.feed(DoneMessage(cancelled=True))
    assert stopped.view.note == stopped.view.turn.note == "stopped"
    assert stopped.view.turn.blank and len(stopped.view._runs) == 1  # the blank bubble
    recorded = TurnView.of_turn(Turn(user="q", assistant="a", complete=False), Throttle(30.0))
    assert recorded.note == Turn(user="q", complete=False).note and recorded.note
    tools_only = Turn(user="q", tool_calls=[ToolCall(id="t1", name="calc", status="done")])
    assert TurnView.of_turn(tools_only, Throttle(30.0))._runs == []  # no blank bubble


def shown_html(view: TurnView) -> str:
    """The HTML of every child of a turn's box, in order."""
    return "".join(getattr(child, "value", "") for child in view.box.children)


@pytest.mark.parametrize(
    "first",
    [
        TokenMessage(response="hi"),
        ToolCallMessage(tool_calls=[ToolCall(id="t1", name="calculator", arguments={})]),
        DoneMessage(),
    ],
    ids=["token", "tool card", "empty reply"],
)
async def test_thinking_shows_from_send_until_the_first_sign_of_the_reply(
    comms: list[RecordingComm], first: ServerMessage
) -> None:
    """A sent message shows "thinking…" as an ARIA status until its reply's first token or card."""
    shown = Shown("hello", Throttle(30.0))
    assert shown.view.thinking
    assert 'role="status"' in shown_html(shown.view) and "thinking…" in shown_html(shown.view)
    shown.feed(first)
    assert not shown.view.thinking and "thinking" not in shown_html(shown.view)


async def test_a_recorded_turn_never_thinks(comms: list[RecordingComm]) -> None:
    """A turn from a transcript is finished: no thinking indicator."""
    view = TurnView.of_turn(Turn("hi", assistant="hello", complete=True), Throttle(30.0))
    assert not view.thinking and "thinking" not in shown_html(view)


async def test_thinking_shows_open_then_folds_once_the_answer_starts(
    comms: list[RecordingComm],
) -> None:
    """Reasoning fills an open, escaped "Thinking" block that collapses at the first token."""
    shown = Shown("why", Throttle(30.0))
    shown.feed(ReasoningMessage(text="<img src=x onerror=alert(1)> hmm"))
    block = shown.view._reasoning
    assert block is not None and "<details" in block.value and " open" in block.value
    assert "<img" not in block.value and "&lt;img" in block.value
    shown.feed(TokenMessage(response="Because."))
    assert " open" not in block.value and "Thinking" in block.value
    shown.feed(DoneMessage(usage=Usage(prompt_tokens=9, completion_tokens=4), truncated=True))
    shown_html = " ".join(child.value for child in shown.view.box.children[1:])
    assert "9 prompt · 4 completion tokens" in shown_html
    assert TRUNCATED_NOTE in shown_html


def test_a_recorded_turn_shows_its_thinking_collapsed(comms: list[RecordingComm]) -> None:
    """A turn from a transcript shows its reasoning folded, before its answer."""
    turn = Turn("why", assistant="Because.", reasoning="hmm")
    view = TurnView.of_turn(turn, Throttle(30.0))
    assert view._reasoning is not None and " open" not in view._reasoning.value
    assert view.box.children.index(view._reasoning) == 1


def test_a_recorded_turn_shows_its_attachments_and_mentions_as_chips() -> None:
    """A history panel's turn keeps the chips of what its message attached and mentioned."""
    turn = Turn(
        "look at @df", assistant="ok", attached=["a.png (image/png, 1 KB)"], mentions=("df",)
    )
    view = TurnView.of_turn(turn, Throttle(30.0))
    bubble = view.box.children[0].value
    assert '<span class="nbchat-attachment">a.png (image/png, 1 KB)</span>' in bubble
    assert '<span class="nbchat-mention">@df</span>' in bubble
    assert view.turn is turn and view.done
