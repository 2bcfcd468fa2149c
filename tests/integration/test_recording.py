"""ChatClient recording over loopback: flushed lines, no credentials, client events, failures.

The Recorder follows a real client through ``on()``; these tests drive it with
the reference server and, for what the demo never does (losing a reply, sending
a frame nobody can serialise), with scripted websockets servers.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from nbchat import ChatClient, Transcript
from nbchat.exceptions import NbchatError, TranscriptError
from nbchat.server import DemoServer, serve_demo
from nbchat.transcript import Recorder
from tests.helpers import FAST, TIMEOUT, attach, free_port, scripted_server

pytestmark = pytest.mark.loopback


def lines(path: Path) -> list[dict[str, Any]]:
    """The transcript file as it is on disk now, one decoded object per line."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def kinds(path: Path) -> list[str]:
    """The wire type of each message event on disk, in order."""
    return [e["data"].get("type", "") for e in lines(path)[1:] if e["dir"] in ("in", "out")]


async def test_a_conversation_is_on_disk_while_the_client_is_connected(
    demo: DemoServer, tmp_path: Path
) -> None:
    """Every message of a reply, tool call included, is readable as soon as the reply is."""
    path = tmp_path / "chat.jsonl"
    async with ChatClient(url=demo.url, record=path) as client:
        await client.ask("What is 6*7?", timeout=TIMEOUT)
        assert client.is_connected
        on_disk = kinds(path)
        assert on_disk[:4] == ["message", "ack", "tool_call", "tool_result"]
        assert on_disk[-1] == "done" and "token" in on_disk
        await client.ask("My name is Grace", timeout=TIMEOUT)
        assert kinds(path).count("done") == 2
        states = [e["data"]["state"] for e in lines(path)[1:] if e["dir"] == "state"]
        assert states == ["connecting", "connected"]
    [first, second] = Transcript.load(path).turns
    [call] = first.tool_calls
    assert (call.name, call.arguments, call.status, call.result) == (
        "calculator",
        {"expression": "6*7"},
        "done",
        42,
    )
    assert (first.assistant, second.user) == ("6*7 = 42.", "My name is Grace")


async def test_every_recorded_server_message_names_the_message_it_answers(
    demo: DemoServer, tmp_path: Path
) -> None:
    """The ``in`` lines carry the client's resolved reply_to, acks included."""
    path = tmp_path / "chat.jsonl"
    async with ChatClient(url=demo.url, record=path) as client:
        first = await client.ask("count to 3", timeout=TIMEOUT)
        second = await client.ask("count to 2", timeout=TIMEOUT)
    answered = {e["data"].get("reply_to") for e in lines(path) if e.get("dir") == "in"}
    assert answered == {first.message_id, second.message_id}
    assert [turn.assistant for turn in Transcript.load(path).turns] == ["1 2 3", "1 2"]


async def test_credentials_never_reach_the_file(tmp_path: Path) -> None:
    """A bearer token in the headers is not written; a token in the URL query is redacted."""
    path = tmp_path / "chat.jsonl"
    async with serve_demo(port=0, token="header-secret-123") as server:
        url = f"{server.url}?token=query-secret-456&room=7"
        headers = {"Authorization": "Bearer header-secret-123"}
        async with ChatClient(url=url, headers=headers) as client:
            client.record(path)
            await client.ask("count to 3", timeout=TIMEOUT)
            text = path.read_text(encoding="utf-8")
    assert "header-secret-123" not in text and "query-secret-456" not in text
    assert lines(path)[0]["url"] == f"{server.url}?token=***&room=7"
    assert Transcript.load(path).turns[0].assistant == "1 2 3"


async def test_errors_and_state_details_are_redacted(tmp_path: Path) -> None:
    """A client that gives up on a URL full of secrets records why, and none of the secrets."""
    path = tmp_path / "chat.jsonl"
    port = await free_port()
    url = f"ws://ada:SECRETP@127.0.0.1:{port}/ws;jsessionid=SECRETJ?token=SECRETQ&api_key=SECRETK"
    client = ChatClient(url=url, max_reconnect_attempts=1, **FAST)
    events = attach(client, "error")
    client.record(path)
    future = client.ask("hello", timeout=TIMEOUT)
    with pytest.raises(NbchatError):
        await future
    await events.wait_for("error", timeout=TIMEOUT)
    await client.disconnect()
    text = path.read_text(encoding="utf-8")
    assert "SECRET" not in text
    assert any(e["dir"] == "error" for e in lines(path)[1:])
    details = [e["data"]["detail"] for e in lines(path)[1:] if e["dir"] == "state"]
    assert any(details)  # why the connection ended is kept, without its secrets
    [sent] = [e["data"]["id"] for e in lines(path)[1:] if e["dir"] == "out"]
    [failed] = [e["data"] for e in lines(path)[1:] if e["dir"] == "client"]
    assert (failed["event"], failed["reply_to"]) == ("failed", sent)


