"""ChatClient against real servers on loopback: the seed's test tables, then beyond them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tracemalloc
from collections.abc import AsyncIterator, Callable

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from nbchat import (
    ChatClient,
    ClientClosed,
    ConnectionFailed,
    ConnectionState,
    DoneMessage,
    HandshakeRejected,
    ProtocolError,
    QueueFull,
    ReconnectExhausted,
    ReplyTimeout,
    ServerError,
    TokenMessage,
    ToolCallMessage,
    ToolResultMessage,
    UnknownMessage,
    destroy_client,
    get_client,
)
from nbchat.client.client import ReplyRestarted
from nbchat.server import DemoServer, serve_demo
from tests.helpers import FAST, TIMEOUT, attach, free_port, scripted_server
from tests.server.helpers import drop_connections

pytestmark = pytest.mark.loopback


@pytest.fixture
async def client(demo: DemoServer) -> AsyncIterator[ChatClient]:
    """A client of the demo server, disconnected after the test."""
    chat = ChatClient(url=demo.url, **FAST)
    yield chat
    await chat.disconnect()


def count_words(n: int) -> str:
    """The demo agent's reply to "count to n"."""
    return " ".join(str(i) for i in range(1, n + 1))


# Unit table


def test_constructor_merges_config_with_defaults() -> None:
    """Overrides replace defaults; the rest keep the seed's values."""
    chat = ChatClient(url="ws://127.0.0.1:1/ws", reconnect_interval=0.5)
    assert chat.config.reconnect_interval == 0.5
    assert chat.config.max_reconnect_attempts == 5
    assert chat.state is ConnectionState.DISCONNECTED and not chat.is_connected


async def test_connect_opens_a_websocket(client: ChatClient, demo: DemoServer) -> None:
    """connect() opens one connection on the server."""
    await client.connect()
    assert client.is_connected
    assert demo.connection_count == 1


async def test_disconnect_closes_with_1000() -> None:
    """disconnect() closes the socket with code 1000 "Client disconnect"."""
    closed: asyncio.Future[tuple[int | None, str | None]] = asyncio.Future()

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()
        closed.set_result((ws.close_code, ws.close_reason))

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url)
        await chat.connect()
        await chat.disconnect()
        assert await asyncio.wait_for(closed, 5) == (1000, "Client disconnect")
        assert chat.state is ConnectionState.DISCONNECTED


async def test_send_serialises_to_json_and_returns_the_id() -> None:
    """send() writes the message as one JSON text frame carrying its id."""
    received: asyncio.Queue[str] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            await received.put(str(frame))

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url, conversation_id="conv-1")
        await chat.connect()
        message_id = chat.send("hello")
        frame = json.loads(await asyncio.wait_for(received.get(), 5))
        assert frame == {
            "type": "message",
            "id": message_id,
            "conversation_id": "conv-1",
            "message": "hello",
        }
        await chat.disconnect()


async def test_send_queues_while_disconnected_and_flushes_in_order() -> None:
    """Messages sent before the connection opens are queued, then written in order."""
    received: asyncio.Queue[str] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            await received.put(json.loads(frame)["message"])

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url)
        for text in ["one", "two", "three"]:
            chat.send(text)
        assert chat.queued == 3  # queued: the connection has only just been started
        got = [await asyncio.wait_for(received.get(), 5) for _ in range(3)]
        assert got == ["one", "two", "three"]
        assert chat.queued == 0
        await chat.disconnect()


# Connection table


async def test_auto_reconnect_after_abnormal_closure(client: ChatClient, demo: DemoServer) -> None:
    """A dropped connection (1006) is reopened after the backoff delay."""
    events = attach(client, "open", "close")
    await client.connect()
    await drop_connections(demo)
    await events.wait_for("open", 2)
    assert events.of("close")[0][0] == 1006
    assert client.is_connected


async def test_max_reconnect_attempts_then_stop_and_say_so() -> None:
    """With no server, the client stops after max attempts and reports it in an error event."""
    url = f"ws://127.0.0.1:{await free_port()}/ws"
    chat = ChatClient(url=url, max_reconnect_attempts=3, **FAST)
    events = attach(chat, "error", "state")
    with pytest.raises(ReconnectExhausted, match="gave up after 3 reconnection attempts"):
        await chat.connect()
    assert isinstance(events.of("error")[-1][0], ReconnectExhausted)
    connecting = [s for (s,) in events.of("state") if s is ConnectionState.CONNECTING]
    assert len(connecting) == 4  # the first try and three reconnections
    assert chat.state is ConnectionState.DISCONNECTED


