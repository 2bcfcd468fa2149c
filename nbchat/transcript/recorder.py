"""Recording: a client's events appended to a transcript file, one flushed line each.

The :class:`Recorder` is a listener like any other: :meth:`Recorder.attach`
subscribes it to a client's ``send``, ``message``, ``restart``, ``failed``,
``state`` and ``error`` events through ``client.on()``. It never raises into
the client: any failure while recording (a full disk, a frame pydantic cannot
serialise, a recursion too deep) stops the recording, logs one line and is
reported once through ``on_failure``; the conversation goes on unrecorded.

Tokens are held back, a reply's text redacted whole. A model streams a secret
in pieces (``https://ada:s3`` then ``cret-pw@host``, ``Bearer `` then
``eyJ...``), and no piece is a secret on its own: redacting each frame as it
is written would leave the secret in the file, split across two lines that any
reader joins again. So a reply's plain tokens wait in a buffer, and are written
(one line per frame, each at the time it arrived) when the text they make can
be redacted as the reader will see it (:func:`nbchat.redact.redact_pieces`):

- when the reply's next non-token message comes (a tool call ends a text run,
  ``done`` or ``error`` ends the reply), and when the reply restarts, fails, or
  the recording stops: its text then can grow no more;
- while a long run streams, once the buffer passes :data:`FLUSH_CHARS`: the
  tokens before the last cut that :func:`nbchat.redact.splits_cleanly` allows
  (next to whitespace, not after ``Bearer``) are written, the rest wait, so a
  secret is never cut in two; a run with no clean cut in :data:`MAX_HELD_CHARS`
  (a whitespace-free blob) is written whole, redacted as far as it goes.

Why this design: it keeps the format (version 1, one line per frame with its
own time, so the replay server paces as before and older readers read it),
it holds at most a few kilobytes of a reply in memory, and a kernel that dies
mid-reply loses at most that unwritten tail. An ack (after a reconnect) or a
state line does not flush a reply, so lines of different replies, and state
lines, may be written in another order than they arrived; within one reply the
order is kept, and every line carries its own time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

from ..exceptions import NbchatError, TranscriptError
from ..policy import Disconnect
from ..protocol import (
    AckMessage,
    CancelRequest,
    ServerMessage,
    TokenMessage,
    ToolCallMessage,
    ToolResultMessage,
    UserMessage,
    WireModel,
    dump,
    utf8,
)
from ..redact import redact_call, redact_pieces, redact_text, redact_url, splits_cleanly
from .format import Direction, event_line, header_line, now_iso, parse_header, recorded_attachment

__all__ = ["FLUSH_CHARS", "MAX_HELD_CHARS", "EventSource", "Recorder"]

logger = logging.getLogger("nbchat.transcript")

FLUSH_CHARS = 4096
"""A reply's held text past which the tokens before its last clean cut are written."""
MAX_HELD_CHARS = 65536
"""A reply's held text with no clean cut, past which it is written all the same."""


