"""The ``nbchat`` command: ``--version``, usage errors, and ``nbchat serve`` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
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
from nbchat.cli import build_parser, main
from nbchat.config import DEFAULT_MAX_SIZE, DEFAULT_URL, DEMO_DELAY
from nbchat.protocol import (
    AckMessage,
    DoneMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    UserMessage,
)
from nbchat.server import DEFAULT_OPTIONS, serve_demo
from nbchat.server.app import DEFAULT_HOST
from nbchat.transcript import Recorder, Transcript
from tests.helpers import TIMEOUT, alive, free_port
from tests.openai_upstream import Reply, Upstream, text_chunks, tool_chunks

pytestmark = pytest.mark.loopback

ROOT = Path(__file__).resolve().parents[2]
MCP_SERVER = [sys.executable, str(ROOT / "tests" / "client" / "mcp_server.py")]
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
    """The URL from the one line ``nbchat serve`` prints once it listens (a start-up, with
    its imports and any ``--mcp`` server: three times the usual wait)."""
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 3 * TIMEOUT)).decode()
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


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        ([], "nbchat: give one of serve, chat, demo or transcript: see nbchat --help"),
        (["nosuch"], "nbchat: argument COMMAND: invalid choice: 'nosuch' (choose from"),
        (["serve", "--port", "eighty"], "nbchat serve: argument --port: not a port number:"),
        (["serve", "--port", "99999"], "nbchat serve: argument --port: a port is 0 to 65535"),
        (["serve", "--port", "-1"], "nbchat serve: argument --port: a port is 0 to 65535"),
        (["serve", "--openai", "not a url"], "nbchat serve: argument --openai: not an http(s)"),
        (["serve", "--openai", "ws://h/v1"], "nbchat serve: argument --openai: not an http(s)"),
        (["serve", "--openai", "http://h:99999/v1"], "nbchat serve: argument --openai: 'http"),
        (["serve", "--delay", "-1"], "nbchat serve: argument --delay: must be 0 seconds or"),
        (["serve", "--delay", "nan"], "nbchat serve: argument --delay: must be 0 seconds or"),
        (["serve", "--bogus"], "nbchat: unrecognized arguments: --bogus: see nbchat --help"),
        (["chat", "--timeout", "0", "hi"], "nbchat chat: argument --timeout: must be a number"),
        (["chat", "--timeout", "nan", "hi"], "nbchat chat: argument --timeout: must be a number"),
        (["chat", "--timeout", "soon", "hi"], "nbchat chat: argument --timeout: not a number"),
        (["demo", "--port", "x"], "nbchat demo: argument --port: not a port number: 'x'"),
        (["demo", "--port", "70000"], "nbchat demo: argument --port: a port is 0 to 65535"),
        (["transcript", "export"], "nbchat transcript export: the following arguments are"),
        (["transcript", "show"], "nbchat transcript show: the following arguments are"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    """A missing command, an unknown option or a bad value: one stderr line, exit 2."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(line), captured.err
    assert captured.err.endswith("--help\n")


async def test_usage_errors_from_the_installed_command() -> None:
    """The ``nbchat`` entry point itself exits 2 with the one line, no usage block."""
    async with nbchat("chat", "--timeout", "-1", "hi") as process:
        code, out, err = await finish(process)
    assert (code, out) == (2, "")
    assert err == (
        "nbchat chat: argument --timeout: must be a number of seconds above 0, got '-1': "
        "see nbchat chat --help\n"
    )


def test_serve_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    """serve --help documents each option and exits 0."""
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    options = ["--host", "--port", "--token", "--allow-origin", "--delay", "--max-size"]
    for option in [*options, "--openai", "--model"]:
        assert option in out


