"""Clients kept apart and bounded, through a real server and raw websockets connections."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect

from nbchat.parsing import parse_server_message
from nbchat.protocol import CLIENT_ID_HEADER, DoneMessage, TokenMessage
from nbchat.server import TOO_MANY_REPLIES, ChatServer, ReplyLog, ResponderMessage, serve_demo
from tests.helpers import TIMEOUT
from tests.server.helpers import numbers, recv, reply, send, text

pytestmark = pytest.mark.loopback

ALICE = {CLIENT_ID_HEADER: "alice-" + "a" * 26}
BOB = {CLIENT_ID_HEADER: "bob-" + "b" * 28}


class Endless:
    """A responder that streams until cancelled, and says when it started and when it ended."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.ended = asyncio.Event()
        self.tokens = 0

    async def respond(self, conversation_id: str, text: str) -> AsyncIterator[ResponderMessage]:
        """A token every millisecond, forever."""
        self.started.set()
        try:
            while True:
                await asyncio.sleep(0.001)
                self.tokens += 1
                yield TokenMessage(response=".")
        finally:
            self.ended.set()


# Isolation


async def test_another_client_sending_the_same_id_gets_its_own_reply() -> None:
    """Bob sending Alice's message id and conversation id gets a fresh reply, not Alice's."""
    async with serve_demo(port=0) as server:
        async with connect(server.url, additional_headers=ALICE) as alice:
            await send(alice, id="m1", conversation_id="c", message="My name is Alice")
            assert (await recv(alice))["type"] == "ack"
            assert "Alice" in text(await reply(alice, "m1"))
        async with connect(server.url, additional_headers=BOB) as bob:
            await send(bob, id="m1", conversation_id="c", message="What is my name?")
            ack = await recv(bob)
            assert ack["type"] == "ack" and "duplicate" not in ack
            assert "don't know your name" in text(await reply(bob, "m1"))


async def test_connections_without_identity_are_kept_apart() -> None:
    """Two connections without Nbchat-Client share neither ids nor conversation memory."""
    async with (
        serve_demo(port=0) as server,
        connect(server.url) as first,
        connect(server.url) as second,
    ):
        await send(first, id="m1", conversation_id="c", message="My name is Alice")
        await recv(first)
        await reply(first, "m1")
        await send(second, id="m1", conversation_id="c", message="What is my name?")
        assert "duplicate" not in await recv(second)
        assert "don't know your name" in text(await reply(second, "m1"))


async def test_a_connection_without_identity_cannot_resume_after_it_closed() -> None:
    """Without an identity the connection is the client: a new one regenerates, never replays."""
    async with serve_demo(port=0) as server:
        async with connect(server.url) as ws:
            await send(ws, id="m1", conversation_id="c", message="hello")
            await recv(ws)
            await reply(ws, "m1")
        async with connect(server.url) as ws:
            await send(ws, id="m1", conversation_id="c", message="hello")
            assert "duplicate" not in await recv(ws)
            assert "message 1 of our conversation" in text(await reply(ws, "m1"))


async def test_another_client_cannot_cancel_a_conversation() -> None:
    """Bob's cancel of Alice's conversation id stops nothing of Alice's; Alice's own does."""
    async with (
        serve_demo(port=0, delay=0.001) as server,
        connect(server.url, additional_headers=ALICE) as alice,
        connect(server.url, additional_headers=BOB) as bob,
    ):
        await send(alice, id="a1", conversation_id="c", message="count to 300")
        await recv(alice)
        assert (await recv(alice))["type"] == "token"
        await send(bob, type="cancel", conversation_id="c")
        await send(bob, type="cancel", conversation_id="c", id="a1")
        await send(bob, id="b1", conversation_id="c", message="count to 1")
        await recv(bob)
        await reply(bob, "b1")  # Bob's cancels were handled before this reply
        frames = await reply(alice, "a1")
        assert "cancelled" not in frames[-1] and text(frames).endswith(numbers(300)[-7:])
        await send(alice, id="a2", conversation_id="c", message="count to 100000")
        await recv(alice)
        await send(alice, type="cancel", conversation_id="c", id="a2")
        assert (await reply(alice, "a2"))[-1]["cancelled"] is True


