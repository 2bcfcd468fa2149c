"""The reference server over real loopback sockets, driven by real websockets clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as connect_sync

from nbchat.protocol import CLIENT_ID_HEADER, MAX_ID_LENGTH, ErrorMessage, TokenMessage
from nbchat.server import (
    DEFAULT_OPTIONS,
    ChatServer,
    DemoServer,
    ResponderMessage,
    ServerOptions,
    serve_demo,
)
from nbchat.server.handshake import is_loopback_origin
from tests.helpers import TIME_SCALE, TIMEOUT
from tests.server.helpers import (
    close_connections,
    drop_connections,
    numbers,
    recv,
    reply,
    send,
    text,
)

pytestmark = pytest.mark.loopback

ALICE = {CLIENT_ID_HEADER: "alice-" + "a" * 26}
"""A client identity, as ChatClient sends one on every connection."""


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    """The demo server on a free loopback port, replying without delay."""
    async with serve_demo(port=0) as server:
        yield server


@pytest.fixture
async def slow() -> AsyncIterator[DemoServer]:
    """The demo server streaming a token every 5 ms, so replies can be interrupted."""
    async with serve_demo(port=0, delay=0.005) as server:
        yield server


# Messages and replies


async def test_typeless_message_is_acked_answered_and_done(demo: DemoServer) -> None:
    """A TypeScript-shaped message without type or id gets a server id, an ack, tokens, done."""
    async with connect(demo.url) as ws:
        await send(ws, message="hello", conversation_id="ts")
        ack = await recv(ws)
        assert ack["type"] == "ack" and ack["conversation_id"] == "ts"
        assert ack["reply_to"] == ack["id"] and "duplicate" not in ack
        frames = await reply(ws, ack["id"])
        assert frames[-1] == {"type": "done", "conversation_id": "ts", "reply_to": ack["id"]}
        assert "hello" in text(frames)


async def test_calculator_round_trip(demo: DemoServer) -> None:
    """ "What is 6*7?" streams a running calculator call, its result 42, then a reply with 42."""
    async with connect(demo.url) as ws:
        await send(ws, type="message", id="m1", conversation_id="c1", message="What is 6*7?")
        assert await recv(ws) == {
            "type": "ack",
            "id": "m1",
            "reply_to": "m1",
            "conversation_id": "c1",
        }
        frames = await reply(ws, "m1")
    kinds = [f["type"] for f in frames]
    assert kinds[:2] == ["tool_call", "tool_result"] and kinds[-1] == "done"
    (running,) = frames[0]["tool_calls"]
    (done,) = frames[1]["tool_calls"]
    assert running["name"] == "calculator" and running["status"] == "running"
    assert running["arguments"] == {"expression": "6*7"}
    assert done["id"] == running["id"] and done["status"] == "done" and done["result"] == 42
    assert "42" in text(frames)


async def test_memory_is_per_conversation_and_survives_reconnects(demo: DemoServer) -> None:
    """A name told in one conversation is recalled there from a new connection, not elsewhere."""
    async with connect(demo.url, additional_headers=ALICE) as ws:
        await send(ws, id="n1", conversation_id="one", message="My name is Grace")
        await reply(ws, "n1")
    async with connect(demo.url, additional_headers=ALICE) as ws:
        await send(ws, id="n2", conversation_id="one", message="What is my name?")
        assert text(await reply(ws, "n2")) == "Your name is Grace."
        await send(ws, id="n3", conversation_id="two", message="What is my name?")
        assert "don't know" in text(await reply(ws, "n3"))


async def test_conversation_messages_are_answered_in_order(demo: DemoServer) -> None:
    """Two messages of one conversation are answered one after the other, never interleaved."""
    async with connect(demo.url) as ws:
        await send(ws, id="a1", conversation_id="a", message="count to 50")
        await send(ws, id="b1", conversation_id="b", message="count to 50")
        await send(ws, id="a2", conversation_id="a", message="echo second")
        frames: list[dict[str, Any]] = []
        while sum(f["type"] == "done" for f in frames) < 3:
            frames.append(await recv(ws))
    order = [f["reply_to"] for f in frames if f["type"] != "ack"]
    last_a1 = max(i for i, rid in enumerate(order) if rid == "a1")
    first_a2 = order.index("a2")
    assert last_a1 < first_a2
    assert text([f for f in frames if f.get("reply_to") == "a2"]) == "second"
    assert text([f for f in frames if f.get("reply_to") == "b1"]) == numbers(50)


# Dedupe and resume


async def test_duplicate_id_is_acked_and_replayed_not_regenerated(demo: DemoServer) -> None:
    """A resent id is acked with duplicate, replays the same reply, and is generated once."""
    async with connect(demo.url) as ws:
        await send(ws, id="d1", conversation_id="dup", message="What is 6*7?")
        await recv(ws)
        first = await reply(ws, "d1")
        await send(ws, id="d1", conversation_id="dup", message="What is 6*7?")
        ack = await recv(ws)
        assert ack["type"] == "ack" and ack["id"] == "d1" and ack["duplicate"] is True
        assert await reply(ws, "d1") == first
        await send(ws, id="d2", conversation_id="dup", message="hello")
        assert "message 2 of our conversation" in text(await reply(ws, "d2"))


async def test_dropped_connection_resumes_the_whole_reply_once(slow: DemoServer) -> None:
    """After a drop mid-reply, resending the id on a new connection yields the full reply once."""
    async with connect(slow.url, additional_headers=ALICE) as ws:
        await send(ws, id="r1", conversation_id="resume", message="count to 200")
        assert (await recv(ws))["type"] == "ack"
        assert (await recv(ws))["type"] == "token"
        await drop_connections(slow)
        with pytest.raises(ConnectionClosed):
            while True:
                await recv(ws)
        assert ws.close_code == 1006
    assert slow.connection_count == 0
    async with connect(slow.url, additional_headers=ALICE) as ws:
        await send(ws, id="r1", conversation_id="resume", message="count to 200")
        ack = await recv(ws)
        assert ack["type"] == "ack" and ack["duplicate"] is True
        frames = await reply(ws, "r1")
        await send(ws, id="r2", conversation_id="resume", message="hello")
        assert "message 2 of our conversation" in text(await reply(ws, "r2"))
    assert text(frames) == numbers(200)
    assert [f["type"] for f in frames].count("done") == 1


async def test_resend_on_the_same_connection_does_not_double_the_stream(slow: DemoServer) -> None:
    """An id resent while its reply is still streaming is acked but not forwarded twice."""
    async with connect(slow.url) as ws:
        await send(ws, id="s1", conversation_id="same", message="count to 20")
        await send(ws, id="s1", conversation_id="same", message="count to 20")
        frames = await reply(ws, "s1")
    acks = [f for f in frames if f["type"] == "ack"]
    assert [a.get("duplicate", False) for a in acks] == [False, True]
    assert text(frames) == numbers(20)


async def test_logs_are_bounded() -> None:
    """Beyond max_logs ids, the oldest finished reply is forgotten and a resend regenerates it."""
    async with serve_demo(port=0, max_logs=2) as server, connect(server.url) as ws:
        for message_id in ["e1", "e2", "e3"]:
            await send(ws, id=message_id, conversation_id="evict", message="hi")
            await reply(ws, message_id)
        assert server.registry.log_count == 2
        await send(ws, id="e1", conversation_id="evict", message="hi")
        assert "duplicate" not in (await recv(ws))
        assert "message 4 of our conversation" in text(await reply(ws, "e1"))


# Cancel


async def test_cancel_ends_the_reply_with_done_cancelled(slow: DemoServer) -> None:
    """cancel stops the running reply and any queued one of the conversation with done cancelled."""
    async with connect(slow.url) as ws:
        await send(ws, id="c1", conversation_id="cx", message="count to 10000")
        await send(ws, id="c2", conversation_id="cx", message="count to 5")
        await recv(ws)
        await recv(ws)
        assert (await recv(ws))["type"] == "token"
        await send(ws, type="cancel", conversation_id="cx")
        first = await reply(ws, "c1")
        second = await reply(ws, "c2")
        assert first[-1]["type"] == "done" and first[-1]["cancelled"] is True
        assert len(first) < 10000
        assert second == [
            {"type": "done", "cancelled": True, "conversation_id": "cx", "reply_to": "c2"}
        ]
        await send(ws, id="c3", conversation_id="cx", message="count to 3")
        await recv(ws)
        after = await reply(ws, "c3")
        assert text(after) == numbers(3) and "cancelled" not in after[-1]


async def test_cancel_of_an_idle_conversation_is_ignored(demo: DemoServer) -> None:
    """Cancelling a conversation with nothing running sends nothing and breaks nothing."""
    async with connect(demo.url) as ws:
        await send(ws, type="cancel", conversation_id="idle")
        await send(ws, id="i1", conversation_id="idle", message="count to 2")
        assert (await recv(ws))["type"] == "ack"
        assert text(await reply(ws, "i1")) == numbers(2)


# Bad frames and limits


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2, 3]",
        '"a string"',
        '{"conversation_id": "c"}',
        '{"type": "message", "id": "x"}',
        '{"type": "launch", "message": "hi"}',
        '{"message": 42}',
        b"\x00\x01binary",
        "{" * 5000,
        "[" * 100_000,
    ],
)
async def test_bad_frames_get_bad_request_and_the_connection_stays(
    demo: DemoServer, frame: str | bytes
) -> None:
    """Malformed frames are answered with a one-line bad_request error; later messages work."""
    async with connect(demo.url) as ws:
        await ws.send(frame)
        error = await recv(ws)
        assert error["type"] == "error" and error["error"]["code"] == "bad_request"
        assert error["error"]["message"] and "\n" not in error["error"]["message"]
        assert len(error["error"]["message"]) <= 300
        await send(ws, id="ok", conversation_id="bad", message="count to 2")
        await recv(ws)
        assert text(await reply(ws, "ok")) == numbers(2)


async def test_oversized_frame_closes_with_1009() -> None:
    """A frame above max_size closes the connection with 1009 (message too big)."""
    async with serve_demo(port=0, max_size=1024) as server, connect(server.url) as ws:
        await send(ws, id="big", conversation_id="c", message="x" * 2000)
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert ws.close_code == 1009


@pytest.mark.parametrize(
    ("frame", "reply_to"),
    [
        ('{"id": "s1", "conversation_id": "\\ud800", "message": "hi"}', "s1"),
        ('{"id": "s1", "conversation_id": "c", "message": "echo \\udfff"}', "s1"),
        ('{"id": "\\ud83d", "conversation_id": "c", "message": "hi"}', None),
        ('{"type": "cancel", "conversation_id": "\\ud800"}', None),
    ],
    ids=["conversation", "text", "id", "cancel"],
)
async def test_a_lone_surrogate_is_a_bad_request_and_the_connection_stays(
    demo: DemoServer, frame: str, reply_to: str | None
) -> None:
    """A JSON escape of half a surrogate pair gets bad_request (once 1011 or internal_error)."""
    async with connect(demo.url) as ws:
        await ws.send(frame)
        error = await recv(ws)
        assert error["type"] == "error" and error["error"]["code"] == "bad_request"
        assert "surrogate" in error["error"]["message"] and error.get("reply_to") == reply_to
        await send(ws, id="ok", conversation_id="c", message="count to 2")
        await recv(ws)
        assert text(await reply(ws, "ok")) == numbers(2)


@pytest.mark.parametrize(
    "fields",
    [
        {"id": "x" * 1_000_000, "conversation_id": "c", "message": "hi"},
        {"id": "h1", "conversation_id": "x" * 1_000_000, "message": "hi"},
        {"type": "cancel", "id": "x" * 1_000_000, "conversation_id": "c"},
        {"type": "tool_response", "id": "x" * 1_000_000, "status": "done", "result": 1},
    ],
    ids=["id", "conversation", "cancel", "tool-response"],
)
async def test_a_huge_id_is_refused_at_the_door_and_costs_little(
    demo: DemoServer, fields: dict[str, Any]
) -> None:
    """A 1 MB id gets one short bad_request, is never echoed, and costs the server under 64 MB."""
    async with connect(demo.url, max_size=None) as ws:
        tracemalloc.start()
        try:
            await send(ws, **fields)
            frame = await asyncio.wait_for(ws.recv(), TIMEOUT)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        error = json.loads(frame)
        assert error["type"] == "error" and error["error"]["code"] == "bad_request"
        assert f"at most {MAX_ID_LENGTH} characters" in error["error"]["message"]
        assert len(frame) < 1000 and peak < 64_000_000
        assert demo.registry.generation_count == 0 and demo.registry.log_count == 0
        await send(ws, id="i" * MAX_ID_LENGTH, conversation_id="c" * MAX_ID_LENGTH, message="hi")
        assert (await recv(ws))["type"] == "ack"


async def test_a_lone_surrogate_in_an_unknown_field_is_ignored(demo: DemoServer) -> None:
    """Fields the server does not read may hold anything: the message is answered."""
    async with connect(demo.url) as ws:
        await ws.send('{"id": "u1", "conversation_id": "c", "message": "hi", "x": "\\ud800"}')
        assert (await recv(ws))["type"] == "ack"
        assert (await reply(ws, "u1"))[-1]["type"] == "done"


async def test_one_clients_heavy_messages_do_not_stall_another() -> None:
    """While one client sends the texts that once froze the loop, another is answered promptly."""
    attacks = [
        "echo " + " " * 40_000,
        "What is 1+" + " " * 40_000 + "+?",
        "(" * 200_000 + "1+1",
        "echo " + "a " * 20_000,
    ]
    async with (
        serve_demo(port=0) as server,
        connect(server.url) as attacker,
        connect(server.url) as victim,
    ):
        latencies: list[float] = []
        loop = asyncio.get_running_loop()

        async def attack() -> None:
            for number, frame in enumerate(attacks):
                await send(attacker, id=f"x{number}", conversation_id="x", message=frame)
            for number in range(len(attacks)):
                await reply(attacker, f"x{number}")

        async def measure() -> None:
            for number in range(40):
                started = loop.time()
                await send(victim, id=f"v{number}", conversation_id="v", message="What is 6*7?")
                await reply(victim, f"v{number}")
                latencies.append(loop.time() - started)

        await asyncio.gather(attack(), measure())
    # Generous: the figures (p50 and max) are in benchmarks/server_attack.py. It took 11-34 s.
    assert max(latencies) < 1.0 * TIME_SCALE


# Handshake: token, origin, path


async def test_token_is_required_when_set() -> None:
    """With a token, a missing or wrong bearer token is refused with 401 and the right one works."""
    async with serve_demo(port=0, token="s3cret") as server:
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}]:
            with pytest.raises(InvalidStatus) as refused:
                await connect(server.url, additional_headers=headers)
            assert refused.value.response.status_code == 401
            assert refused.value.response.headers["WWW-Authenticate"].startswith("Bearer")
        good = {"Authorization": "Bearer s3cret"}
        async with connect(server.url, additional_headers=good) as ws:
            await send(ws, id="t", conversation_id="c", message="count to 1")
            await recv(ws)
            assert text(await reply(ws, "t")) == "1"


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://localhost.evil.example", "file://"]
)
async def test_foreign_origin_is_refused_with_403(demo: DemoServer, origin: str) -> None:
    """A browser page from another origin cannot open a connection: HTTP 403."""
    with pytest.raises(InvalidStatus) as refused:
        await connect(demo.url, additional_headers={"Origin": origin})
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize(
    "origin",
    [None, "http://localhost:8888", "https://127.0.0.1", "http://[::1]:9000", "HTTP://LOCALHOST"],
)
async def test_loopback_origin_and_no_origin_are_accepted(
    demo: DemoServer, origin: str | None
) -> None:
    """Non-browser clients (no Origin) and pages served from loopback may connect."""
    headers = {} if origin is None else {"Origin": origin}
    async with connect(demo.url, additional_headers=headers):
        assert demo.connection_count == 1


async def test_allowed_origins_extend_the_allow_list() -> None:
    """An origin given in allowed_origins is accepted, while others stay refused."""
    async with serve_demo(port=0, allowed_origins=["https://example.org/"]) as server:
        async with connect(server.url, additional_headers={"Origin": "https://example.org"}):
            pass
        with pytest.raises(InvalidStatus):
            await connect(server.url, additional_headers={"Origin": "https://example.com"})


@pytest.mark.parametrize(
    "values", [["short"], ["x" * 257], ["a" * 20 + " " + "b" * 20], ["a" * 32, "b" * 32]]
)
async def test_a_malformed_client_identity_is_refused_with_400(
    demo: DemoServer, values: list[str]
) -> None:
    """An identity must be one value of 16 to 256 visible characters: guessable ones are refused."""
    headers = [(CLIENT_ID_HEADER, value) for value in values]
    with pytest.raises(InvalidStatus) as refused:
        await connect(demo.url, additional_headers=headers)
    assert refused.value.response.status_code == 400
    assert CLIENT_ID_HEADER.encode() in refused.value.response.body


def test_is_loopback_origin() -> None:
    """Only http(s) origins on localhost, 127.0.0.1 or [::1], with any port, are loopback."""
    assert is_loopback_origin("http://localhost:8888")
    assert not is_loopback_origin("http://localhost:8888.evil.example")
    assert not is_loopback_origin("ws://localhost")


async def test_other_paths_are_404(demo: DemoServer) -> None:
    """Only /ws upgrades: any other path gets HTTP 404, while a query string on /ws is fine."""
    base = demo.url.removesuffix("/ws")
    for path in ["/", "/other", "/ws/extra"]:
        with pytest.raises(InvalidStatus) as refused:
            await connect(base + path)
        assert refused.value.response.status_code == 404
    async with connect(demo.url + "?client=test"):
        pass


# Connections: the cap and the idle timeout


async def test_past_the_connection_cap_a_client_gets_503_in_one_line() -> None:
    """Beyond max_connections a handshake is refused 503 with one line; a freed place is reused."""
    async with (
        serve_demo(port=0, max_connections=2) as server,
        connect(server.url),
        connect(server.url) as second,
    ):
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url)
        response = refused.value.response
        assert response.status_code == 503 and response.body.count(b"\n") == 1
        assert b"Server full" in response.body and b"2 connections" in response.body
        await second.close()
        async with connect(server.url) as third:
            await send(third, id="m", conversation_id="c", message="count to 2")
            await recv(third)
            assert text(await reply(third, "m")) == numbers(2)


async def test_sockets_far_past_the_cap_are_dropped_as_accepted() -> None:
    """Raw sockets that never speak cannot hold more than the cap and its margin of sockets."""
    async with serve_demo(port=0, max_connections=2) as server:
        sockets = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(40)]
        try:
            dropped = 0
            for reader, _ in sockets:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(reader.read(), 0.05 * TIME_SCALE)
                    dropped += reader.at_eof()
            assert dropped >= 40 - 2 - 16
        finally:
            for _, writer in sockets:
                writer.close()


async def test_an_idle_connection_is_closed_and_a_busy_one_is_not() -> None:
    """After idle_timeout without a frame a connection is closed (1001); a reply keeps it open."""
    async with (
        serve_demo(port=0, delay=0.02, idle_timeout=0.3 * TIME_SCALE) as server,
        connect(server.url) as idle,
        connect(server.url) as busy,
    ):
        await send(busy, id="b", conversation_id="c", message="count to 40")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(idle.recv(), TIMEOUT)
        assert idle.close_code == 1001 and "idle" in (idle.close_reason or "")
        await recv(busy)
        assert text(await reply(busy, "b")) == numbers(40)


# Test hooks and lifecycle


async def test_drop_connections_gives_clients_1006(demo: DemoServer) -> None:
    """drop_connections aborts the TCP transport: clients see 1006 and the count drops to 0."""
    async with connect(demo.url) as first, connect(demo.url) as second:
        assert demo.connection_count == 2
        await drop_connections(demo)
        for ws in (first, second):
            with pytest.raises(ConnectionClosed):
                await recv(ws)
            assert ws.close_code == 1006
    assert demo.connection_count == 0


async def test_close_connections_sends_the_given_code(demo: DemoServer) -> None:
    """close_connections closes with the requested code and reason."""
    async with connect(demo.url) as ws:
        await close_connections(demo, 4000, "bye")
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert ws.close_code == 4000 and ws.close_reason == "bye"
    assert demo.connection_count == 0


async def test_start_and_close_while_a_reply_is_streaming() -> None:
    """DemoServer.start serves until close(), which closes clients with 1001 and is idempotent."""
    server = await DemoServer.start(port=0, delay=0.01)
    assert server.url == f"ws://127.0.0.1:{server.port}/ws" and server.is_serving
    async with connect(server.url) as ws:
        await send(ws, id="z", conversation_id="c", message="count to 10000")
        await recv(ws)
        await server.close()
        with pytest.raises(ConnectionClosed):
            while True:
                await recv(ws)
        assert ws.close_code == 1001
    await server.close()
    assert not server.is_serving


async def test_serve_demo_is_awaitable() -> None:
    """await serve_demo() starts a server without a context manager."""
    server = await serve_demo(port=0)
    try:
        assert "serving" in repr(server)
        async with connect(server.url):
            pass
    finally:
        await server.close()
    await server.wait_closed()


async def test_port_in_use_raises_oserror(demo: DemoServer) -> None:
    """Starting on a port already taken raises OSError."""
    with pytest.raises(OSError):
        await DemoServer.start(port=demo.port)


def test_start_in_thread_serves_synchronous_callers() -> None:
    """start_in_thread runs the server on its own loop for blocking code, then close_sync()."""
    server = DemoServer.start_in_thread(port=0)
    try:
        with connect_sync(server.url) as ws:
            ws.send(json.dumps({"id": "y", "conversation_id": "sync", "message": "What is 6*7?"}))
            frames = [json.loads(ws.recv(timeout=TIMEOUT))]
            while frames[-1]["type"] != "done":
                frames.append(json.loads(ws.recv(timeout=TIMEOUT)))
        assert [f["type"] for f in frames][:3] == ["ack", "tool_call", "tool_result"]
        assert "42" in text(frames)
    finally:
        server.close_sync()
    assert not server.is_serving


async def test_close_sync_does_not_wait_for_a_client_on_the_blocked_caller_loop() -> None:
    """close_sync() returns quickly even when the caller's own client cannot answer the close."""
    server = DemoServer.start_in_thread(port=0)
    async with connect(server.url) as ws:
        started = time.monotonic()
        server.close_sync()  # blocks this loop, so ws cannot take part in the closing handshake
        assert time.monotonic() - started < TIMEOUT / 2
        with pytest.raises(ConnectionClosed):
            await recv(ws)
    assert not server.is_serving


