"""The static conversation a saved notebook shows: sanitized, deterministic, and history panels."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from nbchat import ChatClient, Transcript
from nbchat.notebook.static_view import EMPTY_TEXT, SLOTS, StaticConversation, static_bundle
from nbchat.notebook.widget import ChatWidget
from nbchat.protocol import DoneMessage, TokenMessage, ToolCall, ToolResultMessage
from nbchat.server import DemoServer
from nbchat.turn import Turn
from tests.notebook.widget_comm import RecordingComm, recording_comms
from tests.payloads import PAYLOADS

pytestmark = pytest.mark.loopback


class _Elements(HTMLParser):
    """Collects every start tag and its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def active(html: str) -> list[str]:
    """Elements and attributes of ``html`` a browser would act on (the stylesheet aside)."""
    parser = _Elements()
    parser.feed(html)
    found = []
    for tag, attrs in parser.tags:
        if tag in {"script", "img", "iframe", "object", "embed", "form", "svg", "link", "meta"}:
            found.append(tag)
        for name, value in attrs:
            lowered = (value or "").replace(" ", "").lower()
            if name.startswith("on") or lowered.startswith(("javascript:", "data:", "vbscript:")):
                found.append(f"{tag} {name}")
    return found


def turn_saying(text: str, n: int = 0) -> Turn:
    """A complete turn whose user message, reply and tool result all carry ``text``."""
    call = ToolCall(id=f"c{n}", name="echo", arguments={"text": text}, status="done", result=text)
    messages = [
        TokenMessage(response=text),
        ToolResultMessage(tool_calls=[call]),
        DoneMessage(),
    ]
    return Turn(user=text, assistant=text, tool_calls=[call], messages=list(messages))


def test_injection_payloads_stay_inert_in_the_static_conversation() -> None:
    """Every payload, as user text, reply and tool data, becomes no active element or URL."""
    bundle = static_bundle(turn_saying(p, i) for i, p in enumerate(PAYLOADS))
    html = bundle["text/html"]
    assert html.count("<style>") == 1  # the stylesheet, inline: no network, no script
    assert active(html) == []
    assert PAYLOADS[0] in bundle["text/plain"]  # the text form keeps them literally


def test_the_static_conversation_is_deterministic_and_says_when_empty() -> None:
    """The same turns give the same bytes (replay reproduces the file); none says so."""
    turns = [turn_saying("hello", 1)]
    assert static_bundle(turns) == static_bundle(list(turns))
    assert '<div class="nbchat-static ' in static_bundle(turns)["text/html"]
    empty = static_bundle([])
    assert empty["text/plain"] == EMPTY_TEXT and EMPTY_TEXT in empty["text/html"]


class Counted:
    """A turn view that counts how often its turn is read (each read is a rendering)."""

    def __init__(self, turn: Turn, *, done: bool) -> None:
        self._turn, self.done, self.reads = turn, done, 0

    @property
    def turn(self) -> Turn:
        self.reads += 1
        return self._turn


def test_an_update_renders_only_the_turns_still_open() -> None:
    """Finished turns are rendered once; an open one each time; the bytes match static_bundle."""
    finished = [Counted(turn_saying(f"turn {n}", n), done=True) for n in range(5)]
    streaming = Counted(Turn(user="still going", assistant="partly", complete=False), done=False)
    static = StaticConversation()
    assert len(static.changed([], everything=True)) == SLOTS  # as the panel is displayed
    for _ in range(3):
        ((number, bundle),) = static.changed([*finished, streaming])
    assert number == 0 and [view.reads for view in finished] == [1] * 5 and streaming.reads == 3
    assert bundle == static_bundle(view._turn for view in [*finished, streaming])
    streaming.done = True
    assert len(static.changed([*finished, streaming])) == 1  # its last change
    assert static.changed([*finished, streaming]) == []  # nothing changed: nothing sent
    assert streaming.reads == 4  # rendered once more, finished, then kept


