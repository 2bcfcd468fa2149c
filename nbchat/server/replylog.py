"""A reply log: the frames generated for one client message, in order, followed by any connection.

One mechanism gives both dedupe and resume: every accepted message id gets a
:class:`ReplyLog`. Generation writes into it; a connection forwards it to its
client by following it from the start (``forward.py``). When a client resends
an id after a reconnect, the server follows the same log from the start again:
the reply is generated once, and the client gets all of it. Every log ends
with exactly one ``done`` or ``error``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

from ..protocol import (
    DoneMessage,
    ErrorMessage,
    TokenMessage,
    ToolRequest,
    encode_frame,
    utf8,
)
from .responder import ResponderMessage

__all__ = ["ReplyLog"]

_FRAME_OVERHEAD = sys.getsizeof(b"") + 8
"""Bytes a stored frame costs besides its content: the bytes object's header, a list slot."""


class ReplyLog:
    """The frames generated for one client message, in order; followed by any connection.

    Frames are stored encoded (UTF-8 JSON), ready to be written as many times
    as connections follow the log, without serialising again.
    """

    def __init__(self, message_id: str, conversation_id: str | None) -> None:
        self.message_id = message_id
        self.conversation_id = conversation_id
        self.frames: list[bytes] = []
        """Encoded server messages; the last is ``done`` or ``error`` once finished."""
        self.size = 0
        """Bytes the frames hold in memory: what the registry counts against its byte bounds."""
        self.finished = False
        self._changed = asyncio.Event()
        # A token frame is the only hot path: its address is encoded once per log.
        address = {"conversation_id": conversation_id, "reply_to": message_id}
        tail = json.dumps({k: v for k, v in address.items() if v is not None})
        self._token_tail = ("," + tail[1:]).encode()

    def __repr__(self) -> str:
        state = "finished" if self.finished else "open"
        return f"<ReplyLog {len(self.frames)} frames {state}>"

    def append(self, message: ResponderMessage | DoneMessage | ToolRequest) -> None:
        """Add a message, addressed to this log's conversation and message id."""
        if self.finished:
            raise RuntimeError("this reply log is already finished")
        if type(message) is TokenMessage and not message.model_extra:
            text = message.response
            if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
                quoted = b'"' + text.encode() + b'"'  # nothing to escape: json.dumps not needed
            else:
                quoted = utf8(json.dumps(text, ensure_ascii=False))
            frame = b'{"type":"token","response":' + quoted + self._token_tail
        else:
            message.conversation_id = self.conversation_id
            message.reply_to = self.message_id
            frame = encode_frame(message)
        self.frames.append(frame)
        self.size += len(frame) + _FRAME_OVERHEAD
        self._changed.set()

    def finish(self, message: DoneMessage | ErrorMessage) -> None:
        """Add the last message: followers stop after it."""
        self.append(message)
        self.finished = True

    async def follow(self) -> AsyncIterator[list[bytes]]:
        """Every frame from the first, in batches of what is available, until finished."""
        index = 0
        while True:
            if index < len(self.frames):
                batch = self.frames[index:]
                index += len(batch)
                yield batch
            elif self.finished:
                return
            else:
                # No await between the length check and wait(): an append cannot slip in.
                self._changed.clear()
                await self._changed.wait()
