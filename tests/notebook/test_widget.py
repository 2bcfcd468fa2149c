"""ChatWidget without a frontend: a recording comm stands in for the browser (see widget_comm)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from nbchat import (
    ChatClient,
    ConfigError,
    ConnectionState,
    Reply,
    ReplyTimeout,
    ToolCall,
    UserMessage,
)
from nbchat.notebook.widget import ChatWidget
from nbchat.render import stylesheet
from nbchat.server import DemoServer
from nbchat.server.openai.bridge import OpenAIAgent
from tests.helpers import FAST, TIMEOUT, attach, free_port, png, scripted_server
from tests.notebook.widget_comm import RecordingComm, recording_comms
from tests.openai_upstream import Upstream
from tests.server.helpers import drop_connections

pytestmark = pytest.mark.loopback


@pytest.fixture
def comms() -> Iterator[list[RecordingComm]]:
    """Every widget made in the test records what it sends."""
    with recording_comms() as log:
        yield log


def html_values(widget: ChatWidget) -> list[str]:
    """The current value of every HTML view in the panel (header first), in order."""
    values: list[str] = []

    def walk(node: object) -> None:
        for child in getattr(node, "children", ()):
            if hasattr(child, "value") and isinstance(child.value, str):
                values.append(child.value)
            walk(child)

    walk(widget)
    return values


def active_elements(html: str) -> list[str]:
    """Every element or attribute in ``html`` that a browser would act on (parsed, not grepped)."""
    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in {"script", "img", "iframe", "object", "embed", "style", "svg", "form"}:
                found.append(tag)
            for name, value in attrs:
                if name.startswith("on") or "javascript:" in (value or "").lower():
                    found.append(f"{tag} {name}={value}")

    Parser().feed(html)
    return found


async def test_reply_and_tool_call_render_in_the_panel(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """A question that calls a tool shows the user text, the tool card at done, and the answer."""
    chat = ChatWidget(url=demo.url)
    reply = await chat.ask("What is 6*7?")
    assert "42" in reply.text
    html = "\n".join(html_values(chat))
    assert "What is 6*7?" in html
    assert "calculator" in html and "done" in html
    assert "6*7 = 42" in html.replace("&#42;", "*").replace("\\*", "*")
    await chat.aclose()


async def test_attachments_show_as_chips_live_and_in_the_saved_copy(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """Each attachment is a chip (escaped) under the user's text, in the panel and the copy."""
    chat = ChatWidget(url=demo.url)
    note = "<img src=x onerror=alert(1)>"
    reply = await chat.ask("echo seen", attach=[note, png()])
    assert reply.text.endswith("seen")
    live = "\n".join(html_values(chat))
    saved = chat._static.bundle(chat._views.values())
    for html in (live, saved["text/html"].replace(f"<style>{stylesheet()}</style>", "")):
        assert html.count('<span class="nbchat-attachment">') == 2, html
        assert (
            "note.txt (text/plain, 28 B)" in html
            and f"image.png (image/png, {len(png())} B)" in html
        )
        assert active_elements(html) == []
    assert (
        f"Attached: note.txt (text/plain, 28 B), image.png (image/png, {len(png())} B)"
        in saved["text/plain"]
    )
    await chat.aclose()


