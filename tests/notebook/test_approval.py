"""Approval a person can trust: the waiting card, its answers from the panel and from code."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from nbchat import ConfigError, NbchatError, ToolCall, UserMessage
from nbchat.client.tools import Denial
from nbchat.notebook.approval import Approvals
from nbchat.notebook.views import Throttle, TurnView
from nbchat.notebook.widget import ChatWidget
from nbchat.render.html import MAX_TOOL_TEXT
from nbchat.server import DemoServer
from tests.helpers import TIMEOUT
from tests.notebook.widget_comm import RecordingComm, recording_comms

pytestmark = pytest.mark.loopback


@pytest.fixture
def comms() -> Iterator[list[RecordingComm]]:
    """Every widget made in the test records what it sends."""
    with recording_comms() as log:
        yield log


def questions(chat: ChatWidget) -> asyncio.Queue[ToolCall]:
    """Each call the widget's approver is asked about, once its question is on the card."""
    asked: asyncio.Queue[ToolCall] = asyncio.Queue()
    approve = chat.client.approver
    assert approve is not None

    async def spy(call: ToolCall) -> bool | Denial:
        asked.put_nowait(call)  # the question shows before the approver first waits
        return await approve(call)

    chat.client.approver = spy
    return asked


def cards(chat: ChatWidget) -> list[str]:
    """The HTML of every tool card in the panel, in order."""
    return [view.cards.card(call_id).value for view in chat.turns for call_id in _ids(view)]


def _ids(view: TurnView) -> list[str]:
    return list(view.cards._cards)


def buttons(chat: ChatWidget, description: str) -> list[Any]:
    """Every ipywidgets Button in the panel with this label."""
    found: list[Any] = []

    def walk(node: object) -> None:
        if getattr(node, "description", None) == description and hasattr(node, "click"):
            found.append(node)
        for child in getattr(node, "children", ()):
            walk(child)

    walk(chat)
    return found


def wipe_tool(chat: ChatWidget, ran: list[str]) -> None:
    @chat.tool(confirm=True)
    def wipe(table: str) -> str:
        """Delete a table."""
        ran.append(table)
        return f"wiped {table}"