async def test_state_follows_the_lifecycle(client: ChatClient) -> None:
    """State events walk connecting -> connected -> closing -> disconnected."""
    events = attach(client, "state")
    await client.connect()
    await client.disconnect()
    states = [s for (s,) in events.of("state")]
    assert states == ["connecting", "connected", "closing", "disconnected"]


async def test_disconnect_never_reconnects(client: ChatClient) -> None:
    """After disconnect() no reconnect is pending and sending needs connect() first."""
    events = attach(client, "open")
    await client.connect()
    await client.disconnect()
    assert client.state is ConnectionState.DISCONNECTED and not client.reconnecting
    with pytest.raises(ClientClosed, match="call connect"):
        client.send("hello?")
    assert len(events.of("open")) == 1
    await client.connect()  # an explicit connect() starts again
    assert client.is_connected


async def test_attempts_reset_after_a_stable_connection(demo: DemoServer) -> None:
    """Once a connection stays up for stable_after, the attempt count starts again."""
    chat = ChatClient(url=demo.url, reconnect_interval=0.01, stable_after=0.0)
    events = attach(chat, "open")
    await chat.connect()
    for n in range(2, 5):
        await drop_connections(demo)
        await events.wait_for("open", n)
    assert chat.attempt == 0
    await chat.disconnect()


@pytest.mark.parametrize(
    ("code", "reconnects"),
    [(1000, False), (1001, True), (1011, True), (1012, True), (1008, False), (4000, False)],
)
async def test_close_code_table(code: int, reconnects: bool) -> None:
    """A server close with each code in the table gets the table's action."""
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            await ws.close(code, "scripted")
        else:
            await ws.wait_closed()

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url, **FAST)
        events = attach(chat, "open", "close", "error", "state")
        await chat.connect()
        await events.wait_for("close")
        assert events.of("close")[0] == (code, "scripted")
        if reconnects:
            await events.wait_for("open", 2)
        else:
            await events.wait_for("state", 3)  # connecting, connected, disconnected
            assert events.of("state")[-1] == (ConnectionState.DISCONNECTED,)
            assert not chat.reconnecting and chat.state is ConnectionState.DISCONNECTED
            assert len(events.of("open")) == 1
            if code != 1000:
                assert isinstance(events.of("error")[-1][0], ConnectionFailed)
        await chat.disconnect()


# Message table


async def test_valid_messages_reach_on_message(client: ChatClient) -> None:
    """on_message receives parsed models: ack, tokens, done."""
    events = attach(client, "message")
    await client.ask("hello")
    kinds = {type(args[0]).__name__ for args in events.of("message")}
    assert {"AckMessage", "TokenMessage", "DoneMessage"} <= kinds


async def test_config_callbacks_are_invoked(demo: DemoServer) -> None:
    """The seed's on_open/on_message/on_close callbacks are called."""
    seen: list[str] = []
    chat = ChatClient(
        url=demo.url,
        on_open=lambda: seen.append("open"),
        on_message=lambda m: seen.append(m.type),
        on_close=lambda code, reason: seen.append(f"close {code}"),
    )
    await chat.ask("hello")
    await chat.disconnect()
    assert seen[0] == "open" and "token" in seen and seen[-1] == "close 1000"


BAD_FRAMES: list[str | bytes] = [
    "{not json",
    "[1, 2, 3]",
    "42",
    '{"type": "token"}',
    '{"type": "tool_call", "tool_calls": 5}',
    b"\x00\x01binary",
    "x" * 5000,
]


async def test_bad_frames_are_reported_and_the_connection_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each bad frame becomes an error event carrying the raw payload; then a reply still works."""

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            request = json.loads(frame)
            for bad in BAD_FRAMES:
                await ws.send(bad)
            rid, cid = request["id"], request["conversation_id"]
            await ws.send(json.dumps({"type": "ack", "id": rid, "conversation_id": cid}))
            await ws.send(json.dumps({"type": "token", "response": "ok", "reply_to": rid}))
            await ws.send(json.dumps({"type": "done", "reply_to": rid}))

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url, max_size=1000)
        events = attach(chat, "error")
        with caplog.at_level(logging.WARNING, "nbchat.client"):
            reply = await chat.ask("hi", timeout=5)
        assert reply.text == "ok"
        errors = [args[0] for args in events.of("error")]
        assert len(errors) == len(BAD_FRAMES)
        assert all(isinstance(e, ProtocolError) for e in errors)
        assert [e.raw for e in errors[:-1]] == BAD_FRAMES[:-1]  # type: ignore[attr-defined]
        assert "max_size" in str(errors[-1])
        assert len([r for r in caplog.records if "bad frame" in r.getMessage()]) == len(BAD_FRAMES)
        assert chat.is_connected
        await chat.disconnect()


async def test_unknown_message_type_is_delivered_not_fatal() -> None:
    """A message of unknown type reaches listeners as UnknownMessage."""

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            rid = json.loads(frame)["id"]
            await ws.send(json.dumps({"type": "progress", "percent": 50, "reply_to": rid}))
            await ws.send(json.dumps({"type": "done", "reply_to": rid}))

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url)
        reply = await chat.ask("hi", timeout=5)
        assert isinstance(reply.messages[0], UnknownMessage)
        assert reply.messages[0].model_extra == {"percent": 50}
        await chat.disconnect()


async def test_a_raising_callback_does_not_disturb_the_client(
    client: ChatClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that raises is logged; the reply still arrives."""

    def broken(message: object) -> None:
        raise RuntimeError("listener bug")

    client.on("message", broken)
    with caplog.at_level(logging.ERROR, "nbchat.client"):
        reply = await client.ask("hello")
    assert reply.text
    assert any("listener bug" in (r.exc_text or "") for r in caplog.records)


