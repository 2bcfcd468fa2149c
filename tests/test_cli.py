"""The ``nbchat`` command: ``--version``, usage errors, and ``nbchat serve`` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from nbchat._version import __version__
from nbchat.cli import main
from nbchat.server import serve_demo

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 20.0
LISTENING = re.compile(r"nbchat serve: listening on (ws://127\.0\.0\.1:(\d+)/ws)\n")


@asynccontextmanager
async def nbchat(*args: str, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m nbchat ARGS`` as a subprocess, killed if the test leaves it running."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nbchat",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=environ,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def listening_url(process: asyncio.subprocess.Process) -> str:
    """The URL from the one line ``nbchat serve`` prints once it listens."""
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
    match = LISTENING.fullmatch(line)
    assert match, f"unexpected first line: {line!r}"
    return match.group(1)


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Wait for the process to exit: its exit code, the rest of stdout, and stderr."""
    stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


# In process


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version and exits 0."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"nbchat {__version__}\n"


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a subcommand the usage goes to stderr and the exit code is 2."""
    assert main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_bad_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid option value exits 2 with argparse's message, not a traceback."""
    assert main(["serve", "--port", "eighty"]) == 2
    err = capsys.readouterr().err
    assert "invalid int value" in err and "Traceback" not in err


def test_serve_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    """serve --help documents each option and exits 0."""
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ["--host", "--port", "--token", "--allow-origin", "--delay", "--max-size"]:
        assert option in out


# As a process


async def test_serve_prints_its_url_serves_and_exits_on_sigint() -> None:
    """nbchat serve prints one URL line, answers a message, and exits 0 on SIGINT."""
    async with nbchat("serve", "--port", "0", "--delay", "0") as process:
        url = await listening_url(process)
        async with connect(url) as ws:
            await ws.send(
                json.dumps({"id": "m", "conversation_id": "c", "message": "What is 6*7?"})
            )
            frames: list[dict[str, Any]] = []
            while not frames or frames[-1]["type"] != "done":
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
        assert "42" in "".join(f.get("response", "") for f in frames)
        process.send_signal(signal.SIGINT)
        code, out, err = await finish(process)
    assert (code, out, err) == (0, "", "")


async def test_serve_takes_the_token_from_the_environment_and_exits_on_sigterm() -> None:
    """NBCHAT_TOKEN makes the server require the token; SIGTERM stops it cleanly."""
    async with nbchat("serve", "--port", "0", NBCHAT_TOKEN="from-env") as process:
        url = await listening_url(process)
        with pytest.raises(InvalidStatus) as refused:
            await connect(url)
        assert refused.value.response.status_code == 401
        async with connect(url, additional_headers={"Authorization": "Bearer from-env"}):
            pass
        process.send_signal(signal.SIGTERM)
        code, _, err = await finish(process)
    assert code == 0
    assert err == "nbchat.server: refused a connection without a valid token\n"


async def test_port_in_use_is_one_line_and_exit_2() -> None:
    """A port already taken is reported on one stderr line with exit code 2, no traceback."""
    async with serve_demo(port=0) as taken, nbchat("serve", "--port", str(taken.port)) as process:
        code, out, err = await finish(process)
    assert code == 2 and out == ""
    assert err == f"nbchat serve: cannot listen on 127.0.0.1:{taken.port}: address already in use\n"


# nbchat chat


async def test_chat_streams_a_reply_with_its_tool_call_from_the_builtin_server() -> None:
    """``nbchat chat MESSAGE`` with no URL starts a built-in server and prints tool lines."""
    async with nbchat("chat", "What is 6*7?", NBCHAT_WS_URL="") as process:
        code, out, err = await finish(process)
    assert code == 0, err
    assert out.splitlines() == [
        '[calculator running] {"expression": "6*7"}',
        '[calculator done] {"expression": "6*7"} -> 42',
        "6*7 = 42.",
    ]


async def test_chat_interactive_prompt_keeps_the_conversation() -> None:
    """Without MESSAGE each stdin line is answered in one conversation until end of input."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "NBCHAT_WS_URL": ""}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nbchat", "chat",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=environ,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(
        process.communicate(b"my name is Grace\nwhat is my name\n/quit\n"), TIMEOUT
    )
    assert process.returncode == 0
    assert "Your name is Grace." in out.decode()


async def test_chat_to_a_dead_url_is_one_line_and_exit_2() -> None:
    """A server that is not there gives one clear line on stderr, not a traceback."""
    async with nbchat("chat", "--url", "ws://127.0.0.1:9/ws", "hi") as process:
        code, out, err = await finish(process)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("nbchat chat: gave up after")


async def test_chat_sends_the_token() -> None:
    """--token is sent as a bearer token; a wrong one is refused in one line."""
    async with serve_demo(port=0, token="tok") as server:
        async with nbchat("chat", "--url", server.url, "--token", "tok", "count to 3") as process:
            code, out, err = await finish(process)
        assert (code, out) == (0, "1 2 3\n"), err
        async with nbchat("chat", "--url", server.url, "--token", "bad", "hi") as process:
            code, out, err = await finish(process)
        assert code == 2 and "HTTP 401" in err and err.count("\n") == 1
