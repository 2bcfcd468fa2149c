"""Transcripts: chat sessions recorded as JSON Lines, loaded back, exported (pure + file I/O).

A transcript makes a conversation durable (a dead kernel loses nothing already
received), exportable (Markdown, a notebook, one JSON document) and replayable
(a replay server answers each client message with what was recorded for it).

The format, version 1, is append-only JSON Lines in UTF-8, ``\\n``-terminated::

    {"nbchat_transcript":1,"created":"2025-01-01T12:00:00+00:00","url":"ws://host/ws?token=***"}
    {"t":1735732800.25,"dir":"out","data":{"type":"message","id":"m1","message":"Hi"}}
    {"t":1735732800.31,"dir":"in","data":{"type":"ack","id":"m1","reply_to":"m1"}}
    {"t":1735732800.40,"dir":"in","data":{"type":"token","response":"Hello","reply_to":"m1"}}
    {"t":1735732800.52,"dir":"state","data":{"state":"reconnecting","detail":"1006"}}
    {"t":1735732800.90,"dir":"error","data":{"message":"frame is not JSON","raw":"{oops"}}

The first line is the header: ``nbchat_transcript`` is the format version, ``url``
the server address with credentials replaced by ``***`` (:func:`redact_url`).
Every other line is one event: ``t`` (epoch seconds), ``dir`` (``out`` client to
server, ``in`` server to client, ``state`` a connection state change, ``error`` a
frame or failure the client could not handle) and ``data``: the wire message as
sent or as parsed (unset optional fields left out), ``{"state", "detail"}``, or
``{"message", "raw"?}``. No HTTP headers are ever recorded.

Reading is forgiving where writing can fail: an interrupted write leaves a torn
last line, which :meth:`Transcript.load` skips with a :class:`TranscriptWarning`;
a corrupt line elsewhere is skipped the same way. Only a missing or unreadable
file, or a missing or unknown header, raises :class:`TranscriptError`.
"""

from __future__ import annotations

import contextlib
import gc
import html
import json
import os
import re
import stat
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import to_json

from .exceptions import ProtocolError, TranscriptError
from .protocol import (
    AckMessage,
    CancelRequest,
    ErrorInfo,
    ServerMessage,
    ToolCall,
    UserMessage,
    WireModel,
    dump,
    parse_client_message,
    parse_server_message,
)
from .redact import redact_url
from .reply import ReplyBuilder

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from . import render

__all__ = [
    "TRANSCRIPT_VERSION",
    "Direction",
    "Event",
    "Exchange",
    "Recorder",
    "Transcript",
    "TranscriptWarning",
    "Turn",
    "redact_url",
]

TRANSCRIPT_VERSION = 1
"""The on-disk format version written in every header; readers refuse any other."""

_FORMAT_KEY = "nbchat_transcript"
_MAX_LINE_WARNINGS = 10
"""Corrupt lines reported one by one; beyond this, one summary warning (no flood)."""

Direction = Literal["out", "in", "state", "error"]


class TranscriptWarning(UserWarning):
    """A transcript line was skipped (torn by an interrupted write, or corrupt)."""


# The format


class Event(BaseModel):
    """One line of a transcript after the header."""

    model_config = ConfigDict(extra="ignore")

    t: float
    """When it happened, in seconds since the epoch."""
    dir: Direction
    """``out`` client to server, ``in`` server to client, ``state``, or ``error``."""
    data: dict[str, Any]
    """The wire message (``out``/``in``), ``{state, detail}``, or ``{message, raw?}``."""

    def message(self) -> UserMessage | CancelRequest | ServerMessage | None:
        """The wire message of an ``out`` or ``in`` event, parsed leniently; else None.

        None too when the payload is not a message this protocol understands:
        a transcript written by another client is read, not rejected.
        """
        if self.dir not in ("out", "in"):
            return None
        raw = to_json(self.data)  # pydantic-core's encoder: 5x faster than json.dumps here
        try:
            if self.dir == "out":
                return parse_client_message(raw)
            return parse_server_message(raw)
        except ProtocolError:
            return None


class _Header(BaseModel):
    nbchat_transcript: int
    created: str | None = None
    url: str | None = None


_event_list: TypeAdapter[list[Event]] = TypeAdapter(list[Event])


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _header_line(created: str | None, url: str | None) -> str:
    header = {_FORMAT_KEY: TRANSCRIPT_VERSION, "created": created, "url": url}
    return json.dumps(header, ensure_ascii=False, separators=(",", ":")) + "\n"