async def test_unsubscribe_stops_callbacks(client: ChatClient) -> None:
    """The function returned by on() removes the listener."""
    seen: list[object] = []
    unsubscribe = client.on("message", seen.append)
    unsubscribe()
    await client.ask("hello")
    assert seen == []


# Integration table


async def test_full_conversation_flow(client: ChatClient) -> None:
    """A message gets a streamed, complete reply."""
    reply = await client.ask("count to 5")
    assert reply.text == count_words(5)
    assert isinstance(reply.messages[-1], DoneMessage)


async def test_tool_calls_are_received(client: ChatClient) -> None:
    """ "What is 6*7?" yields a calculator call resolved to 42 and a reply that says 42."""
    reply = await client.ask("What is 6*7?")
    (call,) = reply.tool_calls
    assert (call.name, call.status, call.result) == ("calculator", "done", 42)
    assert "42" in reply.text
    kinds = [type(m) for m in reply.messages]
    assert kinds.index(ToolCallMessage) < kinds.index(ToolResultMessage) < kinds.index(DoneMessage)


async def test_conversation_id_persists_across_messages(client: ChatClient) -> None:
    """Messages share one conversation, so the server remembers across them."""
    first = await client.ask("my name is Ada")
    second = await client.ask("what is my name?")
    assert first.conversation_id == second.conversation_id == client.conversation_id
    assert "Ada" in second.text


async def test_typescript_shaped_dict_is_served(client: ChatClient) -> None:
    """A dict with only message and conversation_id gets a streamed reply."""
    reply = await client.ask({"message": "count to 3", "conversation_id": "ts-style"})
    assert reply.text == count_words(3)
    assert reply.conversation_id == "ts-style"


async def test_stream_yields_messages_and_ends_after_done(client: ChatClient) -> None:
    """stream() yields the reply's messages as they arrive and stops after done."""
    messages = [m async for m in client.stream("count to 4")]
    tokens = "".join(m.response for m in messages if isinstance(m, TokenMessage))
    assert tokens == count_words(4)
    assert isinstance(messages[-1], DoneMessage)


# Beyond the seed


async def test_server_killed_mid_reply_and_restarted_loses_nothing() -> None:
    """A reply cut by a server restart completes once, from the new server, without repeats."""
    port = await free_port()
    server = await DemoServer.start(port=port, delay=0.002)
    chat = ChatClient(url=server.url, **FAST)
    events = attach(chat, "open")
    restarts = attach(chat, "restart")
    stream = chat.stream("count to 300")
    first = await anext(aiter(stream))
    assert isinstance(first, TokenMessage)
    await server.close()
    replacement = await DemoServer.start(port=port, delay=0.0)
    try:
        messages = [m async for m in stream]
        await events.wait_for("open", 2)
        (restarted,) = [i for i, m in enumerate(messages) if isinstance(m, ReplyRestarted)]
        text = "".join(m.response for m in messages[restarted:] if isinstance(m, TokenMessage))
        assert text == count_words(300)
        assert [args for args in restarts.of("restart")] == [(first.reply_to,)]
        assert chat.pending == 0
    finally:
        await chat.disconnect()
        await replacement.close()


async def test_dropped_connection_resumes_the_same_reply_once() -> None:
    """After a drop, the resent id resumes the server's reply: no gap, no repeat."""
    slow = await DemoServer.start(port=0, delay=0.002)
    chat = ChatClient(url=slow.url, **FAST)
    try:
        stream = chat.stream("count to 200")
        first = await anext(aiter(stream))
        await drop_connections(slow)
        rest = [m async for m in stream]
        text = "".join(m.response for m in [first, *rest] if isinstance(m, TokenMessage))
        assert text == count_words(200)
        assert not any(isinstance(m, ReplyRestarted) for m in rest)
    finally:
        await chat.disconnect()
        await slow.close()


