"""Transcripts: chat sessions recorded as JSON Lines, loaded back, exported, replayed.

A transcript makes a conversation durable (a dead kernel loses nothing already
received), exportable (Markdown, a notebook, one JSON document) and replayable
(a replay server answers each client message with what was recorded for it).

- :mod:`~nbchat.transcript.format`: the format, version 1, and its lines
  (:class:`TranscriptLine`); everything written is redacted;
- :mod:`~nbchat.transcript.recorder`: :class:`Recorder`, a client listener
  appending one flushed line per event;
- :mod:`~nbchat.transcript.turns`: lines -> :class:`~nbchat.turn.Turn`, by the
  ``reply_to`` the client resolved when recording, in one pass;
- :mod:`~nbchat.transcript.document`: :class:`Transcript`, load, save, export.
"""

from __future__ import annotations

from ..redact import redact_url
from ..turn import Turn
from .document import Transcript
from .format import TRANSCRIPT_VERSION, Direction, TranscriptLine, TranscriptWarning
from .recorder import EventSource, Recorder

__all__ = [
    "TRANSCRIPT_VERSION",
    "Direction",
    "EventSource",
    "Recorder",
    "Transcript",
    "TranscriptLine",
    "TranscriptWarning",
    "Turn",
    "redact_url",
]
