"""Replaying transcripts: recorded with the reference server, answered by a replay server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from nbchat import ChatClient, ServerError, Transcript, TranscriptError
from nbchat.protocol import ErrorMessage, TokenMessage, ToolCall
from nbchat.redact import redact_text
from nbchat.reply import Reply
from nbchat.server import (
    NOT_IN_TRANSCRIPT,
    DemoServer,
    ReplayResponder,
    ReplayServer,
    ResponderMessage,
    serve_demo,
    serve_replay,
)
from nbchat.transcript import TranscriptLine as Event
from nbchat.transcript import TranscriptWarning
from tests.helpers import TIMEOUT

pytestmark = pytest.mark.loopback

MESSAGES = ["What is 6*7?", "My name is Grace", "What is my name?", "count to 5"]


def calls(reply: Reply) -> list[tuple[str, dict[str, Any], str, Any]]:
    """What a reply's tool calls did: name, arguments, status, result."""
    return [(c.name, c.arguments, c.status, c.result) for c in reply.tool_calls]


async def record(url: str, path: Path, messages: list[str]) -> list[Reply]:
    """Ask each message in one conversation while recording to ``path``; return the replies."""
    async with ChatClient(url=url, record=path) as client:
        return [await client.ask(text, timeout=TIMEOUT) for text in messages]


@pytest.fixture
async def recorded(demo: DemoServer, tmp_path: Path) -> tuple[Path, list[Reply]]:
    """A transcript of MESSAGES recorded against the reference server, and the replies."""
    path = tmp_path / "chat.jsonl"
    return path, await record(demo.url, path, MESSAGES)


@pytest.fixture
async def replay(recorded: tuple[Path, list[Reply]]) -> AsyncIterator[ReplayServer]:
    """A replay server for the recorded transcript, as fast as possible."""
    async with serve_replay(recorded[0]) as server:
        yield server


def event(t: float, direction: str, **data: Any) -> Event:
    """One transcript event, written as a recording client would have."""
    return Event.model_validate({"t": t, "dir": direction, "data": data})


def turn(
    t: float,
    cid: str,
    mid: str,
    text: str,
    *answer: tuple[float, dict[str, Any]],
    done_at: float | None = None,
) -> list[Event]:
    """A user message at ``t``, each server message at ``t + offset``, then done (unless error)."""
    events = [event(t, "out", type="message", id=mid, conversation_id=cid, message=text)]
    events.append(event(t, "in", type="ack", id=mid, reply_to=mid, conversation_id=cid))
    end = t
    for offset, data in answer:
        end = t + offset
        events.append(event(end, "in", reply_to=mid, conversation_id=cid, **data))
    if not any(data.get("type") == "error" for _, data in answer):
        end = end if done_at is None else t + done_at
        events.append(event(end, "in", type="done", reply_to=mid, conversation_id=cid))
    return events


def says(text: str, offset: float = 0.0) -> tuple[float, dict[str, Any]]:
    """A token answering ``text`` at ``offset`` seconds."""
    return offset, {"type": "token", "response": text}


async def answer(responder: ReplayResponder, cid: str, text: str) -> list[ResponderMessage]:
    """Everything the responder yields for one message."""
    return [message async for message in responder.respond(cid, text)]


def reply_text(messages: list[ResponderMessage]) -> str:
    """The tokens of a replayed answer, joined."""
    return "".join(m.response for m in messages if isinstance(m, TokenMessage))


# Round trips through real servers


async def test_round_trip_gives_the_same_replies_and_tool_calls(
    recorded: tuple[Path, list[Reply]], tmp_path: Path
) -> None:
    """Recorded, saved, loaded and replayed to a new conversation: same texts and tool calls."""
    path, originals = recorded
    copy = tmp_path / "copy.jsonl"
    Transcript.load(path).save(copy)
    async with serve_replay(Transcript.load(copy)) as server:
        async with ChatClient(url=server.url) as client:
            replayed = [await client.ask(text, timeout=TIMEOUT) for text in MESSAGES]
        recorded_conversation = originals[0].conversation_id
        assert client.conversation_id != recorded_conversation
    assert [r.text for r in replayed] == [r.text for r in originals]
    assert [calls(r) for r in replayed] == [calls(r) for r in originals]
    assert calls(replayed[0]) == [("calculator", {"expression": "6*7"}, "done", 42)]
    assert replayed[2].text == "Your name is Grace."