def _event_line(t: float, direction: Direction, payload: str) -> str:
    # Built as text around an already-serialised payload: one serialisation per event.
    return f'{{"t":{json.dumps(float(t))},"dir":"{direction}","data":{payload}}}\n'


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _check_header(line: bytes | str, name: str) -> _Header:
    """The header of transcript ``name``, or a :class:`TranscriptError` saying what to do."""
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    return _check_header_data(data, name)


def _check_header_data(data: Any, name: str) -> _Header:
    if not isinstance(data, dict) or _FORMAT_KEY not in data:
        raise TranscriptError(
            f"{name} is not an nbchat transcript (its first line is not a header): "
            "check the path, or record a new transcript"
        )
    version = data[_FORMAT_KEY]
    if version != TRANSCRIPT_VERSION:
        raise TranscriptError(
            f"{name} is an nbchat transcript of format version {version!r}, but this nbchat "
            f"reads version {TRANSCRIPT_VERSION}: use the nbchat version that wrote it"
        )
    try:
        return _Header.model_validate(data)
    except ValidationError as exc:
        raise TranscriptError(
            f"{name} has a malformed header ({_first_problem(exc)}): record a new transcript"
        ) from exc


# Recording


class Recorder:
    """Append a session's events to a transcript file, one flushed line per event.

    Every call writes one line and flushes it to the operating system, so a
    kernel that dies mid-conversation loses nothing already recorded. (It does
    not ``fsync``: that would cost a disk round trip per token and only helps if
    the whole machine goes down.) Appending to an existing transcript continues
    it; a file that is not a version-1 transcript is refused rather than damaged.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        url: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        """Where the transcript is written."""
        self.url = redact_url(url)
        """The server address as recorded: credentials already replaced by ``***``."""
        self._clock = clock
        folder = self.path.parent
        if not folder.is_dir():
            raise TranscriptError(
                f"cannot record a transcript to {self.path}: the folder {folder} does not "
                "exist; create it first"
            )
        try:
            self._file: IO[bytes] | None = open(self.path, "a+b")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise TranscriptError(
                f"cannot open {self.path} for recording ({exc.strerror or exc}): "
                "choose a writable file"
            ) from exc
        try:
            self._prepare()
        except BaseException:
            self._file.close()
            self._file = None
            raise

    # Public methods

    def sent(self, message: WireModel) -> None:
        """Record a message sent to the server, exactly as it went on the wire."""
        self._write("out", dump(message))

    def received(self, message: ServerMessage) -> None:
        """Record a message received from the server, as parsed."""
        self._write("in", dump(message))

    def state(self, state: str, detail: str = "") -> None:
        """Record a connection state change (``connected``, ``reconnecting``, ...)."""
        self._write("state", _compact({"state": state, "detail": detail}))

    def error(self, message: str, raw: str | bytes | None = None) -> None:
        """Record a failure, with the raw frame that caused it if there was one."""
        data: dict[str, Any] = {"message": message}
        if raw is not None:
            data["raw"] = raw if isinstance(raw, str) else raw.decode("utf-8", "backslashreplace")
        self._write("error", _compact(data))

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._file is None

    def close(self) -> None:
        """Close the file; calling it again does nothing."""
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                raise TranscriptError(
                    f"cannot close {self.path} ({exc}): the disk may be full"
                ) from exc

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Recorder({str(self.path)!r}, closed={self.closed})"

    # Private methods

    def _prepare(self) -> None:
        """Write the header into a new file; check an existing one and end its torn line."""
        assert self._file is not None
        size = os.fstat(self._file.fileno()).st_size
        if size == 0:
            self._append(_header_line(_now_iso(), self.url))
            return
        try:
            self._file.seek(0)
            first = self._file.readline(1 << 16)
            self._file.seek(size - 1)
            last = self._file.read(1)
        except OSError as exc:
            raise TranscriptError(
                f"cannot read {self.path} ({exc}): check its permissions"
            ) from exc
        _check_header(first.removeprefix(b"\xef\xbb\xbf"), str(self.path))
        if last != b"\n":
            # A previous session died mid-line: end that line so ours stays intact.
            self._append("\n")

    def _write(self, direction: Direction, payload: str) -> None:
        if self._file is None:
            raise TranscriptError(
                f"the recorder for {self.path} is closed: open a new Recorder to keep recording"
            )
        self._append(_event_line(self._clock(), direction, payload))

    def _append(self, text: str) -> None:
        assert self._file is not None
        try:
            self._file.write(text.encode("utf-8"))
            self._file.flush()
        except OSError as exc:
            raise TranscriptError(
                f"cannot write to {self.path} ({exc.strerror or exc}): check free space and "
                "permissions"
            ) from exc


# Turns


@dataclass
class Turn:
    """One user message and everything the server answered to it."""

    user: str
    """What the user typed."""
    message_id: str | None
    conversation_id: str | None
    """The user message's conversation, or the one the server assigned in its answer."""
    assistant: str
    """The reply text, tokens joined."""
    tool_calls: list[ToolCall]
    """Tool calls merged by id, each at its latest status, in announcement order."""
    messages: list[ServerMessage]
    """Every server message routed to this turn, acks included, in arrival order."""
    error: ErrorInfo | None
    complete: bool
    """True once a ``done`` or ``error`` ended the reply; False if the transcript stops first."""
    cancelled: bool = False
    t: float = 0.0
    """When the user message was sent."""
    times: list[float] = field(default_factory=list)
    """When each of ``messages`` arrived: a replay server paces its answer by these."""


