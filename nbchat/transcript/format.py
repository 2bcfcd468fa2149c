"""The transcript format, version 1: its lines, written and read (pure).

Append-only JSON Lines in UTF-8, ``\\n``-terminated::

    {"nbchat_transcript":1,"created":"2025-01-01T12:00:00+00:00","url":"ws://host/ws?token=***"}
    {"t":1735732800.25,"dir":"out","data":{"type":"message","id":"m1","message":"Hi"}}
    {"t":1735732800.31,"dir":"in","data":{"type":"ack","id":"m1","reply_to":"m1"}}
    {"t":1735732800.40,"dir":"in","data":{"type":"token","response":"Hello","reply_to":"m1"}}
    {"t":1735732800.45,"dir":"client","data":{"event":"restart","reply_to":"m1"}}
    {"t":1735732800.52,"dir":"state","data":{"state":"disconnected","detail":"1006"}}
    {"t":1735732800.90,"dir":"error","data":{"message":"frame is not JSON","raw":"{oops"}}

The first line is the header: ``nbchat_transcript`` is the format version,
``url`` the server address with credentials replaced by ``***``. Every other
line is a :class:`TranscriptLine`: ``t`` (epoch seconds), ``dir`` and ``data``:

- ``out``: a message or cancel as the client sent it;
- ``in``: a server message as the client delivered it, its ``reply_to`` being
  the id of the user message it answers as the client decided (acks included;
  absent when it answers none);
- ``client``: something the client concluded that never crossed the wire:
  ``{"event": "restart", "reply_to": id}`` (the server had lost that reply and
  generates it afresh: what came before for that id is void) and
  ``{"event": "failed", "reply_to": id, "message": ...}`` (that reply will
  never be complete);
- ``state``: ``{"state", "detail"}``, a connection state change;
- ``error``: ``{"message", "raw"?}``, a frame or failure the client could not handle.

Every line goes through :func:`nbchat.redact.redact_text` before it is written,
so no URL anywhere in it (an error message, a state detail, a message) keeps
its credentials; no HTTP header is ever recorded.

Reading is forgiving where writing can fail: an interrupted write leaves a torn
last line, which is skipped with a :class:`TranscriptWarning`; a corrupt line
elsewhere is skipped the same way. Only a missing or unknown header raises
:class:`~nbchat.exceptions.TranscriptError`.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import warnings
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import to_json

from ..attachments import IMAGE_TYPES, Attachment, describe
from ..exceptions import ProtocolError, TranscriptError
from ..parsing import parse_client_message, parse_server_message
from ..protocol import CancelRequest, ServerMessage, UserMessage
from ..redact import redact_text

__all__ = [
    "FORMAT_KEY",
    "MAX_RECORDED_IMAGE",
    "TRANSCRIPT_VERSION",
    "Direction",
    "Header",
    "TranscriptLine",
    "TranscriptWarning",
    "attachments_digest",
    "event_line",
    "first_problem",
    "gc_paused",
    "header_line",
    "line_list",
    "now_iso",
    "parse_header",
    "parse_header_data",
    "parse_lines",
    "recorded_attachment",
]

TRANSCRIPT_VERSION = 1
"""The on-disk format version written in every header; readers refuse any other."""

FORMAT_KEY = "nbchat_transcript"
"""The header's key: its presence marks a transcript, its value is the format version."""
_MAX_LINE_WARNINGS = 10
"""Corrupt lines reported one by one; beyond this, one summary warning (no flood)."""

Direction: TypeAlias = Literal["out", "in", "client", "state", "error"]
"""Where a line's event happened; see the module docstring."""


class TranscriptWarning(UserWarning):
    """A transcript line was skipped (torn by an interrupted write, or corrupt)."""


class TranscriptLine(BaseModel):
    """One line of a transcript after the header: one recorded event."""

    model_config = ConfigDict(extra="ignore")

    t: float
    """When it happened, in seconds since the epoch."""
    dir: Direction
    """``out``, ``in``, ``client``, ``state`` or ``error`` (see the module docstring)."""
    data: dict[str, Any]
    """The wire message (``out``/``in``), the client event, ``{state, detail}`` or ``{message}``."""

    def message(self) -> UserMessage | CancelRequest | ServerMessage | None:
        """The wire message of an ``out`` or ``in`` line, parsed leniently; else None.

        None too when the payload is not a message this protocol understands:
        a transcript written by another client is read, not rejected.
        """
        if self.dir not in ("out", "in"):
            return None
        raw = to_json(self.data)  # pydantic-core's encoder: 5x faster than json.dumps here
        try:
            if self.dir == "out":
                sent = parse_client_message(raw)
                # Client tool traffic is not recorded: the replies' tool cards hold it.
                return sent if isinstance(sent, UserMessage | CancelRequest) else None
            return parse_server_message(raw)
        except ProtocolError:
            return None


