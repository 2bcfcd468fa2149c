"""The transcript format: the shape of each line, forgiving reads, and redaction of every line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbchat.exceptions import TranscriptError
from nbchat.protocol import TokenMessage, UserMessage
from nbchat.transcript import Recorder, Transcript, TranscriptLine, TranscriptWarning

from .sessions import URL, record_session, write_lines

pytestmark = pytest.mark.unit


def test_header_and_event_lines_have_the_documented_shape(tmp_path: Path) -> None:
    """The file is a header line then one compact event per line, as the module documents."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["nbchat_transcript"] == 1
    assert set(header) == {"nbchat_transcript", "created", "url"}
    assert json.loads(lines[1]) == {
        "t": 1_700_000_001.0,
        "dir": "state",
        "data": {"state": "connected", "detail": "localhost:8000"},
    }
    sent = json.loads(lines[2])
    assert sent["dir"] == "out"
    assert sent["data"] == {
        "type": "message",
        "id": "m1",
        "conversation_id": "c1",
        "message": "Weather in Paris?",
    }
    assert json.loads(lines[-1])["data"] == {"message": "frame is not JSON", "raw": "{oops"}


def test_client_events_are_client_lines_not_wire_messages(tmp_path: Path) -> None:
    """A restart and a failed reply are ``client`` lines: they never crossed the wire."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path) as rec:
        rec.restarted("m1")
        rec.failed("m2", "gave up after 5 reconnection attempts")
    restart, failed = (json.loads(line) for line in path.read_text().splitlines()[1:])
    assert (restart["dir"], restart["data"]) == ("client", {"event": "restart", "reply_to": "m1"})
    assert (failed["dir"], failed["data"]) == (
        "client",
        {"event": "failed", "reply_to": "m2", "message": "gave up after 5 reconnection attempts"},
    )


SECRET_URLS = [
    "ws://127.0.0.1:9/ws?token=SECRETQ&api_key=SECRETK",
    "ws://user:SECRETP@127.0.0.1:9/ws",
    "https://h/cb#access_token=SECRETF",
    "ws://h/ws;jsessionid=SECRETJ?room=1",
    "ws://h/ws?room=1;sig=SECRETS",
]


@pytest.mark.parametrize("url", SECRET_URLS)
def test_no_line_keeps_a_secret(tmp_path: Path, url: str) -> None:
    """Header, state details, errors, raw frames and messages all have their URLs redacted."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path, url) as rec:
        rec.state("disconnected", f"could not connect to {url}")
        rec.error(f"gave up after 2 reconnection attempts to {url}", f'{{"url":"{url}"}}')
        rec.failed("m1", f"connection to {url} closed")
        rec.sent(UserMessage(id="m1", message=f"connect to {url} please"))
        rec.received(TokenMessage(response=f"see {url}", reply_to="m1"))
    text = path.read_text(encoding="utf-8")
    assert "SECRET" not in text
    assert text.count("***") >= 6
    for line in text.splitlines():
        json.loads(line)  # still valid JSON after redaction


def test_recorded_url_has_no_credentials(tmp_path: Path) -> None:
    """Neither the password nor the token reaches the file."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    text = path.read_text(encoding="utf-8")
    assert "s3cret" not in text and "abc123" not in text and "ada" not in text
    assert Transcript.load(path).url == "ws://***:***@localhost:8000/ws?token=***&room=7"
    assert Transcript.load(path).url != URL


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """A partial final write is reported with its line number and the rest is kept."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    complete = Transcript.load(path)
    data = path.read_bytes()
    path.write_bytes(
        data + '{"t":1.0,"dir":"in","data":{"type":"token","response":"é'.encode()[:-1]
    )
    lines = data.count(b"\n") + 1
    with pytest.warns(TranscriptWarning, match=rf"chat\.jsonl:{lines}: torn last line"):
        torn = Transcript.load(path)
    assert torn.events == complete.events


def test_corrupt_middle_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """A damaged line in the middle is reported and skipped; the events around it load."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    lines = path.read_bytes().split(b"\n")
    lines[3] = b"\x00garbage"
    path.write_bytes(b"\n".join(lines))
    with pytest.warns(TranscriptWarning, match=r"chat\.jsonl:4: corrupt line"):
        transcript = Transcript.load(path)
    assert len(transcript.events) == len(lines) - 3


def test_warnings_point_at_the_caller(tmp_path: Path) -> None:
    """A skipped-line warning names the code that loaded the transcript, not nbchat's internals."""
    path = tmp_path / "chat.jsonl"
    write_lines(path, "nope")
    with pytest.warns(TranscriptWarning) as caught:
        Transcript.load(path)
    assert caught[0].filename == __file__


def test_many_corrupt_lines_give_a_bounded_number_of_warnings(tmp_path: Path) -> None:
    """Beyond ten corrupt lines, one summary warning counts the rest."""
    path = tmp_path / "chat.jsonl"
    write_lines(path, *(["nope"] * 25))
    with pytest.warns(TranscriptWarning) as caught:
        transcript = Transcript.load(path)
    assert len(caught) == 11
    assert "15 more corrupt lines" in str(caught[-1].message)
    assert transcript.events == []


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "no header line"),
        (b'{"t":1.0,"dir":"state","data":{}}\n', "not an nbchat transcript"),
        (b"not json at all\n", "not an nbchat transcript"),
        (b'{"nbchat_transcript":2,"created":null,"url":null}\n', "format version 2"),
        (b'{"nbchat_transcript":1,"created":5,"url":null}\n', "malformed header"),
    ],
)
def test_missing_or_unknown_header_raises(tmp_path: Path, content: bytes, match: str) -> None:
    """A file without a version-1 header is refused with a one-line explanation."""
    path = tmp_path / "chat.jsonl"
    path.write_bytes(content)
    with pytest.raises(TranscriptError, match=match) as caught:
        Transcript.load(path)
    assert "\n" not in str(caught.value)


def test_line_message_parses_wire_payloads_only() -> None:
    """Message lines parse into protocol models; other lines and foreign payloads give None."""
    line = TranscriptLine(t=1.0, dir="in", data={"response": "x"})
    assert line.message() == TokenMessage(response="x")
    sent = TranscriptLine(t=1.0, dir="out", data={"message": "q"})
    assert sent.message() == UserMessage(id=None, message="q")
    assert TranscriptLine(t=1.0, dir="in", data={"type": "token"}).message() is None
    assert TranscriptLine(t=1.0, dir="state", data={"state": "connected"}).message() is None
    restart = TranscriptLine(t=1.0, dir="client", data={"event": "restart", "reply_to": "m"})
    assert restart.message() is None


def test_line_separators_inside_text_do_not_split_events(tmp_path: Path) -> None:
    """Only a newline ends a line: U+2028, U+0085 and a carriage return inside text are kept."""
    path = tmp_path / "chat.jsonl"
    text = "a\u2028b\x85c\rd"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", message=text))
        rec.received(TokenMessage(response=text, reply_to="m1"))
    [turn] = Transcript.load(path).turns
    assert turn.user == text and turn.assistant == text