class Exchange(NamedTuple):
    """What a replay server needs for one client message: who, what, and what to answer.

    ``messages`` are the recorded server messages without acks (a replay server
    acks with the live message's id). Their ``reply_to`` and ``conversation_id``
    are the recorded ones: a replay server rewrites them to the live ones.
    """

    conversation_id: str | None
    user: str
    messages: list[ServerMessage]


@dataclass
class _Pending:
    t: float
    user: str
    builder: ReplyBuilder
    times: list[float] = field(default_factory=list)


class _TurnAssembler:
    """Route server messages to the user message they answer, in one pass.

    By ``reply_to`` (or an ack's ``id``) when the server sends it. Servers that
    send neither answer in order, so a message goes to the oldest unfinished
    turn of its conversation, else of the turns sent without a conversation
    (the server assigned one), else, if it names no conversation, of any.
    """

    def __init__(self) -> None:
        self.pending: list[_Pending] = []
        self._by_id: dict[str, _Pending] = {}
        self._open: dict[str | None, deque[_Pending]] = {}
        self._open_all: deque[_Pending] = deque()

    def sent(self, t: float, message: UserMessage) -> None:
        if message.id is not None and message.id in self._by_id:
            return  # a resend after a reconnect: the server answers it once
        turn = _Pending(t, message.message, ReplyBuilder(message.id, message.conversation_id))
        self.pending.append(turn)
        if message.id is not None:
            self._by_id[message.id] = turn
        self._open.setdefault(message.conversation_id, deque()).append(turn)
        self._open_all.append(turn)

    def received(self, t: float, message: ServerMessage) -> None:
        turn = self._route(message)
        if turn is None:
            return  # not an answer to anything recorded (a connection-level message)
        if message.type == "reply_restart":
            # The client's notice that the server lost this reply and began it
            # again (nbchat.client): what came before it is void.
            turn.builder = ReplyBuilder(turn.builder.message_id, turn.builder.conversation_id)
            turn.times.clear()
            return
        turn.times.append(t)
        builder = turn.builder
        if builder.conversation_id is None and message.conversation_id is not None:
            builder.conversation_id = message.conversation_id
        builder.feed(message)

    def _route(self, message: ServerMessage) -> _Pending | None:
        if message.reply_to is not None:
            return self._by_id.get(message.reply_to)
        if isinstance(message, AckMessage) and message.id is not None:
            turn = self._by_id.get(message.id)
            if turn is not None:
                return turn
        conversation = message.conversation_id
        for key in (conversation, None) if conversation is not None else (None,):
            turn = _oldest_open(self._open.get(key))
            if turn is not None:
                return turn
        return _oldest_open(self._open_all) if conversation is None else None


def _oldest_open(queue: deque[_Pending] | None) -> _Pending | None:
    # Finished turns leave lazily from the front: each is popped once, so routing stays O(n).
    while queue and queue[0].builder.done:
        queue.popleft()
    return queue[0] if queue else None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a transcript's objects are built.

    Building 100,000 events' models and dicts triggers full collections that each
    walk the whole growing heap: on CPython 3.11 that made loading and exporting
    superlinear (2.4-2.7x the time for twice the events) and 2-3x slower. What is
    built here holds no reference cycles, so the collector would find nothing; any
    cycle made meanwhile is collected once it resumes. Nested, or already disabled
    by the application: left as it is.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@_gc_paused()