def test_a_cleared_turn_is_forgotten_by_the_saved_copy() -> None:
    """A turn no longer shown leaves the copy (and its cache): nothing stale comes back."""
    first, second = (Counted(turn_saying(text, n), done=True) for n, text in enumerate("ab"))
    static = StaticConversation()
    static.changed([first, second], everything=True)
    assert dict(static.changed([second]))[0] == static_bundle([second._turn])
    assert dict(static.changed([first, second]))[0] == static_bundle([first._turn, second._turn])
    assert first.reads == 2  # forgotten when cleared, so rendered again


def test_a_long_conversation_is_split_and_an_update_sends_only_its_last_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Outputs fill in order and close at SLOT_CHARS; a reply re-sends one output, whatever
    the length; together they show every turn, the stylesheet once; the last takes the rest."""
    from nbchat.notebook import static_view

    one = len(static_view.saved_turn_html(turn_saying("turn 00", 0)))
    monkeypatch.setattr(static_view, "SLOT_CHARS", 3 * one)  # three turns an output
    monkeypatch.setattr(static_view, "SLOTS", 4)
    views = [Counted(turn_saying(f"turn {n:02}", n), done=True) for n in range(20)]
    static = StaticConversation()
    first = static.changed(views[:1], everything=True)
    assert [number for number, _ in first] == [0, 1, 2, 3]
    assert first[3][1]["text/plain"] == "" and "turn" not in first[3][1]["text/html"]
    sent = [[number for number, _ in static.changed(views[:n])] for n in range(2, 8)]
    assert sent == [[0], [0], [1], [1], [1], [2]]  # the output a new turn lands in, alone
    everything = dict(static.changed(views, everything=True))
    html = "".join(bundle["text/html"] for bundle in everything.values())
    assert html.count("<style>") == 1 and all(f"turn {n:02}" in html for n in range(20))
    assert "turn 19" in everything[3]["text/plain"] and "turn 08" in everything[2]["text/plain"]
    assert [view.reads for view in views] == [1] * 20


async def test_a_panel_opened_on_history_shows_it_and_goes_on_in_its_conversation(
    demo: DemoServer, tmp_path: Path
) -> None:
    """ChatWidget(history=...) shows the recorded turns and continues the same conversation."""
    path = tmp_path / "chat.jsonl"
    async with ChatClient(url=demo.url) as client:
        client.record(path)
        await client.ask("What is 6*7?")
        await client.ask("My name is Ada")
        recorded = client.conversation_id
    comms: list[RecordingComm]
    with recording_comms() as comms:
        for history in (path, Transcript.load(path)):
            chat = ChatWidget(url=demo.url, history=history)
            assert [t.user_text for t in chat.turns] == ["What is 6*7?", "My name is Ada"]
            assert all(t.done for t in chat.turns)
            assert "42" in chat.copy(0)
            assert chat.client.conversation_id == recorded
            reply = await chat.ask("What is my name")
            assert reply.conversation_id == recorded and len(chat.turns) == 3
            await chat.aclose()
    assert comms


def test_the_static_copy_is_never_less_redacted_than_the_transcript(tmp_path: Path) -> None:
    """URL passwords and bearer tokens, whole or split across frames, leave its HTML and text."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFU"
    tokens = ["At https://ada:s3", "cret-pw@host send Bearer ", jwt[:30], jwt[30:], " ok"]
    call = ToolCall(
        id="c1",
        name="fetch",
        arguments={"url": "https://u:hunter22@h/"},
        status="done",
        result="Authorization: Bearer " + "Zq8" * 8,
    )
    turn = Turn(
        user="see https://h/?token=abc123secret",
        assistant="".join(tokens),
        tool_calls=[call],
        messages=[TokenMessage(response=t) for t in tokens]
        + [ToolResultMessage(tool_calls=[call])],
    )
    bundle = static_bundle([turn])
    for text in bundle.values():
        for secret in ("cret-pw", jwt[30:50], "hunter22", "Zq8Zq8", "abc123secret"):
            assert secret not in text


def test_the_static_copy_is_marked_for_mathjax_to_skip() -> None:
    """Reopened in JupyterLab, model text such as "$5 and $10" is not typeset as math."""
    html = static_bundle([turn_saying("$5 and $10, \\style{color:red}{x}")])["text/html"]
    classes = html.split(">", 1)[0]
    assert "mathjax_ignore" in classes and "tex2jax_ignore" in classes
    assert "nbchat-static" in classes
