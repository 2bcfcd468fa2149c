"""ChatClient recording against the reference server: flushed lines, no credentials, pauses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nbchat import ChatClient, Transcript
from nbchat.server import DemoServer, serve_demo

TIMEOUT = 10.0


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
