"""The reference WebSocket server: protocol v1 at ``/ws`` on websockets' asyncio server.

One mechanism gives both dedupe and resume: every accepted message id gets a
:class:`ReplyLog`, the ordered frames generated for it. Generation is a task the
server owns, writing into the log; it outlives the connection that asked. A
connection forwards a log to its client by following it from the start. When a
client resends an id after a reconnect, the server acks it again with
``"duplicate": true`` and follows the same log from the start: the reply is
generated once, and the client gets all of it. Logs are kept for the last
``max_logs`` ids (least recently used evicted, never while generating).

Messages of one conversation are answered in order: each generation waits for
the one before it in its conversation. ``cancel`` cancels every unfinished
generation of the conversation; each log then ends with ``done`` and
``"cancelled": true``, so no reply is left open. Every log ends with exactly one
``done`` or ``error``.

The handshake is checked in this order: path (404), Origin (403), token (401).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Generator, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, TypedDict, TypeVar
from urllib.parse import urlsplit

from typing_extensions import Unpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..config import DEFAULT_MAX_SIZE
from ..exceptions import ProtocolError
from ..protocol import (
    AckMessage,
    CancelRequest,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    UserMessage,
    dump,
    new_id,
    parse_client_message,
)
from .responder import Responder, ResponderMessage

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_OPTIONS",
    "PATH",
    "ChatServer",
    "ReplyLog",
    "ServerOptions",
    "is_loopback_origin",
]

logger = logging.getLogger("nbchat.server")

PATH = "/ws"
"""The only path that accepts WebSocket connections; any other is answered 404."""

DEFAULT_HOST = "127.0.0.1"
"""Loopback only unless told otherwise: the server is for this machine's notebooks."""

_LOOPBACK_ORIGIN = re.compile(
    r"https?://(?:localhost|127\.0\.0\.1|\[::1\])(?::\d{1,5})?", re.IGNORECASE
)
_MAX_ERROR_TEXT = 300

_S = TypeVar("_S", bound="ChatServer")


def is_loopback_origin(origin: str) -> bool:
    """Whether a browser Origin is a page served from this machine (any port)."""
    return _LOOPBACK_ORIGIN.fullmatch(origin) is not None


class ReplyLog:
    """The frames generated for one client message, in order; followed by any connection."""

    def __init__(self, message_id: str, conversation_id: str | None) -> None:
        self.message_id = message_id
        self.conversation_id = conversation_id
        self.frames: list[str] = []
        """Serialised server messages; the last is ``done`` or ``error`` once finished."""
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        """The generation writing into this log."""
        self._changed = asyncio.Event()

    def append(self, message: ResponderMessage | DoneMessage) -> None:
        """Add a message, addressed to this log's conversation and message id."""
        if self.finished:
            raise RuntimeError(f"reply log {self.message_id} is already finished")
        message.conversation_id = self.conversation_id
        message.reply_to = self.message_id
        self.frames.append(dump(message))
        self._changed.set()

    def finish(self, message: DoneMessage | ErrorMessage) -> None:
        """Add the last message: followers stop after it."""
        self.append(message)
        self.finished = True

    async def follow(self) -> AsyncIterator[str]:
        """Every frame from the first, live until the log is finished."""
        index = 0
        while True:
            if index < len(self.frames):
                index += 1
                yield self.frames[index - 1]
            elif self.finished:
                return
            else:
                # No await between the length check and wait(): an append cannot slip in.
                self._changed.clear()
                await self._changed.wait()


class ServerOptions(TypedDict, total=False):
    """The settings every :class:`ChatServer` takes besides its responder and address.

    Their defaults are :data:`DEFAULT_OPTIONS`, the one place they are written;
    ``nbchat serve`` takes its own defaults from there too.
    """

    token: str | None
    """When set, clients must send ``Authorization: Bearer <token>``."""
    allowed_origins: Iterable[str]
    """Browser origins accepted besides loopback ones; ``"*"`` accepts any."""
    max_size: int | None
    """Incoming frames above this many bytes close the connection with 1009."""
    max_logs: int
    """How many message ids are remembered for dedupe and resume."""
    max_log_frames: int
    """Finished logs are also evicted while all logs hold more frames than this."""


