"""The connection under faults: every waiter gets an answer, nothing is resent for nobody.

Each test here is a regression test for a defect found by an adversarial pass
(issue 13, items 6 to 12), against real servers on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidURI
from websockets.http11 import Request, Response

from nbchat import ChatClient, ConfigError, ConnectionFailed, ProtocolError, ReconnectExhausted
from nbchat.client import clock, connection
from nbchat.client.connection import ConnectionState
from nbchat.protocol import CANCEL_FEATURE, CLIENT_ID_HEADER, FEATURES_HEADER
from nbchat.server import DemoServer
from tests.helpers import FAST, TIMEOUT, Handler, attach, free_port, scripted_server

pytestmark = pytest.mark.loopback


def ack_then_silence(frames: list[dict[str, object]]) -> Callable[[ServerConnection], object]:
    """A handler that records every client frame and acks messages, never answering them."""

    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            frames.append(frame)
            if frame.get("type", "message") == "message":
                await ws.send(
                    json.dumps({"type": "ack", "id": frame["id"], "reply_to": frame["id"]})
                )

    return handler


async def test_an_unexpected_failure_reaches_every_waiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the connection task fails the pending ask and fires an error event."""

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(connection, "ws_connect", broken)
    chat = ChatClient(url=f"ws://127.0.0.1:{await free_port()}/ws", **FAST)
    events = attach(chat, "error")
    with pytest.raises(ConnectionFailed, match="failed unexpectedly"):
        await asyncio.wait_for(chat.ask("hello"), TIMEOUT)
    assert events.of("error") and chat.pending == 0