async def test_recording_pauses_at_disconnect_and_resumes_on_connect(
    demo: DemoServer, tmp_path: Path
) -> None:
    """After disconnect the file is complete and closed; reconnecting appends to it."""
    path = tmp_path / "chat.jsonl"
    client = ChatClient(url=demo.url)
    recorder = client.record(path)
    await client.connect()
    await client.ask("My name is Grace", timeout=TIMEOUT)
    await client.disconnect()
    assert recorder.closed
    after_disconnect = path.read_bytes()
    assert after_disconnect.endswith(b"\n")
    assert lines(path)[-1]["data"]["state"] == "disconnected"
    assert [turn.assistant != "" for turn in Transcript.load(path).turns] == [True]
    await client.connect()
    try:
        reply = await client.ask("What is my name?", timeout=TIMEOUT)
    finally:
        await client.disconnect()
    assert reply.text == "Your name is Grace."
    assert path.read_bytes().startswith(after_disconnect)
    records = lines(path)
    assert sum("nbchat_transcript" in record for record in records) == 1
    assert [turn.user for turn in Transcript.load(path).turns] == [
        "My name is Grace",
        "What is my name?",
    ]


async def test_stop_recording_closes_the_file_and_records_nothing_more(
    demo: DemoServer, tmp_path: Path
) -> None:
    """Once recording is stopped, later messages stay out of the transcript."""
    path = tmp_path / "chat.jsonl"
    async with ChatClient(url=demo.url, record=path) as client:
        await client.ask("count to 2", timeout=TIMEOUT)
        client.stop_recording()
        size = path.stat().st_size
        await client.ask("count to 3", timeout=TIMEOUT)
    assert path.stat().st_size == size
    assert [turn.user for turn in Transcript.load(path).turns] == ["count to 2"]


async def test_detach_stops_following_the_client(demo: DemoServer, tmp_path: Path) -> None:
    """A detached recorder writes nothing more, though its file stays open."""
    path = tmp_path / "chat.jsonl"
    async with ChatClient(url=demo.url) as client:
        recorder = Recorder(path, url=client.url)
        recorder.attach(client)
        await client.ask("count to 2", timeout=TIMEOUT)
        recorder.detach()
        size = path.stat().st_size
        await client.ask("count to 3", timeout=TIMEOUT)
        assert path.stat().st_size == size and not recorder.closed
        recorder.close()
    assert [turn.user for turn in Transcript.load(path).turns] == ["count to 2"]


