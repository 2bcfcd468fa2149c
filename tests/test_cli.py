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
from tests.helpers import TIMEOUT
from tests.openai_upstream import Upstream

ROOT = Path(__file__).resolve().parent.parent
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
    ],
)
def test_serve_openai_misuse_is_one_line_and_exit_2(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--openai without a model, or with --replay, is refused in one line before serving."""
    monkeypatch.delenv("NBCHAT_MODEL", raising=False)
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


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
    ],
)
def test_transcript_failures_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """A missing file, a file that is no transcript, an unknown format: one line, exit 2."""
    names = {
        "missing": str(tmp_path / "missing.jsonl"),
        "other": str(tmp_path / "notes.txt"),
        "good": str(write_transcript(tmp_path / "chat.jsonl")),
        "tmp": str(tmp_path),
    }
    Path(names["other"]).write_text("my notes\n", encoding="utf-8")
    assert main(["transcript", *(arg.format(**names) for arg in argv)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(message.format(**names))


def test_transcript_without_an_action_prints_its_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """``nbchat transcript`` alone lists show and export on stderr and exits 2."""
    assert main(["transcript"]) == 2
    err = capsys.readouterr().err
    assert "show" in err and "export" in err


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


def test_demo_without_its_notebook_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``nbchat demo`` run away from the repository says where the notebook should be."""
    assert main(["demo", str(tmp_path / "missing.ipynb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no notebook at" in err
