"""Transcripts: recording, loading, turns, exports (pure and synchronous)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from nbchat.exceptions import TranscriptError
from nbchat.protocol import (
    AckMessage,
    CancelRequest,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    UserMessage,
)
from nbchat.transcript import (
    TRANSCRIPT_VERSION,
    Event,
    Recorder,
    Transcript,
    TranscriptWarning,
    redact_url,
)

URL = "ws://ada:s3cret@localhost:8000/ws?token=abc123&room=7"


class Clock:
    """A clock that ticks one second per reading, so event times are predictable."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def record_session(path: Path) -> None:
    """Record two turns (one with a tool call, one failing) with real protocol models."""
    with Recorder(path, URL, clock=Clock()) as rec:
        rec.state("connected", "localhost:8000")
        rec.sent(UserMessage(id="m1", conversation_id="c1", message="Weather in Paris?"))
        rec.received(AckMessage(id="m1", reply_to="m1", conversation_id="c1"))
        call = ToolCall(id="t1", name="weather", arguments={"city": "Paris"})
        rec.received(ToolCallMessage(tool_calls=[call], reply_to="m1", conversation_id="c1"))
        finished = call.model_copy(update={"status": "done", "result": {"temp": 21}})
        rec.received(ToolResultMessage(tool_calls=[finished], reply_to="m1", conversation_id="c1"))
        for part in ["It is ", "21 degrees", "."]:
            rec.received(TokenMessage(response=part, reply_to="m1", conversation_id="c1"))
        rec.received(DoneMessage(reply_to="m1", conversation_id="c1"))
        rec.sent(UserMessage(id="m2", conversation_id="c1", message="And tomorrow?"))
        rec.received(AckMessage(id="m2", reply_to="m2", conversation_id="c1"))
        rec.received(TokenMessage(response="Let me", reply_to="m2", conversation_id="c1"))
        error = ErrorInfo(code="agent_failed", message="forecast service down")
        rec.received(ErrorMessage(error=error, reply_to="m2", conversation_id="c1"))
        rec.error("frame is not JSON", b"{oops")


def write_lines(path: Path, *objects: object) -> None:
    """Write a header and ``objects`` as JSON Lines, as another client might have."""
    header = {"nbchat_transcript": TRANSCRIPT_VERSION, "created": None, "url": None}
    lines = [json.dumps(header)] + [json.dumps(obj) for obj in objects]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_recorded_session_loads_into_turns(tmp_path: Path) -> None:
    """Tokens join into the answer, tool calls merge with their results, errors end a turn."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    transcript = Transcript.load(path)
    assert [e.dir for e in transcript.events].count("in") == 10
    first, second = transcript.turns
    assert (first.user, first.message_id, first.conversation_id) == (
        "Weather in Paris?",
        "m1",
        "c1",
    )
    assert first.assistant == "It is 21 degrees."
    assert first.complete and first.error is None
    [call] = first.tool_calls
    assert (call.name, call.status, call.arguments, call.result) == (
        "weather",
        "done",
        {"city": "Paris"},
        {"temp": 21},
    )
    assert isinstance(first.messages[0], AckMessage)
    assert isinstance(first.messages[-1], DoneMessage)
    assert second.assistant == "Let me"
    assert second.error == ErrorInfo(code="agent_failed", message="forecast service down")
    assert second.complete


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


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    """Saving and loading again gives an equal transcript."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    original = Transcript.load(path)
    copy = tmp_path / "copy.jsonl"
    original.save(copy)
    assert Transcript.load(copy) == original
    assert Transcript.loads(copy.read_text(encoding="utf-8")) == original
    assert Transcript.from_json(original.to_json()) == original
    assert not list(tmp_path.glob(".*.tmp"))