async def test_a_waiting_card_says_so_and_shows_the_arguments_in_full(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """While it waits the card says so (never running), names the tool, where, every argument."""
    chat = ChatWidget(url=demo.url)
    ran: list[str] = []
    wipe_tool(chat, ran)
    asked = questions(chat)
    table = "<script>x</script>" + "t" * (MAX_TOOL_TEXT + 100) + "\u202eend"
    ask = asyncio.ensure_future(chat.ask(f'call wipe {{"table": "{table}"}}'))
    await asyncio.wait_for(asked.get(), TIMEOUT)
    (card,) = cards(chat)
    assert "waiting for your approval" in card and "running" not in card
    assert 'class="nbchat-tool nbchat-tool-waiting" open' in card
    assert '<span class="nbchat-tool-name">wipe</span>' in card and "in this kernel" in card
    assert "&lt;script&gt;x&lt;/script&gt;" + "t" * (MAX_TOOL_TEXT + 100) in card  # uncut
    assert "\\u202eend" in card and "\u202e" not in card  # a bidi control shows as itself
    assert "{\n  &quot;table&quot;: &quot;" in card  # pretty-printed JSON
    assert not any(ord(c) > 0x2000 and c != "\u2026" for c in card)  # no emoji-font glyph
    chat.deny()
    await asyncio.wait_for(ask, TIMEOUT)
    assert not ran
    await chat.aclose()


async def test_pending_approve_and_deny_from_code_answer_the_oldest_call(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """chat.pending lists the waiting calls; approve() and deny(reason=) answer the oldest first."""
    chat = ChatWidget(url=demo.url)
    ran: list[str] = []
    wipe_tool(chat, ran)
    asked = questions(chat)
    first = asyncio.ensure_future(chat.ask('call wipe {"table": "t1"}', timeout=TIMEOUT))
    await asyncio.wait_for(asked.get(), TIMEOUT)
    second = asyncio.ensure_future(
        chat.client.ask('call wipe {"table": "t2"}', conversation_id="other", timeout=TIMEOUT)
    )
    await asyncio.wait_for(asked.get(), TIMEOUT)
    assert [(p.tool, p.arguments, p.where) for p in chat.pending] == [
        ("wipe", {"table": "t1"}, "in this kernel"),
        ("wipe", {"table": "t2"}, "in this kernel"),
    ]
    answered = chat.approve()
    assert answered.arguments == {"table": "t1"} and len(chat.pending) == 1
    assert "wiped t1" in (await asyncio.wait_for(first, TIMEOUT)).text
    chat.deny(chat.pending[0].id, reason="wrong table")
    assert chat.pending == []
    reply = await asyncio.wait_for(second, TIMEOUT)
    assert "denied by the user (wrong table)" in reply.text and ran == ["t1"]
    await chat.aclose()


async def test_nothing_pending_or_an_unknown_id_is_a_one_line_error(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """approve() and deny() with nothing waiting, or an id not waiting, say so in one line."""
    chat = ChatWidget(url=demo.url)
    with pytest.raises(ConfigError, match=r"^no tool call is waiting for approval$"):
        chat.approve()
    with pytest.raises(ConfigError, match=r"^no tool call is waiting for approval$"):
        chat.deny("x")
    ran: list[str] = []
    wipe_tool(chat, ran)
    asked = questions(chat)
    ask = asyncio.ensure_future(chat.ask('call wipe {"table": "t1"}'))
    call = await asyncio.wait_for(asked.get(), TIMEOUT)
    with pytest.raises(ConfigError) as caught:
        chat.approve("nope")
    assert str(caught.value) == (
        f"no tool call 'nope' is waiting for approval (waiting: {call.id!r})"
    )
    assert "\n" not in str(caught.value) and ran == []
    chat.deny(call.id)
    await asyncio.wait_for(ask, TIMEOUT)
    await chat.aclose()


async def test_always_allow_runs_later_calls_of_that_tool_only(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """ "Always allow wipe" runs this call and later wipes without asking; other tools still ask."""
    chat = ChatWidget(url=demo.url)
    ran: list[str] = []
    wipe_tool(chat, ran)

    @chat.tool(confirm=True)
    def drop(table: str) -> str:
        """Drop a table."""
        ran.append(f"drop {table}")
        return "dropped"

    asked = questions(chat)
    ask = asyncio.ensure_future(chat.ask('call wipe {"table": "t1"}'))
    await asyncio.wait_for(asked.get(), TIMEOUT)
    assert not buttons(chat, "Always allow drop")
    buttons(chat, "Always allow wipe")[0].click()
    assert "wiped t1" in (await asyncio.wait_for(ask, TIMEOUT)).text
    assert "wiped t2" in (await chat.ask('call wipe {"table": "t2"}', timeout=TIMEOUT)).text
    assert ran == ["t1", "t2"]  # the second ran with nobody answering: it never waited
    asked.get_nowait()
    ask = asyncio.ensure_future(chat.ask('call drop {"table": "t3"}'))
    await asyncio.wait_for(asked.get(), TIMEOUT)
    assert [p.tool for p in chat.pending] == ["drop"]
    chat.approve()
    await asyncio.wait_for(ask, TIMEOUT)
    await chat.aclose()


def _turn() -> TurnView:
    message = UserMessage(id="m1", conversation_id="c", message="go")
    return TurnView("go", Throttle(30.0), message)


async def test_an_approval_is_bound_to_its_call_and_the_arguments_shown(
    comms: list[RecordingComm],
) -> None:
    """The card shows the arguments that run; the same id asked again with others asks again."""
    view = _turn()
    shown = asyncio.Event()  # the question's controls join the turn's box
    view.box.observe(lambda change: shown.set(), "children")
    approvals = Approvals(lambda: [view], lambda call: "in this kernel")
    asked = ToolCall(id="x", name="wipe", arguments={"table": "t1"}, runs_in="client")
    first = asyncio.ensure_future(approvals.ask(asked))
    await asyncio.wait_for(shown.wait(), TIMEOUT)
    view.cards.show(asked.model_copy(update={"arguments": {"table": "everything"}}))
    card = view.cards.card("x").value
    assert "t1" in card and "everything" not in card  # what runs is what is shown
    approvals.approve("x")
    assert await asyncio.wait_for(first, TIMEOUT) is True
    shown.clear()
    again = asyncio.ensure_future(
        approvals.ask(asked.model_copy(update={"arguments": {"table": "t2"}}))
    )
    await asyncio.wait_for(shown.wait(), TIMEOUT)
    assert [p.arguments for p in approvals.pending] == [{"table": "t2"}]  # asked again
    assert not again.done()
    approvals.deny(reason="no")
    assert await asyncio.wait_for(again, TIMEOUT) == Denial("no")


@pytest.mark.parametrize("how", ["stop", "clear", "close"])
async def test_stop_clear_and_close_settle_every_pending_approval(
    comms: list[RecordingComm], demo: DemoServer, how: str
) -> None:
    """Stop, Clear and close deny what waits, with the reason on the card; no card stays running."""
    chat = ChatWidget(url=demo.url)
    ran: list[str] = []
    wipe_tool(chat, ran)
    asked = questions(chat)
    ask = asyncio.ensure_future(chat.ask('call wipe {"table": "t1"}', timeout=TIMEOUT))
    await asyncio.wait_for(asked.get(), TIMEOUT)
    view = chat.turns[-1]
    reason = {"stop": "the reply was stopped", "clear": "cleared", "close": "the chat was closed"}
    if how == "stop":
        chat.cancel()
    elif how == "clear":
        chat.clear()
    else:
        await chat.aclose()
    assert chat.pending == [] and not buttons(chat, "Run")
    if how != "clear":  # a cleared panel shows no card at all
        card = view.cards.card(next(iter(_ids(view)))).value
        assert reason[how] in card and "waiting" not in card
    with contextlib.suppress(NbchatError):  # closed: the reply fails, as it should
        await asyncio.wait_for(ask, TIMEOUT)
    assert (view.done or how == "clear") and not any("running" in c for c in cards(chat))
    assert ran == []
    await chat.aclose()


async def test_a_stopped_client_tool_card_says_stopped_live_and_in_the_static_copy(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """Issue 20: a client tool still running at Stop ends as "stopped", never "running…"."""
    chat = ChatWidget(url=demo.url)
    started = asyncio.Event()

    @chat.tool
    async def slow(n: int) -> int:
        """Wait forever."""
        started.set()
        await asyncio.Event().wait()
        return n

    ask = asyncio.ensure_future(chat.ask('call slow {"n": 1}', timeout=TIMEOUT))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    chat.cancel()
    assert (await asyncio.wait_for(ask, TIMEOUT)).cancelled
    (card,) = cards(chat)
    assert "running" not in card and "stopped" in card
    saved = chat._static.bundle(chat._views.values())["text/html"]
    assert "nbchat-tool-verb" in saved and "running…" not in saved
    await chat.aclose()


async def test_run_deny_and_always_are_labelled_with_the_tool(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """Each button's label (its tooltip, the page's aria-label) names the tool."""
    chat = ChatWidget(url=demo.url)
    wipe_tool(chat, [])
    asked = questions(chat)
    ask = asyncio.ensure_future(chat.ask('call wipe {"table": "t1"}'))
    await asyncio.wait_for(asked.get(), TIMEOUT)
    tooltips = [b.tooltip for b in (*buttons(chat, "Run"), *buttons(chat, "Deny"))]
    assert tooltips == ["Run wipe", "Deny wipe"]
    assert buttons(chat, "Always allow wipe")[0].tooltip == "Always allow wipe in this panel"
    (controls,) = [
        c for v in chat.turns for c in v.box.children if "nbchat-confirm" in c._dom_classes
    ]
    assert "Run <code>wipe</code> in this kernel?" in controls.children[0].value
    chat.deny()
    await asyncio.wait_for(ask, TIMEOUT)
    await chat.aclose()


async def test_next_pending_waits_for_the_question_code_then_answers(
    demo: DemoServer, comms: list[RecordingComm]
) -> None:
    """``await chat.next_pending()`` returns once the call asks; nothing ran before approve()."""
    chat = ChatWidget(url=demo.url)
    ran: list[str] = []

    @chat.tool(confirm=True)
    def wipe(table: str) -> str:
        """Delete one of the notebook's tables."""
        ran.append(table)
        return f"wiped {table}"

    with pytest.raises(asyncio.TimeoutError):
        await chat.next_pending(timeout=0.01)  # nothing asks yet
    ask = asyncio.ensure_future(chat.ask('call wipe {"table": "sales"}', timeout=TIMEOUT))
    call = await chat.next_pending(timeout=TIMEOUT)
    assert (call.tool, call.arguments, ran) == ("wipe", {"table": "sales"}, [])
    assert await chat.next_pending(timeout=TIMEOUT) == call  # still the oldest waiting
    chat.approve(call.id)
    assert (await asyncio.wait_for(ask, TIMEOUT)).text == 'wipe returned "wiped sales".'
    assert ran == ["sales"]
    await chat.aclose()