# Any responder


class Scripted:
    """A responder that says one word, then fails the way it was told to."""

    def __init__(self, failure: str) -> None:
        self.failure = failure

    async def respond(self, conversation_id: str, text: str) -> AsyncIterator[ResponderMessage]:
        """One token, then an error message or an exception."""
        yield TokenMessage(response="partial")
        if self.failure == "error":
            yield ErrorMessage.model_validate({"error": {"code": "busy", "message": "try later"}})
            yield TokenMessage(response="never sent")
        elif self.failure == "raise":
            raise RuntimeError("boom")


async def test_responder_error_message_ends_the_reply() -> None:
    """An error from the responder is the reply's last frame: nothing follows, not even done."""
    async with ChatServer(Scripted("error")) as server, connect(server.url) as ws:
        await send(ws, id="e", conversation_id="c", message="hi")
        await recv(ws)
        frames = await reply(ws, "e")
    assert [f["type"] for f in frames] == ["token", "error"]
    assert frames[-1]["error"] == {"code": "busy", "message": "try later"}


async def test_responder_exception_becomes_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    """A responder that raises ends its reply with an internal_error and logs the traceback."""
    async with ChatServer(Scripted("raise")) as server, connect(server.url) as ws:
        await send(ws, id="x", conversation_id="c", message="hi")
        await recv(ws)
        frames = await reply(ws, "x")
        await send(ws, id="y", conversation_id="c", message="again")
        await recv(ws)
        assert [f["type"] for f in await reply(ws, "y")] == ["token", "error"]
    assert frames[-1]["error"]["code"] == "internal_error"
    assert "RuntimeError" in frames[-1]["error"]["message"]
    assert any(r.name == "nbchat.server" and r.exc_info for r in caplog.records)


async def test_plain_responder_ends_with_done() -> None:
    """A responder that finishes normally gets done appended by the server."""
    async with ChatServer(Scripted("none")) as server, connect(server.url) as ws:
        await send(ws, id="p", conversation_id="c", message="hi")
        await recv(ws)
        assert [f["type"] for f in await reply(ws, "p")] == ["token", "done"]


def test_every_server_option_has_its_default_written_once() -> None:
    """DEFAULT_OPTIONS holds a default for each ServerOptions key, and only those."""
    assert set(DEFAULT_OPTIONS) == set(ServerOptions.__annotations__)