class EventSource(Protocol):
    """What a recorder needs of a client (:class:`nbchat.ChatClient` is one)."""

    @property
    def last_disconnect(self) -> Disconnect | None:
        """How the last connection ended, for the detail of a state line."""

    def on(self, event: Any, callback: Callable[..., Any]) -> Callable[[], None]:
        """Subscribe ``callback`` to ``event``; return the function that unsubscribes it."""


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
        self._held: dict[str, _Held] = {}
        """Each reply's plain tokens not written yet, by the id of the message it answers."""
        self._source: EventSource | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._on_failure: Callable[[NbchatError], None] | None = None
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
            file, self._file = self._file, None
            with contextlib.suppress(OSError):  # its unwritten buffer fails again: reported above
                file.close()
            raise

    # Public methods: following a client

    def attach(
        self, client: EventSource, on_failure: Callable[[NbchatError], None] | None = None
    ) -> None:
        """Record ``client``'s events from now on, until :meth:`detach` or :meth:`close`.

        ``on_failure`` is called once, with a :class:`TranscriptError` saying what
        happened and what to do, if recording has to stop because a write failed.
        """
        self.detach()
        self._source = client
        self._on_failure = on_failure
        self._unsubscribe = [
            client.on("send", self._guarded(self.sent)),
            client.on("message", self._guarded(self.received)),
            client.on("restart", self._guarded(self.restarted)),
            client.on("failed", self._guarded(self.failed)),
            client.on("state", self._guarded(self._state_changed)),
            client.on("error", self._guarded(self._errored)),
        ]

    def detach(self) -> None:
        """Stop following the client (the file stays open); does nothing if not attached.

        Tokens held back are written first: the replies they belong to will not be seen end.
        """
        unsubscribe, self._unsubscribe = self._unsubscribe, []
        for off in unsubscribe:
            off()
        self._source = None
        if self._file is not None and self._held:
            try:
                self.flush()
            except Exception as exc:  # as any write while following: the recording stops
                self._fail(exc)

    # Public methods: writing

    def sent(self, message: UserMessage | CancelRequest | WireModel) -> None:
        """Record a message sent to the server as it went on the wire, its text (and any
        context, which a replay never matches on) redacted, and its attachments too
        (:func:`_recorded`)."""
        if isinstance(message, UserMessage):
            text = redact_text(message.message)
            context = [
                item.model_copy(
                    update={
                        "description": redact_text(item.description),
                        "value": redact_text(item.value),
                    }
                )
                for item in message.context or ()
            ]
            if text != message.message or context != (message.context or []):
                update = {"message": text, "context": context or message.context}
                message = message.model_copy(update=update)
            if message.attachments:
                kept = [recorded_attachment(attachment) for attachment in message.attachments]
                message = message.model_copy(update={"attachments": kept})
        self._write("out", dump(message))

    def received(self, message: ServerMessage) -> None:
        """Record a server message as the client delivered it (``reply_to`` as it resolved it).

        A plain token of a reply is held back until its text can be redacted
        whole (see the module docstring); any other message of the reply writes
        the held tokens first, an ack excepted.
        """
        reply_to = message.reply_to
        if reply_to is not None and type(message) is TokenMessage:
            held = self._held.setdefault(reply_to, _Held())
            held.add(self._clock(), message)
            if held.size >= held.next_check:
                self._write_held(reply_to, cut=True)
            return
        if reply_to is not None and not isinstance(message, AckMessage):
            self._write_held(reply_to)
        if isinstance(message, ToolCallMessage | ToolResultMessage):
            calls = [redact_call(call) for call in message.tool_calls]
            message = message.model_copy(update={"tool_calls": calls})
        self._write("in", dump(message))

    def restarted(self, message_id: str) -> None:
        """Record that the server had lost the reply to ``message_id`` and begins it again."""
        self._write_held(message_id)
        self.client_event({"event": "restart", "reply_to": message_id})

    def failed(self, message_id: str, error: BaseException | str) -> None:
        """Record that the reply to ``message_id`` will never be complete, and why."""
        self._write_held(message_id)
        self.client_event({"event": "failed", "reply_to": message_id, "message": str(error)})

    def client_event(self, data: dict[str, Any]) -> None:
        """Record an event of the client's own, a JSON object (a restart, an MCP tool list)."""
        self._write("client", _compact(data))

    def flush(self) -> None:
        """Write every token held back, each reply's text redacted as far as it has come."""
        for reply_to in list(self._held):
            self._write_held(reply_to)

    def state(self, state: str, detail: str = "") -> None:
        """Record a connection state change (``connected``, ``disconnected``, ...)."""
        self._write("state", _compact({"state": str(state), "detail": detail}))

    def error(self, message: str, raw: str | bytes | None = None) -> None:
        """Record a failure, with the raw frame that caused it if there was one."""
        data: dict[str, Any] = {"message": message}
        if raw is not None:
            data["raw"] = raw if isinstance(raw, str) else raw.decode("utf-8", "backslashreplace")
        self._write("error", _compact(data))

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called (or a failure stopped the recording)."""
        return self._file is None

    def close(self) -> None:
        """Detach (writing the tokens held back) and close the file; again does nothing."""
        self.detach()
        self._held.clear()
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                raise TranscriptError(
                    f"cannot close {self.path} ({exc.strerror or exc}): the disk may be full; "
                    "check free space, then record again"
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

    def _state_changed(self, state: object) -> None:
        value = str(getattr(state, "value", state))
        detail = ""
        source = self._source
        if value == "disconnected" and source is not None:
            detail = _describe(source.last_disconnect)
        self.state(value, detail)

    def _errored(self, exc: BaseException) -> None:
        self.error(str(exc), getattr(exc, "raw", None))

    def _guarded(self, write: Callable[..., None]) -> Callable[..., None]:
        """``write`` as a listener that turns any failure into the end of the recording."""

        def listener(*args: Any) -> None:
            if self._file is None:
                return
            try:
                write(*args)
            except Exception as exc:
                self._fail(exc)

        return listener

    def _fail(self, exc: Exception) -> None:
        on_failure, self._on_failure = self._on_failure, None
        self._held.clear()  # nothing more is written
        if isinstance(exc, TranscriptError):
            error = exc
        else:
            # Short, on one line, without the lone surrogate that may have caused it.
            why = utf8(" ".join(str(exc).split())[:200]).decode()
            why = redact_text(why) or type(exc).__name__
            error = TranscriptError(
                f"recording to {self.path} stopped: an event could not be written "
                f"({type(exc).__name__}: {why}); the conversation goes on unrecorded, "
                "call record() again to start a new transcript"
            )
            error.__cause__ = exc
        with contextlib.suppress(TranscriptError):  # the first error is the one to report
            self.close()
        logger.error("%s", error)
        if on_failure is not None:
            try:
                on_failure(error)
            except Exception:
                logger.exception("nbchat recording failure callback %r raised", on_failure)

    def _prepare(self) -> None:
        """Write the header into a new file; check an existing one and end its torn line."""
        assert self._file is not None
        size = os.fstat(self._file.fileno()).st_size
        if size == 0:
            self._append(header_line(now_iso(), self.url))
            return
        try:
            self._file.seek(0)
            first = self._file.readline(1 << 16)
            self._file.seek(size - 1)
            last = self._file.read(1)
        except OSError as exc:
            raise TranscriptError(
                f"cannot read {self.path} ({exc.strerror or exc}): check its permissions"
            ) from exc
        parse_header(first.removeprefix(b"\xef\xbb\xbf"), str(self.path))
        if last != b"\n":
            # A previous session died mid-line: end that line so ours stays intact.
            self._append("\n")

    def _write_held(self, reply_to: str, *, cut: bool = False) -> None:
        """Write a reply's held tokens, redacted whole; with ``cut``, only up to a clean cut."""
        held = self._held.get(reply_to)
        if held is None:
            return
        count = len(held.tokens)
        if cut:
            count = held.clean_cut()
            if count == 0:
                if held.size < MAX_HELD_CHARS:
                    held.next_check = held.size + FLUSH_CHARS  # no rescan per token
                    return
                count = len(held.tokens)
        tokens = held.take(count)
        if not held.tokens:
            del self._held[reply_to]
        texts = redact_pieces([message.response for _, message in tokens])
        for (t, message), text in zip(tokens, texts, strict=True):
            if text != message.response:
                message = message.model_copy(update={"response": text})
            self._append(event_line(t, "in", dump(message)))

    def _write(self, direction: Direction, payload: str) -> None:
        if self._file is None:
            raise TranscriptError(
                f"the recorder for {self.path} is closed: open a new Recorder to keep recording"
            )
        self._append(event_line(self._clock(), direction, payload))

    def _append(self, text: str) -> None:
        assert self._file is not None
        try:
            self._file.write(text.encode("utf-8"))
            self._file.flush()
        except OSError as exc:
            raise TranscriptError(
                f"cannot write to {self.path} ({exc.strerror or exc}): check free space and "
                "permissions, then record again"
            ) from exc


