"""A comm that records what a widget would send to the frontend, for tests and benchmarks.

ipywidgets' own tests swap in a dummy comm the same way (widgets/tests/utils.py).
This is a fake of the frontend only: no browser runs here; the browser tests
under tests/browser/ cover the real one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import comm

__all__ = ["RecordingComm", "recording_comms"]


class RecordingComm:
    """Stands in for a kernel comm; keeps every message a widget sends."""

    kernel = "recording"

    def __init__(self, log: list[RecordingComm], **kwargs: Any) -> None:
        self.comm_id = kwargs.get("comm_id") or f"comm-{len(log)}"
        self.messages: list[dict[str, Any]] = []
        self.bytes_sent = 0
        log.append(self)
        if "data" in kwargs:  # the initial state travels with the comm_open message
            self._record(kwargs["data"])

    def open(self, *args: Any, **kwargs: Any) -> None:
        """Already recorded at creation."""

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        """Record one message and its size as the frontend would receive it."""
        self._record(data)

    def on_msg(self, callback: Any) -> None:
        """The frontend never writes back here."""

    def close(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to release."""

    def _record(self, data: Any) -> None:
        self.messages.append(data or {})
        self.bytes_sent += len(json.dumps(data, default=str))

    def values(self, key: str = "value") -> list[Any]:
        """Each value of ``key`` sent in a state update, in order."""
        return [
            m["state"][key]
            for m in self.messages
            if isinstance(m, dict) and key in m.get("state", {})
        ]


@contextmanager
def recording_comms() -> Iterator[list[RecordingComm]]:
    """Make every widget created inside the block use a RecordingComm; yield them all."""
    log: list[RecordingComm] = []
    original = comm.create_comm

    def create(**kwargs: Any) -> RecordingComm:
        return RecordingComm(log, **kwargs)

    comm.create_comm = create
    try:
        yield log
    finally:
        comm.create_comm = original
