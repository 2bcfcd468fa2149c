"""attach=: what a client sends to a server that takes attachments, and to one that does not."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection

from nbchat import ChatClient
from nbchat.exceptions import AttachmentError
from nbchat.protocol import AckMessage, DoneMessage, TokenMessage, dump
from nbchat.server import DemoServer
from tests.helpers import TIMEOUT, png, scripted_server

pytestmark = [pytest.mark.loopback, pytest.mark.timeout(TIMEOUT * 3)]

PNG = png()


async def test_attachments_reach_the_demo_agent_which_names_them(
    demo: DemoServer, tmp_path: Path
) -> None:
    """An image, a text and a file, read by the client, arrive and are named in the reply."""
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\nall good\n")
    async with ChatClient(url=demo.url) as chat:
        reply = await chat.ask("echo ok", attach=[PNG, "some text", notes], timeout=TIMEOUT)
    first, _, rest = reply.text.partition("\n\n")
    assert first == (
        f"I received 3 attachments: image.png (image/png, {len(PNG)} B), "
        "note.txt (text/plain, 9 B), notes.md (text/markdown, 17 B)."
    )
    assert rest == "ok"


async def test_a_server_that_did_not_announce_attachments_gets_none() -> None:
    """Nothing is sent to a server that does not take them: one line says so, the text is kept."""
    frames: list[dict[str, object]] = []

    async def plain_v1(ws: ServerConnection) -> None:  # announces no extension at all
        async for frame in ws:
            message = json.loads(frame)
            frames.append(message)
            reply_to = message["id"]
            await ws.send(dump(AckMessage(id=reply_to, reply_to=reply_to)))
            await ws.send(dump(TokenMessage(response="fine", reply_to=reply_to)))
            await ws.send(dump(DoneMessage(reply_to=reply_to)))

    async with scripted_server(plain_v1) as url, ChatClient(url=url) as chat:
        with pytest.raises(AttachmentError, match="does not take attachments"):
            await chat.ask("look", attach=[PNG], timeout=TIMEOUT)
        assert (await chat.ask("look", timeout=TIMEOUT)).text == "fine"
    assert [frame["message"] for frame in frames] == ["look"]
    assert all("attachments" not in frame for frame in frames)


async def test_send_with_attachments_before_connecting_says_to_ask(demo: DemoServer) -> None:
    """send() cannot wait to learn what the server takes: it refuses, and ask() connects first."""
    chat = ChatClient(url=demo.url)
    with pytest.raises(AttachmentError, match=r"not connected .* use ask\(\.\.\., attach"):
        chat.send("look", attach=[PNG])
    assert chat.pending == 0
    reply = await chat.ask("echo x", attach=["a note"], timeout=TIMEOUT)
    assert reply.text.startswith("I received 1 attachment: note.txt")
    message_id = chat.send("echo y", attach=["again"])  # connected now: sent
    assert message_id
    await chat.disconnect()


async def test_unreadable_and_oversized_files_are_refused_before_sending(
    demo: DemoServer, tmp_path: Path
) -> None:
    """A missing file is a plain text; a directory, a huge file or binary junk is one line."""
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (600 * 1024))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\xff\xfe\x00\x01")
    async with ChatClient(url=demo.url) as chat:
        for value, error in [
            (big, "big.bin is 600 KB, over the 512 KB"),
            (junk, "junk.bin is neither an image"),
            (tmp_path, "cannot read"),
        ]:
            with pytest.raises(AttachmentError, match=error):
                await chat.ask("look", attach=[value], timeout=TIMEOUT)
        assert chat.pending == 0
        reply = await asyncio.wait_for(chat.ask("echo done"), TIMEOUT)
    assert reply.text == "done"


async def test_the_server_bounds_what_a_client_attaches(demo: DemoServer) -> None:
    """Past the bounds a hand-made frame is refused by the server in one error, not kept."""
    from websockets.asyncio.client import connect

    attachment = {"name": "n", "mime": "text/plain", "text": "x"}
    frame = {"type": "message", "id": "m1", "message": "hi", "attachments": [attachment] * 9}
    async with connect(demo.url) as ws:
        await ws.send(json.dumps(frame))
        error = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert error["type"] == "error" and error["reply_to"] == "m1"
    assert error["error"] == {
        "code": "attachments_refused",
        "message": "9 attachments: a message takes at most 8",
    }