DEFAULT_OPTIONS: Final[ServerOptions] = {
    "token": None,
    "allowed_origins": (),
    "max_size": DEFAULT_MAX_SIZE,
    "max_logs": 1000,
    "max_log_frames": 1_000_000,
}
"""The default of every :class:`ServerOptions` setting."""


@dataclass
class _Conversation:
    """The unfinished generations of one conversation, oldest first."""

    pending: list[ReplyLog] = field(default_factory=list)
    tail: asyncio.Task[None] | None = None


class ChatServer:
    """A protocol v1 WebSocket server answering with any :class:`Responder`.

    Start it with ``async with ChatServer(responder) as server``, ``await
    ChatServer(responder)``, ``await ChatServer.start(responder)``, or from
    synchronous code with :meth:`start_in_thread` (then :meth:`stop`).
    """

    def __init__(
        self,
        responder: Responder,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        **options: Unpack[ServerOptions],
    ) -> None:
        settings: ServerOptions = {**DEFAULT_OPTIONS, **options}
        self.responder = responder
        self.host = host
        self.token = settings["token"]
        """When set, clients must send ``Authorization: Bearer <token>``."""
        self.allowed_origins = frozenset(o.rstrip("/") for o in settings["allowed_origins"])
        """Browser origins accepted besides loopback ones; ``"*"`` accepts any."""
        self.max_size = settings["max_size"]
        self.max_logs = settings["max_logs"]
        """How many message ids are remembered for dedupe and resume."""
        self.max_log_frames = settings["max_log_frames"]
        """Finished logs are also evicted while all logs hold more frames than this."""
        self._port = port
        self._server: Server | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._closed: asyncio.Event | None = None
        self._logs: OrderedDict[str, ReplyLog] = OrderedDict()
        self._conversations: dict[str | None, _Conversation] = {}
        self._generations: set[asyncio.Task[None]] = set()
        self._connections: dict[ServerConnection, asyncio.Event] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        state = "serving" if self.is_serving else "stopped"
        return f"<{type(self).__name__} {self.url if self._server else self.host} {state}>"

    # Lifecycle

    @classmethod
    async def start(cls: type[_S], *args: Any, **kwargs: Any) -> _S:
        """Create a server with these arguments and start listening."""
        return await cls(*args, **kwargs).open()

    async def open(self: _S) -> _S:
        """Start listening; raises :exc:`OSError` if the address cannot be bound."""
        if self._server is not None:
            return self
        self._closed = asyncio.Event()
        self._server = await serve(
            self._handle,
            self.host,
            self._port,
            process_request=self._process_request,
            max_size=self.max_size,
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        logger.info("listening on %s", self.url)
        return self

    async def close(self, *, grace: float | None = None) -> None:
        """Close every connection (1001), stop listening and cancel running generations.

        Clients get ``grace`` seconds to answer the closing handshake before their
        connection is aborted; None waits as long as websockets' ``close_timeout``
        (10 s). A client whose event loop is blocked (the caller of :meth:`stop`)
        can never answer, hence the short grace there.
        """
        if self._server is None:
            return
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(self._close(grace))
        await asyncio.shield(self._close_task)

    async def wait_closed(self) -> None:
        """Return once :meth:`close` has finished (from any task)."""
        if self._closed is not None:
            await self._closed.wait()

    def __await__(self: _S) -> Generator[Any, None, _S]:
        return self.open().__await__()

    async def __aenter__(self: _S) -> _S:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @classmethod
    def start_in_thread(cls: type[_S], *args: Any, **kwargs: Any) -> _S:
        """Start a server on its own event loop in a daemon thread, for synchronous callers."""
        server = cls(*args, **kwargs)
        ready = threading.Event()
        errors: list[BaseException] = []
        thread = threading.Thread(
            target=server._run_thread, args=(ready, errors), name="nbchat-server", daemon=True
        )
        thread.start()
        ready.wait()
        if errors:
            thread.join()
            raise errors[0]
        server._thread = thread
        return server

    def stop(self, timeout: float = 10.0, *, grace: float = 0.25) -> None:
        """Close a server started with :meth:`start_in_thread` and join its thread."""
        if self._thread is None or self._loop is None:
            raise RuntimeError("stop() is for servers started with start_in_thread()")
        loop, thread = self._loop, self._thread
        if thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.close(grace=grace), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)

    # Properties

    @property
    def port(self) -> int:
        """The port listened on (once started, the one the OS chose for port 0)."""
        return self._port

    @property
    def url(self) -> str:
        """The WebSocket URL clients connect to, e.g. ``ws://127.0.0.1:8000/ws``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{PATH}"

    @property
    def is_serving(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server is not None and self._server.is_serving()

    @property
    def connection_count(self) -> int:
        """How many WebSocket connections are open."""
        return len(self._connections)

    # Test hooks

    async def drop_connections(self) -> None:
        """Abort every connection's TCP transport, without a close frame: clients see 1006."""
        dropped = list(self._connections.items())
        for connection, _ in dropped:
            connection.transport.abort()
        await asyncio.gather(*(ended.wait() for _, ended in dropped))

    async def close_connections(self, code: int = 1001, reason: str = "") -> None:
        """Close every connection with a close frame carrying ``code`` and ``reason``."""
        closing = list(self._connections.items())
        await asyncio.gather(*(connection.close(code, reason) for connection, _ in closing))
        await asyncio.gather(*(ended.wait() for _, ended in closing))

    def cancel(self, conversation_id: str | None) -> int:
        """Cancel the unfinished generations of a conversation; return how many."""
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            return 0
        count = 0
        for log in conversation.pending:
            if log.task is not None and log.task.cancel():
                count += 1
        logger.debug("cancelled %d generation(s) in conversation %r", count, conversation_id)
        return count

    # Private methods: lifecycle

    async def _close(self, grace: float | None) -> None:
        assert self._server is not None
        self._server.close()  # closes open connections with 1001 going away
        try:
            await asyncio.wait_for(asyncio.shield(self._server.wait_closed()), grace)
        except asyncio.TimeoutError:
            for connection in list(self._connections):
                connection.transport.abort()
            await self._server.wait_closed()
        generations = list(self._generations)
        for task in generations:
            task.cancel()
        await asyncio.gather(*generations, return_exceptions=True)
        logger.info("closed %s", self.url)
        if self._closed is not None:
            self._closed.set()

    def _run_thread(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            try:
                loop.run_until_complete(self.open())
            except BaseException as exc:
                errors.append(exc)
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            loop.run_until_complete(_cancel_other_tasks())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    # Private methods: handshake

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, f"Not found: connect to {PATH}.\n")
        origins = request.headers.get_all("Origin")
        if len(origins) > 1 or (origins and not self._origin_allowed(origins[0])):
            logger.warning("refused a connection from origin %s", ", ".join(origins))
            return connection.respond(
                HTTPStatus.FORBIDDEN,
                "Forbidden origin: start the server with --allow-origin for this page.\n",
            )
        if self.token is not None and not self._token_valid(request.headers):
            logger.warning("refused a connection without a valid token")
            response = connection.respond(
                HTTPStatus.UNAUTHORIZED,
                "Missing or wrong token: send Authorization: Bearer <token>.\n",
            )
            response.headers["WWW-Authenticate"] = 'Bearer realm="nbchat"'
            return response
        return None

    def _origin_allowed(self, origin: str) -> bool:
        return (
            is_loopback_origin(origin)
            or origin.rstrip("/") in self.allowed_origins
            or "*" in self.allowed_origins
        )

    def _token_valid(self, headers: Headers) -> bool:
        assert self.token is not None
        values = headers.get_all("Authorization")
        if len(values) != 1:
            return False
        scheme, _, credentials = values[0].strip().partition(" ")
        # compare_digest: the time taken does not reveal how much of the token matched.
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self.token.encode()
        )

    # Private methods: connections

    async def _handle(self, connection: ServerConnection) -> None:
        ended = asyncio.Event()
        self._connections[connection] = ended
        forwarding: dict[str, asyncio.Task[None]] = {}
        logger.debug("connection opened from %s", connection.remote_address)
        try:
            async for frame in connection:
                await self._receive(connection, frame, forwarding)
        except ConnectionClosed:
            pass  # the client went away (or sent a frame above max_size: 1009)
        finally:
            for task in forwarding.values():
                task.cancel()
            await asyncio.gather(*forwarding.values(), return_exceptions=True)
            del self._connections[connection]
            ended.set()
            logger.debug("connection closed from %s", connection.remote_address)

    async def _receive(
        self,
        connection: ServerConnection,
        frame: str | bytes,
        forwarding: dict[str, asyncio.Task[None]],
    ) -> None:
        if isinstance(frame, bytes):
            await self._bad_request(connection, "binary frames are not supported: send JSON text")
            return
        try:
            message = parse_client_message(frame)
        except ProtocolError as exc:
            await self._bad_request(connection, str(exc))
            return
        if isinstance(message, CancelRequest):
            self.cancel(message.conversation_id)
            return
        log, duplicate = self._accept(message)
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
        task = asyncio.get_running_loop().create_task(self._forward(connection, log))
        forwarding[log.message_id] = task

        def forget(done: asyncio.Task[None]) -> None:
            if forwarding.get(log.message_id) is done:
                del forwarding[log.message_id]

        task.add_done_callback(forget)

    async def _bad_request(self, connection: ServerConnection, text: str) -> None:
        text = " ".join(text.split())
        if len(text) > _MAX_ERROR_TEXT:
            text = text[: _MAX_ERROR_TEXT - 3] + "..."
        logger.info("bad request from %s: %s", connection.remote_address, text)
        error = ErrorMessage(error=ErrorInfo(code="bad_request", message=text))
        await connection.send(dump(error))

    async def _forward(self, connection: ServerConnection, log: ReplyLog) -> None:
        try:
            async for frame in log.follow():
                await connection.send(frame)
        except ConnectionClosed:
            pass  # the log lives on: the client can resend the id to get it all

    # Private methods: generation

    def _accept(self, message: UserMessage) -> tuple[ReplyLog, bool]:
        """The log for a message, and whether it was already known (a duplicate)."""
        if message.id is not None:
            known = self._logs.get(message.id)
            if known is not None:
                self._logs.move_to_end(message.id)
                return known, True
        log = ReplyLog(message.id or new_id(), message.conversation_id)
        if message.id is not None:  # a server-assigned id can never be resent
            self._logs[message.id] = log
            self._evict()
        conversation = self._conversations.setdefault(message.conversation_id, _Conversation())
        task = asyncio.get_running_loop().create_task(
            self._generate(log, message.message, conversation.tail)
        )
        log.task = task
        conversation.pending.append(log)
        conversation.tail = task
        self._generations.add(task)
        task.add_done_callback(lambda done: self._generated(log, done))
        return log, False

    async def _generate(
        self, log: ReplyLog, text: str, previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # answer a conversation's messages in order
        stream = self.responder.respond(log.conversation_id or "", text)
        try:
            async for message in stream:
                if isinstance(message, ErrorMessage):
                    log.finish(message)
                    return
                log.append(message)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        log.finish(DoneMessage())

    def _generated(self, log: ReplyLog, task: asyncio.Task[None]) -> None:
        """Finish the log whatever happened: also runs for a task cancelled before it started."""
        self._generations.discard(task)
        if not log.finished:
            if task.cancelled():
                log.finish(DoneMessage(cancelled=True))
            else:
                error = task.exception()
                logger.error("generating the reply to %s failed", log.message_id, exc_info=error)
                log.finish(
                    ErrorMessage(
                        error=ErrorInfo(
                            code="internal_error",
                            message=f"the server failed to answer ({type(error).__name__})",
                        )
                    )
                )
        conversation = self._conversations.get(log.conversation_id)
        if conversation is not None:
            conversation.pending.remove(log)
            if conversation.tail is task:
                del self._conversations[log.conversation_id]

    def _evict(self) -> None:
        """Forget the least recently used finished logs beyond the limits."""
        frames = sum(len(log.frames) for log in self._logs.values())
        for message_id in list(self._logs):
            if len(self._logs) <= self.max_logs and frames <= self.max_log_frames:
                return
            log = self._logs[message_id]
            if log.finished:
                frames -= len(log.frames)
                del self._logs[message_id]


async def _cancel_other_tasks() -> None:
    """Cancel and await every task of the running loop but this one, before closing it."""
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