def _turns(events: Iterable[Event]) -> list[Turn]:
    assembler = _TurnAssembler()
    for event in events:
        if event.dir == "out":
            if event.data.get("type", "message") != "message":
                continue  # a cancel: it ends a reply through the server's answer, not here
            sent = event.message()
            if isinstance(sent, UserMessage):
                assembler.sent(event.t, sent)
        elif event.dir == "in":
            got = event.message()
            if got is not None and not isinstance(got, UserMessage | CancelRequest):
                assembler.received(event.t, got)
    turns = []
    for pending in assembler.pending:
        reply = pending.builder.build()
        turns.append(
            Turn(
                user=pending.user,
                message_id=reply.message_id,
                conversation_id=reply.conversation_id,
                assistant=reply.text,
                tool_calls=reply.tool_calls,
                messages=reply.messages,
                error=reply.error,
                complete=pending.builder.done,
                cancelled=reply.cancelled,
                t=pending.t,
                times=pending.times,
            )
        )
    return turns


# Exports: untrusted text in, no raw HTML out

_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY_START = re.compile(r"&(?=#|[A-Za-z][A-Za-z0-9]*;)")
_SCRIPT_SCHEME = re.compile(r"(?i)\b(javascript|vbscript)(?=\s*:)")
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_BACKTICKS = re.compile(r"`+")


def _safe_prose(text: str) -> str:
    """Markdown from a user or a server, rendered as Markdown but unable to carry HTML.

    Only a ``<`` that could open a tag, comment or declaration is escaped, and
    ``&`` only where it would start an entity, so ``a < b`` and code stay as
    written in every Markdown renderer; inside code, a tag shows as ``&lt;tag>``.
    ``javascript:`` links are broken with a zero-width space. A code fence left
    open (a reply cut off mid-block) is closed so it cannot swallow what follows.
    """
    text = _ENTITY_START.sub("&amp;", text)  # first: the &lt; added next must stay one
    text = _TAG_START.sub("&lt;", text)
    text = _SCRIPT_SCHEME.sub("\\1\u200b", text)
    fence = ""
    for line in text.split("\n"):
        match = _FENCE_OPEN.match(line)
        if match is None:
            continue
        run, info = match.groups()
        if not fence:
            if not (run[0] == "`" and "`" in info):  # CommonMark: no backtick in a ``` info
                fence = run
        elif run[0] == fence[0] and len(run) >= len(fence) and not info.strip():
            fence = ""
    return f"{text}\n{fence}" if fence else text


