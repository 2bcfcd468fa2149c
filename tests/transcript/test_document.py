"""Transcript: load, save, and the exports (the render module's, over the same turns)."""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from nbchat import render
from nbchat.exceptions import TranscriptError
from nbchat.protocol import (
    AckMessage,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    UserMessage,
)
from nbchat.transcript import Recorder, Transcript

from .sessions import URL, record_session

pytestmark = pytest.mark.unit


def permissive(markdown: str) -> str:
    """``markdown`` as a renderer that passes raw HTML through shows it (nbconvert does)."""
    rendered: str = MarkdownIt("commonmark", {"html": True}).render(markdown)
    return rendered


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    """Saving and loading again gives an equal transcript, through every reader."""
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


def test_missing_file_or_folder_raises(tmp_path: Path) -> None:
    """Loading a file that does not exist, or saving into a missing folder, says what to do."""
    with pytest.raises(TranscriptError, match="does not exist"):
        Transcript.load(tmp_path / "nope.jsonl")
    with pytest.raises(TranscriptError, match="create it first"):
        Transcript().save(tmp_path / "missing" / "chat.jsonl")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{oops", "not valid JSON"),
        ('{"nbchat_transcript":1,"events":[{"t":"x"}]}', "malformed events"),
    ],
)
def test_from_json_refuses_a_damaged_document(text: str, match: str) -> None:
    """A whole-document export that is not intact is refused in one line."""
    with pytest.raises(TranscriptError, match=match):
        Transcript.from_json(text)


def test_exports_are_the_render_exports(tmp_path: Path) -> None:
    """Markdown, text and HTML are nbchat.render's, over the transcript's turns."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    transcript = Transcript.load(path)
    turns = transcript.turns
    assert transcript.to_markdown().endswith(render.conversation_markdown(turns))
    assert transcript.to_text().endswith(render.conversation_text(turns))
    body = "".join(render.turn_html(turn) for turn in turns)
    assert transcript._repr_html_().endswith(body + "</div>")
    assert transcript._repr_markdown_() == transcript.to_markdown()


def test_markdown_has_the_conversation_and_no_raw_html(tmp_path: Path) -> None:
    """The Markdown shows texts and tool data in order, and a payload's HTML stays inert."""
    path = tmp_path / "chat.jsonl"
    with Recorder(path, URL) as rec:
        rec.sent(UserMessage(id="m1", message="Show me <b>bold</b> & a < b"))
        payload = "<script>alert(1)</script> ```` [x](javascript:alert(1))"
        call = ToolCall(id="t1", name="fetch<img>", arguments={"q": payload}, status="done")
        done = call.model_copy(update={"result": payload})
        rec.received(ToolResultMessage(tool_calls=[done], reply_to="m1"))
        reply = "Here: <script>alert(2)</script> [y](JavaScript:alert(3))\n```py\nx = 1"
        rec.received(TokenMessage(response=reply, reply_to="m1"))
        rec.received(DoneMessage(reply_to="m1"))
    markdown = Transcript.load(path).to_markdown()
    assert markdown.startswith("# nbchat transcript\n\n*Recorded ")
    assert "token=\\*\\*\\*" in markdown and "abc123" not in markdown
    shown = permissive(markdown)
    assert "<script" not in shown and "<b>" not in shown and "<img" not in shown
    assert 'href="javascript:' not in shown.lower()
    assert "\\<b\\>bold\\</b\\> \\& a \\< b" in markdown
    assert "`````" in markdown  # longer than the four backticks in the data
    assert markdown.index("**Tool call** fetch\\<img\\> · done") < markdown.index("Here:")


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
    assert "**Error:** agent\\_failed: forecast service down" in markdown
    assert "*incomplete: the reply had not finished*" in markdown
    assert not transcript.turns[-1].complete
    assert Transcript().to_markdown() == "# nbchat transcript\n\n*(no messages)*\n"


def test_html_repr_is_the_widget_markup_sanitized(tmp_path: Path) -> None:
    """_repr_html_ uses the panel's styles and bubbles; no payload becomes active HTML."""
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
    assert page.startswith(f'<div class="nbchat nbchat-transcript"><style>{render.stylesheet()}')
    assert "token=***" in page and "abc123" not in page
    assert "<script" not in page and "<img" not in page and "<i>" not in page
    assert 'href="javascript' not in page.lower() and "<b>calc" not in page
    assert '<div class="nbchat-msg nbchat-user">' in page and "&lt;img src=x" in page
    assert "<strong>Hi</strong>" in page  # replies are rendered Markdown, as in the widget
    assert 'class="nbchat-tool nbchat-tool-done"' in page
    assert "agent_failed: &lt;i&gt;down&lt;/i&gt;" in page
    assert '<div class="nbchat-note">incomplete: the reply had not finished</div>' in page