class Header(BaseModel):
    """The first line of a transcript: its format version, when and where it was recorded."""

    nbchat_transcript: int
    created: str | None = None
    url: str | None = None


def now_iso() -> str:
    """The current time as a header's ``created``: UTC, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def header_line(created: str | None, url: str | None) -> str:
    """The header line, newline included, its URL redacted."""
    header = {FORMAT_KEY: TRANSCRIPT_VERSION, "created": created, "url": url}
    return redact_text(json.dumps(header, ensure_ascii=False, separators=(",", ":"))) + "\n"


def event_line(t: float, direction: Direction, payload: str) -> str:
    """One event line, newline included, around an already-serialised JSON ``payload``.

    Built as text, one serialisation per event; the payload is redacted here,
    the one place every recorded line passes through.
    """
    return f'{{"t":{json.dumps(float(t))},"dir":"{direction}","data":{redact_text(payload)}}}\n'


def parse_header(line: bytes | str, name: str) -> Header:
    """The header of transcript ``name``, or a :class:`TranscriptError` saying what to do."""
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    return parse_header_data(data, name)


def parse_header_data(data: Any, name: str) -> Header:
    """The header from decoded JSON, or a :class:`TranscriptError` saying what to do."""
    if not isinstance(data, dict) or FORMAT_KEY not in data:
        raise TranscriptError(
            f"{name} is not an nbchat transcript (its first line is not a header): "
            "check the path, or record a new transcript"
        )
    version = data[FORMAT_KEY]
    if version != TRANSCRIPT_VERSION:
        raise TranscriptError(
            f"{name} is an nbchat transcript of format version {version!r}, but this nbchat "
            f"reads version {TRANSCRIPT_VERSION}: use the nbchat version that wrote it"
        )
    try:
        return Header.model_validate(data)
    except ValidationError as exc:
        raise TranscriptError(
            f"{name} has a malformed header ({first_problem(exc)}): record a new transcript"
        ) from exc


line_list: TypeAdapter[list[TranscriptLine]] = TypeAdapter(list[TranscriptLine])
"""Validates the ``events`` of a whole-document export in one call."""


def parse_lines(data: bytes, name: str) -> tuple[Header, list[TranscriptLine]]:
    """A transcript file's header and lines; torn or corrupt lines skipped with a warning."""
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if not lines[0].strip():
        raise TranscriptError(
            f"{name} is not an nbchat transcript (it has no header line): "
            "check the path, or record a new transcript"
        )
    header = parse_header(lines[0], name)
    last = len(lines) - 1
    events: list[TranscriptLine] = []
    skipped = 0
    with gc_paused():
        for index in range(1, len(lines)):
            line = lines[index]
            if not line.strip():
                continue
            try:
                events.append(TranscriptLine.model_validate_json(line))
            except ValidationError as exc:
                skipped += 1
                if skipped > _MAX_LINE_WARNINGS:
                    continue
                if index == last:  # no newline after it: the write was interrupted
                    why = "torn last line (an interrupted write)"
                else:
                    why = f"corrupt line ({first_problem(exc)})"
                warnings.warn(f"{name}:{index + 1}: {why} skipped", TranscriptWarning, stacklevel=3)
    if skipped > _MAX_LINE_WARNINGS:
        warnings.warn(
            f"{name}: {skipped - _MAX_LINE_WARNINGS} more corrupt lines skipped",
            TranscriptWarning,
            stacklevel=3,
        )
    return header, events


def first_problem(exc: ValidationError) -> str:
    """The first validation error of ``exc`` in a few words, for a one-line message."""
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
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


MAX_RECORDED_IMAGE = 64 * 1024
"""Bytes of an attached image a transcript keeps; a larger one is recorded by name and size."""


def recorded_attachment(attachment: Attachment) -> Attachment:
    """An attachment as a transcript keeps it: text redacted, a large image left out."""
    if attachment.text is not None:
        return attachment.model_copy(update={"text": redact_text(attachment.text)})
    if attachment.size <= MAX_RECORDED_IMAGE:
        return attachment
    note = f"(not recorded: {describe(attachment)}, over the transcript's 64 KB for images)"
    return Attachment(name=attachment.name, mime=attachment.mime, text=note)


def attachments_digest(attachments: Iterable[Attachment]) -> str:
    """What a replay matches a message's attachments on: "" for none, else a hash of each
    one's name and type and of a text's content, redacted as :func:`recorded_attachment`
    keeps it, so the live message and its recording agree.

    An image's bytes are left out: the same figure drawn by another matplotlib, or on
    another machine, is other bytes, and a transcript keeps a large image by name only.
    """
    seen = [
        (a.name, a.mime, None if a.mime in IMAGE_TYPES else redact_text(a.text or ""))
        for a in attachments
    ]
    if not seen:
        return ""
    return hashlib.sha256(json.dumps(seen).encode("utf-8", "surrogatepass")).hexdigest()[:16]