async def test_a_cancel_naming_a_message_stops_only_that_reply() -> None:
    """A cancel with an id stops that reply, whatever conversation it names, and no other."""
    async with (
        serve_demo(port=0, delay=0.001) as server,
        connect(server.url, additional_headers=ALICE) as ws,
    ):
        await send(ws, id="k1", conversation_id="c", message="count to 100000")
        await send(ws, id="k2", conversation_id="d", message="count to 300")
        await send(ws, type="cancel", id="k1")
        first = await reply(ws, "k1")
        second = await reply(ws, "k2")
    assert first[-1]["cancelled"] is True
    assert "cancelled" not in second[-1] and text(second) == numbers(300)


async def test_the_responder_gets_an_opaque_key_per_client_and_conversation() -> None:
    """Responders never see a client's conversation id as is, and two clients get two keys."""
    keys: list[str] = []

    class Keys:
        async def respond(self, conversation_id: str, text: str) -> AsyncIterator[ResponderMessage]:
            """Record the key."""
            keys.append(conversation_id)
            yield TokenMessage(response="ok")

    async with ChatServer(Keys()) as server:
        for identity in (ALICE, BOB, ALICE):
            async with connect(server.url, additional_headers=identity) as ws:
                await send(ws, conversation_id="c", message="hi")
                ack = await recv(ws)
                await reply(ws, ack["id"])
    assert keys[0] != keys[1] and keys[0] == keys[2]
    assert all(ALICE[CLIENT_ID_HEADER] not in key and key != "c" for key in keys)


# Bounds


async def test_a_client_beyond_its_limit_is_refused_with_a_clear_error() -> None:
    """Past max_generations + max_queued unfinished replies, a message gets too_many_replies."""
    async with (
        serve_demo(port=0, delay=0.001, max_generations=1, max_queued=1) as server,
        connect(server.url) as ws,
    ):
        await send(ws, id="x1", conversation_id="a", message="count to 200")
        await send(ws, id="x2", conversation_id="b", message="count to 3")
        await send(ws, id="x3", conversation_id="c", message="count to 3")
        frames = [await recv(ws) for _ in range(3)]
        refused = next(f for f in frames if f["type"] == "error")
        assert refused["reply_to"] == "x3" and refused["conversation_id"] == "c"
        assert refused["error"]["code"] == TOO_MANY_REPLIES
        assert "wait for them to finish" in refused["error"]["message"]
        first = await reply(ws, "x1")
        second = await reply(ws, "x2")
        assert text(first) == numbers(200) and text(second) == numbers(3)
        await send(ws, id="x3", conversation_id="c", message="count to 3")
        await recv(ws)
        assert text(await reply(ws, "x3")) == numbers(3)


async def test_replies_of_one_client_are_generated_at_most_max_generations_at_once() -> None:
    """With max_generations=1, a second conversation's reply starts after the first ends."""
    async with (
        serve_demo(port=0, delay=0.001, max_generations=1) as server,
        connect(server.url) as ws,
    ):
        await send(ws, id="g1", conversation_id="a", message="count to 30")
        await send(ws, id="g2", conversation_id="b", message="count to 30")
        frames = []
        while sum(f["type"] == "done" for f in frames) < 2:
            frames.append(await recv(ws))
    order = [f["reply_to"] for f in frames if f["type"] == "token"]
    assert order == ["g1"] * 30 + ["g2"] * 30


async def test_a_departed_client_is_cancelled_after_the_grace_period() -> None:
    """A reply goes on while its client is away, then is cancelled once the grace has passed."""
    responder = Endless()
    grace = 0.3
    async with ChatServer(responder, grace=grace) as server:
        async with connect(server.url, additional_headers=ALICE) as ws:
            await send(ws, id="e1", conversation_id="c", message="go")
            await recv(ws)
            await recv(ws)
        left = asyncio.get_running_loop().time()
        await asyncio.wait_for(responder.ended.wait(), TIMEOUT)
        assert asyncio.get_running_loop().time() - left >= grace * 0.9
        assert server.registry.client_count == 0 and server.registry.generation_count == 0