async def test_a_server_never_reached_is_given_up_within_connect_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused port fails connect() within connect_timeout, logging each retry and its state."""
    url = f"ws://user:secret@127.0.0.1:{await free_port()}/ws"
    chat = ChatClient(
        url=url, connect_timeout=0.5, reconnect_interval=0.1, max_reconnect_attempts=50
    )
    events = attach(chat, "state")
    started = asyncio.get_running_loop().time()
    with (
        caplog.at_level(logging.WARNING, logger="nbchat.client"),
        pytest.raises(ReconnectExhausted, match=r"could not reach .* within 0.5 s") as info,
    ):
        await asyncio.wait_for(chat.connect(), TIMEOUT)
    assert asyncio.get_running_loop().time() - started < 0.5 + 1.0 + TIMEOUT / 10
    assert info.value.within == 0.5 and "connect()" not in str(info.value)
    retries = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert retries and "retry 1 of 50 in" in retries[0]
    assert all("secret" not in line and "could not connect to" in line for line in retries)
    connecting = [s for (s,) in events.of("state") if s is ConnectionState.CONNECTING]
    assert len(connecting) == len(retries) + 1
    assert chat.state is ConnectionState.DISCONNECTED


async def test_connect_timeout_does_not_bound_reconnects(demo: DemoServer) -> None:
    """Once connected, a lost server is retried max_reconnect_attempts times, however long."""
    chat = ChatClient(url=demo.url, connect_timeout=0.001, max_reconnect_attempts=3, **FAST)
    await chat.connect()
    failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    def first_error(exc: BaseException) -> None:
        if not failed.done():
            failed.set_result(exc)

    chat.on("error", first_error)
    await demo.close()
    error = await asyncio.wait_for(failed, TIMEOUT)
    assert isinstance(error, ReconnectExhausted) and error.within is None
    assert "gave up after 3 reconnection attempts" in str(error)
    await chat.disconnect()


async def test_max_attempts_fail_pending_asks() -> None:
    """When reconnection gives up, a pending ask() fails with ReconnectExhausted."""
    port = await free_port()
    server = await DemoServer.start(port=port, delay=0.01)
    chat = ChatClient(url=server.url, max_reconnect_attempts=2, **FAST)
    await chat.connect()
    ask = asyncio.ensure_future(chat.ask("count to 1000"))
    await server.close()
    with pytest.raises(ReconnectExhausted):
        await asyncio.wait_for(ask, TIMEOUT)
    assert chat.pending == 0


async def test_queue_bound_raises_queue_full_and_drops_nothing() -> None:
    """A full queue refuses the next message with QueueFull; queued ones stay."""
    chat = ChatClient(url=f"ws://127.0.0.1:{await free_port()}/ws", max_queue=2, **FAST)
    chat.send("one")
    chat.send("two")
    with pytest.raises(QueueFull, match="queue is full"):
        chat.send("three")
    assert chat.queued == 2
    await chat.disconnect()


async def test_disconnect_fails_pending_replies() -> None:
    """Messages without a reply when disconnect() is called are reported failed."""
    chat = ChatClient(url=f"ws://127.0.0.1:{await free_port()}/ws", **FAST)
    chat.send("hello")
    (reply,) = chat.replies()
    await chat.disconnect()
    with pytest.raises(ClientClosed):
        await reply


async def test_wrong_token_is_refused_at_the_handshake() -> None:
    """A wrong token fails connect() at once with HTTP 401; no reconnection is tried."""
    async with serve_demo(port=0, token="s3cret") as server:
        chat = ChatClient(url=server.url, headers={"Authorization": "Bearer wrong"}, **FAST)
        events = attach(chat, "state")
        with pytest.raises(HandshakeRejected, match=r"401.*token"):
            await chat.connect()
        assert [s for (s,) in events.of("state")].count(ConnectionState.CONNECTING) == 1
        good = ChatClient(url=server.url, headers={"Authorization": "Bearer s3cret"})
        assert (await good.ask("count to 2")).text == count_words(2)
        await good.disconnect()


async def test_foreign_origin_is_refused(demo: DemoServer) -> None:
    """A handshake from a foreign web origin is refused with 403."""
    chat = ChatClient(url=demo.url, headers={"Origin": "https://evil.example"})
    with pytest.raises(HandshakeRejected, match="403"):
        await chat.connect()


async def test_ask_timeout_raises_reply_timeout() -> None:
    """ask() with a timeout raises ReplyTimeout when no reply completes in time."""

    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url)
        with pytest.raises(ReplyTimeout, match=r"within 0\.05 s"):
            await chat.ask("anyone?", timeout=0.05)
        await chat.disconnect()


async def test_server_error_reply_raises_server_error() -> None:
    """An error reply makes ask() raise ServerError with the server's code."""

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            rid = json.loads(frame)["id"]
            error = {"code": "overloaded", "message": "try later"}
            await ws.send(json.dumps({"type": "error", "error": error, "reply_to": rid}))

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url)
        with pytest.raises(ServerError, match="overloaded: try later"):
            await chat.ask("hi", timeout=5)
        await chat.disconnect()


