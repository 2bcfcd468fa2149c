"""Replay a recorded transcript as a server: each client message gets the answer recorded for it.

A notebook recorded against a real backend thus re-runs offline and
deterministically, in CI or anywhere without a model.

Matching. A re-executed notebook gets fresh random conversation ids, so the
live conversation id rarely equals a recorded one: messages are matched by
their text (with their attachments' digest, :func:`key_of`) and their order,
and conversation ids only keep several recorded conversations apart.

* Texts are compared after the redaction a transcript applies
  (:func:`nbchat.redact.redact_text`: what was recorded is redacted, so the live
  text is too, and a message that held ``?token=...`` or ``sk-...`` still
  matches), then Unicode NFC normalisation, with runs of whitespace collapsed
  to one space and both ends stripped.
* Each live conversation follows recorded conversations through *cursors*: a
  recorded conversation, and which of its exchanges this live conversation has
  used. A message is answered by the first unused exchange with its text, in
  recording order, of the live conversation's cursors (oldest cursor first).
* When no cursor holds it, a new cursor is opened on another recorded
  conversation holding the text: the one whose id is the live conversation's
  own if there is one, else the one followed by the fewest live conversations,
  else the one that said it first. Two live conversations are thus kept apart
  as the recorded ones were, and a notebook re-run against the same server
  (with new conversation ids) replays from the start instead of running out.
* A message that no recorded conversation holds, or only holds already used,
  gets an ``error`` with code ``not_in_transcript`` naming the messages the
  replay expected next: never a hang.

What is answered: the recorded ``token``, ``tool_call``, ``tool_result`` and
``error`` messages, with their ``reply_to`` and ``conversation_id`` cleared (the
server addresses them to the live message). Acks and the recorded ``done`` are
dropped: the server acks and ends each reply itself. A recorded reply that was
restarted (``reply_restart``: the server lost it) is replayed from the restart.

Client tools. A recorded ``tool_call`` of a client tool (``runs_in: "client"``)
is replayed, then sent to the live client as a request, so the notebook's
function really runs; the recorded ``tool_result`` is replaced by the live
outcome. When the live outcome (status and result, both redacted as a
transcript redacts them: a tool returning a credential URL was recorded
without its credentials) equals the recorded one the reply continues as
recorded. When it differs, the difference is logged (WARNING,
logger ``nbchat.server``) and, with ``on_difference="error"`` (the default),
the reply ends there with an ``error`` of code ``tool_result_differs`` naming
the call and both results, so a notebook replayed in CI fails where its
function changed; with ``"warn"`` the reply continues as recorded.

Pace: ``speed=None`` (or 0) answers as fast as possible; otherwise each message
is sent at its recorded delay after the user message divided by ``speed`` (1.0
the recorded pace, 2.0 twice as fast), and the ``done`` at the recorded end of
the reply. Delays are replayed as recorded, reconnection pauses included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from collections import OrderedDict
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Literal

from typing_extensions import Unpack
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from ..attachments import Attachment, describe
from ..mcpspec import MCP_TOOLS_PATH, recorded_mcp_tools
from ..protocol import (
    ErrorInfo,
    ErrorMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
)
from ..redact import redact_text
from ..transcript import Transcript
from ..transcript.format import attachments_digest
from .app import DEFAULT_HOST, ChatServer, ServerOptions
from .exchanges import Cursor, Exchange, Key, Recorded, exchange, key_of
from .replaytools import live_result, outcome_text, recorded_mcp_names, run_client_calls
from .responder import ResponderMessage, current_attachments, current_client_tools

__all__ = [
    "NOT_IN_TRANSCRIPT",
    "TOOL_RESULT_DIFFERS",
    "ReplayResponder",
    "ReplayServer",
    "serve_replay",
]

logger = logging.getLogger("nbchat.server")

NOT_IN_TRANSCRIPT = "not_in_transcript"
"""The ``error`` code answering a message the transcript does not hold."""
TOOL_RESULT_DIFFERS = "tool_result_differs"
"""The ``error`` code ending a replayed reply whose client tool gave another result."""

_MAX_EXPECTED = 3
"""How many expected messages an error names."""
_MAX_QUOTE = 80


def _quote(text: str) -> str:
    text = " ".join(redact_text(text).split())
    return repr(text if len(text) <= _MAX_QUOTE else text[: _MAX_QUOTE - 3] + "...")


class ReplayResponder:
    """A :class:`~nbchat.server.Responder` answering from a :class:`~nbchat.Transcript`.

    See the module docstring for how messages are matched. ``max_conversations``
    bounds the live conversations remembered (least recently used forgotten).
    """

    def __init__(
        self,
        transcript: Transcript,
        *,
        speed: float | None = None,
        max_conversations: int = 10_000,
        on_difference: Literal["error", "warn"] = "error",
    ) -> None:
        if speed is not None and not (speed >= 0):  # also refuses NaN
            raise ValueError(f"speed must be None or >= 0, got {speed!r}")
        self.on_difference = on_difference
        """What a client tool whose live result differs from the recorded one does to
        the reply: ``error`` ends it (``tool_result_differs``), ``warn`` only logs."""
        self.speed = speed
        """Pace factor: None or 0 as fast as possible, 1.0 as recorded, 2.0 twice as fast."""
        self.max_conversations = max_conversations
        self._recorded: dict[str, Recorded] = {}
        for order, turn in enumerate(transcript.turns):
            conversation = turn.conversation_id or ""  # "" is the server's "no conversation"
            recorded = self._recorded.setdefault(conversation, Recorded(conversation))
            index = len(recorded.exchanges)
            recorded.exchanges.append(exchange(order, turn))
            said = key_of(turn.user, turn.attached_digest)
            recorded.by_text.setdefault(said, []).append(index)
        self._live: OrderedDict[str, list[Cursor]] = OrderedDict()
        self.mcp_tools = recorded_mcp_names(transcript)
        """The MCP tools the recording used: answered from it unless the client declares them."""

    def __repr__(self) -> str:
        return (
            f"<ReplayResponder {self.exchange_count} exchanges in {len(self._recorded)} "
            f"conversations, speed={self.speed!r}>"
        )

    @property
    def description(self) -> str:
        """What answers, for the handshake's ``Nbchat-Backend`` header and the panel's."""
        return "replay of a recorded transcript"

    # Public methods

    @property
    def exchange_count(self) -> int:
        """How many user messages the transcript answers."""
        return sum(len(recorded.exchanges) for recorded in self._recorded.values())

    async def respond(self, conversation_id: str, text: str) -> AsyncIterator[ResponderMessage]:
        """Stream the recorded answer to ``text``, or a ``not_in_transcript`` error."""
        attached = current_attachments()
        exchange = self._match(conversation_id, key_of(text, attachments_digest(attached)))
        if exchange is None:
            found = self._not_found(conversation_id, text, attached)
            yield ErrorMessage(error=ErrorInfo(code=NOT_IN_TRANSCRIPT, message=found))
            return
        pace = self.speed is not None and 0 < self.speed < math.inf
        loop = asyncio.get_running_loop()
        start = loop.time()
        tools = current_client_tools()
        live: dict[str, ToolCall] = {}
        """Outcomes of the client tools run in this reply, by call id, until their result."""
        for message, offset in zip(exchange.messages, exchange.offsets, strict=True):
            if pace:
                await _until(loop, start + offset / self._speed)
            if isinstance(message, ToolResultMessage) and any(
                call.id in live for call in message.tool_calls
            ):
                result, differences = live_result(message, live)
                yield result
                if differences:
                    error = self._differs(differences)
                    if error is not None:
                        yield error
                        return
                continue
            # A copy: the server addresses what it is given, and replies may be replayed again.
            yield message.model_copy()
            if isinstance(message, ToolCallMessage):
                await run_client_calls(message, tools, live, self.mcp_tools)
        if pace:
            await _until(loop, start + exchange.end / self._speed)

    def expected(self, conversation_id: str) -> list[str]:
        """The texts the replay expects next in a live conversation, most likely first.

        The next unused message of each recorded conversation it follows, then the
        first message of each recorded conversation it could still start following.
        """
        cursors = self._live.get(conversation_id, [])
        followed = {id(cursor.recorded) for cursor in cursors}
        texts: list[str | None] = [cursor.next_text() for cursor in cursors]
        others = sorted(
            (r for r in self._recorded.values() if id(r) not in followed),
            key=lambda r: r.exchanges[0].order,
        )
        texts.extend(recorded.exchanges[0].text for recorded in others)
        return list(dict.fromkeys(text for text in texts if text is not None))

    # Private methods

    def _match(self, conversation_id: str, key: Key) -> Exchange | None:
        """The exchange answering a message (its ``key``) in a live conversation, now marked
        used; or None."""
        cursors = self._cursors(conversation_id)
        for cursor in cursors:
            index = cursor.find(key)
            if index is not None:
                cursor.used.add(index)
                return cursor.recorded.exchanges[index]
        followed = {id(cursor.recorded) for cursor in cursors}
        candidates = [
            recorded
            for recorded in self._recorded.values()
            if key in recorded.by_text and id(recorded) not in followed
        ]
        if not candidates:
            return None
        recorded = min(
            candidates,
            key=lambda r: (
                r.conversation_id != conversation_id,
                r.followers,
                r.exchanges[r.by_text[key][0]].order,
            ),
        )
        cursor = Cursor(recorded)
        recorded.followers += 1
        cursors.append(cursor)
        index = recorded.by_text[key][0]
        cursor.used.add(index)
        return recorded.exchanges[index]

    def _differs(self, differences: list[tuple[ToolCall, ToolCall]]) -> ErrorMessage | None:
        """Report client tools whose live outcome is not the recorded one; the error, if any."""
        lines = [
            f"client tool {recorded.name} (call {recorded.id}) gave {outcome_text(live)}, "
            f"recorded {outcome_text(recorded)}"
            for recorded, live in differences
        ]
        for line in lines:
            logger.warning("replay: %s", line)
        if self.on_difference == "warn":
            return None
        return ErrorMessage(
            error=ErrorInfo(
                code=TOOL_RESULT_DIFFERS,
                message="; ".join(lines) + ": the notebook's function changed, or record again",
            )
        )

    @property
    def _speed(self) -> float:
        assert self.speed is not None
        return self.speed

    def _cursors(self, conversation_id: str) -> list[Cursor]:
        cursors = self._live.get(conversation_id)
        if cursors is None:
            cursors = self._live[conversation_id] = []
            while len(self._live) > self.max_conversations:
                _, forgotten = self._live.popitem(last=False)
                for cursor in forgotten:
                    cursor.recorded.followers -= 1
        else:
            self._live.move_to_end(conversation_id)
        return cursors

    def _not_found(
        self, conversation_id: str, text: str, attached: tuple[Attachment, ...] = ()
    ) -> str:
        if not self._recorded:
            return f"the transcript holds no messages, so none answers {_quote(text)}"
        key = key_of(text, attachments_digest(attached))
        same_text = [
            recorded.exchanges[indices[0]]
            for recorded in self._recorded.values()
            for (said, _), indices in recorded.by_text.items()
            if said == key[0]
        ]
        if same_text and not any(key in r.by_text for r in self._recorded.values()):
            sent = ", ".join(describe(a) for a in attached) or "none"
            kept = ", ".join(same_text[0].attached) or "none"
            return (
                f"the transcript holds {_quote(text)} with other attachments (recorded: "
                f"{kept}; sent: {sent}): attach what was recorded, or record again"
            )
        expected = self.expected(conversation_id)
        if not expected:
            return (
                f"the transcript holds no reply to {_quote(text)}: this conversation has "
                "replayed every recorded message"
            )
        named = ", ".join(_quote(item) for item in expected[:_MAX_EXPECTED])
        hidden = len(expected) - _MAX_EXPECTED
        more = f" (and {hidden} more)" if hidden > 0 else ""
        return f"the transcript holds no reply to {_quote(text)}; expected {named}{more}"


async def _until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


class ReplayServer(ChatServer):
    """A :class:`ChatServer` answering from a transcript (a :class:`Transcript` or its path).

    A path is loaded at once, so a missing or unreadable file raises
    :class:`~nbchat.TranscriptError` here rather than at the first message.
    """

    def __init__(
        self,
        transcript: Transcript | str | os.PathLike[str],
        *,
        speed: float | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        on_difference: Literal["error", "warn"] = "error",
        **options: Unpack[ServerOptions],
    ) -> None:
        if not isinstance(transcript, Transcript):
            transcript = Transcript.load(transcript)
        self.transcript = transcript
        """What is replayed."""
        self.replay = ReplayResponder(transcript, speed=speed, on_difference=on_difference)
        super().__init__(self.replay, host=host, port=port, **options)
        self._mcp_lists = json.dumps(recorded_mcp_tools(transcript.events), ensure_ascii=False)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Beside the WebSocket: the recorded MCP tool lists, for clients under this replay."""
        if request.path == MCP_TOOLS_PATH:
            response = connection.respond(HTTPStatus.OK, self._mcp_lists)
            response.headers["Content-Type"] = "application/json; charset=utf-8"
            return response
        return super()._process_request(connection, request)


def serve_replay(
    transcript: Transcript | str | os.PathLike[str],
    port: int = 0,
    host: str = DEFAULT_HOST,
    *,
    speed: float | None = None,
    **options: Unpack[ServerOptions],
) -> ReplayServer:
    """A replay server, started by ``async with serve_replay(path) as server`` or ``await``."""
    return ReplayServer(transcript, speed=speed, host=host, port=port, **options)