async def test_a_client_back_within_the_grace_period_resumes() -> None:
    """The same identity reconnecting within the grace period gets the whole reply, once."""
    async with serve_demo(port=0, delay=0.002, grace=TIMEOUT) as server:
        async with connect(server.url, additional_headers=ALICE) as ws:
            await send(ws, id="r1", conversation_id="c", message="count to 300")
            await recv(ws)
            assert (await recv(ws))["type"] == "token"
        async with connect(server.url, additional_headers=ALICE) as ws:
            await send(ws, id="r1", conversation_id="c", message="count to 300")
            assert (await recv(ws))["duplicate"] is True
            frames = await reply(ws, "r1")
    assert text(frames) == numbers(300) and "cancelled" not in frames[-1]


async def test_a_connection_without_identity_is_cancelled_when_it_closes() -> None:
    """Nobody can resume an anonymous connection's reply, so it is cancelled at once."""
    responder = Endless()
    async with ChatServer(responder, grace=TIMEOUT * 10) as server:
        async with connect(server.url) as ws:
            await send(ws, id="e1", conversation_id="c", message="go")
            await recv(ws)
            await asyncio.wait_for(responder.started.wait(), TIMEOUT)
        await asyncio.wait_for(responder.ended.wait(), TIMEOUT)
        assert server.registry.client_count == 0


async def test_finished_logs_are_evicted_by_bytes() -> None:
    """Finished logs holding more than max_log_bytes in all are forgotten, oldest first."""
    async with (
        serve_demo(port=0, max_log_bytes=3000) as server,
        connect(server.url, additional_headers=ALICE) as ws,
    ):
        for message_id in ["f1", "f2", "f3"]:
            await send(ws, id=message_id, conversation_id="c", message="count to 10")
            await recv(ws)
            await reply(ws, message_id)
        assert server.registry.log_count == 2 and server.registry.held_bytes <= 3000
        await send(ws, id="f1", conversation_id="c", message="count to 10")
        assert "duplicate" not in await recv(ws)
        await reply(ws, "f1")
        await send(ws, id="f3", conversation_id="c", message="count to 10")
        assert (await recv(ws))["duplicate"] is True


async def test_a_reply_past_the_clients_bytes_is_cut_in_one_line() -> None:
    """A reply log's memory is bounded by bytes: past max_client_bytes it ends with an error."""
    bound = 200_000
    async with (
        serve_demo(port=0, max_client_bytes=bound) as server,
        connect(server.url, additional_headers=ALICE) as ws,
    ):
        tracemalloc.start()
        try:
            await send(ws, id="big", conversation_id="c" * 256, message="count to 100000")
            frames = await reply(ws, "big")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        error = frames[-1]["error"]
        assert error["code"] == "reply_too_long" and f"{bound} bytes" in error["message"]
        assert 100 < len(frames) < 1000 and peak < 4 * bound
        assert server.registry.held_bytes == 0  # too big to keep for resume
        await send(ws, id="next", conversation_id="c", message="count to 3")
        await recv(ws)
        assert text(await reply(ws, "next")) == numbers(3)


# Reply logs


async def test_reply_log_frames_are_valid_json_whatever_the_text() -> None:
    """Token frames built without pydantic parse back to the same text, escapes included."""
    texts = ["plain", " 5", 'quote " and \\ back', "line\nbreak\ttab", "é ü 漢字 🙂", "\x00\x7f"]
    log = ReplyLog("m1", "c1")
    for value in texts:
        log.append(TokenMessage(response=value))
    log.append(TokenMessage(response="half \ud800 pair"))
    log.finish(DoneMessage())
    parsed = [parse_server_message(frame) for frame in log.frames]
    assert [m.response for m in parsed[:-2] if isinstance(m, TokenMessage)] == texts
    assert isinstance(parsed[-2], TokenMessage) and parsed[-2].response == "half ? pair"
    assert all((m.conversation_id, m.reply_to) == ("c1", "m1") for m in parsed)
    assert log.finished and isinstance(parsed[-1], DoneMessage)