async def test_replayed_frames_are_addressed_to_the_live_message(replay: ReplayServer) -> None:
    """Every frame carries the live id and conversation, and one done ends the reply."""
    async with connect(replay.url) as ws:
        await ws.send(
            json.dumps({"id": "live-1", "conversation_id": "live-c", "message": "What is 6*7?"})
        )
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1]["type"] not in ("done", "error"):
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
    assert [f["type"] for f in frames[:3]] == ["ack", "tool_call", "tool_result"]
    assert [f["type"] for f in frames].count("done") == 1 and frames[-1]["type"] == "done"
    assert {(f["reply_to"], f["conversation_id"]) for f in frames} == {("live-1", "live-c")}


async def test_recorded_conversations_stay_apart_under_new_ids(
    demo: DemoServer, tmp_path: Path
) -> None:
    """Two recorded conversations replay to two live ones with other ids, in another order."""
    path = tmp_path / "two.jsonl"
    async with ChatClient(url=demo.url, record=path) as client:
        for cid, text in [
            ("a", "My name is Grace"),
            ("b", "My name is Ada"),
            ("a", "What is my name?"),
            ("b", "What is my name?"),
        ]:
            await client.ask(text, conversation_id=cid, timeout=TIMEOUT)
    async with serve_replay(path) as server, ChatClient(url=server.url) as client:
        await client.ask("My name is Ada", conversation_id="y", timeout=TIMEOUT)
        await client.ask("My name is Grace", conversation_id="x", timeout=TIMEOUT)
        x = await client.ask("What is my name?", conversation_id="x", timeout=TIMEOUT)
        y = await client.ask("What is my name?", conversation_id="y", timeout=TIMEOUT)
    assert (x.text, y.text) == ("Your name is Grace.", "Your name is Ada.")


async def test_a_rerun_with_new_conversation_ids_replays_from_the_start(
    replay: ReplayServer, recorded: tuple[Path, list[Reply]]
) -> None:
    """A notebook re-run against the same server (a fresh conversation) is answered again."""
    for _ in range(2):
        async with ChatClient(url=replay.url) as client:
            replies = [await client.ask(text, timeout=TIMEOUT) for text in MESSAGES]
        assert [r.text for r in replies] == [r.text for r in recorded[1]]


async def test_whitespace_differences_still_match(replay: ReplayServer) -> None:
    """Extra spaces and newlines around and inside a message do not stop it matching."""
    async with ChatClient(url=replay.url) as client:
        reply = await client.ask("  What   is 6*7?\n", timeout=TIMEOUT)
    assert reply.text == "6*7 = 42."


async def test_a_message_not_in_the_transcript_gets_an_error_naming_the_next(
    replay: ReplayServer,
) -> None:
    """An unknown message is answered at once by not_in_transcript, naming what comes next."""
    async with ChatClient(url=replay.url) as client:
        with pytest.raises(ServerError) as error:
            await asyncio.wait_for(client.ask("What is 7*8?"), 5.0)
        assert error.value.code == NOT_IN_TRANSCRIPT
        assert "'What is 7*8?'" in error.value.message
        assert "expected 'What is 6*7?'" in error.value.message
        await client.ask("What is 6*7?", timeout=TIMEOUT)
        with pytest.raises(ServerError) as error:
            await asyncio.wait_for(client.ask("What is 6*7?"), 5.0)
        assert "expected 'My name is Grace'" in error.value.message


async def test_a_torn_last_line_is_tolerated(recorded: tuple[Path, list[Reply]]) -> None:
    """A transcript whose last write was interrupted is replayed, with a warning."""
    path, originals = recorded
    data = path.read_bytes()
    path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 12])  # half of the last line
    with pytest.warns(TranscriptWarning, match="torn last line"):
        server = serve_replay(path)
    async with server, ChatClient(url=server.url) as client:
        reply = await client.ask("What is 6*7?", timeout=TIMEOUT)
    assert reply.text == originals[0].text


async def test_replay_server_takes_a_token(recorded: tuple[Path, list[Reply]]) -> None:
    """Like the reference server, a replay server can require a bearer token."""
    async with serve_replay(recorded[0], token="tok") as server:
        headers = {"Authorization": "Bearer tok"}
        async with ChatClient(url=server.url, headers=headers) as client:
            assert (await client.ask("count to 5", timeout=TIMEOUT)).text == "1 2 3 4 5"


def test_a_missing_transcript_is_refused_at_once(tmp_path: Path) -> None:
    """The file is read when the server is built, so a wrong path fails before serving."""
    with pytest.raises(TranscriptError, match="does not exist"):
        ReplayServer(tmp_path / "missing.jsonl")


def test_a_negative_speed_is_refused() -> None:
    """speed must be None or at least 0."""
    with pytest.raises(ValueError, match="speed"):
        ReplayResponder(Transcript(), speed=-1.0)


# Pace


