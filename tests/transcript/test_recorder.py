"""The Recorder's file: flushed lines, appending, refusing what it would damage.

Following a live client (attach, failures) is tested in tests/test_recording.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nbchat.exceptions import TranscriptError
from nbchat.protocol import DoneMessage, TokenMessage, UserMessage
from nbchat.transcript import Recorder, Transcript, TranscriptWarning
from nbchat.transcript.recorder import FLUSH_CHARS

from .sessions import URL

pytestmark = pytest.mark.unit


def test_every_event_is_flushed_when_written(tmp_path: Path) -> None:
    """Each event is readable from another handle once written; a token with its reply's next."""
    path = tmp_path / "chat.jsonl"
    rec = Recorder(path, URL)
    calls: list[tuple[Callable[[], None], int]] = [
        (lambda: rec.state("connected"), 1),
        (lambda: rec.sent(UserMessage(id="m1", message="hi")), 1),
        (lambda: rec.received(TokenMessage(response="hello", reply_to="m1")), 0),
        (lambda: rec.restarted("m1"), 2),
        (lambda: rec.error("bad frame", "{"), 1),
    ]
    try:
        expected = 1
        for call, written in calls:
            call()
            expected += written
            with open(path, encoding="utf-8") as reader:
                assert len(reader.read().splitlines()) == expected
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


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
SPLIT_REPLY = [
    "Log in at https://ada:s3",
    "cret-pw@host/app, send Bearer ",
    JWT[:25],
    JWT[25:],
    " and call https://api.example/v1?api_key=",
    "SK-Q7wQ7wQ7wQ7w",
    "Q7wQ7wQ7w now.",
]
"""A reply whose three secrets each straddle two token frames."""


def test_a_secret_split_across_token_frames_never_reaches_the_file(tmp_path: Path) -> None:
    """Each frame keeps its line and time, but the file and the turns hold no part of a secret."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path, clock=iter(range(1, 100)).__next__) as rec:
        rec.sent(UserMessage(id="m1", message="where?"))
        for part in SPLIT_REPLY:
            rec.received(TokenMessage(response=part, reply_to="m1"))
        rec.received(DoneMessage(reply_to="m1"))
    text = path.read_text(encoding="utf-8")
    for fragment in ("cret-pw", "s3cret", JWT[25:45], "Q7wQ7w"):
        assert fragment not in text
    transcript = Transcript.load(path)
    tokens = [e for e in transcript.events if e.data.get("type") == "token"]
    assert [e.t for e in tokens] == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    [turn] = transcript.turns
    assert turn.assistant == (
        "Log in at https://***:***@host/app, send Bearer *** and call "
        "https://api.example/v1?api_key=*** now."
    )


def test_a_long_reply_is_written_as_it_streams_never_cut_inside_a_secret(tmp_path: Path) -> None:
    """Past FLUSH_CHARS the tokens before a clean cut are on disk; a secret there stays whole."""
    path = tmp_path / "chat.jsonl"
    words = [f"word{n} " for n in range(FLUSH_CHARS // 6)]
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", message="talk"))
        for part in [*words, "https://ada:s3", "cret-pw@host ", "end"]:
            rec.received(TokenMessage(response=part, reply_to="m1"))
        on_disk = path.read_text(encoding="utf-8")
        assert on_disk.count('"token"') > len(words) // 2  # written while the reply streams
        rec.received(DoneMessage(reply_to="m1"))
    text = path.read_text(encoding="utf-8")
    assert "cret-pw" not in text and "s3" not in text.split("word")[-1]
    [turn] = Transcript.load(path).turns
    assert turn.assistant == "".join(words) + "https://***:***@host end"


def test_held_tokens_are_written_when_the_recording_stops(tmp_path: Path) -> None:
    """A reply still streaming when the recorder closes keeps what had arrived, redacted whole."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", message="go"))
        for part in ["Bearer ", JWT[:30], JWT[30:]]:
            rec.received(TokenMessage(response=part, reply_to="m1"))
    [turn] = Transcript.load(path).turns
    assert (turn.assistant, turn.complete) == ("Bearer ***", False)
    assert JWT[30:50] not in path.read_text(encoding="utf-8")


def test_attachments_are_recorded_redacted_and_large_images_by_name(tmp_path: Path) -> None:
    """A text attachment's secret never reaches the file; an image over 64 KB is only named."""
    from nbchat.attachments import describe
    from nbchat.render.attachable import attachment_of
    from tests.helpers import png

    path = tmp_path / "chat.jsonl"
    small = attachment_of(png(padding=100), name="small.png")
    large = attachment_of(png(padding=100_000), name="large.png")
    secret = attachment_of("token: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc123def", "n")
    with Recorder(path, URL) as rec:
        rec.sent(UserMessage(id="m1", message="look", attachments=[small, large, secret]))
    written = path.read_text()
    assert "eyJhbGciOiJIUzI1NiJ9" not in written
    assert small.data is not None and small.data in written
    assert large.data is not None and large.data[:200] not in written
    assert f"not recorded: {describe(large)}, over" in written
