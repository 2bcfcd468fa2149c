"""One connection's frames: read, parsed, answered; one message per turn of the loop.

This is the half of the server that talks to one client once its handshake
is accepted (``app.py`` holds the other half: listening, the handshake and the
server's lifecycle). Frames are parsed strictly into protocol models by
:func:`~nbchat.protocol.parse_client_message`; input a client should not have
sent (binary, invalid JSON, a schema mismatch, a lone surrogate, an id over
:data:`~nbchat.protocol.MAX_ID_LENGTH` characters) is answered with a
``bad_request`` error and the connection stays open. An oversized id is
refused before anything is kept or addressed with it, and never echoed: every
frame of a reply carries its ids, so a 1 MB id would cost megabytes a token. What to do with a
message is decided by the sessions (``sessions.py``, ``registry.py``); a
reply's frames go out through :func:`~nbchat.server.forward.forward`.
"""

from __future__ import annotations

import asyncio
import logging

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ..attachments import bounded
from ..exceptions import AttachmentError, ProtocolError
from ..parsing import LoneSurrogateError, parse_client_message
from ..protocol import (
    MAX_ID_LENGTH,
    AckMessage,
    CancelRequest,
    ErrorInfo,
    ErrorMessage,
    ToolAck,
    ToolResponse,
    ToolsDeclaration,
    dump,
)
from .forward import forward
from .handshake import client_identity
from .registry import Client, Refused
from .replylog import ReplyLog
from .sessions import Sessions

__all__ = ["MAX_ERROR_TEXT", "FrameHandler"]

logger = logging.getLogger("nbchat.server")

MAX_ERROR_TEXT = 300
"""Characters of an error's text sent to a client: one short line, whatever went wrong."""