def test_save_replaces_an_existing_file(tmp_path: Path) -> None:
    """Saving over a file replaces its content whole."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    empty = Transcript(url="ws://h/")
    empty.save(path)
    assert Transcript.load(path) == empty


def test_every_event_is_flushed_when_written(tmp_path: Path) -> None:
    """Each event can be read from another handle as soon as its method returns."""
    path = tmp_path / "chat.jsonl"
    rec = Recorder(path, URL)
    calls: list[Callable[[], None]] = [
        lambda: rec.state("connected"),
        lambda: rec.sent(UserMessage(id="m1", message="hi")),
        lambda: rec.received(TokenMessage(response="hello", reply_to="m1")),
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
    """Writing after close is an error that says to open a new recorder."""
    rec = Recorder(tmp_path / "chat.jsonl")
    rec.close()
    rec.close()
    with pytest.raises(TranscriptError, match="open a new Recorder"):
        rec.state("connected")


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
    ],
)
def test_missing_or_unknown_header_raises(tmp_path: Path, content: bytes, match: str) -> None:
    """A file without a version-1 header is refused with a one-line explanation."""
    path = tmp_path / "chat.jsonl"
    path.write_bytes(content)
    with pytest.raises(TranscriptError, match=match):
        Transcript.load(path)


def test_missing_file_raises(tmp_path: Path) -> None:
    """Loading a file that does not exist says so."""
    with pytest.raises(TranscriptError, match="does not exist"):
        Transcript.load(tmp_path / "nope.jsonl")


def test_missing_folder_raises(tmp_path: Path) -> None:
    """Recording or saving into a missing folder asks for the folder to be created."""
    with pytest.raises(TranscriptError, match="create it first"):
        Recorder(tmp_path / "missing" / "chat.jsonl")
    with pytest.raises(TranscriptError, match="create it first"):
        Transcript().save(tmp_path / "missing" / "chat.jsonl")


def test_credentials_are_redacted() -> None:
    """User info and credential-like query values become ``***``; the rest stays."""
    assert redact_url(URL) == "ws://***:***@localhost:8000/ws?token=***&room=7"
    assert redact_url("wss://tok@h/ws") == "wss://***@h/ws"
    assert redact_url("wss://h/ws?api_key=k&Access-Token=t&x=1") == (
        "wss://h/ws?api_key=***&Access-Token=***&x=1"
    )
    assert redact_url("wss://h/ws") == "wss://h/ws"
    assert redact_url(None) is None


def test_recorded_url_has_no_credentials(tmp_path: Path) -> None:
    """Neither the password nor the token reaches the file."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    text = path.read_text(encoding="utf-8")
    assert "s3cret" not in text and "abc123" not in text and "ada" not in text
    assert Transcript.load(path).url == "ws://***:***@localhost:8000/ws?token=***&room=7"


def test_markdown_has_the_conversation_and_no_raw_html(tmp_path: Path) -> None:
    """The Markdown shows texts and tool data, and a payload's HTML stays inert."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", message="Show me <b>bold</b> & a < b"))
        payload = "<script>alert(1)</script> ```` [x](javascript:alert(1))"
        call = ToolCall(id="t1", name="fetch<img>", arguments={"q": payload}, status="done")
        rec.received(ToolResultMessage(tool_calls=[call.model_copy(update={"result": payload})]))
        reply = "Here: <script>alert(2)</script> [y](JavaScript:alert(3))\n```py\nx = 1"
        rec.received(TokenMessage(response=reply))
        rec.received(DoneMessage())
    markdown = Transcript.load(path).to_markdown()
    assert "<script" not in markdown and "<b>" not in markdown and "<img" not in markdown
    assert "(JavaScript\u200b:alert(3))" in markdown  # a link the renderer will not run
    assert "### You" in markdown and "### Assistant" in markdown
    assert "&lt;b>bold&lt;/b> & a < b" in markdown
    assert "\\u003cscript>alert(1)\\u003c/script>" in markdown
    assert "`````json" in markdown  # longer than the four backticks in the data
    assert "fetch&lt;img&gt;" in markdown and "(done)" in markdown
    assert "x = 1\n```\n\n**Tool call:**" in markdown  # the cut-off code block is closed


def test_markdown_reports_errors_and_incomplete_turns(tmp_path: Path) -> None:
    """An error turn shows its code and message; a turn cut short says so."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m3", message="still there?"))
        rec.received(TokenMessage(response="Ye", reply_to="m3"))
    transcript = Transcript.load(path)
    markdown = transcript.to_markdown()
    assert "It is 21 degrees." in markdown and '"city": "Paris"' in markdown
    assert "**Error** (agent\\_failed): forecast service down" in markdown
    assert "incomplete" in markdown
    assert not transcript.turns[-1].complete
    assert transcript._repr_markdown_() == markdown


