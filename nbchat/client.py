"""ChatClient: the asyncio shell that moves bytes and time for the delivery session.

What it adds to the TypeScript client it carries over (../shared/seed):

- ``disconnect()`` never schedules a reconnect (the original's ``onclose`` did);
- reconnection backs off exponentially with jitter (:mod:`nbchat.policy`);
- nothing accepted is lost: a message stays pending until its reply is
  complete, is sent again with the same id after a reconnect (the server
  dedupes by id and resumes the reply), or is reported failed to whoever waits.

Every delivery decision (what to write, which pending message a server message
answers, resume and restart) is made by :class:`~nbchat.session.Session`, which
has no I/O. This module only connects, reads, writes, waits and tells
listeners. One task per client (``_run``) owns the connection; ``send()`` only
hands a message to the session and wakes the writer, so it can be called from
synchronous code on the loop (callbacks, the widget).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import inspect
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Literal, TypeAlias

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .blocking import run_sync
from .config import ClientConfig
from .exceptions import (
    ClientClosed,
    ConfigError,
    ConnectionFailed,
    HandshakeRejected,
    NbchatError,
    ProtocolError,
    ReconnectExhausted,
    ReplyTimeout,
    ServerError,
)
from .policy import NORMAL_CLOSURE, Disconnect, backoff
from .protocol import (
    CLIENT_ID_HEADER,
    CancelRequest,
    ErrorMessage,
    ServerMessage,
    UserMessage,
    new_id,
    parse_client_message,
    parse_server_message,
)
from .redact import redact_url
from .reply import Reply
from .session import Completed, Failed, Outcome, Pending, Received, Restarted, Session
from .transcript import Recorder

__all__ = [
    "ChatClient",
    "ClientEvent",
    "ConnectionState",
    "ReplyRestarted",
    "destroy_client",
    "get_client",
]

logger = logging.getLogger("nbchat.client")

ClientEvent: TypeAlias = Literal[
    "open", "close", "error", "message", "send", "state", "restart", "failed"
]
_EVENTS: frozenset[str] = frozenset(
    {"open", "close", "error", "message", "send", "state", "restart", "failed"}
)

# Frames between max_size and this multiple of it are refused one by one (the
# connection survives); beyond it websockets closes the connection (1009) so a
# hostile server cannot make the client buffer without bound.
_HARD_LIMIT_FACTOR = 16
_MESSAGE_TOO_BIG = 1009

SendArg: TypeAlias = UserMessage | Mapping[str, Any] | str


class ConnectionState(str, enum.Enum):
    """Where the connection is in its lifecycle (the seed's state diagram)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSING = "closing"

    def __str__(self) -> str:
        return self.value


class ReplyRestarted:
    """Yielded by :meth:`ChatClient.stream` when the server lost a reply and began it again.

    Everything the stream yielded before it is void: the reply starts over.
    """

    def __init__(self, message_id: str) -> None:
        self.message_id = message_id

    def __repr__(self) -> str:
        return f"<ReplyRestarted {self.message_id}>"


_StreamItem: TypeAlias = ServerMessage | ReplyRestarted | NbchatError


class ChatClient:
    """An asyncio chat client with reconnection, a bounded queue and request/reply.

    All methods must be called from the event loop the client runs on (in a
    notebook, the kernel's loop); a client whose loop has ended moves to the
    next loop that uses it. ``ask_sync`` is the blocking bridge for cells and
    scripts.
    """

    def __init__(self, config: ClientConfig | None = None, **overrides: Any) -> None:
        self.config = ClientConfig.build(config, **overrides)
        self.conversation_id: str = self.config.conversation_id or new_id()
        """Sent with every message unless the caller names another conversation."""
        self.attempt = 0
        """Consecutive failed (re)connection attempts; 0 while connected."""
        self.last_disconnect: Disconnect | None = None
        """How the last connection ended, for status displays."""
        self.failure: NbchatError | None = None
        """Why the client stopped trying, until the next :meth:`connect` or send."""
        self.closed_by_user = False
        """True after :meth:`disconnect`: no reconnection, sends refused until connect()."""
        self._session = Session(max_pending=self.config.max_queue)
        self._state = ConnectionState.DISCONNECTED
        self._reconnecting = False
        self._listeners: dict[str, tuple[Callable[..., Any], ...]] = {name: () for name in _EVENTS}
        """Copied on (un)subscribe, so emitting iterates without copying."""
        self._waiters: dict[str, asyncio.Future[Reply]] = {}
        self._streams: dict[str, list[asyncio.Queue[_StreamItem]]] = {}
        self._identity = secrets.token_hex(16)
        """Sent in the handshake: the server scopes ids, resume and cancel to it. Never logged."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_writer: asyncio.Event | None = None
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._opened: asyncio.Event | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._recorder: Recorder | None = None
        self._record_path: str | os.PathLike[str] | None = None
        self._register_config_callbacks()
        if self.config.record is not None:
            self._record_path = self.config.record

    def __repr__(self) -> str:
        return f"<ChatClient {self.safe_url} {self._state.value}>"

    # Public properties

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        return self._state

    @property
    def is_connected(self) -> bool:
        """True while a connection is open."""
        return self._state is ConnectionState.CONNECTED

    @property
    def reconnecting(self) -> bool:
        """True between connections while the client will try again."""
        return self._reconnecting

    @property
    def url(self) -> str:
        """The server URL."""
        return self.config.url

    @property
    def safe_url(self) -> str:
        """The server URL with credentials replaced by ``***``: the form logs and errors show."""
        return redact_url(self.config.url) or ""

    @property
    def queued(self) -> int:
        """Frames accepted but not yet written to a connection."""
        return self._session.queued

    @property
    def pending(self) -> int:
        """Messages whose reply is not complete yet (bounded by ``max_queue``)."""
        return len(self._session.pending)

    # Public methods: lifecycle

    async def connect(self) -> None:
        """Open the connection, retrying per the policy; raise if it cannot be opened.

        Returns once connected. Raises :class:`HandshakeRejected` (wrong token,
        forbidden origin) at once, :class:`ReconnectExhausted` once the attempts
        are used up, :class:`ConnectionFailed` when the policy gives up.
        """
        self.closed_by_user = False
        self._ensure_running()
        assert self._opened is not None and self._stopped is not None
        if self.is_connected:
            return
        opened: asyncio.Future[Any] = asyncio.ensure_future(self._opened.wait())
        try:
            await asyncio.wait({opened, self._stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
        if not self.is_connected:
            raise self.failure or ConnectionFailed(f"could not connect to {self.safe_url}")

    async def disconnect(self) -> None:
        """Close with 1000 "Client disconnect"; cancel any pending reconnect; never reconnect.

        Prompt even when the server hangs: the closing handshake waits at most
        ``close_timeout``. Pending ``ask()`` calls fail with
        :class:`ClientClosed`, and so does every accepted message that had no
        complete reply: they are reported, not lost.
        """
        self.closed_by_user = True
        self._reconnecting = False
        task = self._task
        if task is not None and not task.done() and self._loop is _running_loop():
            self._set_state(ConnectionState.CLOSING)
            ws = self._ws
            if ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        ws.close(NORMAL_CLOSURE, "Client disconnect"), self.config.close_timeout
                    )
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._carry_out(
            self._session.fail_all(ClientClosed("client disconnected before the reply arrived"))
        )
        self._set_state(ConnectionState.DISCONNECTED)
        self._close_recorder()

    async def aclose(self) -> None:
        """Alias of :meth:`disconnect`, for ``contextlib.aclosing`` and friends."""
        await self.disconnect()

    def close_sync(self) -> None:
        """:meth:`disconnect` for synchronous code (scripts): leaves no task behind."""
        run_sync(self.disconnect())

    async def __aenter__(self) -> ChatClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    # Public methods: events

    def on(self, event: ClientEvent, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call ``callback`` on ``event``; return a function that unsubscribes it.

        Events and their arguments: ``open()``, ``close(code, reason)``,
        ``error(exc)``, ``state(state)``, ``send(message)`` when a message or
        cancel is accepted, ``message(message)`` for every server message
        (its ``reply_to`` is the id of the message it answers, as the client
        decided, or None), ``restart(message_id)`` when the server had lost a
        reply and begins it again, and ``failed(message_id, exc)`` when a reply
        will never be complete. A coroutine function is scheduled as a task. A
        callback that raises is logged and does not disturb the client.
        """
        if event not in _EVENTS:
            raise ConfigError(f"unknown event {event!r}: use one of {sorted(_EVENTS)}")
        self._listeners[event] += (callback,)

        def unsubscribe() -> None:
            callbacks = list(self._listeners[event])
            with contextlib.suppress(ValueError):
                callbacks.remove(callback)
            self._listeners[event] = tuple(callbacks)

        return unsubscribe

    # Public methods: recording

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

    # Public methods: messages

    def send(self, message: SendArg) -> str:
        """Accept a message for delivery and return its id; never blocks.

        While not connected the message is queued and a connection is started;
        the queue is flushed in order on open. Raises :class:`QueueFull` when
        ``max_queue`` messages are already pending (nothing is dropped), and
        :class:`ClientClosed` after :meth:`disconnect` (call :meth:`connect`).
        With no running event loop (a script), connecting waits for the next
        blocking call (``ask_sync``).
        """
        return self._submit(message).id

    async def ask(
        self,
        text: SendArg,
        conversation_id: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send a message and wait for its complete reply.

        Raises :class:`ServerError` if the server answers with an error,
        :class:`ReplyTimeout` after ``timeout`` seconds, and the connection's
        failure if the client gives up reconnecting. A caller that gives up
        (timeout, cancelled task) abandons the message: it is not resent and
        the server is asked to stop its reply.
        """
        pending = self._submit(text, conversation_id)
        future = self._waiter(pending.id)
        try:
            reply = await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            error = ReplyTimeout(
                f"no complete reply to message {pending.id} within {timeout} s: "
                "raise the timeout or check the server"
            )
            self._abandon(pending.id, error)
            raise error from None
        except asyncio.CancelledError:
            self._abandon(pending.id, ClientClosed("the caller stopped waiting for the reply"))
            raise
        if reply.error is not None:
            raise ServerError(reply.error.code, reply.error.message)
        return reply

    def ask_sync(
        self,
        text: SendArg,
        conversation_id: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """:meth:`ask` for synchronous code: blocks until the reply is complete.

        In a notebook cell it runs on the kernel's own loop (see
        :mod:`nbchat.blocking`), so widgets keep updating while it waits.
        """
        return run_sync(self.ask(text, conversation_id, timeout))

    def stream(
        self, text: SendArg, conversation_id: str | None = None
    ) -> AsyncIterator[ServerMessage | ReplyRestarted]:
        """Send a message now; iterate over its reply's server messages, ending after ``done``.

        An ``error`` reply raises :class:`ServerError` from the iterator; a
        :class:`ReplyRestarted` item means the reply starts over. Leaving the
        iteration early abandons the message, as a timed-out :meth:`ask` does.
        """
        pending = self._submit(text, conversation_id)
        queue: asyncio.Queue[_StreamItem] = asyncio.Queue()
        for message in pending.builder.messages:
            queue.put_nowait(message)
        self._streams.setdefault(pending.id, []).append(queue)
        return self._iterate(pending.id, queue)

    def cancel(self, conversation_id: str | None = None) -> bool:
        """Ask the server to stop the replies of a conversation; False if none is pending.

        The cancel is written again after a reconnect until those replies end,
        each of them then completing with ``cancelled=True``.
        """
        request = self._session.cancel(conversation_id or self.conversation_id)
        if request is None:
            return False
        self._wake()
        self._emit("send", request)
        return True

    def replies(self) -> Iterator[asyncio.Future[Reply]]:
        """Futures of the replies still pending, oldest first."""
        return (self._waiter(message_id) for message_id in list(self._session.pending))

    # Private methods: submission

    def _submit(self, message: SendArg, conversation_id: str | None = None) -> Pending:
        if self.closed_by_user:
            raise ClientClosed("client is disconnected: call connect() before sending")
        user = self._as_user_message(message, conversation_id)
        pending, new = self._session.submit(user)
        if new:
            self._emit("send", user)
        self._ensure_running(required=False)
        self._wake()
        return pending

    def _as_user_message(self, message: SendArg, conversation_id: str | None) -> UserMessage:
        cid = conversation_id or self.conversation_id
        if isinstance(message, str):
            return UserMessage(message=message, conversation_id=cid)
        if isinstance(message, UserMessage):
            parsed = message
        else:
            if not isinstance(message, Mapping):
                raise ConfigError(
                    f"cannot send a {type(message).__name__}: send text, a mapping or a UserMessage"
                )
            try:
                parsed_any = parse_client_message(json.dumps(dict(message)))
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"message is not JSON-serialisable: {exc}") from exc
            except ProtocolError as exc:
                raise ConfigError(f"cannot send this message: {exc}") from exc
            if isinstance(parsed_any, CancelRequest):
                raise ConfigError("send a cancel with client.cancel(), not send()")
            parsed = parsed_any
        updates: dict[str, Any] = {}
        if parsed.id is None:
            updates["id"] = new_id()
        if parsed.conversation_id is None or conversation_id is not None:
            updates["conversation_id"] = cid
        return parsed.model_copy(update=updates) if updates else parsed

    def _waiter(self, message_id: str) -> asyncio.Future[Reply]:
        future = self._waiters.get(message_id)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            # A reply nobody awaits must not log "exception was never retrieved".
            future.add_done_callback(_consume_exception)
            self._waiters[message_id] = future
        return future

    def _abandon(self, message_id: str, error: NbchatError) -> None:
        self._carry_out(self._session.abandon(message_id, error))
        self._wake()

    async def _iterate(
        self, message_id: str, queue: asyncio.Queue[_StreamItem]
    ) -> AsyncIterator[ServerMessage | ReplyRestarted]:
        finished = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, NbchatError):
                    finished = True
                    raise item
                if isinstance(item, ErrorMessage):
                    finished = True
                    raise ServerError(item.error.code, item.error.message)
                done = getattr(item, "type", None) == "done"
                finished = done
                yield item
                if done:
                    return
        finally:
            queues = self._streams.get(message_id, [])
            with contextlib.suppress(ValueError):
                queues.remove(queue)
            if not queues:
                self._streams.pop(message_id, None)
            if not finished:
                self._abandon(message_id, ClientClosed("the caller stopped reading the reply"))

    # Private methods: carrying out what the session decided

    def _carry_out(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            if type(outcome) is Received:  # the hot path: one per server frame
                message = outcome.message
                if message.type != "ack":
                    for queue in self._streams.get(message.reply_to or "", ()):
                        queue.put_nowait(message)
                if message.reply_to is None and isinstance(message, ErrorMessage):
                    self._emit("error", ServerError(message.error.code, message.error.message))
                self._emit("message", message)
            elif isinstance(outcome, Completed):
                future = self._waiters.pop(outcome.message_id, None)
                if future is not None and not future.done():
                    future.set_result(outcome.reply)
            elif isinstance(outcome, Restarted):
                logger.info("reply to %s restarts: the server had lost it", outcome.message_id)
                for queue in self._streams.get(outcome.message_id, ()):
                    queue.put_nowait(ReplyRestarted(outcome.message_id))
                self._emit("restart", outcome.message_id)
            elif isinstance(outcome, Failed):
                future = self._waiters.pop(outcome.message_id, None)
                if future is not None and not future.done():
                    future.set_exception(outcome.error)
                for queue in self._streams.get(outcome.message_id, ()):
                    queue.put_nowait(outcome.error)
                self._emit("failed", outcome.message_id, outcome.error)

    # Private methods: the connection task

    def _ensure_running(self, required: bool = True) -> None:
        """Start the connection task on the running loop (moving there if the old one ended)."""
        loop = _running_loop()
        if loop is None:
            if required:
                raise ConfigError(
                    "no running event loop: await this in async code, or use ask_sync()"
                )
            return
        if self._loop is not loop:
            self._move_to(loop)
        if self._task is not None and not self._task.done():
            return
        if self._recorder is None and self._record_path is not None:
            self._open_recorder(self._record_path)
        self.failure = None
        self._opened = asyncio.Event()
        self._stopped = loop.create_future()
        self._stopped.add_done_callback(_consume_exception)
        # The connection outlives whatever started it (in a notebook: a cell), so it
        # runs in a fresh context rather than inheriting the caller's. ipykernel 7
        # keeps the parent request in a context variable; unset, it falls back to
        # the request running now, so output from events reaches the current cell.
        self._task = contextvars.Context().run(
            loop.create_task, self._run(), name=f"nbchat-client {self.safe_url}"
        )

    def _move_to(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to ``loop``; refuse if the loop this client runs on is still running elsewhere."""
        old = self._loop
        if old is not None and not old.is_closed() and old.is_running():
            raise ConfigError(
                "this ChatClient runs on another thread's event loop: "
                "use it from that loop, or make one ChatClient per loop"
            )
        if old is not None:
            logger.info("client moves to a new event loop; the old one has ended")
            # The old loop's tasks and futures can never run again: start afresh,
            # keeping what the session holds (pending messages are resent).
            self._task = None
            self._ws = None
            self._session.closed()
            for future in self._waiters.values():
                if not future.done():
                    future.cancel()
            self._waiters.clear()
            self._streams.clear()
            self._background.clear()
            self._set_state(ConnectionState.DISCONNECTED)
        self._loop = loop
        self._wake_writer = asyncio.Event()

    def _wake(self) -> None:
        if self._wake_writer is not None:
            self._wake_writer.set()

    async def _run(self) -> None:
        assert self._stopped is not None
        try:
            await self._connection_loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug here must never leave a caller waiting forever: everyone hears of it.
            logger.exception("the connection task of %s failed", self.safe_url)
            self._stop(ConnectionFailed(f"the client failed unexpectedly ({exc!r}): reconnect"))
        finally:
            self._ws = None
            self._reconnecting = False
            self._session.closed()
            if not self._stopped.done():
                self._stopped.set_result(None)
            if self._state is not ConnectionState.CLOSING:
                self._set_state(ConnectionState.DISCONNECTED)

    async def _connection_loop(self) -> None:
        delays = self._delays()
        self.attempt = 0
        while True:
            disconnect, progressed = await self._connect_once()
            self.last_disconnect = disconnect
            if progressed:
                # The server answered on that connection: a restart loop that lets
                # work through is ridden out, however short each connection was.
                self.attempt = 0
                delays = self._delays()
            if self.closed_by_user:
                return
            failure = self._give_up_reason(disconnect)
            if failure is not None:
                self._stop(failure)
                return
            self.attempt += 1
            self._reconnecting = True
            self._set_state(ConnectionState.DISCONNECTED)
            delay = next(delays)
            logger.info(
                "reconnecting to %s in %.2f s (attempt %d of %d)",
                self.safe_url,
                delay,
                self.attempt,
                self.config.max_reconnect_attempts,
            )
            await asyncio.sleep(delay)

    def _delays(self) -> Iterator[float]:
        return backoff(
            self.config.reconnect_interval,
            self.config.backoff_factor,
            self.config.max_reconnect_interval,
            self.config.jitter,
        )

    def _give_up_reason(self, disconnect: Disconnect) -> NbchatError | None:
        """None to reconnect, else the error that stops the client."""
        if disconnect.status is not None and not self.config.should_reconnect(disconnect):
            return HandshakeRejected(disconnect.status, disconnect.reason)
        if not self.config.reconnect or not self.config.should_reconnect(disconnect):
            what = (
                f"closed with code {disconnect.code}"
                if disconnect.code is not None
                else f"failed ({disconnect.reason})"
            )
            if disconnect.reason and disconnect.code is not None:
                what += f" ({disconnect.reason})"
            return ConnectionFailed(
                f"connection to {self.safe_url} {what} and will not be retried: "
                "check the server, then send again"
            )
        if self.attempt >= self.config.max_reconnect_attempts:
            return ReconnectExhausted(self.attempt, self.safe_url)
        return None

    def _stop(self, failure: NbchatError) -> None:
        """Stop for good: say so in an ``error`` event, fail what is pending."""
        self.failure = failure
        self._reconnecting = False
        logger.error("%s", failure)
        self._emit("error", failure)
        self._carry_out(self._session.fail_all(failure))

    async def _connect_once(self) -> tuple[Disconnect, bool]:
        """Open one connection and serve it until it ends: how it ended, and if it progressed."""
        self._set_state(ConnectionState.CONNECTING)
        loop = asyncio.get_running_loop()
        try:
            ws = await ws_connect(
                self.url,
                additional_headers={
                    **self.config.handshake_headers(),
                    CLIENT_ID_HEADER: self._identity,
                },
                open_timeout=self.config.open_timeout,
                ping_interval=self.config.ping_interval,
                ping_timeout=self.config.ping_timeout,
                close_timeout=self.config.close_timeout,
                max_size=(
                    None
                    if self.config.max_size is None
                    else self.config.max_size * _HARD_LIMIT_FACTOR
                ),
                proxy=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body or b""
            detail = body.decode("utf-8", "replace").strip()[:200]
            return Disconnect(status=status, reason=detail, error=exc), False
        except InvalidURI as exc:
            return Disconnect(status=400, reason=f"invalid URL {self.safe_url}", error=exc), False
        except (OSError, asyncio.TimeoutError, InvalidHandshake, ValueError) as exc:
            # ValueError: what the URL parser lets through but the socket refuses (a bad port).
            reason = str(exc) or type(exc).__name__
            logger.info("could not connect to %s: %s", self.safe_url, reason)
            return Disconnect(reason=reason, error=exc), False
        self._ws = ws
        resent = self._session.opened()
        self._wake()
        if resent:
            logger.info("resending %d messages without a complete reply", resent)
        self.attempt = 0 if self.config.stable_after == 0 else self.attempt
        self._reconnecting = False
        self._set_state(ConnectionState.CONNECTED)
        assert self._opened is not None
        self._opened.set()
        self._emit("open")
        opened_at = loop.time()
        writer = loop.create_task(self._write(ws), name="nbchat-client writer")
        try:
            progressed = await self._read(ws)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            # Closed already, unless this task was cancelled (its loop is ending): then
            # release the socket now rather than leave it to the garbage collector.
            ws.transport.abort()
            self._ws = None
            self._session.closed()
        if loop.time() - opened_at >= self.config.stable_after:
            progressed = True
        code, reason = ws.close_code, ws.close_reason or ""
        self._emit("close", code, reason)
        return Disconnect(code=code, reason=reason), progressed

    async def _write(self, ws: ClientConnection) -> None:
        """Drain the outbox in order; on failure the unsent frame stays first in line."""
        wake = self._wake_writer
        assert wake is not None
        session = self._session
        while True:
            await wake.wait()
            wake.clear()
            while (frame := session.next_frame()) is not None:
                try:
                    await ws.send(frame)
                except ConnectionClosed:
                    return  # the reader sees the close; the frame stays queued
                session.written()

    async def _read(self, ws: ClientConnection) -> bool:
        """Read until the connection ends; True if the server sent anything."""
        # The hot loop: one iteration per server frame, tens of thousands a second.
        limit = self.config.max_size or float("inf")
        recv, receive, carry_out = ws.recv, self._session.receive, self._carry_out
        progressed = False
        while True:
            try:
                frame = await recv()
            except ConnectionClosed as exc:
                if exc.sent is not None and exc.sent.code == _MESSAGE_TOO_BIG:
                    self._bad_frame(
                        ProtocolError(
                            f"the server sent a frame over {limit * _HARD_LIMIT_FACTOR:.0f} "
                            "bytes: connection closed (1009); raise max_size if it is legitimate"
                        )
                    )
                return progressed
            progressed = True
            if type(frame) is str and len(frame) <= limit:
                try:
                    message = parse_server_message(frame)
                except ProtocolError as exc:
                    self._bad_frame(exc)
                else:
                    carry_out(receive(message))
            elif isinstance(frame, bytes):
                self._bad_frame(ProtocolError("binary frame refused: protocol v1 uses text", frame))
            else:
                self._bad_frame(
                    ProtocolError(
                        f"frame of {len(frame)} characters refused (max_size {limit})",
                        frame[:1024],
                    )
                )

    def _bad_frame(self, exc: ProtocolError) -> None:
        logger.warning("ignored a bad frame from %s: %s", self.safe_url, exc)
        self._emit("error", exc)

    # Private methods: events and recording

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        self._emit("state", state)

    def _emit(self, event: str, *args: Any) -> None:
        for callback in self._listeners[event]:
            try:
                result = callback(*args)
                if result is not None and inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
            except Exception:
                logger.exception("nbchat %s callback %r raised", event, callback)

    def _open_recorder(self, path: str | os.PathLike[str]) -> Recorder:
        recorder = Recorder(path, url=self.url)
        recorder.attach(self, on_failure=self._recording_failed)
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

    def _register_config_callbacks(self) -> None:
        config = self.config
        if config.on_open is not None:
            self.on("open", config.on_open)
        if config.on_close is not None:
            self.on("close", config.on_close)
        if config.on_error is not None:
            self.on("error", config.on_error)
        if config.on_message is not None:
            self.on("message", config.on_message)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


# The app-wide instance (the seed's singleton pattern).

_instance: ChatClient | None = None


def get_client(config: ClientConfig | None = None, **overrides: Any) -> ChatClient:
    """The app-wide client, created on first call from ``config``; later configs are ignored."""
    global _instance
    if _instance is None:
        _instance = ChatClient(config, **overrides)
    return _instance


async def destroy_client() -> None:
    """Disconnect and forget the app-wide client."""
    global _instance
    instance, _instance = _instance, None
    if instance is not None:
        await instance.disconnect()
