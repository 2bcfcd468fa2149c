"""The reference WebSocket server: protocol v1 at ``/ws`` on websockets' asyncio server.

This module is the server's lifecycle: its settings, listening, the handshake,
starting and closing (on a loop of its own in a thread, for synchronous
callers). Each accepted connection is served by ``frames.py``; what is
remembered for whom, and the bounds on it, are decided by ``registry.py``
(dedupe, resume, cancel and limits, all scoped to a client) and carried out by
``sessions.py``; what writes the replies is a :class:`~nbchat.server.Responder`.

The handshake is checked in this order: path (404), Origin (403), token (401),
client identity (400). Every text path is linear in the frame's size, which
``max_size`` bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Generator, Iterable
from http import HTTPStatus
from types import TracebackType
from typing import Any, Final, TypedDict, TypeVar

from typing_extensions import Unpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.protocol import State

from ..config import DEFAULT_MAX_SIZE
from ..protocol import BACKEND_HEADER, FEATURES_HEADER
from .forward import capped
from .frames import FrameHandler
from .handshake import FEATURES, PATH, check_request, full
from .registry import Limits
from .responder import Responder
from .sessions import Sessions

__all__ = ["DEFAULT_HOST", "DEFAULT_OPTIONS", "ChatServer", "ServerOptions"]

logger = logging.getLogger("nbchat.server")

DEFAULT_HOST = "127.0.0.1"
"""Loopback only unless told otherwise: the server is for this machine's notebooks."""

_S = TypeVar("_S", bound="ChatServer")

_FD_RESERVE = 64
"""File descriptors kept for everything but connections: the listening socket, logs, a
model bridge's HTTP connections."""
_REFUSAL_MARGIN = 16
"""Sockets past ``max_connections`` still read, to be answered 503; more are dropped."""


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
    """Finished replies remembered for dedupe and resume, over all clients (LRU)."""
    max_log_bytes: int
    """Bytes of reply logs (and texts waiting their turn) kept over all clients; finished
    replies are forgotten first (LRU), then messages refused and growing replies cut."""
    max_client_bytes: int
    """The same bound for one client's replies and waiting texts."""
    max_generations: int
    """Replies generated at once for one client; the next ones wait their turn."""
    max_queued: int
    """Replies of one client waiting their turn; one more is refused (``too_many_replies``)."""
    grace: float
    """Seconds a client's replies go on after its last connection closed, for it to resume."""
    max_tool_calls: int
    """Client tool calls one client may have in progress; one more is an error result."""
    max_departed: int
    """Clients within their grace period at once; beyond, the one gone longest is forgotten."""
    max_departed_per_source: int
    """The same bound for the clients of one remote address."""
    max_connections: int
    """Open connections (handshakes included); one more is refused with HTTP 503. Lowered
    to fit the process's file descriptor limit (``RLIMIT_NOFILE``) when that is lower."""
    idle_timeout: float | None
    """Seconds a connection may send no frame while no reply goes to it; then it is closed
    (1001: nbchat clients reconnect). None: never."""


DEFAULT_OPTIONS: Final[ServerOptions] = {
    "token": None,
    "allowed_origins": (),
    "max_size": DEFAULT_MAX_SIZE,
    "max_logs": 1000,
    "max_log_bytes": 128 * 2**20,
    "max_client_bytes": 16 * 2**20,
    "max_generations": 8,
    "max_queued": 64,
    "grace": 60.0,
    "max_tool_calls": 16,
    "max_departed": 256,
    "max_departed_per_source": 16,
    "max_connections": 4096,  # above the 1,000 streams of benchmarks/server_concurrency.py
    "idle_timeout": 600.0,
}
"""The default of every :class:`ServerOptions` setting."""