def test_html_repr_is_the_widget_markup_sanitized(tmp_path: Path) -> None:
    """_repr_html_ uses the widget's styles and bubbles; no payload becomes active HTML."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path, URL) as rec:
        rec.sent(UserMessage(id="m1", message="<img src=x onerror=alert(1)>"))
        call = ToolCall(id="t1", name="<b>calc</b>", arguments={"q": "<script>"}, status="done")
        rec.received(ToolResultMessage(tool_calls=[call], reply_to="m1"))
        reply = "**Hi** <script>alert(2)</script> [y](javascript:alert(3))"
        rec.received(TokenMessage(response=reply, reply_to="m1"))
        rec.received(DoneMessage(reply_to="m1"))
        rec.sent(UserMessage(id="m2", message="again"))
        error = ErrorInfo(code="agent_failed", message="<i>down</i>")
        rec.received(ErrorMessage(error=error, reply_to="m2"))
        rec.sent(UserMessage(id="m3", message="still there?"))
        rec.received(TokenMessage(response="Ye", reply_to="m3"))
    page = Transcript.load(path)._repr_html_()
    assert page.startswith('<div class="nbchat nbchat-transcript"><style>')
    assert "token=***" in page and "abc123" not in page
    assert "<script" not in page and "<img" not in page and "<i>" not in page
    assert 'href="javascript' not in page.lower() and "<b>calc" not in page
    assert '<div class="nbchat-msg nbchat-user">' in page and "&lt;img src=x" in page
    assert "<strong>Hi</strong>" in page  # replies are rendered Markdown, as in the widget
    assert 'class="nbchat-tool nbchat-tool-done"' in page
    assert "agent_failed: &lt;i&gt;down&lt;/i&gt;" in page
    assert "<em>(incomplete: the transcript ends before the reply did)</em>" in page


def test_text_is_the_conversation_without_control_characters(tmp_path: Path) -> None:
    """to_text shows turns as nbchat.render.conversation_text does, headed by where from."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    text = Transcript.load(path).to_text()
    head, body = text.split("\n\n", 1)
    assert head.startswith("nbchat transcript, recorded ") and head.endswith("token=***&room=7")
    assert body.startswith("You: Weather in Paris?\n[tool weather: done]\n")
    assert "Assistant: It is 21 degrees.\n" in body
    assert body.endswith("Assistant: Let me\nError: agent_failed: forecast service down\n")
    assert Transcript().to_text() == "nbchat transcript\n\n(no messages)\n"


def test_turns_know_when_each_message_arrived(tmp_path: Path) -> None:
    """Turn.times gives the arrival time of each message, aligned with Turn.messages."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    first, second = Transcript.load(path).turns
    assert first.t == 1_700_000_002.0
    assert first.times == [1_700_000_000.0 + n for n in range(3, 10)]
    assert len(first.times) == len(first.messages)
    assert second.times == [1_700_000_011.0, 1_700_000_012.0, 1_700_000_013.0]


def test_notebook_validates_with_a_cell_per_turn(tmp_path: Path) -> None:
    """The notebook passes nbformat validation and holds one Markdown cell per turn."""
    nbformat = pytest.importorskip("nbformat")
    path = tmp_path / "chat.jsonl"
    record_session(path)
    with Recorder(path) as rec:
        call = ToolCall(id="t9", name="run", arguments={"code": "<script>x</script>"})
        rec.sent(UserMessage(id="m3", message="run it"))
        rec.received(ToolCallMessage(tool_calls=[call], reply_to="m3"))
    transcript = Transcript.load(path)
    notebook = transcript.to_notebook()
    nbformat.validate(notebook)
    assert [cell.cell_type for cell in notebook.cells] == ["markdown"] * 3
    assert notebook.metadata.kernelspec.name == "python3"
    assert notebook.metadata.nbchat.transcript_version == 1
    first = notebook.cells[0].source
    assert "<details>" in first and "<summary>Tool call: weather (done)</summary>" in first
    assert "&quot;city&quot;: &quot;Paris&quot;" in first
    last = notebook.cells[2].source
    assert "&lt;script&gt;x&lt;/script&gt;" in last and "<script>" not in last
    nbformat.validate(nbformat.reads(nbformat.writes(notebook), as_version=4))


def test_large_transcript_loads_and_exports(tmp_path: Path) -> None:
    """A 100,000-event transcript loads, assembles and exports in one linear pass."""
    path = tmp_path / "big.jsonl"
    turns = 10_000
    with Recorder(path) as rec:
        for n in range(turns):
            rec.sent(UserMessage(id=f"m{n}", conversation_id="c", message=f"question {n}"))
            rec.received(AckMessage(id=f"m{n}", reply_to=f"m{n}"))
            for part in range(7):
                rec.received(TokenMessage(response=f"w{part} ", reply_to=f"m{n}"))
            rec.received(DoneMessage(reply_to=f"m{n}"))
    transcript = Transcript.load(path)
    assert len(transcript.events) == 100_000
    assembled = transcript.turns
    assert len(assembled) == turns
    assert assembled[-1].assistant == "w0 w1 w2 w3 w4 w5 w6 "
    assert transcript.to_markdown().count("### You") == turns
    assert len(transcript.to_notebook().cells) == turns


def test_resent_message_makes_one_turn(tmp_path: Path) -> None:
    """A message resent after a reconnect, and acked twice, is still one turn."""
    path = tmp_path / "chat.jsonl"
    message = UserMessage(id="m1", conversation_id="c", message="hello")
    with Recorder(path) as rec:
        rec.sent(message)
        rec.state("reconnecting", "1006")
        rec.sent(message)
        rec.received(AckMessage(id="m1", reply_to="m1"))
        rec.received(AckMessage(id="m1", reply_to="m1"))
        rec.received(TokenMessage(response="hi", reply_to="m1"))
        rec.received(DoneMessage(reply_to="m1"))
    transcript = Transcript.load(path)
    [turn] = transcript.turns
    assert turn.assistant == "hi" and turn.complete
    [exchange] = transcript.exchanges()
    assert [m.type for m in exchange.messages] == ["token", "done"]


def test_typeless_messages_follow_their_conversation_in_order(tmp_path: Path) -> None:
    """Untyped server messages without reply_to go to the oldest open turn of their conversation."""
    path = tmp_path / "chat.jsonl"
    write_lines(
        path,
        {"t": 1, "dir": "out", "data": {"message": "first in a", "conversation_id": "a"}},
        {"t": 2, "dir": "out", "data": {"message": "first in b", "conversation_id": "b"}},
        {"t": 3, "dir": "in", "data": {"response": "B1", "conversation_id": "b"}},
        {"t": 4, "dir": "in", "data": {"response": "A1", "conversation_id": "a"}},
        {"t": 5, "dir": "in", "data": {"done": True, "conversation_id": "a"}},
        {"t": 6, "dir": "out", "data": {"message": "second in a", "conversation_id": "a"}},
        {"t": 7, "dir": "in", "data": {"tool_calls": [{"id": "x", "name": "f"}]}},
        {"t": 8, "dir": "in", "data": {"response": "A2", "conversation_id": "a"}},
        {"t": 9, "dir": "in", "data": {"done": True, "conversation_id": "b"}},
        {"t": 10, "dir": "in", "data": {"done": True, "conversation_id": "a"}},
    )
    transcript = Transcript.load(path)
    turns = transcript.turns
    assert [(t.user, t.assistant, t.complete) for t in turns] == [
        ("first in a", "A1", True),
        ("first in b", "B1", True),
        ("second in a", "A2", True),
    ]
    assert turns[0].message_id is None
    assert [call.name for call in turns[1].tool_calls] == ["f"]  # no conversation: oldest open
    assert [(c, u) for c, u, _ in transcript.exchanges()] == [
        ("a", "first in a"),
        ("b", "first in b"),
        ("a", "second in a"),
    ]


def test_server_assigned_conversation_is_adopted(tmp_path: Path) -> None:
    """A turn sent without a conversation takes the one the server answers with."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path) as rec:
        rec.sent(UserMessage(message="hi"))
        rec.received(AckMessage(conversation_id="srv-1"))
        rec.received(TokenMessage(response="hello", conversation_id="srv-1"))
        rec.received(DoneMessage(conversation_id="srv-1"))
        rec.sent(CancelRequest(conversation_id="srv-1"))
    [turn] = Transcript.load(path).turns
    assert (turn.conversation_id, turn.assistant, turn.complete) == ("srv-1", "hello", True)


