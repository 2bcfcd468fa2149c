"""The pytest plugin, run on small test files through pytester: fixtures and --nbchat-replay."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nbchat.config import URL_ENV
from nbchat.protocol import DoneMessage, TokenMessage, UserMessage
from nbchat.transcript import Recorder
from tests.helpers import TIMEOUT

pytestmark = pytest.mark.kernel

pytest_plugins = ["pytester"]

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

# Shared by the small test files: one message over a plain websockets client, its reply text.
ASK = (
    f"\nTIMEOUT = {TIMEOUT!r}\n"
    + """
import json
import uuid
from websockets.sync.client import connect

def ask(url, text, conversation="c"):
    with connect(url, open_timeout=TIMEOUT) as ws:
        message = {"id": uuid.uuid4().hex, "conversation_id": conversation, "message": text}
        ws.send(json.dumps(message))
        frames = []
        while not frames or frames[-1]["type"] not in ("done", "error"):
            frames.append(json.loads(ws.recv(timeout=TIMEOUT)))
    if frames[-1]["type"] == "error":
        return "error: " + frames[-1]["error"]["code"]
    return "".join(f.get("response", "") for f in frames)
"""
)


def write_transcript(path: Path, text: str = "hello?", answer: str = "recorded hi") -> Path:
    """A one-turn transcript: ``text`` answered by ``answer``."""
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", conversation_id="rec", message=text))
        rec.received(TokenMessage(response=answer, reply_to="m1", conversation_id="rec"))
        rec.received(DoneMessage(reply_to="m1", conversation_id="rec"))
    return path


def test_fixtures_serve_in_sync_and_async_tests(pytester: pytest.Pytester) -> None:
    """nbchat_server and nbchat_replay give live URLs to sync and async tests alike."""
    pytester.makeini(INI)
    transcript = write_transcript(pytester.path / "chat.jsonl")
    pytester.makeconftest(ASK.replace("def ask", "def _ask") + "\nimport pytest\n"
                          "@pytest.fixture\ndef ask():\n    return _ask\n")  # fmt: skip
    pytester.makepyfile(
        f"""
        import asyncio
        import pytest
        from nbchat import ChatClient

        def test_server(nbchat_server, ask):
            assert ask(nbchat_server, "count to 3") == "1 2 3"

        def test_replay(nbchat_replay, ask):
            url = nbchat_replay({str(transcript)!r})
            other = nbchat_replay({str(transcript)!r}, speed=2.0)
            assert url != other
            assert ask(url, "hello?") == ask(other, "  hello? ") == "recorded hi"
            assert ask(url, "bye") == "error: not_in_transcript"

        @pytest.mark.asyncio
        async def test_async(nbchat_replay):
            async with ChatClient(url=nbchat_replay({str(transcript)!r})) as client:
                assert (await client.ask("hello?", timeout={TIMEOUT})).text == "recorded hi"

        @pytest.mark.asyncio
        async def test_async_server(nbchat_server):
            async with ChatClient(url=nbchat_server) as client:
                assert (await client.ask("What is 6*7?", timeout={TIMEOUT})).text == "6*7 = 42."
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["plugins: *nbchat-*"])  # loaded through its entry point


def test_the_replay_fixture_wins_over_any_url(pytester: pytest.Pytester) -> None:
    """While nbchat_replay is active a client given another URL talks to the replay, then not."""
    pytester.makeini(INI)
    transcript = write_transcript(pytester.path / "chat.jsonl")
    pytester.makepyfile(
        f"""
        import logging
        import os
        from nbchat import ChatClient

        def test_replayed(nbchat_replay, caplog):
            url = nbchat_replay({str(transcript)!r})
            client = ChatClient(url="ws://elsewhere.invalid/ws")
            assert client.url == url
            assert client.ask_sync("hello?", timeout={TIMEOUT}).text == "recorded hi"
            client.close_sync()
            assert "ws://elsewhere.invalid/ws replaced" in caplog.text

        def test_after():
            assert "NBCHAT_REPLAY" not in os.environ
            assert ChatClient(url="ws://elsewhere.invalid/ws").url == "ws://elsewhere.invalid/ws"
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_option_exports_the_replay_url_for_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--nbchat-replay serves the file for the session through $NBCHAT_WS_URL, then restores it."""
    monkeypatch.setenv(URL_ENV, "ws://before.invalid:1/ws")
    pytester.makeini(INI)
    transcript = write_transcript(pytester.path / "chat.jsonl")
    pytester.makepyfile(
        ASK
        + """
import os
from nbchat import ChatClient

def test_environment_points_at_the_replay():
    url = os.environ["NBCHAT_WS_URL"]
    assert url.startswith("ws://127.0.0.1:") and ChatClient().url == url
    assert ask(url, "hello?") == "recorded hi"

def test_same_server_for_the_whole_session():
    assert ask(os.environ["NBCHAT_WS_URL"], "hello?", conversation="other") == "recorded hi"
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--nbchat-replay", transcript)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [f"nbchat: replaying {transcript} (1 recorded message) at ws://127.0.0.1:*"]
    )
    assert os.environ[URL_ENV] == "ws://before.invalid:1/ws"


def test_option_reports_a_torn_line_instead_of_failing(pytester: pytest.Pytester) -> None:
    """A torn last line is named in the header; the session runs even with warnings as errors."""
    transcript = write_transcript(pytester.path / "chat.jsonl")
    with open(transcript, "ab") as file:
        file.write(b'{"t": 1.0, "dir": "in", "da')
    pytester.makeini(INI + "filterwarnings = error\n")
    pytester.makepyfile(ASK + "\ndef test_it():\n    assert ask(__import__('os').environ"
                        "['NBCHAT_WS_URL'], 'hello?') == 'recorded hi'\n")  # fmt: skip
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--nbchat-replay", transcript)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["nbchat: *chat.jsonl:5: torn last line*skipped"])


def test_option_with_a_missing_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A wrong path stops the session at once with one line, before any test runs."""
    pytester.makeini(INI)
    pytester.makepyfile("def test_never():\n    raise AssertionError\n")
    result = pytester.runpytest_inprocess("--nbchat-replay", "missing.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--nbchat-replay: transcript missing.jsonl does not exist*"])


def test_option_on_a_notebook_without_nbval_says_to_add_it(pytester: pytest.Pytester) -> None:
    """``--nbchat-replay FILE x.ipynb`` without ``--nbval`` names the missing option in one line."""
    transcript = str(write_transcript(pytester.path / "chat.jsonl"))
    pytester.makefile(".ipynb", chat="{}")
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--nbchat-replay", transcript, "chat.ipynb"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*chat.ipynb is a notebook*add --nbval (or --nbval-lax)"])