class ChatServer:
    """A protocol v1 WebSocket server answering with any :class:`Responder`.

    Start it with ``async with ChatServer(responder) as server``, ``await
    ChatServer(responder)``, ``await ChatServer.start(responder)``, or from
    synchronous code with :meth:`start_in_thread` (then :meth:`close_sync`).
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
        self.limits = Limits(
            max_logs=settings["max_logs"],
            max_log_bytes=settings["max_log_bytes"],
            max_client_bytes=settings["max_client_bytes"],
            max_generations=settings["max_generations"],
            max_queued=settings["max_queued"],
            grace=settings["grace"],
            max_tool_calls=settings["max_tool_calls"],
            max_departed=settings["max_departed"],
            max_departed_per_source=settings["max_departed_per_source"],
        )
        """The bounds on what each client may hold (see :class:`ServerOptions`)."""
        self.sessions = Sessions(responder, self.limits)
        """Generates and stops replies as the registry decides."""
        self.registry = self.sessions.registry
        """Clients, their replies and logs: counts for monitoring and tests."""
        self.max_connections = settings["max_connections"]
        """Open connections at most; lowered at :meth:`open` to fit the file descriptor limit."""
        self._frames = FrameHandler(self.sessions, settings["idle_timeout"])
        self._port = port
        self._server: Server | None = None
        self._close_task: asyncio.Task[None] | None = None
        self._closed: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        state = "serving" if self.is_serving else "closed"
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
        self.max_connections = min(self.max_connections, _fd_room())
        self._server = await serve(
            self._frames,
            self.host,
            self._port,
            process_request=self._process_request,
            process_response=self._announce,
            max_size=self.max_size,
            # Replies are small JSON frames: deflate cost ~10% of the CPU and ~46 KB
            # per connection for little gain on loopback (benchmarks/server_concurrency.py).
            compression=None,
            # Sockets past the cap and its margin for 503s are dropped as they are accepted.
            create_connection=capped(self.max_connections + _REFUSAL_MARGIN),
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        logger.info("listening on %s", self.url)
        return self

    async def close(self, *, grace: float | None = None) -> None:
        """Close every connection (1001), stop listening and cancel every reply in progress.

        Clients get ``grace`` seconds to answer the closing handshake before their
        connection is aborted; None waits as long as websockets' ``close_timeout``
        (10 s). A client whose event loop is blocked (the caller of
        :meth:`close_sync`) can never answer, hence the short grace there.
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
        return cls(*args, **kwargs).serve_in_thread()

    def serve_in_thread(self: _S) -> _S:
        """Open this server on its own event loop in a daemon thread; return it once listening.

        The synchronous twin of ``await server``; :meth:`close_sync` stops it.
        """
        ready = threading.Event()
        errors: list[BaseException] = []
        thread = threading.Thread(
            target=self._run_thread, args=(ready, errors), name="nbchat-server", daemon=True
        )
        thread.start()
        ready.wait()
        if errors:
            thread.join()
            raise errors[0]
        self._thread = thread
        return self

    def close_sync(self, timeout: float = 10.0, *, grace: float = 0.25) -> None:
        """Close a server started with :meth:`start_in_thread` and join its thread."""
        if self._thread is None or self._loop is None:
            raise RuntimeError(
                "close_sync() is for servers started with start_in_thread(): await close()"
            )
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
    def connections(self) -> tuple[ServerConnection, ...]:
        """The open WebSocket connections, e.g. to close some with a code of your choice."""
        return tuple(c for c in self._frames.connections if c.state is not State.CLOSED)

    @property
    def connection_count(self) -> int:
        """How many WebSocket connections are open."""
        return len(self.connections)

    # Private methods: lifecycle

    async def _close(self, grace: float | None) -> None:
        assert self._server is not None
        self._server.close()  # closes open connections with 1001 going away
        try:
            await asyncio.wait_for(asyncio.shield(self._server.wait_closed()), grace)
        except asyncio.TimeoutError:
            for connection in list(self._frames.connections):
                connection.transport.abort()
            await self._server.wait_closed()
        await self.sessions.close()
        # A responder holding resources (a model bridge's HTTP connections) releases
        # them here, on the loop they belong to, once no reply runs any more.
        closer = getattr(self.responder, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
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

    def _announce(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response:
        description = getattr(self.responder, "description", None)
        return _announce(
            connection, response, description if isinstance(description, str) else None
        )

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        refusal = check_request(
            request.path, request.headers, token=self.token, allowed_origins=self.allowed_origins
        )
        if refusal is None and len(connection.server.handler_tasks) > self.max_connections:
            refusal = full(self.max_connections)
        if refusal is None:
            return None
        if refusal.status == HTTPStatus.SERVICE_UNAVAILABLE:
            logger.debug(refusal.log)  # under a flood of connections: no flood of lines
        elif refusal.status != HTTPStatus.NOT_FOUND:
            logger.warning(refusal.log)
        response = connection.respond(refusal.status, refusal.body)
        for name, value in refusal.headers:
            response.headers[name] = value
        return response


def _announce(connection: ServerConnection, response: Response, backend: str | None) -> Response:
    """The opening handshake's response names the extensions supported and what answers."""
    if response.status_code == HTTPStatus.SWITCHING_PROTOCOLS:
        response.headers[FEATURES_HEADER] = ", ".join(FEATURES)
        if backend:
            response.headers[BACKEND_HEADER] = backend
    return response


def _fd_room() -> int:
    """Connections this process's file descriptor limit leaves room for (large if unknown)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 2**31
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 2**31
    return max(1, soft - _FD_RESERVE - _REFUSAL_MARGIN)


async def _cancel_other_tasks() -> None:
    """Cancel and await every task of the running loop but this one, before closing it."""
    tasks = asyncio.all_tasks() - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