async def test_a_lost_reply_restarts_as_a_client_line(tmp_path: Path) -> None:
    """A reply the server lost is marked by a client line; the turn keeps only the new one."""
    path = tmp_path / "chat.jsonl"
    connections = 0

    async def forgetful(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        message = json.loads(await ws.recv())
        head = {"reply_to": message["id"], "conversation_id": "c"}
        await ws.send(json.dumps({"type": "ack", "id": message["id"], **head}))
        if connections == 1:
            await ws.send(json.dumps({"type": "token", "response": "lost ", **head}))
            await ws.close(1011, "crashed")
            return
        for word in ("1 ", "2"):
            await ws.send(json.dumps({"type": "token", "response": word, **head}))
        await ws.send(json.dumps({"type": "done", **head}))
        await ws.wait_closed()

    async with (
        scripted_server(forgetful) as url,
        ChatClient(url=url, record=path, **FAST) as client,
    ):
        reply = await client.ask("count to 2", timeout=TIMEOUT)
    assert reply.text == "1 2"
    restarts = [e for e in lines(path)[1:] if e["dir"] == "client"]
    assert [e["data"] for e in restarts] == [{"event": "restart", "reply_to": reply.message_id}]
    assert not any(e["data"].get("type") == "reply_restart" for e in lines(path)[1:])
    [turn] = Transcript.load(path).turns
    assert (turn.assistant, turn.complete) == ("1 2", True)


def _frame_server(frame: str) -> Any:
    """A server that answers each message with ``frame`` (its reply_to filled in), then a reply."""

    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            message_id = json.loads(raw)["id"]
            head = {"reply_to": message_id, "conversation_id": "c"}
            await ws.send(frame.replace("ID", message_id))
            await ws.send(json.dumps({"type": "token", "response": "fine", **head}))
            await ws.send(json.dumps({"type": "done", **head}))

    return handler


UNWRITABLE = {
    "a lone surrogate": '{"type":"token","response":"\\ud800","reply_to":"ID"}',
    "a frame nested 256 deep": (
        '{"type":"token","response":"x","reply_to":"ID","deep":' + "[" * 256 + "]" * 256 + "}"
    ),
}


@pytest.mark.parametrize("frame", list(UNWRITABLE.values()), ids=list(UNWRITABLE))
async def test_a_frame_that_cannot_be_written_stops_recording_not_the_client(
    tmp_path: Path, frame: str
) -> None:
    """Recording stops with one TranscriptError error event; the reply and the connection go on."""
    path = tmp_path / "chat.jsonl"
    async with (
        scripted_server(_frame_server(frame)) as url,
        ChatClient(url=url, record=path) as client,
    ):
        events = attach(client, "error")
        reply = await client.ask("hello", timeout=TIMEOUT)
        assert reply.text.endswith("fine")
        await events.wait_for("error", timeout=TIMEOUT)
        [(error,)] = events.of("error")
        assert isinstance(error, TranscriptError)
        assert "recording to" in str(error) and "record() again" in str(error)
        assert "\n" not in str(error)
        again = await client.ask("still there?", timeout=TIMEOUT)
        assert again.text.endswith("fine") and client.is_connected
    assert len(events.of("error")) == 1
    assert path.read_bytes().endswith(b"\n")
    assert [turn.user for turn in Transcript.load(path).turns] == ["hello"]


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes beyond ``limit`` bytes fail with EFBIG, as they would on a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@pytest.mark.skipif(sys.platform != "linux", reason="file size limits as a full disk: Linux")
async def test_a_full_disk_stops_recording_and_send_still_succeeds(
    demo: DemoServer, tmp_path: Path
) -> None:
    """A write that fails for lack of space never escapes send(); the reply still arrives."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path) as padding:  # a transcript bigger than any other file the test writes
        padding.state("connected", "x" * 4_000_000)
    async with ChatClient(url=demo.url) as client:
        events = attach(client, "error")
        client.record(path)
        with file_size_limit(path.stat().st_size + 10):
            message_id = client.send("count to 2")  # its line does not fit: recording stops
        reply = await asyncio.wait_for(next(f for f in client.replies() if not f.done()), TIMEOUT)
        assert reply.message_id == message_id and reply.text == "1 2"
        await events.wait_for("error", timeout=TIMEOUT)
        [(error,)] = events.of("error")
        assert isinstance(error, TranscriptError) and "free space" in str(error)
        size = path.stat().st_size
        await client.ask("count to 3", timeout=TIMEOUT)
        assert path.stat().st_size == size


@pytest.mark.skipif(sys.platform != "linux", reason="file size limits as a full disk: Linux")
async def test_a_full_disk_while_connecting_never_escapes_connect(
    demo: DemoServer, tmp_path: Path
) -> None:
    """The state lines of connect() that cannot be written stop recording; connect() succeeds."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path) as padding:  # a transcript bigger than any other file the test writes
        padding.state("connected", "x" * 4_000_000)
    client = ChatClient(url=demo.url)
    events = attach(client, "error")
    client.record(path)
    try:
        with file_size_limit(path.stat().st_size + 10):
            await client.connect()
        assert client.is_connected
        await events.wait_for("error", timeout=TIMEOUT)
        [(error,)] = events.of("error")
        assert isinstance(error, TranscriptError)
        assert (await client.ask("count to 2", timeout=TIMEOUT)).text == "1 2"
    finally:
        await client.disconnect()


async def test_the_first_message_is_recorded_when_it_opens_the_connection(
    demo: DemoServer, tmp_path: Path
) -> None:
    """A client that records from its settings writes the message that starts its connection."""
    path = tmp_path / "chat.jsonl"
    client = ChatClient(url=demo.url, record=path)
    await client.ask("What is 6*7?", timeout=TIMEOUT)
    await client.disconnect()
    assert kinds(path)[:2] == ["message", "ack"]
    [turn] = Transcript.load(path).turns
    assert turn.user == "What is 6*7?" and "42" in turn.assistant


async def test_a_secret_streamed_across_frames_never_reaches_the_file(tmp_path: Path) -> None:
    """A live reply that splits a URL password and a bearer token across frames records neither."""
    path = tmp_path / "chat.jsonl"
    parts = ["See https://ada:s3", "cret-pw@host and Bearer ", "Zq8Zq8Zq8Zq8", "Zq8Zq8Zq8 ok"]

    async def handler(ws: ServerConnection) -> None:
        async for raw in ws:
            head = {"reply_to": json.loads(raw)["id"], "conversation_id": "c"}
            for part in parts:
                await ws.send(json.dumps({"type": "token", "response": part, **head}))
            await ws.send(json.dumps({"type": "done", **head}))

    async with scripted_server(handler) as url, ChatClient(url=url, record=path) as client:
        reply = await client.ask("where?", timeout=TIMEOUT)
        assert reply.text == "".join(parts)  # the live reply is the model's, whole
        text = path.read_text(encoding="utf-8")
    assert "cret-pw" not in text and "Zq8Zq8" not in text
    assert kinds(path).count("token") == len(parts)
    [turn] = Transcript.load(path).turns
    assert turn.assistant == "See https://***:***@host and Bearer *** ok"