def test_event_message_parses_wire_payloads_only() -> None:
    """Message events parse into protocol models; state events and foreign payloads give None."""
    assert Event(t=1.0, dir="in", data={"response": "x"}).message() == TokenMessage(response="x")
    assert Event(t=1.0, dir="out", data={"message": "q"}).message() == UserMessage(
        id=None, message="q"
    )
    assert Event(t=1.0, dir="in", data={"type": "token"}).message() is None
    assert Event(t=1.0, dir="state", data={"state": "connected"}).message() is None


def test_line_separators_inside_text_do_not_split_events(tmp_path: Path) -> None:
    """Only a newline ends a line: U+2028, U+0085 and a carriage return inside text are kept."""
    path = tmp_path / "chat.jsonl"
    text = "a\u2028b\x85c\rd"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", message=text))
        rec.received(TokenMessage(response=text, reply_to="m1"))
    [turn] = Transcript.load(path).turns
    assert turn.user == text and turn.assistant == text


def test_reply_restart_voids_what_came_before_it(tmp_path: Path) -> None:
    """After the client's reply_restart notice, a turn holds only the regenerated reply."""
    from nbchat.protocol import UnknownMessage

    path = tmp_path / "restart.jsonl"
    with Recorder(path) as rec:
        rec.sent(UserMessage(id="m1", conversation_id="c", message="count to 3"))
        rec.received(TokenMessage(response="1 ", reply_to="m1", conversation_id="c"))
        rec.received(UnknownMessage(type="reply_restart", reply_to="m1", conversation_id="c"))
        for part in ["1 ", "2 ", "3"]:
            rec.received(TokenMessage(response=part, reply_to="m1", conversation_id="c"))
        rec.received(DoneMessage(reply_to="m1", conversation_id="c"))
    (turn,) = Transcript.load(path).turns
    assert turn.assistant == "1 2 3"