def test_text_is_the_conversation_without_control_characters(tmp_path: Path) -> None:
    """to_text shows turns as nbchat.render.conversation_text does, headed by where from."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    text = Transcript.load(path).to_text()
    head, body = text.split("\n\n", 1)
    assert head.startswith("nbchat transcript, recorded ") and head.endswith("token=***&room=7")
    assert body.startswith("You: Weather in Paris?\nAssistant: Checking. \n[tool weather: done]\n")
    assert "Assistant: It is 21 degrees.\n" in body
    assert body.endswith("Assistant: Let me\nError: agent_failed: forecast service down\n")
    assert Transcript().to_text() == "nbchat transcript\n\n(no messages)\n"


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
    assert [cell.id for cell in notebook.cells] == ["turn-1", "turn-2", "turn-3"]
    assert notebook.metadata.kernelspec.name == "python3"
    assert notebook.metadata.nbchat.transcript_version == 1
    assert notebook.metadata.nbchat.turns == 3
    turns = transcript.turns
    assert [cell.source for cell in notebook.cells] == [render.turn_markdown(t) for t in turns]
    last = notebook.cells[2].source
    assert "<script>" not in permissive(last) and '"code": "<script>x</script>"' in last
    nbformat.validate(nbformat.reads(nbformat.writes(notebook), as_version=4))


def test_large_transcript_loads_and_exports(tmp_path: Path) -> None:
    """A 100,000-event transcript loads, assembles and exports."""
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
    assert transcript.to_markdown().count("**You**") == turns
    assert len(transcript.to_notebook().cells) == turns


def test_repr_is_cheap_and_short() -> None:
    """The repr counts events rather than showing them."""
    assert repr(Transcript(url="ws://h/")) == "Transcript(0 events, url='ws://h/', created=None)"


def test_saving_an_old_transcript_redacts_what_it_had_kept(tmp_path: Path) -> None:
    """A transcript written before every line was redacted loses its secrets when saved."""
    path = tmp_path / "old.jsonl"
    path.write_text(
        '{"nbchat_transcript":1,"created":null,"url":"ws://h/ws?token=SECRET1"}\n'
        '{"t":1.0,"dir":"error","data":{"message":"gave up on ws://h/ws?token=SECRET2"}}\n',
        encoding="utf-8",
    )
    transcript = Transcript.load(path)
    assert "SECRET" not in transcript.to_text() and "SECRET" not in transcript.to_markdown()
    transcript.save(path)
    assert "SECRET" not in path.read_text(encoding="utf-8")
    assert "SECRET" not in Transcript.load(path).to_json()


def test_markdown_and_notebook_exports_are_real_markdown(tmp_path: Path) -> None:
    """Code stays fenced, tables piped and math in dollars in to_markdown and the notebook cells."""
    path = tmp_path / "chat.jsonl"
    reply = "```python\nx = a < b\n```\n\n| a |\n|---|\n| 1 |\n\n$x^2$ costs $5"
    with Recorder(path, URL) as rec:
        rec.sent(UserMessage(id="m1", message="show"))
        rec.received(TokenMessage(response=reply, reply_to="m1"))
        rec.received(DoneMessage(reply_to="m1"))
    transcript = Transcript.load(path)
    for markdown in (transcript.to_markdown(), transcript.to_notebook().cells[0].source):
        assert "```python\nx = a < b\n```" in markdown
        assert "| a |\n| --- |\n| 1 |" in markdown
        assert "$x^2$ costs \\$5" in markdown
        assert "<div" not in markdown


def test_html_export_is_a_page_of_the_sanitized_markup(tmp_path: Path) -> None:
    """to_html is a standalone page holding the same sanitized markup as the HTML repr."""
    path = tmp_path / "chat.jsonl"
    record_session(path)
    transcript = Transcript.load(path)
    page = transcript.to_html()
    assert page.startswith("<!DOCTYPE html>") and "<title>nbchat transcript, recorded" in page
    assert "".join(render.turn_html(turn) for turn in transcript.turns) in page