async def test_a_url_websockets_refuses_is_one_config_error_not_an_http_400(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A URL that passes ClientConfig but not websockets fails once, as a setting, unretried."""
    attempts: list[str] = []

    async def refuses(url: str, **kwargs: object) -> None:
        attempts.append(url)
        raise InvalidURI(url, "scheme isn't ws or wss")

    monkeypatch.setattr(connection, "ws_connect", refuses)
    chat = ChatClient(url=f"ws://127.0.0.1:{await free_port()}/ws", **FAST)
    with pytest.raises(ConfigError, match="invalid client setting url") as info:
        await asyncio.wait_for(chat.ask("hello"), TIMEOUT)
    assert "HTTP" not in str(info.value) and "\n" not in str(info.value)
    assert len(attempts) == 1 and chat.pending == 0


async def test_a_client_moves_to_a_new_event_loop() -> None:
    """A client used by two asyncio.run calls in turn answers on the second loop too."""
    server = DemoServer.start_in_thread(port=0)
    chat = ChatClient(url=server.url, **FAST)

    async def ask(text: str) -> str:
        return (await chat.ask(text, timeout=TIMEOUT)).text

    def run_in_fresh_loop(text: str) -> str:
        return asyncio.run(ask(text))

    try:
        first = await asyncio.to_thread(run_in_fresh_loop, "count to 2")
        second = await asyncio.to_thread(run_in_fresh_loop, "count to 3")
    finally:
        server.close_sync()
    assert (first, second) == ("1 2", "1 2 3")


async def test_a_client_refuses_a_second_running_loop() -> None:
    """Using a client from another thread's loop while its own runs is a one-line ConfigError."""
    port = await free_port()
    chat = ChatClient(url=f"ws://127.0.0.1:{port}/ws", **FAST)
    chat.send("queued")
    errors: list[BaseException] = []

    def other_thread() -> None:
        async def use() -> None:
            chat.send("from elsewhere")

        try:
            asyncio.run(use())
        except ConfigError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    await asyncio.to_thread(thread.join, TIMEOUT)
    assert errors and "another thread's event loop" in str(errors[0])
    await chat.disconnect()


@contextlib.asynccontextmanager
async def cancelling_server(handler: Handler) -> AsyncIterator[str]:
    """A scripted server whose handshake announces the cancel feature."""

    def announce(ws: ServerConnection, request: Request, response: Response) -> Response:
        response.headers[FEATURES_HEADER] = CANCEL_FEATURE
        return response

    async with serve(handler, "127.0.0.1", 0, process_response=announce) as server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws"


async def test_a_timed_out_ask_is_cancelled_and_never_resent() -> None:
    """A caller that gave up tells the server, and its message is not resent after a reconnect."""
    frames: list[dict[str, object]] = []
    async with cancelling_server(ack_then_silence(frames)) as url:
        chat = ChatClient(url=url, **FAST)
        for _ in range(3):
            with pytest.raises(asyncio.TimeoutError):
                await chat.ask("anyone?", timeout=0.05)
        assert chat.pending == 0
        events = attach(chat, "send")

        async def three_cancels() -> None:
            while sum(f.get("type") == "cancel" for f in frames) < 3:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(three_cancels(), TIMEOUT)
        cancels = [f for f in frames if f.get("type") == "cancel"]
        asked = [f["id"] for f in frames if f.get("type") == "message"]
        assert {c["id"] for c in cancels} == set(asked) and len(asked) == 3
        assert events.of("send") == []
        await chat.disconnect()


async def test_a_cancel_written_as_the_connection_drops_is_delivered_after_reconnect() -> None:
    """A cancel that never reached the server is sent again on the next connection."""
    frames: list[dict[str, object]] = []
    connections: list[ServerConnection] = []
    second = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        if len(connections) == 2:
            second.set()
        async for raw in ws:
            frame = json.loads(raw)
            frames.append({**frame, "connection": len(connections)})
            if frame.get("type", "message") == "message" and len(connections) == 1:
                # Die before reading anything else: a cancel sent now is lost.
                ws.transport.abort()

    async with cancelling_server(handler) as url:
        chat = ChatClient(url=url, **FAST)
        chat.send("count to 1000")
        await chat.connect()
        assert chat.cancel()
        await asyncio.wait_for(second.wait(), TIMEOUT)

        async def cancel_on_second() -> None:
            while not any(f.get("type") == "cancel" and f["connection"] == 2 for f in frames):
                await asyncio.sleep(0.01)

        await asyncio.wait_for(cancel_on_second(), TIMEOUT)
        await chat.disconnect()


async def test_a_close_without_status_code_reconnects() -> None:
    """A close frame with no status code (1005) is abnormal: the client reconnects."""
    opened = 0

    async def bare_close(ws: ServerConnection) -> None:
        nonlocal opened
        opened += 1
        if opened == 1:
            ws.protocol.send_close()  # no code: an empty close frame, read as 1005
            for data in ws.protocol.data_to_send():
                ws.transport.write(data)
        await ws.wait_closed()

    async with scripted_server(bare_close) as url:
        chat = ChatClient(url=url, **FAST)
        events = attach(chat, "open", "close")
        await chat.connect()
        await events.wait_for("open", 2)
        assert events.of("close")[0][0] == 1005
        await chat.disconnect()


async def test_a_frame_over_the_hard_limit_is_an_error_event() -> None:
    """A frame beyond 16x max_size drops the connection and says why in an error event."""

    async def handler(ws: ServerConnection) -> None:
        await ws.send("x" * 20_000)
        await ws.wait_closed()

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url, max_size=1000, reconnect=False)
        events = attach(chat, "error")
        await chat.connect()
        await events.wait_for("error")
        errors = [args[0] for args in events.of("error")]
        assert any(isinstance(e, ProtocolError) and "1009" in str(e) for e in errors)
        await chat.disconnect()


async def test_disconnect_is_prompt_when_the_server_hangs() -> None:
    """disconnect() returns within close_timeout when the server never answers the close."""
    hang = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        ws.transport.pause_reading()  # read nothing more: the closing handshake never completes
        await hang.wait()

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url, close_timeout=0.2)
        await chat.connect()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(chat.disconnect(), TIMEOUT)
        assert loop.time() - started < 2.0
        hang.set()


async def test_the_client_sends_a_secret_identity_that_survives_reconnects() -> None:
    """Every connection of one client carries the same identity header; another client's differs."""
    seen: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        seen.append(ws.request.headers[CLIENT_ID_HEADER])
        if len(seen) == 1:
            ws.transport.abort()
        await ws.wait_closed()

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url, **FAST)
        events = attach(chat, "open")
        await chat.connect()
        await events.wait_for("open", 2)
        other = ChatClient(url=url)
        await other.connect()
        await chat.disconnect()
        await other.disconnect()
    assert len(seen) == 3 and seen[0] == seen[1] != seen[2] and len(seen[0]) >= 32
    assert seen[0] not in repr(chat)


