"""The client's recording: every event of a session appended to a JSON Lines transcript.

A part of :class:`~nbchat.client.ChatClient` kept in its own module: the
:class:`~nbchat.transcript.Recorder` is a listener like any other, and this
only decides when it is opened (``record()``, and again when a new connection
starts after a disconnect), and when it is closed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, cast

from ..exceptions import NbchatError
from ..transcript import Recorder
from ..transcript.recorder import EventSource

__all__ = ["Recording"]


class Recording:
    """The recording methods of a client (a base of :class:`~nbchat.client.ChatClient`)."""

    _recorder: Recorder | None = None
    _record_path: str | os.PathLike[str] | None = None
    _emit: Callable[..., Any]

    @property
    def url(self) -> str:
        """The server URL, written in the transcript's header (the client defines it)."""
        raise NotImplementedError

    # Public methods

    def record(self, path: str | os.PathLike[str]) -> Recorder:
        """Append every event of this session to the transcript at ``path`` (JSON Lines).

        Client and server messages, state changes and errors are written and
        flushed one line each as they happen; headers (tokens) never are, and
        URLs are redacted. Recording stops at :meth:`stop_recording` or
        :meth:`disconnect`, and after a write fails (the client goes on and
        reports it as an ``error`` event).
        """
        self.stop_recording()
        self._record_path = path
        return self._open_recorder(path)

    def stop_recording(self) -> None:
        """Close the transcript file, if one is being written."""
        self._record_path = None
        self._close_recorder()

    # Private methods

    def _open_recorder(self, path: str | os.PathLike[str]) -> Recorder:
        recorder = Recorder(path, url=self.url)
        # Only ChatClient derives from this, and it is an EventSource.
        recorder.attach(cast(EventSource, self), on_failure=self._recording_failed)
        self._recorder = recorder
        return recorder

    def _recording_failed(self, exc: NbchatError) -> None:
        # The recorder has detached itself: the conversation goes on without it.
        self._recorder = None
        self._record_path = None
        self._emit("error", exc)

    def _close_recorder(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.detach()
            recorder.close()