def paced() -> Transcript:
    """One message answered by tokens 0.5 s and 1.5 s after it, ending at 2 s."""
    return Transcript(turn(100.0, "c", "m", "go", says("a", 0.5), says("b", 1.5), done_at=2.0))


async def test_speed_none_answers_as_fast_as_possible() -> None:
    """Without a speed, a reply recorded over 2 s arrives well within 1 s."""
    async with serve_replay(paced()) as server, ChatClient(url=server.url) as client:
        reply = await client.ask("go", timeout=1.0)
    assert reply.text == "ab"


@pytest.mark.parametrize("speed", [4.0, 10.0])
async def test_speed_divides_the_recorded_delays(speed: float) -> None:
    """At speed X, a reply recorded over 2 s takes 2/X s: not less, and not the full 2 s."""
    async with serve_replay(paced(), speed=speed) as server, ChatClient(url=server.url) as client:
        await client.connect()
        loop = asyncio.get_running_loop()
        start = loop.time()
        reply = await client.ask("go", timeout=1.5)
        elapsed = loop.time() - start
    assert reply.text == "ab"
    assert elapsed >= 2.0 / speed - 0.02


async def test_speed_one_keeps_each_recorded_delay() -> None:
    """At speed 1 each message comes at its recorded delay after the message, done at the end."""
    transcript = Transcript(turn(5.0, "c", "m", "go", says("a", 0.1), says("b", 0.3), done_at=0.4))
    responder = ReplayResponder(transcript, speed=1.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    arrivals = [loop.time() - start async for _ in responder.respond("live", "go")]
    finished = loop.time() - start
    assert arrivals[0] >= 0.1 - 0.02 and arrivals[1] >= 0.3 - 0.02
    assert finished >= 0.4 - 0.02


# Matching rules, on the responder alone


async def test_recorded_errors_are_replayed_and_acks_and_done_dropped() -> None:
    """A recorded error ends the replayed answer; the recorded ack and done are not yielded."""
    error = {"type": "error", "error": {"code": "agent_failed", "message": "down"}}
    transcript = Transcript(
        turn(1.0, "c", "m1", "hi", says("hello")) + turn(2.0, "c", "m2", "fail", (0.0, error))
    )
    responder = ReplayResponder(transcript)
    hello = await answer(responder, "c", "hi")
    assert [m.type for m in hello] == ["token"]
    assert (hello[0].reply_to, hello[0].conversation_id) == (None, None)
    [failed] = await answer(responder, "c", "fail")
    assert isinstance(failed, ErrorMessage) and failed.error.code == "agent_failed"


async def test_live_conversations_follow_the_least_followed_recorded_one() -> None:
    """Two recorded conversations opening alike are shared out to two live ones in order."""
    transcript = Transcript(
        turn(1.0, "a", "m1", "hello", says("A1"))
        + turn(2.0, "b", "m2", "hello", says("B1"))
        + turn(3.0, "a", "m3", "next", says("A2"))
        + turn(4.0, "b", "m4", "next", says("B2"))
    )
    responder = ReplayResponder(transcript)
    assert reply_text(await answer(responder, "x", "hello")) == "A1"
    assert reply_text(await answer(responder, "y", "hello")) == "B1"
    assert reply_text(await answer(responder, "y", "next")) == "B2"
    assert reply_text(await answer(responder, "x", "next")) == "A2"
    assert reply_text(await answer(responder, "z", "hello")) == "A1"  # a re-run starts over


async def test_a_live_conversation_with_a_recorded_id_follows_that_one() -> None:
    """When the live conversation id is in the transcript, that conversation answers."""
    transcript = Transcript(
        turn(1.0, "a", "m1", "hello", says("A")) + turn(2.0, "b", "m2", "hello", says("B"))
    )
    responder = ReplayResponder(transcript)
    assert reply_text(await answer(responder, "b", "hello")) == "B"


async def test_repeated_messages_are_answered_in_recorded_order() -> None:
    """The same text asked twice gets the first recorded answer, then the second."""
    transcript = Transcript(
        turn(1.0, "c", "m1", "roll", says("4")) + turn(2.0, "c", "m2", "roll", says("2"))
    )
    responder = ReplayResponder(transcript)
    assert [reply_text(await answer(responder, "live", "roll")) for _ in range(2)] == ["4", "2"]
    [error] = await answer(responder, "live", "roll")
    assert isinstance(error, ErrorMessage)
    assert "replayed every recorded message" in error.error.message


async def test_a_restarted_reply_is_replayed_from_its_restart() -> None:
    """Messages before a recorded reply_restart (the server lost the reply) are not replayed."""
    transcript = Transcript(
        turn(1.0, "c", "m", "hi", says("lost "), (0.1, {"type": "reply_restart"}), says("kept"))
    )
    assert reply_text(await answer(ReplayResponder(transcript), "c", "hi")) == "kept"


async def test_an_empty_transcript_says_it_holds_nothing() -> None:
    """With nothing recorded, every message gets an error saying so."""
    [error] = await answer(ReplayResponder(Transcript()), "c", "hi")
    assert isinstance(error, ErrorMessage) and error.error.code == NOT_IN_TRANSCRIPT
    assert "holds no messages" in error.error.message


async def test_the_error_names_at_most_three_expected_messages() -> None:
    """A long list of possible next messages is cut to three, with a count of the rest."""
    events: list[Event] = []
    for n in range(5):
        events += turn(float(n), f"c{n}", f"m{n}", f"opening {n}", says("ok"))
    [error] = await answer(ReplayResponder(Transcript(events)), "live", "something else")
    assert isinstance(error, ErrorMessage)
    assert "expected 'opening 0', 'opening 1', 'opening 2' (and 2 more)" in error.error.message


async def test_tool_calls_are_replayed_as_recorded() -> None:
    """A recorded tool call and its result are both in the exchange, in order."""
    running = ToolCall(id="t", name="calc", arguments={"x": 1}).model_dump()
    done = {**running, "status": "done", "result": 2}
    transcript = Transcript(
        turn(
            1.0,
            "c",
            "m",
            "calc",
            (0.0, {"type": "tool_call", "tool_calls": [running]}),
            (0.1, {"type": "tool_result", "tool_calls": [done]}),
            says("2", 0.2),
        )
    )
    messages = await answer(ReplayResponder(transcript), "c", "calc")
    assert [m.type for m in messages] == ["tool_call", "tool_result", "token"]


# Redaction: what was recorded redacted still replays


async def test_a_message_recorded_redacted_still_replays(demo: DemoServer, tmp_path: Path) -> None:
    """A user message holding a token and a key, recorded redacted, is matched when sent again."""
    path = tmp_path / "chat.jsonl"
    text = "count to 2 https://h/?token=abc123secret sk-proj-" + "Zx9_" * 10
    [live] = await record(demo.url, path, [text])
    assert "abc123secret" not in path.read_text(encoding="utf-8")
    async with serve_replay(path) as server, ChatClient(url=server.url) as client:
        again = await client.ask(text, timeout=TIMEOUT)
    assert again.error is None and again.text == redact_text(live.text)


async def test_a_client_tool_returning_a_credential_url_replays(tmp_path: Path) -> None:
    """The live result is compared redacted, as it was recorded: no tool_result_differs."""
    path = tmp_path / "tools.jsonl"

    def link(x: int) -> str:
        return f"https://ada:s3cret@host/{x}?token=t0k3n"

    async with (
        serve_demo(port=0) as server,
        ChatClient(url=server.url, tools=[link], record=path) as chat,
    ):
        first = await chat.ask('call link {"x": 4}', timeout=TIMEOUT)
    assert first.tool_calls[0].result == link(4)
    assert "s3cret" not in path.read_text(encoding="utf-8")
    async with ReplayServer(path) as server, ChatClient(url=server.url, tools=[link]) as chat:
        again = await chat.ask('call link {"x": 4}', timeout=TIMEOUT)
    assert again.error is None and again.tool_calls[0].status == "done"


async def test_a_message_matches_on_its_attachments_names_and_texts_not_image_bytes(
    demo: DemoServer, tmp_path: Path
) -> None:
    """The same text with another drawing of the figure replays; with another note attached
    (a secret in it redacted alike) it is not_in_transcript, naming both sets."""
    from tests.helpers import png

    path = tmp_path / "chat.jsonl"
    note = "rows 1-3, key sk-proj-" + "Zx9_" * 10
    async with ChatClient(url=demo.url, record=path) as client:
        live = await client.ask("look", attach=[png(2, 2), note], timeout=TIMEOUT)
    async with serve_replay(path) as server, ChatClient(url=server.url) as client:
        again = await client.ask("look", attach=[png(5, 4), note], timeout=TIMEOUT)
        with pytest.raises(ServerError) as error:
            await client.ask("look", attach=[png(2, 2), "rows 4-6"], timeout=TIMEOUT)
    assert again.text == redact_text(live.text)
    assert error.value.code == NOT_IN_TRANSCRIPT
    assert "holds 'look' with other attachments (recorded: image.png (image/png" in (
        error.value.message
    )
    assert "sent: image.png (image/png, 71 B), note.txt (text/plain, 8 B)" in error.value.message