async def test_header_shows_the_connection_state(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """The header says connected once the client is, and disconnected after close."""
    chat = ChatWidget(url=demo.url)
    await chat.client.connect()
    assert "connected" in chat._header.value
    await chat.aclose()
    assert chat.closed


async def test_injection_in_a_reply_stays_inert(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """A reply carrying script and event-handler payloads renders as inert text."""
    chat = ChatWidget(url=demo.url)
    await chat.ask('echo <img src=x onerror="alert(1)"><script>alert(2)</script>')
    elements = active_elements("\n".join(html_values(chat)))
    assert elements == [], elements
    await chat.aclose()


async def test_builtin_server_starts_and_close_releases_everything(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no URL the widget starts its own server; close() stops it and the connection."""
    monkeypatch.delenv("NBCHAT_WS_URL", raising=False)
    chat = ChatWidget(delay=0)
    assert chat._server is not None
    port = chat._server.port
    assert "built-in server" in chat._header.value
    reply = await chat.ask("What is 6*7?")
    assert "42" in reply.text
    await asyncio.wait_for(chat.aclose(), 10)
    assert chat.client.state is ConnectionState.DISCONNECTED
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


async def test_lost_connection_shows_then_recovers(comms: list[RecordingComm]) -> None:
    """A drop mid-stream shows in the header and the message; after reconnect the reply ends."""
    server = await DemoServer.start(port=0, delay=0.005)
    chat = ChatWidget(url=server.url, **FAST)
    events = attach(chat.client, "state", "open", "message")
    headers: list[str] = []
    chat._header.observe(lambda change: headers.append(change["new"]), "value")
    notes: list[str] = []
    chat.client.on("state", lambda s: notes.extend(v.note for v in chat.turns))
    ask = asyncio.ensure_future(chat.ask("count to 100"))
    await events.wait_for("message", 3)  # ack and a couple of tokens
    await drop_connections(server)
    reply = await asyncio.wait_for(ask, 10)
    assert reply.text == " ".join(str(i) for i in range(1, 101))
    assert any("reconnecting" in h for h in headers)
    assert any(n.startswith("reconnecting") and "resumes" in n for n in notes)
    assert "connected" in chat._header.value and chat.turns[-1].note == ""
    await chat.aclose()
    await server.close()


async def test_plain_fallback_shows_the_conversation(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """The mimebundle carries text/plain and text/markdown versions of the conversation."""
    chat = ChatWidget(url=demo.url)
    await chat.ask("What is 6*7?")
    bundle = chat._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "42" in bundle["text/plain"] and "What is 6*7?" in bundle["text/plain"]
    assert "calculator" in bundle["text/markdown"]
    await chat.aclose()


async def test_widget_exposes_the_client_it_was_given(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """ChatWidget(client) wraps that very client; replies asked on it show in the panel."""
    client = ChatClient(url=demo.url)
    chat = ChatWidget(client)
    assert chat.client is client
    await client.ask("count to 3")
    assert any("1 2 3" in v for v in html_values(chat))
    await chat.aclose()


async def test_submitted_text_is_sent_and_answered(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """The input's submit message carries the typed text, which is sent and answered."""
    chat = ChatWidget(url=demo.url)
    sent = attach(chat.client, "send")
    chat._input._handle_custom_msg({"event": "submit", "text": "  count to 3 "}, [])
    chat._input._handle_custom_msg({"event": "submit", "text": "   "}, [])  # blank: ignored
    await sent.wait_for("send")
    assert [args[0].message for args in sent.of("send")] == ["count to 3"]
    assert chat._input.streaming  # Stop shows while the reply streams
    await asyncio.wait_for(next(iter(chat.client.replies())), 10)
    assert any("1 2 3" in v for v in html_values(chat))
    assert not chat._input.streaming
    await chat.aclose()


async def test_stop_cancels_the_streaming_reply(comms: list[RecordingComm]) -> None:
    """Clicking Stop (the input's stop message) ends the streaming reply, marked cancelled."""
    server = await DemoServer.start(port=0, delay=0.01)
    chat = ChatWidget(url=server.url)
    events = attach(chat.client, "message")
    ask = asyncio.ensure_future(chat.ask("count to 10000"))
    await events.wait_for("message", 3)
    chat._input._handle_custom_msg({"event": "stop"}, [])
    reply = await asyncio.wait_for(ask, 10)
    assert reply.cancelled and len(reply.text.split()) < 10000
    await chat.aclose()
    await server.close()


async def test_interleaved_conversations_each_show_their_own_reply(
    comms: list[RecordingComm],
) -> None:
    """Two conversations answered interleaved, without reply_to: each turn shows its own answer."""

    async def handler(ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        second = json.loads(await ws.recv())
        for message, word in [(second, "bee"), (first, "ay"), (second, "bee"), (first, "ay")]:
            # No reply_to: only the conversation says which message this answers.
            cid = message["conversation_id"]
            await ws.send(json.dumps({"response": word + " ", "conversation_id": cid}))
        for message in (first, second):
            await ws.send(json.dumps({"done": True, "conversation_id": message["conversation_id"]}))

    async with scripted_server(handler) as url:
        chat = ChatWidget(url=url)
        a = chat.client.send(UserMessage(message="to a", conversation_id="ca"))
        b = chat.client.send(UserMessage(message="to b", conversation_id="cb"))
        replies = [future async for future in _each(chat.client.replies())]
        texts = {reply.message_id: reply.text for reply in replies}
        assert texts == {a: "ay ay ", b: "bee bee "}
        shown = {turn.message.id: turn.reply.text for turn in chat.turns if turn.message}
        assert shown == texts
        await chat.aclose()


async def _each(futures: Iterator[asyncio.Future[Reply]]) -> AsyncIterator[Reply]:
    for future in list(futures):
        yield await asyncio.wait_for(future, TIMEOUT)


async def test_a_failed_reply_says_why_and_stops_streaming(comms: list[RecordingComm]) -> None:
    """A reply that times out shows why in its turn, which stops streaming."""

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with scripted_server(handler) as url:
        chat = ChatWidget(url=url)
        with pytest.raises(ReplyTimeout):
            await chat.ask("anyone?", timeout=0.05)
        (turn,) = chat.turns
        assert turn.done and "no reply" in "\n".join(html_values(chat))
        await chat.aclose()


async def test_a_model_backend_runs_as_the_built_in_server(comms: list[RecordingComm]) -> None:
    """ChatWidget(backend=OpenAIAgent(...)) serves a model in one line: the reply streams in."""
    async with Upstream() as upstream:
        agent = OpenAIAgent(base_url=upstream.base_url, model="scripted", api_key="sk-test")
        chat = ChatWidget(backend=agent)
        reply = await chat.ask("hello model", timeout=TIMEOUT)
        assert reply.text.strip() == "You said: hello model"
        assert "You said: hello model" in "\n".join(html_values(chat))
        header = chat._header.value  # what answers, as the built-in server announced it
        assert "scripted" in header and upstream.base_url in header and "ws://" not in header
        await chat.aclose()


async def test_a_url_and_a_backend_together_are_refused() -> None:
    """Naming both a server to reach and a backend to run is a one-line ConfigError."""
    with pytest.raises(ConfigError, match="either a url or a backend"):
        ChatWidget(url="ws://127.0.0.1:1/ws", backend=object())  # type: ignore[arg-type]


async def test_before_any_connection_no_resume_is_promised(comms: list[RecordingComm]) -> None:
    """A message waiting for a server never reached says it waits (connecting, as the header)."""
    chat = ChatWidget(url=f"ws://127.0.0.1:{await free_port()}/ws", **FAST)
    events = attach(chat.client, "state")
    chat.send("hello?")
    await events.wait_for("state", 3)  # connecting, disconnected, connecting
    html = "\n".join(html_values(chat))
    assert "the message goes out once the server answers" in html and "resumes" not in html
    assert chat.turns[-1].note.startswith("connecting")
    assert "connecting" in chat._header.value and "reconnecting" not in chat._header.value
    await chat.aclose()


async def test_a_give_up_notice_leaves_once_the_client_tries_again(
    comms: list[RecordingComm],
) -> None:
    """The give-up banner stays only while it holds: a new attempt and an answer remove it."""
    port = await free_port()
    chat = ChatWidget(
        url=f"ws://127.0.0.1:{port}/ws",
        connect_timeout=0.3,
        reconnect_interval=0.05,
        max_reconnect_interval=0.1,
        max_reconnect_attempts=50,
    )
    events = attach(chat.client, "error", "state")
    await events.wait_for("error", 1)
    shown = "\n".join(html_values(chat))
    assert "Disconnected: could not reach" in shown and "resumes" not in shown
    seen: list[str] = []
    chat.client.on("state", lambda _: seen.append("\n".join(html_values(chat))))
    server = await DemoServer.start(port=port, delay=0)
    try:
        reply = await asyncio.wait_for(chat.ask("echo back"), TIMEOUT)
        assert reply.text == "back"
        shown = "\n".join(html_values(chat))
        assert "could not reach" not in shown and "nbchat-status-connected" in shown
        assert seen and not any("could not reach" in html for html in seen[1:])
        assert not any("Disconnected" in html and "resumes" in html for html in seen)
    finally:
        await chat.aclose()
        await server.close()


def custom_messages(comms: list[RecordingComm], event: str) -> list[dict[str, object]]:
    """The custom messages with this ``event`` that widgets sent to the page, in order."""
    return [
        m["content"]
        for c in comms
        for m in c.messages
        if m.get("method") == "custom" and m.get("content", {}).get("event") == event
    ]


async def test_retry_asks_the_last_message_again(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """Retry (the button or the method) sends the last message again as a new turn."""
    chat = ChatWidget(url=demo.url)
    with pytest.raises(ConfigError, match="nothing to retry"):
        chat.retry()
    await chat.ask("What is 6*7?")
    sent = attach(chat.client, "send")
    chat._input._handle_custom_msg({"event": "retry"}, [])
    await sent.wait_for("send")
    await asyncio.wait_for(next(iter(chat.client.replies())), TIMEOUT)
    assert [t.user_text for t in chat.turns] == ["What is 6*7?", "What is 6*7?"]
    assert "42" in chat.turns[-1].reply.text
    await chat.aclose()


async def test_clear_starts_a_new_conversation_with_an_empty_panel(
    comms: list[RecordingComm],
) -> None:
    """Clear stops the streaming reply, empties the panel and moves to a new conversation."""
    server = await DemoServer.start(port=0, delay=0.01)
    chat = ChatWidget(url=server.url)
    old = chat.client.conversation_id
    events = attach(chat.client, "message")
    ask = asyncio.ensure_future(chat.ask("count to 10000"))
    await events.wait_for("message", 3)
    chat._input._handle_custom_msg({"event": "clear"}, [])
    assert (await asyncio.wait_for(ask, TIMEOUT)).cancelled
    assert chat.turns == [] and chat._log.box.children == ()
    assert chat.client.conversation_id != old
    reply = await chat.ask("What is my name")
    assert reply.conversation_id == chat.client.conversation_id
    assert len(chat.turns) == 1
    await chat.aclose()
    await server.close()


async def test_copy_gives_a_reply_markdown_and_its_button_carries_it_inert(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """copy() returns the reply's Markdown; the Copy button holds it escaped, never as markup."""
    chat = ChatWidget(url=demo.url)
    with pytest.raises(ConfigError, match="no reply"):
        chat.copy()
    payload = 'echo **bold** "><script>alert(1)</script><img src=x onerror=alert(2)>'
    reply = await chat.ask(payload)
    assert chat.copy() == reply.text == chat.copy(0)
    with pytest.raises(ConfigError, match="no reply 5"):
        chat.copy(5)
    buttons = [v for v in html_values(chat) if "nbchat-copy" in v]
    assert len(buttons) == 1
    assert active_elements(buttons[0]) == []
    assert json.dumps(reply.text)[1:-1].replace('\\"', "&quot;")[:10] in buttons[0]
    await chat.aclose()


async def test_close_leaves_the_conversation_readable_and_marked_closed(
    comms: list[RecordingComm],
) -> None:
    """After close() the turns stay, the header says closed, the input is read-only."""
    server = await DemoServer.start(port=0, delay=0.01)
    chat = ChatWidget(url=server.url)
    await chat.ask("What is 6*7?")
    events = attach(chat.client, "message")
    chat.send("count to 10000")
    await events.wait_for("message", 3)
    await chat.aclose()
    assert chat.closed and chat.comm is not None  # still on the page
    values = html_values(chat)
    assert "closed" in chat._header.value
    assert any("42" in v for v in values)
    assert any("stopped: the chat was closed" in v for v in values)
    assert chat._input.closed and not chat._input.streaming
    chat._input._handle_custom_msg({"event": "submit", "text": "hello?", "echo": 7}, [])
    assert custom_messages(comms, "accepted")[-1] == {
        "event": "accepted",
        "echo": 7,
        "text": "hello?",
    }
    chat.close(remove=True)
    assert chat.comm is None
    await server.close()


async def test_a_message_that_cannot_be_sent_is_given_back(comms: list[RecordingComm]) -> None:
    """A send refused by the client returns the text to the page and says why in the panel."""
    port = await free_port()
    chat = ChatWidget(url=f"ws://127.0.0.1:{port}/ws", max_queue=1, max_reconnect_attempts=0)
    chat._input._handle_custom_msg({"event": "submit", "text": "one", "echo": 1}, [])
    chat._input._handle_custom_msg({"event": "submit", "text": "two", "echo": 2}, [])
    accepted = custom_messages(comms, "accepted")
    assert accepted[0] == {"event": "accepted", "echo": 1, "text": None}
    assert accepted[1]["echo"] == 2 and accepted[1]["text"] == "two"
    assert any("Not sent:" in v for v in html_values(chat))
    await chat.aclose()


def find_buttons(widget: object, description: str) -> list[Any]:
    """Every ipywidgets Button in the panel with this label."""
    found: list[Any] = []

    def walk(node: object) -> None:
        if getattr(node, "description", None) == description and hasattr(node, "click"):
            found.append(node)
        for child in getattr(node, "children", ()):
            walk(child)

    walk(widget)
    return found


async def test_a_notebook_function_is_called_as_a_tool_and_its_card_says_so(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """@chat.tool offers a function; the demo agent calls it; the card says it ran in the kernel."""
    chat = ChatWidget(url=demo.url)

    @chat.tool
    def add(a: int, b: int = 1) -> int:
        """Add two numbers."""
        return a + b

    assert list(chat.tools) == ["add"] and chat.tools["add"].function is add
    reply = await chat.ask('call add {"a": 40, "b": 2}')
    assert "42" in reply.text
    cards = [v for v in html_values(chat) if "nbchat-tool-name" in v]
    assert cards and "in this kernel" in cards[-1] and "done" in cards[-1]
    chat.remove_tool("add")
    assert dict(chat.tools) == {}
    await chat.aclose()


@pytest.mark.parametrize("choice", ["Run", "Deny"])
async def test_a_confirmed_tool_waits_for_run_or_deny_on_its_card(
    comms: list[RecordingComm], demo: DemoServer, choice: str
) -> None:
    """A confirm=True tool shows Run / Deny under its card and runs only when Run is clicked."""
    chat = ChatWidget(url=demo.url)
    calls: list[str] = []

    @chat.tool(confirm=True)
    def wipe(table: str) -> str:
        """Delete a table."""
        calls.append(table)
        return f"wiped {table}"

    asked = asyncio.Event()
    approve = chat.client.approver
    assert approve is not None

    async def spy(call: ToolCall) -> bool:
        asked.set()  # the widget's approver shows its buttons before it first waits
        return await approve(call)

    chat.client.approver = spy
    ask = asyncio.ensure_future(chat.ask('call wipe {"table": "t1"}'))
    await asyncio.wait_for(asked.wait(), TIMEOUT)
    assert not calls  # nothing runs before the person decides
    assert any("Run <code>wipe</code> in this kernel?" in v for v in html_values(chat))
    find_buttons(chat, choice)[0].click()
    reply = await asyncio.wait_for(ask, TIMEOUT)
    if choice == "Run":
        assert calls == ["t1"] and "wiped t1" in reply.text
    else:
        assert calls == [] and "denied" in reply.text
    assert not find_buttons(chat, "Run")  # the question is gone once answered
    await chat.aclose()


async def test_at_completes_the_kernels_names_and_a_sent_mention_is_a_chip(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """With kernel_tools, ``@d`` is answered with df and its type; the bubble shows ``@df``."""
    from nbchat.client.kernel import Kernel

    namespace = {"df": {"a": 1}, "n": 2}
    chat = ChatWidget(url=demo.url, kernel_tools=Kernel(namespace=lambda: namespace))
    plain = ChatWidget(url=demo.url)
    assert chat._input.mentions and not plain._input.mentions
    for widget in (chat, plain):
        widget._input._handle_custom_msg({"event": "complete", "prefix": "d", "seq": 4}, [])
    answers = [
        [m["content"] for m in w._input.comm.messages if m.get("method") == "custom"]
        for w in (chat, plain)
    ]
    assert answers[0] == [
        {"event": "completions", "seq": 4, "items": [{"name": "df", "type": "dict"}]}
    ]
    assert answers[1] == [{"event": "completions", "seq": 4, "items": []}]
    reply = await chat.ask("what keys has @df?")
    assert "- df: dict" in reply.text
    assert any('<span class="nbchat-mention">@df</span>' in v for v in html_values(chat))

    saved = chat._static.bundle(chat._views.values())["text/html"]  # what a saved notebook shows
    assert '<span class="nbchat-mention">@df</span>' in saved
    await chat.aclose()
    await plain.aclose()


async def test_files_sent_from_the_page_are_attached_to_the_message(
    comms: list[RecordingComm], demo: DemoServer
) -> None:
    """A submit with files (name, type, a buffer each) sends them; a refused one is given back."""
    chat = ChatWidget(url=demo.url)
    await chat.client.connect()
    sent = attach(chat.client, "send")
    about = [{"name": "notes.csv", "mime": "text/csv"}, {"name": "plot.png", "mime": "image/png"}]
    submit = {"event": "submit", "text": "echo look", "echo": 3, "attachments": about}
    chat._input._handle_custom_msg(submit, [memoryview(b"a,b\n1,2\n"), memoryview(png())])
    await sent.wait_for("send")
    reply = await asyncio.wait_for(next(iter(chat.client.replies())), TIMEOUT)
    assert reply.text == (
        "I received 2 attachments: notes.csv (text/csv, 8 B), "
        f"plot.png (image/png, {len(png())} B).\n\nlook"
    )
    assert any(
        '<span class="nbchat-attachment">notes.csv (text/csv, 8 B)</span>' in v
        for v in html_values(chat)
    )
    assert custom_messages(comms, "accepted")[-1] == {"event": "accepted", "echo": 3, "text": None}
    junk = {"event": "submit", "text": "look again", "echo": 4, "attachments": [{"name": "x.bin"}]}
    chat._input._handle_custom_msg(junk, [memoryview(b"\xff\xfe\x00")])
    assert custom_messages(comms, "accepted")[-1] == {
        "event": "accepted",
        "echo": 4,
        "text": "look again",
    }
    assert any("Not sent: x.bin is neither an image" in v for v in html_values(chat))
    await chat.aclose()
