"""The Recorder's file: flushed lines, appending, refusing what it would damage.

Following a live client (attach, failures) is tested in tests/test_recording.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nbchat.exceptions import TranscriptError
from nbchat.protocol import TokenMessage, UserMessage
from nbchat.transcript import Recorder, Transcript, TranscriptWarning

from .sessions import URL

pytestmark = pytest.mark.unit


def test_every_event_is_flushed_when_written(tmp_path: Path) -> None:
    """Each event can be read from another handle as soon as its method returns."""
    path = tmp_path / "chat.jsonl"
    rec = Recorder(path, URL)
    calls: list[Callable[[], None]] = [
        lambda: rec.state("connected"),
        lambda: rec.sent(UserMessage(id="m1", message="hi")),
        lambda: rec.received(TokenMessage(response="hello", reply_to="m1")),
        lambda: rec.restarted("m1"),
        lambda: rec.error("bad frame", "{"),
    ]
    try:
        for count, call in enumerate(calls, 1):
            call()
            with open(path, encoding="utf-8") as reader:
                assert len(reader.read().splitlines()) == 1 + count
    finally:
        rec.close()


def test_recording_appends_to_an_existing_transcript(tmp_path: Path) -> None:
    """A second recorder continues the file without a second header."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", message="one"))
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m2", message="two"))
    assert [turn.user for turn in Transcript.load(path).turns] == ["one", "two"]


def test_recording_after_a_torn_line_keeps_new_events(tmp_path: Path) -> None:
    """A recorder ends a torn last line first, so only that line is lost."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", message="one"))
    with open(path, "ab") as file:
        file.write(b'{"t":1.0,"dir":"in","da')
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m2", message="two"))
    with pytest.warns(TranscriptWarning, match=r"chat\.jsonl:3: corrupt line"):
        transcript = Transcript.load(path)
    assert [turn.user for turn in transcript.turns] == ["one", "two"]


def test_recorder_refuses_a_file_that_is_not_a_transcript(tmp_path: Path) -> None:
    """Appending to some other file would damage it, so the recorder refuses."""
    path = tmp_path / "notes.txt"
    path.write_text("my notes\n", encoding="utf-8")
    with pytest.raises(TranscriptError, match="not an nbchat transcript"):
        Recorder(path)
    assert path.read_text(encoding="utf-8") == "my notes\n"


def test_closed_recorder_raises(tmp_path: Path) -> None:
    """Writing after close is an error that says to open a new recorder; closing twice is fine."""
    rec = Recorder(tmp_path / "chat.jsonl")
    rec.close()
    rec.close()
    assert rec.closed
    with pytest.raises(TranscriptError, match="open a new Recorder"):
        rec.state("connected")


def test_missing_folder_raises(tmp_path: Path) -> None:
    """Recording into a missing folder asks for the folder to be created."""
    with pytest.raises(TranscriptError, match="create it first"):
        Recorder(tmp_path / "missing" / "chat.jsonl")


def test_unwritable_file_is_one_clear_error(tmp_path: Path) -> None:
    """A file that cannot be written is refused at once with what to do, not a traceback."""
    with pytest.raises(TranscriptError, match=r"cannot write to /dev/full .*free space"):
        Recorder("/dev/full")


def test_repr_is_short(tmp_path: Path) -> None:
    """The repr names the file and whether it is closed."""
    with Recorder(tmp_path / "chat.jsonl") as rec:
        assert repr(rec).endswith("chat.jsonl', closed=False)")