class FrameHandler:
    """Serves each accepted connection: its frames in, its acks, errors and replies out."""

    def __init__(self, sessions: Sessions, idle_timeout: float | None = None) -> None:
        self.sessions = sessions
        self.idle_timeout = idle_timeout
        """Seconds a connection may be silent with no reply going to it before it is closed."""
        self.connections: set[ServerConnection] = set()
        """The connections being served."""

    async def __call__(self, connection: ServerConnection) -> None:
        """Serve one connection until it closes, then detach it from its client."""
        request = connection.request
        identity = None if request is None else client_identity(request.headers)
        address = connection.remote_address
        source = str(address[0]) if isinstance(address, tuple) and address else None
        client = self.sessions.attach(identity, source)
        self.connections.add(connection)
        forwarding: dict[str, asyncio.Task[None]] = {}
        idle = _IdleWatch(connection, self.idle_timeout, forwarding)
        logger.debug("connection opened from %s", connection.remote_address)
        try:
            async for frame in connection:
                idle.seen = idle.clock()
                try:
                    await self._receive(connection, client, frame, forwarding)
                except ConnectionClosed:
                    raise
                except Exception:  # a bug must cost one message, not every reply of the client
                    logger.exception("handling a frame failed")
                    await _error(connection, "the server failed on this frame", "internal_error")
                # websockets hands over every frame already received without suspending:
                # one message per turn of the loop, so a flood cannot hold the loop.
                await asyncio.sleep(0)
        except ConnectionClosed:
            pass  # the client went away (or sent a frame above max_size: 1009)
        finally:
            idle.cancel()
            for task in forwarding.values():
                task.cancel()
            await asyncio.gather(*forwarding.values(), return_exceptions=True)
            self.connections.discard(connection)
            self.sessions.detach(client)
            logger.debug("connection closed from %s", connection.remote_address)

    # Private methods

    async def _receive(
        self,
        connection: ServerConnection,
        client: Client[ReplyLog],
        frame: str | bytes,
        forwarding: dict[str, asyncio.Task[None]],
    ) -> None:
        if isinstance(frame, bytes):
            await _error(connection, "binary frames are not supported: send JSON text")
            return
        try:
            message = parse_client_message(frame)
        except LoneSurrogateError as exc:
            reply_to, cid = exc.message_id, exc.conversation_id
            await _error(connection, str(exc), reply_to=reply_to, conversation_id=cid)
            return
        except ProtocolError as exc:
            await _error(connection, str(exc))
            return
        oversized = _oversized_id(message)
        if oversized is not None:
            await _error(
                connection,
                f"{oversized} is longer than {MAX_ID_LENGTH} characters: send at most "
                f"{MAX_ID_LENGTH} characters",
            )
            return
        if isinstance(message, ToolsDeclaration | ToolResponse):
            await self._tool_message(connection, client, message)
        elif isinstance(message, CancelRequest):
            count = self.sessions.cancel(client, message.conversation_id, message.id)
            logger.debug("cancelled %d reply(ies)", count)
        else:
            try:  # bounded like the client bounds them: a frame of its own says so
                attachments = tuple(bounded(message.attachments or ()))
            except AttachmentError as exc:
                await _error(
                    connection,
                    str(exc),
                    "attachments_refused",
                    reply_to=message.id,
                    conversation_id=message.conversation_id,
                )
                return
            decision = self.sessions.accept(
                client,
                message.id,
                message.conversation_id,
                message.message,
                message.context,
                attachments,
            )
            if isinstance(decision, Refused):
                logger.info("refused a message from %s: %s", connection.remote_address, decision)
                await _error(
                    connection,
                    decision.text,
                    decision.code,
                    reply_to=message.id,
                    conversation_id=message.conversation_id,
                )
                return
            await self._answer(connection, decision.log, decision.duplicate, forwarding)

    async def _answer(
        self,
        connection: ServerConnection,
        log: ReplyLog,
        duplicate: bool,
        forwarding: dict[str, asyncio.Task[None]],
    ) -> None:
        """Ack a message, then forward its log unless this connection already does."""
        ack = AckMessage(
            id=log.message_id,
            reply_to=log.message_id,
            conversation_id=log.conversation_id,
            duplicate=True if duplicate else None,
        )
        await connection.send(dump(ack))
        running = forwarding.get(log.message_id)
        if running is not None and not running.done():
            return  # resent on the same connection: the reply is already on its way
        task = asyncio.get_running_loop().create_task(forward(connection, log))
        forwarding[log.message_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if forwarding.get(log.message_id) is done:
                del forwarding[log.message_id]

        task.add_done_callback(forget)

    async def _tool_message(
        self,
        connection: ServerConnection,
        client: Client[ReplyLog],
        message: ToolsDeclaration | ToolResponse,
    ) -> None:
        """A client's tools (kept for its replies), or a call's outcome (acked, always)."""
        if isinstance(message, ToolsDeclaration):
            self.sessions.declare_tools(client, message.tools)
            return
        if message.attachments:
            try:  # a tool's images over the bounds are left out; its result describes them
                bounded(message.attachments)
            except AttachmentError as exc:
                logger.info("a tool response's images were left out: %s", exc)
                message = message.model_copy(update={"attachments": None})
        if not self.sessions.tool_response(client, message):
            logger.debug("a tool response nobody waits for (answered already, or cancelled)")
        await connection.send(dump(ToolAck(id=message.id)))


class _IdleWatch:
    """Closes a connection (1001) that sent no frame while no reply went to it, for a while.

    One timer per connection, moved forward only when it fires: a frame costs
    one clock read.
    """

    def __init__(
        self,
        connection: ServerConnection,
        timeout: float | None,
        forwarding: dict[str, asyncio.Task[None]],
    ) -> None:
        loop = asyncio.get_running_loop()
        self.clock = loop.time
        self.seen = loop.time()
        """When the connection last sent a frame (or last had a reply going to it)."""
        self._connection = connection
        self._timeout = timeout
        self._forwarding = forwarding
        self._closing: asyncio.Task[None] | None = None
        self._timer = None if timeout is None else loop.call_later(timeout, self._check)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _check(self) -> None:
        assert self._timeout is not None
        loop = asyncio.get_running_loop()
        if self._forwarding:  # a reply is on its way: not idle
            self.seen = loop.time()
        due = self.seen + self._timeout
        if loop.time() < due:
            self._timer = loop.call_at(due, self._check)
            return
        logger.debug("closing a connection idle for %gs", self._timeout)
        reason = f"idle for {self._timeout:g}s"
        self._closing = loop.create_task(self._connection.close(1001, reason))


def _oversized_id(message: object) -> str | None:
    """The field of a client message holding an id over :data:`MAX_ID_LENGTH`, if any."""
    for name in ("id", "conversation_id"):
        value = getattr(message, name, None)
        if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
            return name
    return None


async def _error(
    connection: ServerConnection,
    text: str,
    code: str = "bad_request",
    *,
    reply_to: str | None = None,
    conversation_id: str | None = None,
) -> None:
    """Send one ``error``: its text on one line, at most :data:`MAX_ERROR_TEXT` characters."""
    text = " ".join(text.split())
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT - 3] + "..."
    if code == "bad_request":
        logger.info("bad request from %s: %s", connection.remote_address, text)
    error = ErrorMessage(
        error=ErrorInfo(code=code, message=text),
        reply_to=reply_to,
        conversation_id=conversation_id,
    )
    await connection.send(dump(error))
