"""Recording: a client's events appended to a transcript file, one flushed line each.

The :class:`Recorder` is a listener like any other: :meth:`Recorder.attach`
subscribes it to a client's ``send``, ``message``, ``restart``, ``failed``,
``state`` and ``error`` events through ``client.on()``. It never raises into
the client: any failure while recording (a full disk, a frame pydantic cannot
serialise, a recursion too deep) stops the recording, logs one line and is
reported once through ``on_failure``; the conversation goes on unrecorded.
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
from ..protocol import CancelRequest, ServerMessage, UserMessage, WireModel, dump, utf8
from ..redact import redact_text, redact_url
from .format import Direction, event_line, header_line, now_iso, parse_header

__all__ = ["EventSource", "Recorder"]

logger = logging.getLogger("nbchat.transcript")


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
        """Stop following the client (the file stays open); does nothing if not attached."""
        unsubscribe, self._unsubscribe = self._unsubscribe, []
        for off in unsubscribe:
            off()
        self._source = None

    # Public methods: writing

    def sent(self, message: UserMessage | CancelRequest | WireModel) -> None:
        """Record a message sent to the server, exactly as it went on the wire."""
        self._write("out", dump(message))

    def received(self, message: ServerMessage) -> None:
        """Record a server message as the client delivered it (``reply_to`` as it resolved it)."""
        self._write("in", dump(message))

    def restarted(self, message_id: str) -> None:
        """Record that the server had lost the reply to ``message_id`` and begins it again."""
        self._write("client", _compact({"event": "restart", "reply_to": message_id}))

    def failed(self, message_id: str, error: BaseException | str) -> None:
        """Record that the reply to ``message_id`` will never be complete, and why."""
        data = {"event": "failed", "reply_to": message_id, "message": str(error)}
        self._write("client", _compact(data))

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
        """Detach and close the file; calling it again does nothing."""
        self.detach()
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