class _Held:
    """A reply's plain tokens waiting to be written, with the time each arrived."""

    __slots__ = ("next_check", "size", "tokens")

    def __init__(self) -> None:
        self.tokens: list[tuple[float, TokenMessage]] = []
        self.size = 0
        """Characters held."""
        self.next_check = FLUSH_CHARS
        """The size at which to look for a clean cut again."""

    def add(self, t: float, message: TokenMessage) -> None:
        self.tokens.append((t, message))
        self.size += len(message.response)

    def clean_cut(self) -> int:
        """How many leading tokens end at the last clean cut but the very end (0 if none)."""
        text = "".join(message.response for _, message in self.tokens)
        at = len(text)
        for count in range(len(self.tokens) - 1, 0, -1):
            at -= len(self.tokens[count][1].response)
            if splits_cleanly(text, at):
                return count
        return 0

    def take(self, count: int) -> list[tuple[float, TokenMessage]]:
        taken, self.tokens = self.tokens[:count], self.tokens[count:]
        self.size -= sum(len(message.response) for _, message in taken)
        self.next_check = max(self.size, 0) + FLUSH_CHARS
        return taken


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _describe(disconnect: Disconnect | None) -> str:
    """A state line's detail: the close code and reason, the HTTP status, or the failure."""
    if disconnect is None:
        return ""
    if disconnect.status is not None:
        return f"HTTP {disconnect.status}"
    if disconnect.code is not None:
        return f"{disconnect.code} {disconnect.reason}".strip()
    return disconnect.reason or (str(disconnect.error) if disconnect.error else "")
