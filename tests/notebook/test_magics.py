"""%chat and %%chat in a real kernel, against a server shaped like the TypeScript client's."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from websockets.sync.server import ServerConnection, serve

from tests.integration.test_kernel import KERNEL_TIMEOUT, run_notebook, text_of

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(2 * KERNEL_TIMEOUT)]


@pytest.fixture
def typescript_shaped_server() -> Iterator[str]:
    """A server that answers in order and never says which message it answers (no reply_to)."""

    def handler(ws: ServerConnection) -> None:
        for raw in ws:
            text = json.loads(raw)["message"]
            for word in f"You said {text}".split(" "):
                ws.send(json.dumps({"response": word + " "}))
            ws.send(json.dumps({"done": True}))

    with serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.socket.getsockname()[:2]
        yield f"ws://{host}:{port}/ws"
        server.shutdown()
        thread.join()


def test_chat_shows_the_reply_of_a_server_without_reply_to(typescript_shaped_server: str) -> None:
    """%chat and %%chat show the reply when the server leaves out reply_to."""
    nb = run_notebook(
        "%load_ext nbchat\nimport nbchat\n"
        f"chat = nbchat.ChatWidget(url={typescript_shaped_server!r})",
        "%chat hi there",
        "%%chat\nsecond message",
    )
    assert "You said hi there" in text_of(nb.cells[1])
    assert "You said second message" in text_of(nb.cells[2])


def test_an_empty_chat_line_says_what_to_do() -> None:
    """%chat with nothing after it prints one line saying what to write, and sends nothing."""
    nb = run_notebook("%load_ext nbchat", "%chat")
    assert "write a message after %chat" in text_of(nb.cells[1])