async def test_the_token_variable_is_sent_as_a_bearer_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NBCHAT_TOKEN reaches the handshake of any client, and never its repr or config repr."""
    monkeypatch.setenv("NBCHAT_TOKEN", "s3cret-token")
    seen: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        seen.append(ws.request.headers["Authorization"])
        await ws.wait_closed()

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url)
        await chat.connect()
        await chat.disconnect()
    assert seen == ["Bearer s3cret-token"]
    assert "s3cret" not in repr(chat) and "s3cret" not in repr(chat.config)


async def test_errors_name_the_server_without_its_secrets() -> None:
    """A connection error names the URL with its credentials replaced by ***."""
    port = await free_port()
    chat = ChatClient(
        url=f"ws://ada:pw@127.0.0.1:{port}/ws?token=SECRETQ&api_key=SECRETK",
        max_reconnect_attempts=1,
        **FAST,
    )
    with pytest.raises(ConnectionFailed) as caught:
        await chat.connect()
    text = str(caught.value)
    assert "SECRET" not in text and ":pw@" not in text and f"127.0.0.1:{port}" in text


def test_close_sync_leaves_no_task_behind() -> None:
    """A script that asks synchronously and closes ends with no pending task and no warning."""
    server = DemoServer.start_in_thread(port=0)
    try:
        chat = ChatClient(url=server.url)
        assert chat.ask_sync("count to 2", timeout=TIMEOUT).text == "1 2"
        chat.close_sync()
        assert chat.state.value == "disconnected"
    finally:
        server.close_sync()


def test_send_without_a_running_loop_says_what_to_do() -> None:
    """send() in a script, where nothing could deliver in the background, is one clear line."""
    chat = ChatClient(url="ws://127.0.0.1:1/ws")
    with pytest.raises(ConfigError, match="in a script, use ask_sync"):
        chat.send("hello")
    assert chat.pending == 0


def stall_on_first_attempt(chat: ChatClient, seconds: float) -> None:
    """Block the client's loop for ``seconds`` once its first attempt has begun (a cell running)."""
    loop = asyncio.get_running_loop()
    stalled: list[bool] = []

    def on_state(state: ConnectionState) -> None:
        if state is ConnectionState.CONNECTING and not stalled:
            stalled.append(True)
            loop.call_soon(time.sleep, seconds)  # runs once the attempt awaits the network

    chat.on("state", on_state)


async def test_time_the_loop_was_blocked_does_not_use_up_connect_timeout() -> None:
    """A first attempt stalled longer than connect_timeout by a blocked loop still connects."""
    server = DemoServer.start_in_thread(port=0)
    chat = ChatClient(url=server.url, connect_timeout=0.5, **FAST)
    try:
        stall_on_first_attempt(chat, 1.5 + clock._STALL_TOLERANCE)
        await asyncio.wait_for(chat.connect(), TIMEOUT)
        assert chat.state is ConnectionState.CONNECTED
    finally:
        await chat.disconnect()
        server.close_sync()


async def test_a_handshake_the_loop_was_blocked_through_is_not_timed_out() -> None:
    """A stall longer than open_timeout during the handshake: the same attempt connects."""
    server = DemoServer.start_in_thread(port=0)
    chat = ChatClient(url=server.url, open_timeout=0.3, **FAST)
    attempts: list[ConnectionState] = []
    chat.on("state", lambda state: attempts.append(state))
    try:
        stall_on_first_attempt(chat, 1.0)
        await asyncio.wait_for(chat.connect(), TIMEOUT)
        assert attempts.count(ConnectionState.CONNECTING) == 1, attempts
    finally:
        await chat.disconnect()
        server.close_sync()


async def test_a_server_never_reached_is_given_up_after_connect_timeout_of_awake_time() -> None:
    """Against a refused port, connect_timeout counts the time the loop ran, not the stall."""
    url = f"ws://127.0.0.1:{await free_port()}/ws"
    chat = ChatClient(
        url=url, connect_timeout=0.5, reconnect_interval=0.1, max_reconnect_attempts=50
    )
    stall = 1.0
    stall_on_first_attempt(chat, stall)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ReconnectExhausted, match=r"within 0.5 s"):
        await asyncio.wait_for(chat.connect(), TIMEOUT)
    elapsed = loop.time() - started
    assert stall + 0.5 - clock._TICK <= elapsed < stall + 0.5 + TIMEOUT / 10