def _inline(text: str) -> str:
    """A short untrusted string (a name, a code, a URL) as literal inline Markdown."""
    text = html.escape(" ".join(text.split()), quote=False)
    return _INLINE_SPECIAL.sub(r"\\\1", text)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _fenced(content: str, info: str = "") -> str:
    """``content`` in a code fence longer than any backtick run inside it."""
    longest = max((len(run) for run in _BACKTICKS.findall(content)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{content}\n{fence}"


def _tool_markdown(call: ToolCall) -> str:
    # "<" becomes \u003c: still the same JSON, and no renderer can read a tag out of it.
    parts = [f"**Tool call:** {_inline(call.name)} ({_inline(call.status)})"]
    parts.append("Arguments:\n\n" + _fenced(_json(call.arguments).replace("<", "\\u003c"), "json"))
    if call.result is not None or call.status != "running":
        parts.append("Result:\n\n" + _fenced(_json(call.result).replace("<", "\\u003c"), "json"))
    return "\n\n".join(parts)


def _tool_html(call: ToolCall) -> str:
    # No blank line inside: it would end the HTML block. json.dumps(indent=2) makes none.
    body = "arguments: " + _json(call.arguments)
    if call.result is not None or call.status != "running":
        body += "\nresult: " + _json(call.result)
    name, status = (html.escape(" ".join(text.split())) for text in (call.name, call.status))
    return (
        f"<details>\n<summary>Tool call: {name} ({status})</summary>\n"
        f"<pre>{html.escape(body)}</pre>\n</details>"
    )


def _turn_markdown(turn: Turn, tool: Callable[[ToolCall], str]) -> str:
    parts = ["### You", _safe_prose(turn.user) or "*(empty message)*", "### Assistant"]
    if turn.assistant:
        parts.append(_safe_prose(turn.assistant))
    parts.extend(tool(call) for call in turn.tool_calls)
    if turn.error is not None:
        parts.append(f"**Error** ({_inline(turn.error.code)}): {_inline(turn.error.message)}")
    elif turn.cancelled:
        parts.append("*(cancelled)*")
    elif not turn.complete:
        parts.append("*(incomplete: the transcript ends before the reply did)*")
    elif not turn.assistant and not turn.tool_calls:
        parts.append("*(no text)*")
    return "\n\n".join(parts)


# Transcripts


@dataclass(repr=False)
class Transcript:
    """A recorded session: its events in order, and views built from them.

    ``turns``, ``exchanges()`` and the exports are computed from ``events`` on
    each call (one linear pass), so editing ``events`` is always reflected.
    """

    events: list[Event] = field(default_factory=list)
    url: str | None = None
    """The server address, as redacted when it was recorded."""
    created: str | None = None
    """When recording started, ISO 8601."""

    # Reading

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Transcript:
        """Read a transcript file, skipping torn or corrupt lines with a warning."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise TranscriptError(f"transcript {path} does not exist: check the path") from None
        except OSError as exc:
            raise TranscriptError(
                f"cannot read transcript {path} ({exc.strerror or exc}): check its permissions"
            ) from exc
        return cls._parse(data, str(path))

    @classmethod
    def loads(cls, text: str | bytes) -> Transcript:
        """Read a transcript from its text, like :meth:`load`."""
        return cls._parse(text.encode("utf-8") if isinstance(text, str) else text, "<string>")

    @classmethod
    def from_json(cls, text: str | bytes) -> Transcript:
        """Read the document :meth:`to_json` writes; any defect is a :class:`TranscriptError`."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TranscriptError(f"transcript JSON is not valid JSON ({exc})") from exc
        header = _check_header_data(data, "this JSON document")
        try:
            events = _event_list.validate_python(data.get("events", []))
        except ValidationError as exc:
            raise TranscriptError(
                f"transcript JSON has malformed events ({exc.error_count()} errors): "
                "export it again with Transcript.to_json()"
            ) from exc
        return cls(events, url=header.url, created=header.created)

    # Writing

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the transcript as JSON Lines, atomically: readers see the old file or the new."""
        path = Path(path)
        folder = path.parent
        if not folder.is_dir():
            raise TranscriptError(
                f"cannot save to {path}: the folder {folder} does not exist; create it first"
            )
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise TranscriptError(
                f"cannot save to {path} ({exc.strerror or exc}): choose a writable folder"
            ) from exc
        try:
            with os.fdopen(fd, "wb") as file:
                file.writelines(line.encode("utf-8") for line in self._lines())
                file.flush()
                os.fsync(file.fileno())
            # A new file keeps mkstemp's owner-only mode: a conversation is private.
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise TranscriptError(
                f"cannot save to {path} ({exc.strerror or exc}): check free space and permissions"
            ) from exc

    def to_json(self) -> str:
        """One JSON document: the header's fields and ``events``, a list of event objects."""
        head = _header_line(self.created, self.url).rstrip("\n")[:-1]
        events = ",".join(event.model_dump_json() for event in self.events)
        return f'{head},"events":[{events}]}}'

    # Views

    @property
    def turns(self) -> list[Turn]:
        """Each user message with its answer, in the order they were sent."""
        return _turns(self.events)

    def exchanges(self) -> Iterator[Exchange]:
        """For a replay server: each user message's conversation, text and recorded answer.

        In the order the messages were sent; a resent message appears once.
        """
        for turn in _turns(self.events):
            answer: list[ServerMessage] = [
                m for m in turn.messages if not isinstance(m, AckMessage)
            ]
            yield Exchange(turn.conversation_id, turn.user, answer)

    @_gc_paused()
    def to_markdown(self) -> str:
        """A readable conversation; no text from the session can become raw HTML."""
        parts = ["# nbchat transcript"]
        if self.created or self.url:
            about = "Recorded"
            if self.created:
                about += f" {_inline(self.created)}"
            if self.url:
                about += f" from {_inline(self.url)}"
            parts.append(f"*{about}*")
        parts.extend(_turn_markdown(turn, _tool_markdown) for turn in _turns(self.events))
        return "\n\n".join(parts) + "\n"

    @_gc_paused()
    def to_notebook(self) -> NotebookNode:
        """An nbformat v4 notebook: one Markdown cell per turn, tool calls collapsible."""
        import nbformat  # a test/extra dependency: imported only when a notebook is wanted

        turns = _turns(self.events)
        # Built as plain data and converted once: nbformat.v4.new_markdown_cell validates
        # each cell on its own, several times slower for a long session.
        cells = [
            {
                "cell_type": "markdown",
                "id": f"turn-{number}",  # stable ids: exporting twice gives the same file
                "metadata": {},
                "source": _turn_markdown(turn, _tool_html),
            }
            for number, turn in enumerate(turns, 1)
        ]
        metadata = {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "nbchat": {
                "transcript_version": TRANSCRIPT_VERSION,
                "created": self.created,
                "url": self.url,
                "turns": len(turns),
            },
        }
        notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": cells}
        node: NotebookNode = nbformat.from_dict(notebook)  # type: ignore[no-untyped-call]
        return node

    def to_text(self) -> str:
        """The conversation as plain text, as ``nbchat transcript show`` prints it.

        Replies stay in their Markdown source (a terminal renders no Markdown);
        control characters are removed, so printing a transcript cannot drive the
        terminal (recolour, hide or rewrite lines).
        """
        from . import render  # markdown-it and nh3: loaded only when a transcript is shown

        about = _about(self.created, self.url)
        head = "".join(ch for ch in f"nbchat transcript{about}" if ch.isprintable())
        body = render.conversation_text(_render_turn(turn) for turn in _turns(self.events))
        return f"{head}\n\n" + (body or "(no messages)\n")

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        # The widget's own markup and sanitizer (nbchat.render), so a transcript shown in
        # a notebook looks like the panel it was recorded from and is exactly as safe.
        from . import render

        parts = ['<div class="nbchat nbchat-transcript">', render.STYLES]
        about = _about(self.created, self.url)
        if about:
            parts.append(f'<div class="nbchat-status">{html.escape("Transcript" + about)}</div>')
        for turn in _turns(self.events):
            shown = _render_turn(turn)
            parts.append('<div class="nbchat-turn">')
            parts.append(render.user_message_html(shown.user))
            parts.extend(render.tool_call_html(call) for call in shown.tool_calls)
            if shown.assistant or shown.error is None:
                parts.append(render.assistant_message_html(shown.assistant))
            if shown.error is not None:
                parts.append(render.error_banner_html(shown.error))
            parts.append("</div>")
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        # Cheap: a transcript may hold 100,000 events.
        return f"Transcript({len(self.events)} events, url={self.url!r}, created={self.created!r})"

    # Private methods

    def _lines(self) -> Iterator[str]:
        yield _header_line(self.created, self.url)
        for event in self.events:
            yield event.model_dump_json() + "\n"

    @classmethod
    @_gc_paused()
    def _parse(cls, data: bytes, name: str) -> Transcript:
        lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
        if not lines[0].strip():
            raise TranscriptError(
                f"{name} is not an nbchat transcript (it has no header line): "
                "check the path, or record a new transcript"
            )
        header = _check_header(lines[0], name)
        last = len(lines) - 1
        events: list[Event] = []
        skipped = 0
        for index in range(1, len(lines)):
            line = lines[index]
            if not line.strip():
                continue
            try:
                events.append(Event.model_validate_json(line))
            except ValidationError as exc:
                skipped += 1
                if skipped > _MAX_LINE_WARNINGS:
                    continue
                if index == last:  # no newline after it: the write was interrupted
                    why = "torn last line (an interrupted write)"
                else:
                    why = f"corrupt line ({_first_problem(exc)})"
                warnings.warn(f"{name}:{index + 1}: {why} skipped", TranscriptWarning, stacklevel=3)
        if skipped > _MAX_LINE_WARNINGS:
            warnings.warn(
                f"{name}: {skipped - _MAX_LINE_WARNINGS} more corrupt lines skipped",
                TranscriptWarning,
                stacklevel=3,
            )
        return cls(events, url=header.url, created=header.created)


def _about(created: str | None, url: str | None) -> str:
    """``", recorded <when> from <url>"`` as far as known, else ``""``."""
    about = f" {created}" if created else ""
    if url:
        about += f" from {url}"
    return f", recorded{about}" if about else ""


def _render_turn(turn: Turn) -> render.Turn:
    """A turn as nbchat.render shows it; a cut-short reply says so after its text."""
    from . import render

    note = ""
    if turn.error is None:
        if turn.cancelled:
            note = "*(cancelled)*"
        elif not turn.complete:
            note = "*(incomplete: the transcript ends before the reply did)*"
    error = f"{turn.error.code}: {turn.error.message}" if turn.error is not None else None
    return render.Turn(
        user=turn.user,
        assistant="\n\n".join(part for part in (turn.assistant, note) if part),
        tool_calls=turn.tool_calls,
        error=error,
    )


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]