async def test_cancel_stops_the_reply() -> None:
    """cancel() ends the streaming reply early, marked cancelled."""
    slow = await DemoServer.start(port=0, delay=0.01)
    chat = ChatClient(url=slow.url)
    try:
        stream = chat.stream("count to 10000")
        await anext(aiter(stream))
        assert chat.cancel()
        rest = [m async for m in stream]
        done = rest[-1]
        assert isinstance(done, DoneMessage) and done.cancelled
        assert len(rest) < 10000
    finally:
        await chat.disconnect()
        await slow.close()


async def test_cancel_with_nothing_pending_is_a_no_op() -> None:
    """cancel() with no pending reply reports False instead of queueing a stale cancel."""
    assert ChatClient(url="ws://127.0.0.1:1/ws").cancel() is False


async def test_get_client_is_a_singleton_and_destroy_disconnects(demo: DemoServer) -> None:
    """get_client() returns one shared client until destroy_client()."""
    first = get_client(url=demo.url)
    assert get_client() is first
    await first.connect()
    await destroy_client()
    assert first.state is ConnectionState.DISCONNECTED
    assert get_client(url=demo.url) is not first
    await destroy_client()


# An endless reply: bounded by max_reply_bytes, and freed once abandoned

ENDLESS_FRAMES = 50_000
"""The endless server's bound, so that no test can loop forever."""


async def endless(ws: ServerConnection) -> None:
    """Ack the first message, then stream 1 KB tokens until the client leaves (or the bound)."""
    message = json.loads(await ws.recv())
    tag = {"conversation_id": message["conversation_id"], "reply_to": message["id"]}
    await ws.send(json.dumps({"type": "ack", "id": message["id"], **tag}))
    frame = json.dumps({"type": "token", "response": "x" * 1024, **tag})
    with contextlib.suppress(ConnectionClosed):
        for _ in range(ENDLESS_FRAMES):
            await ws.send(frame)
            await asyncio.sleep(0)  # a turn for the client on this loop, as a remote server gives


def frames_seen(chat: ChatClient) -> tuple[list[int], asyncio.Event, Callable[[int], None]]:
    """Count the client's messages; the event is set when the count reaches the target."""
    count, reached = [0], asyncio.Event()
    target = [0]

    def seen(message: object) -> None:
        count[0] += 1
        if count[0] >= target[0]:
            reached.set()

    def until(frames: int) -> None:
        reached.clear()
        target[0] = count[0] + frames

    chat.on("message", seen)
    return count, reached, until


async def test_a_reply_past_max_reply_bytes_fails_in_one_line() -> None:
    """An endless reply fails once it passes the bound, with the reason, well before a timeout."""
    async with scripted_server(endless) as url:
        chat = ChatClient(url=url, max_reply_bytes=200_000, **FAST)
        try:
            with pytest.raises(ProtocolError, match=r"passed max_reply_bytes \(200000 bytes\)"):
                await chat.ask("go on forever", timeout=TIMEOUT)
            assert chat.pending == 0
        finally:
            await chat.disconnect()


async def test_an_abandoned_endless_reply_stops_costing_memory() -> None:
    """After ask() timed out, the rest of an endless reply is read but no longer kept."""
    async with scripted_server(endless) as url:
        chat = ChatClient(url=url, max_reply_bytes=None, **FAST)
        _, reached, until = frames_seen(chat)
        tracemalloc.start()
        try:
            with pytest.raises(ReplyTimeout):
                await chat.ask("go on forever", timeout=0.3)
            until(2_000)
            await asyncio.wait_for(reached.wait(), TIMEOUT)
            before, _ = tracemalloc.get_traced_memory()
            until(5_000)  # 5 MB of tokens
            await asyncio.wait_for(reached.wait(), TIMEOUT)
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            await chat.disconnect()
    assert after - before < 2**20, f"grew {after - before} bytes over 5,000 frames"