def test_serve_defaults_are_the_servers_and_the_configs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nbchat serve repeats no default: each comes from DEFAULT_OPTIONS or nbchat.config."""
    monkeypatch.delenv("NBCHAT_TOKEN", raising=False)
    args = build_parser().parse_args(["serve"])
    assert args.host == DEFAULT_HOST
    assert f":{args.port}/" in DEFAULT_URL
    assert args.max_size == DEFAULT_OPTIONS["max_size"] == DEFAULT_MAX_SIZE
    assert args.delay == DEMO_DELAY
    assert args.token is DEFAULT_OPTIONS["token"] is None


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


async def test_serve_openai_answers_with_the_model() -> None:
    """nbchat serve --openai URL --model NAME streams the upstream model's reply."""
    async with (
        Upstream() as upstream,
        nbchat(
            "serve", "--port", "0", "--openai", upstream.base_url, "--model", "scripted"
        ) as process,
    ):
        url = await listening_url(process)
        async with connect(url) as ws:
            await ws.send(json.dumps({"id": "m", "conversation_id": "c", "message": "hello"}))
            frames: list[dict[str, Any]] = []
            while not frames or frames[-1]["type"] not in ("done", "error"):
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
        assert "".join(f.get("response", "") for f in frames).strip() == "You said: hello"
        assert upstream.completion_requests()[0]["model"] == "scripted"
        process.send_signal(signal.SIGTERM)
        code, _, err = await finish(process)
    assert (code, err) == (0, "")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--openai", "http://127.0.0.1:9/v1"], "--model"),
        (["--openai", "http://127.0.0.1:9/v1", "--model", "m", "--replay", "x.jsonl"], "not both"),
        (["--mcp", "mcp-server-time"], "--mcp needs --openai BASE_URL"),
        (["--mcp-allow-writes"], "--mcp-allow-writes needs --mcp COMMAND"),
    ],
)
def test_serve_openai_misuse_is_one_line_and_exit_2(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--openai without a model or with --replay, --mcp without a model: one line, no serving."""
    monkeypatch.delenv("NBCHAT_MODEL", raising=False)
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


async def test_serve_mcp_offers_its_tools_runs_them_and_ends_the_server_on_exit() -> None:
    """--mcp: a line says what is offered and withheld; a call runs; SIGTERM ends the server."""
    async with Upstream() as upstream:
        upstream.script.append(Reply(tool_chunks(("call_p", "pid", "{}"))))
        upstream.script.append(Reply(text_chunks("got it")))
        args = ("serve", "--port", "0", "--openai", upstream.base_url, "--model", "scripted")
        async with nbchat(*args, "--mcp", shlex.join(MCP_SERVER)) as process:
            url = await listening_url(process)
            assert process.stdout is not None
            said = [
                (await asyncio.wait_for(process.stdout.readline(), TIMEOUT)).decode()
                for _ in range(2)
            ]
            assert said[0].startswith("nbchat serve: bridging model 'scripted'")
            assert said[1].startswith("nbchat serve: MCP: mcp_server: offering lookup, paint")
            assert "withholding erase (not read-only: pass --mcp-allow-writes" in said[1]
            async with connect(url) as ws:
                await ws.send(json.dumps({"id": "m", "conversation_id": "c", "message": "pid?"}))
                frames: list[dict[str, Any]] = []
                while not frames or frames[-1]["type"] not in ("done", "error"):
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
            (result,) = [f for f in frames if f["type"] == "tool_result"]
            pid = result["tool_calls"][0]["result"]["result"]
            assert alive(pid)
            process.send_signal(signal.SIGTERM)
            code, _, err = await finish(process)
    assert (code, err) == (0, "")
    assert not alive(pid)


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["no-such-mcp-command", "--flag"], "(no such command: no-such-mcp-command)"),
        ([*MCP_SERVER, "--die"], "its stderr said: mcp_server: refusing to start (--die)"),
    ],
)
async def test_serve_mcp_that_cannot_start_is_one_line_and_exit_2(
    command: list[str], says: str
) -> None:
    """A missing MCP command, or one that exits at once, names it (and its stderr), exit 2."""
    async with Upstream() as upstream:
        args = ("serve", "--port", "0", "--openai", upstream.base_url, "--model", "scripted")
        async with nbchat(*args, "--mcp", shlex.join(command)) as process:
            code, out, err = await finish(process)
    assert (code, out) == (2, "")
    assert err.startswith(f"nbchat serve: the MCP server {shlex.join(command)!r} did not start")
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


async def test_serve_on_an_unknown_host_is_one_line_and_exit_2() -> None:
    """A host name that does not resolve is one line naming it, exit 2."""
    async with nbchat("serve", "--host", "no-such-host.invalid", "--port", "0") as process:
        code, out, err = await finish(process)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("nbchat serve: cannot listen on no-such-host.invalid:0: ")


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


async def test_chat_answers_from_the_model_the_environment_names() -> None:
    """With $NBCHAT_OPENAI_BASE_URL and $NBCHAT_MODEL set, the built-in server asks that model."""
    async with (
        Upstream() as upstream,
        nbchat(
            "chat",
            "hello model",
            NBCHAT_WS_URL="",
            NBCHAT_OPENAI_BASE_URL=upstream.base_url,
            NBCHAT_MODEL="scripted",
        ) as process,
    ):
        code, out, err = await finish(process)
    assert (code, err) == (0, "")
    assert out.strip() == "You said: hello model"
    assert [body["model"] for body in upstream.completion_requests()] == ["scripted"]


async def test_chat_with_a_base_url_but_no_model_is_one_line_and_exit_2() -> None:
    """$NBCHAT_OPENAI_BASE_URL without $NBCHAT_MODEL is refused in one line naming the variable."""
    async with nbchat(
        "chat",
        "hi",
        NBCHAT_WS_URL="",
        NBCHAT_OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        NBCHAT_MODEL="",
    ) as process:
        code, out, err = await finish(process)
    assert (code, out) == (2, "")
    assert err == (
        "nbchat chat: $NBCHAT_OPENAI_BASE_URL is set but $NBCHAT_MODEL is not: name the model\n"
    )


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
    """A server that is not there gives one line saying what to do, not a traceback."""
    url = f"ws://127.0.0.1:{await free_port()}/ws"
    async with nbchat("chat", "--url", url, "hi") as process:
        code, out, err = await finish(process)
    assert (code, out) == (2, "")
    assert err == (
        f"nbchat chat: cannot reach {url} (gave up after 2 attempts): "
        "start the server (nbchat serve) or check --url\n"
    )


async def test_chat_with_an_invalid_url_is_one_line_and_exit_2() -> None:
    """A URL that is not ws:// or wss:// is refused in one line before connecting."""
    async with nbchat("chat", "--url", "http://127.0.0.1:1/ws", "hi") as process:
        code, out, err = await finish(process)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("nbchat chat: invalid client setting url")


async def test_chat_sends_the_token() -> None:
    """--token is sent as a bearer token; a wrong one is refused in one line."""
    async with serve_demo(port=0, token="tok") as server:
        async with nbchat("chat", "--url", server.url, "--token", "tok", "count to 3") as process:
            code, out, err = await finish(process)
        assert (code, out) == (0, "1 2 3\n"), err
        async with nbchat("chat", "--url", server.url, "--token", "bad", "hi") as process:
            code, out, err = await finish(process)
        assert (code, out) == (2, "")
        assert err == (
            "nbchat chat: server refused the connection with HTTP 401 "
            "(Missing or wrong token: send Authorization: Bearer <token>.): "
            "check the token (Authorization: Bearer ...)\n"
        )


async def test_chat_reply_timeout_is_one_line_and_exit_2() -> None:
    """--timeout shorter than the reply: the streamed part ends its line, then one error line."""
    async with (
        serve_demo(port=0, delay=DEMO_DELAY) as server,
        nbchat("chat", "--url", server.url, "--timeout", "0.5", "count to 300") as process,
    ):
        code, out, err = await finish(process)
    assert code == 2
    assert out.startswith("1 2 3 ") and out.endswith("\n") and "300" not in out
    assert err == (
        "nbchat chat: no complete reply within 0.5 s: raise --timeout or check the server\n"
    )


async def test_chat_connect_timeout_is_one_line_and_exit_2() -> None:
    """A server that accepts TCP but never answers the handshake: one line after --timeout."""
    accepted = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # until the client hangs up
        writer.close()

    tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{tcp.sockets[0].getsockname()[1]}/ws"
    try:
        async with nbchat("chat", "--url", url, "--timeout", "0.5", "hi") as process:
            code, out, err = await finish(process)
    finally:
        tcp.close()
    assert accepted.is_set()
    assert (code, out) == (2, "")
    assert err == (
        f"nbchat chat: could not connect to {url} within 0.5 s: "
        "check the server or raise --timeout\n"
    )


async def test_chat_whose_server_dies_mid_reply_is_one_line_and_exit_2() -> None:
    """The server going away during a reply: the partial line ends, one error line, exit 2."""
    server = await serve_demo(port=0, delay=0.05)
    try:
        async with nbchat("chat", "--url", server.url, "count to 300") as process:
            assert process.stdout is not None
            first = await asyncio.wait_for(process.stdout.readuntil(b"3 "), TIMEOUT)
            await server.close()
            code, out, err = await finish(process)
    finally:
        await server.close()
    assert code == 2
    assert first.startswith(b"1 2 3 ") and out.endswith("\n") and "300" not in out
    assert err.count("\n") == 1, err
    assert err.startswith(f"nbchat chat: cannot reach {server.url} (gave up after 2 attempts)")


# nbchat transcript


def write_transcript(path: Path) -> Path:
    """Two recorded turns: a calculator call answered 42, then a message with an escape code."""
    with Recorder(path, "ws://localhost:8000/ws?token=abc") as rec:
        head = {"conversation_id": "rec"}
        rec.sent(UserMessage(id="m1", message="What is 6*7?", **head))
        rec.received(AckMessage(id="m1", reply_to="m1", **head))
        call = ToolCall(id="t1", name="calculator", arguments={"expression": "6*7"})
        rec.received(ToolCallMessage(tool_calls=[call], reply_to="m1", **head))
        done = call.model_copy(update={"status": "done", "result": 42})
        rec.received(ToolResultMessage(tool_calls=[done], reply_to="m1", **head))
        rec.received(TokenMessage(response="6*7 = 42.", reply_to="m1", **head))
        rec.received(DoneMessage(reply_to="m1", **head))
        rec.sent(UserMessage(id="m2", message="Thanks\x1b[2J!", **head))
        rec.received(TokenMessage(response="You are *welcome*.", reply_to="m2", **head))
        rec.received(DoneMessage(reply_to="m2", **head))
    return path


def test_transcript_show_prints_the_conversation_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """show prints each turn with its tool call; terminal escape codes are removed."""
    path = write_transcript(tmp_path / "chat.jsonl")
    assert main(["transcript", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nbchat transcript, recorded ")
    assert "from ws://localhost:8000/ws?token=***\n" in out
    assert out.split("\n\n", 1)[1] == (
        "You: What is 6*7?\n"
        "[tool calculator: done]\n"
        "  arguments:\n"
        "    {\n"
        '      "expression": "6*7"\n'
        "    }\n"
        "  result:\n"
        "    42\n"
        "Assistant: 6*7 = 42.\n"
        "\n"
        "You: Thanks[2J!\n"
        "Assistant: You are *welcome*.\n"
    )


def test_transcript_show_reports_a_torn_line_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A torn last line is skipped with one warning line on stderr; the rest is shown."""
    path = write_transcript(tmp_path / "chat.jsonl")
    with open(path, "ab") as file:
        file.write(b'{"t": 1.0, "dir": "in"')
    assert main(["transcript", "show", str(path)]) == 0
    captured = capsys.readouterr()
    assert "You: What is 6*7?" in captured.out
    assert captured.err == (
        f"nbchat transcript show: warning: {path}:11: torn last line (an interrupted write) "
        "skipped\n"
    )


def test_transcript_export_markdown_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """export --format md -o - writes Transcript.to_markdown() to stdout."""
    path = write_transcript(tmp_path / "chat.jsonl")
    assert main(["transcript", "export", str(path), "--format", "md", "-o", "-"]) == 0
    assert capsys.readouterr().out == Transcript.load(path).to_markdown()


def test_transcript_export_markdown_is_real_markdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """export writes the tool call as JSON blocks and the reply as Markdown, not HTML."""
    path = write_transcript(tmp_path / "chat.jsonl")
    assert main(["transcript", "export", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Arguments:\n```json\n" in out
    assert "<div" not in out and "&#" not in out


def test_transcript_export_html_is_the_sanitized_page(tmp_path: Path) -> None:
    """export -o OUT.html (or --format html) writes a standalone page of the panel's markup."""
    path = write_transcript(tmp_path / "chat.jsonl")
    out = tmp_path / "chat.html"
    assert main(["transcript", "export", str(path), "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page == Transcript.load(path).to_html()
    assert '<div class="nbchat nbchat-transcript"><style>' in page and "<script" not in page


def test_transcript_export_without_options_writes_markdown_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """export FILE alone writes Markdown to standard output."""
    path = write_transcript(tmp_path / "chat.jsonl")
    assert main(["transcript", "export", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == Transcript.load(path).to_markdown()


async def test_transcript_export_without_options_from_the_command(tmp_path: Path) -> None:
    """The installed command, ``nbchat transcript export FILE``, prints the Markdown and exits 0."""
    path = write_transcript(tmp_path / "chat.jsonl")
    async with nbchat("transcript", "export", str(path)) as process:
        code, out, err = await finish(process)
    assert (code, err) == (0, "")
    assert out == Transcript.load(path).to_markdown()


async def test_transcript_show_into_a_closed_pipe_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Standard output whose reader has gone (``| head``): one line, exit 2, no traceback."""
    path = write_transcript(tmp_path / "chat.jsonl")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "nbchat", "transcript", "show", str(path),
            stdout=write_end, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    finally:
        os.close(write_end)
    _, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode == 2
    assert stderr.decode() == (
        "nbchat transcript show: standard output was closed before all was written\n"
    )


def test_transcript_export_notebook_is_valid(tmp_path: Path) -> None:
    """export -o OUT.ipynb infers the format and writes a notebook nbformat validates."""
    import nbformat

    path = write_transcript(tmp_path / "chat.jsonl")
    out = tmp_path / "chat.ipynb"
    assert main(["transcript", "export", str(path), "-o", str(out)]) == 0
    notebook = nbformat.read(out, as_version=4)  # type: ignore[no-untyped-call]
    nbformat.validate(notebook)  # type: ignore[no-untyped-call]
    assert len(notebook.cells) == 2 and "calculator" in notebook.cells[0].source


def test_transcript_export_json_round_trips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """export --format json gives one document that reads back to the same transcript."""
    path = write_transcript(tmp_path / "chat.jsonl")
    assert main(["transcript", "export", str(path), "--format", "json"]) == 0
    assert Transcript.from_json(capsys.readouterr().out) == Transcript.load(path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "{missing}"], "nbchat transcript show: transcript {missing} does not exist"),
        (["show", "{other}"], "nbchat transcript show: {other} is not an nbchat transcript"),
        (["export", "{missing}", "-o", "x.md"], "nbchat transcript export: transcript {missing}"),
        (["export", "{good}", "-o", "x.txt"], "nbchat transcript export: cannot tell the format"),
        (["export", "{good}", "-o", "{tmp}/no/such/dir/x.md"], "nbchat transcript export: cannot"),
        (
            ["show", "{tmp}"],
            "nbchat transcript show: cannot read transcript {tmp} (Is a directory)",
        ),
        (["show", "{torn}"], "nbchat transcript show: {torn} is not an nbchat transcript"),
        (["export", "{torn}"], "nbchat transcript export: {torn} is not an nbchat transcript"),
    ],
)
def test_transcript_failures_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """A missing file, no transcript, a torn header, an unknown format: one line, exit 2."""
    names = {
        "missing": str(tmp_path / "missing.jsonl"),
        "other": str(tmp_path / "notes.txt"),
        "good": str(write_transcript(tmp_path / "chat.jsonl")),
        "torn": str(tmp_path / "torn.jsonl"),
        "tmp": str(tmp_path),
    }
    Path(names["other"]).write_text("my notes\n", encoding="utf-8")
    header = Path(names["good"]).read_bytes().split(b"\n", 1)[0]
    Path(names["torn"]).write_bytes(header[: len(header) // 2])  # killed while writing it
    assert main(["transcript", *(arg.format(**names) for arg in argv)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(message.format(**names))


def test_transcript_without_an_action_prints_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """``nbchat transcript`` alone names show and export on one stderr line and exits 2."""
    assert main(["transcript"]) == 2
    assert capsys.readouterr().err == (
        "nbchat transcript: give one of show or export: see nbchat transcript --help\n"
    )


# nbchat serve --replay


async def test_serve_replay_answers_from_the_transcript(tmp_path: Path) -> None:
    """serve --replay answers a recorded message as recorded and an unknown one with an error."""
    path = write_transcript(tmp_path / "chat.jsonl")
    async with nbchat("serve", "--replay", str(path), "--port", "0") as process:
        url = await listening_url(process)
        async with connect(url) as ws:
            replies: list[list[dict[str, Any]]] = []
            for n, text in enumerate(["What is 6*7?", "What is 7*8?"]):
                await ws.send(
                    json.dumps({"id": f"m{n}", "conversation_id": "new", "message": text})
                )
                frames: list[dict[str, Any]] = []
                while not frames or frames[-1]["type"] not in ("done", "error"):
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
                replies.append(frames)
        process.send_signal(signal.SIGINT)
        code, out, err = await finish(process)
    assert (code, out, err) == (0, "", "")
    known, unknown = replies
    assert [f["type"] for f in known] == ["ack", "tool_call", "tool_result", "token", "done"]
    assert known[3]["response"] == "6*7 = 42."
    assert unknown[-1]["error"]["code"] == "not_in_transcript"
    assert "expected 'Thanks" in unknown[-1]["error"]["message"]


async def test_serve_replay_of_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A transcript that cannot be read stops serve before it listens: one line, exit 2."""
    missing = tmp_path / "missing.jsonl"
    async with nbchat("serve", "--replay", str(missing), "--port", "0") as process:
        code, out, err = await finish(process)
    assert (code, out) == (2, "")
    assert err == f"nbchat serve: transcript {missing} does not exist: check the path\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--speed", "2"], "nbchat serve: --speed needs --replay FILE\n"),
        (["--replay", "x.jsonl", "--speed", "-1"], "nbchat serve: --speed must be 0 or more"),
    ],
)
def test_serve_speed_needs_replay_and_a_positive_value(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """--speed is only for --replay, and cannot be negative: one line, exit 2."""
    assert main(["serve", *argv]) == 2
    assert capsys.readouterr().err.startswith(message)


# nbchat demo

QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"
LAB_URL = re.compile(r"(http://127\.0\.0\.1:\d+)/lab/tree/quickstart\.ipynb\?token=(\w+)")
"""The URL JupyterLab prints for the demo: the notebook itself, not the Launcher."""


@asynccontextmanager
async def demo(
    cwd: Path, *args: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, list[str]]]:
    """``nbchat demo ARGS --port 0 --no-browser`` in ``cwd``, the URL JupyterLab prints, output.

    The URL comes from the process's output (stderr merged into stdout); the rest of
    the output is drained in the background into the list of lines. JupyterLab runs
    in the demo's process group, which is ended if the test leaves it running.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "nbchat", "demo", *args, "--port", "0", "--no-browser",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    output: list[str] = []

    async def url() -> str:
        assert process.stdout is not None
        while line := (await process.stdout.readline()).decode():
            output.append(line)
            if match := LAB_URL.search(line):
                return match.group(0)
        raise AssertionError(f"nbchat demo exited before printing a URL:\n{''.join(output)}")

    async def drain() -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            output.append(line.decode())

    drained = None
    try:
        # JupyterLab takes a few seconds to start, more on a busy machine.
        found = await asyncio.wait_for(url(), 6 * TIMEOUT)
        drained = asyncio.create_task(drain())
        yield process, found, output
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGTERM)  # JupyterLab too, and its kernels
            try:
                await asyncio.wait_for(process.wait(), TIMEOUT)
            except asyncio.TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        if drained is not None:
            await asyncio.wait_for(drained, TIMEOUT)


async def get_json(url: str) -> Any:
    """The JSON document at ``url`` (a thread: urllib blocks)."""
    from urllib.request import urlopen

    def read() -> Any:
        with urlopen(url, timeout=TIMEOUT) as response:
            return json.load(response)

    return await asyncio.to_thread(read)


async def reachable(url: str) -> Any:
    """The JSON at ``url`` once the server accepts connections.

    Jupyter Server prints its URL just before it starts listening (the bind is a
    callback of its event loop), so the first connection may be refused.
    """
    from urllib.error import URLError

    async def poll() -> Any:
        while True:
            try:
                return await get_json(url)
            except URLError as exc:
                if not isinstance(exc.reason, ConnectionRefusedError):
                    raise
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), TIMEOUT)


async def test_demo_opens_a_copy_of_the_quickstart_in_its_own_folder(tmp_path: Path) -> None:
    """The copy is made in ./nbchat-demo, JupyterLab's root, and the printed URL opens it."""
    async with demo(tmp_path) as (process, url, output):
        folder = tmp_path / "nbchat-demo"
        assert output[0] == (
            f"nbchat demo: starting JupyterLab in {folder} on quickstart.ipynb (Ctrl-C to stop)\n"
        )
        assert (folder / "quickstart.ipynb").read_bytes() == QUICKSTART.read_bytes()
        match = LAB_URL.fullmatch(url)
        assert match
        base, token = match.groups()
        root = await reachable(f"{base}/api/contents?token={token}")
        assert [item["name"] for item in root["content"]] == ["quickstart.ipynb"]
        notebook = await get_json(f"{base}/api/contents/quickstart.ipynb?token={token}")
        assert notebook["type"] == "notebook" and notebook["content"]["cells"]
        # The "get notified about official Jupyter news?" question is off by default.
        settings = f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification"
        schema = (await get_json(f"{settings}?token={token}"))["schema"]
        assert schema["properties"]["fetchNews"]["default"] == "false"
        # Ctrl-C (SIGINT to nbchat alone here) stops JupyterLab without asking, exit 0.
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 3 * TIMEOUT) == 0
        with pytest.raises(OSError):
            await get_json(f"{base}/api/status?token={token}")


async def test_demo_keeps_an_edited_copy_and_says_so(tmp_path: Path) -> None:
    """An edited quickstart.ipynb is opened as it is, with one line saying so; SIGTERM stops."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "quickstart.ipynb").write_bytes(QUICKSTART.read_bytes().replace(b"Ada", b"Bob"))
    async with demo(tmp_path, "work") as (process, url, output):
        assert output[0] == (
            f"nbchat demo: keeping your {folder / 'quickstart.ipynb'}, which differs from the "
            "original (--reset replaces it)\n"
        )
        edited = (folder / "quickstart.ipynb").read_bytes()
        assert b"Bob" in edited and b"Ada" not in edited
        match = LAB_URL.fullmatch(url)
        assert match
        base, token = match.groups()
        notebook = await reachable(f"{base}/api/contents/quickstart.ipynb?token={token}")
        assert "Bob" in json.dumps(notebook["content"])
        # SIGTERM to nbchat alone (a process manager) stops JupyterLab too: no orphan.
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 3 * TIMEOUT) == 0
        with pytest.raises(OSError):
            await get_json(f"{base}/api/status?token={token}")


def test_demo_copy_keeps_replaces_or_writes(tmp_path: Path) -> None:
    """A new copy is silent; an edited one is kept unless --reset, and each case is said."""
    from nbchat.cli.demo import _copy

    target = tmp_path / "dir" / "quickstart.ipynb"
    assert _copy(QUICKSTART, target.parent, reset=False) == ""
    assert _copy(QUICKSTART, target.parent, reset=False) == ""  # the same bytes: nothing to say
    target.write_text("{}")
    assert _copy(QUICKSTART, target.parent, reset=False) == (
        f"keeping your {target}, which differs from the original (--reset replaces it)"
    )
    assert target.read_text() == "{}"
    assert _copy(QUICKSTART, target.parent, reset=True) == (
        f"replaced {target}, which differed, with the original"
    )
    assert target.read_bytes() == QUICKSTART.read_bytes()


def test_demo_prefers_the_packaged_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed wheel's nbchat/data/notebooks/ comes first, a checkout's notebooks/ second."""
    from nbchat.cli import demo as module

    assert module._original() == QUICKSTART  # this checkout: no package data in the source
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "quickstart.ipynb").write_text("{}")
    monkeypatch.setattr(module, "_DATA", tmp_path)
    assert module._original() == tmp_path / "notebooks" / "quickstart.ipynb"


def test_demo_without_its_notebook_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installation that lost its notebook says how to repair it, and copies nothing."""
    from nbchat.cli import demo as module

    monkeypatch.setattr(module, "_DATA", tmp_path / "data")
    monkeypatch.setattr(module, "_CHECKOUT_NOTEBOOKS", tmp_path / "missing")
    assert main(["demo", str(tmp_path / "work")]) == 2
    assert capsys.readouterr().err == (
        "nbchat demo: quickstart.ipynb is missing from this installation: reinstall it "
        "with pip install --force-reinstall 'jupyter-nbchat[lab]'\n"
    )
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("name", ["notebooks/quickstart.ipynb", "file"])
def test_demo_given_a_notebook_or_a_file_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """DIRECTORY is where the copy goes: a notebook's path (the old usage) or a file is refused."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("")
    assert main(["demo", name]) == 2
    assert capsys.readouterr().err == (
        f"nbchat demo: {name} is not a directory: name the folder to work in "
        "(the demo copies quickstart.ipynb there)\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]


def test_demo_list_names_every_notebook_with_its_title(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """nbchat demo --list prints each of notebooks/*.ipynb, one line, its name and its title."""
    assert main(["demo", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = sorted(path.stem for path in (ROOT / "notebooks").glob("*.ipynb"))
    assert [line.split()[0] for line in lines] == names and len(names) > 1
    assert re.fullmatch(r"models +Chat with a real model", lines[names.index("models")])
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)  # every one described


@pytest.mark.parametrize("argv", [["models", "work"], ["models.ipynb", "work"], ["models"]])
def test_demo_opens_the_notebook_it_is_named(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    """nbchat demo NAME [DIRECTORY] copies that notebook and opens JupyterLab on it."""
    started: list[tuple[list[str], Path]] = []

    class Lab:
        def __init__(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
            started.append((command, cwd))

        def wait(self) -> int:
            return 0

    monkeypatch.setattr("subprocess.Popen", Lab)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", *argv, "--no-browser"]) == 0
    folder = tmp_path / (argv[1] if len(argv) > 1 else "nbchat-demo")
    [(command, cwd)] = started
    assert cwd == folder and "--LabApp.default_url=/lab/tree/models.ipynb" in command
    assert (folder / "models.ipynb").read_bytes() == (ROOT / "notebooks/models.ipynb").read_bytes()
    assert "on models.ipynb (Ctrl-C to stop)" in capsys.readouterr().out


def test_demo_of_an_unknown_notebook_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A NAME with a DIRECTORY that names no example lists the examples, copies nothing."""
    assert main(["demo", "nosuch", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nbchat demo: no example notebook 'nosuch': the examples are ")
    assert "models" in err and err.count("\n") == 1
    assert not (tmp_path / "work").exists()


def test_demo_settings_come_after_the_users_jupyter_config_path() -> None:
    """JUPYTER_CONFIG_PATH entries already set keep their priority over the demo's settings."""
    from nbchat.cli.demo import lab_environment

    ours = str(ROOT / "nbchat" / "data" / "jupyter")
    assert lab_environment({})["JUPYTER_CONFIG_PATH"] == ours
    env = lab_environment({"JUPYTER_CONFIG_PATH": "/mine", "HOME": "/home/x"})
    assert env == {"JUPYTER_CONFIG_PATH": f"/mine{os.pathsep}{ours}", "HOME": "/home/x"}
    overrides = Path(ours) / "labconfig" / "default_setting_overrides.json"
    assert json.loads(overrides.read_text()) == {
        "@jupyterlab/apputils-extension:notification": {"fetchNews": "false"}
    }


async def test_demo_without_jupyterlab_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """In an environment with no jupyter-lab command, demo names what to install: one line."""
    # An environment with this one's packages but another bin/ folder, where
    # jupyter-lab is not: the same interpreter, pyvenv.cfg and lib/, a new prefix.
    venv = Path(sys.prefix)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(Path(sys.executable).resolve())
    (tmp_path / "lib").symlink_to(venv / "lib")
    (tmp_path / "pyvenv.cfg").write_bytes((venv / "pyvenv.cfg").read_bytes())
    process = await asyncio.create_subprocess_exec(
        str(tmp_path / "bin" / "python"), "-m", "nbchat", "demo", "--no-browser",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PATH": str(tmp_path / "bin")},
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert (process.returncode, out) == (2, b"")
    assert err.decode() == (
        "nbchat demo: JupyterLab is not installed: pip install 'jupyter-nbchat[lab]'\n"
    )
    assert not (tmp_path / "nbchat-demo").exists()  # nothing is copied when it cannot run


def test_chat_help_gives_its_reconnect_attempts_and_why_they_differ(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """nbchat chat gives up sooner than ClientConfig on purpose, and its help says both numbers."""
    from nbchat.cli.chat import RECONNECT_ATTEMPTS
    from nbchat.config import ClientConfig

    assert main(["chat", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"retried {RECONNECT_ATTEMPTS} times" in text
    assert f"a notebook's client retries {ClientConfig().max_reconnect_attempts}" in text
