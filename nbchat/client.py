"""ChatClient: the asyncio WebSocket client, a thin shell around the pure core.

What it adds to the TypeScript client it carries over (../shared/seed):

- ``disconnect()`` never schedules a reconnect (the original's ``onclose`` did);
- reconnection backs off exponentially with jitter (:mod:`nbchat.policy`);
- the queue is bounded and flushed by one writer per connection: a socket that
  drops mid-flush leaves the rest queued, in order, for the next connection;
- nothing accepted is lost: a message stays pending until its reply is
  complete, is sent again with the same id after a reconnect (the server
  dedupes by id and resumes the reply), or is reported failed.

One task per client (``_run``) owns the connection: it connects, reads, and
decides on reconnection. ``send()`` only appends to the outbox and wakes the
writer, so it can be called from synchronous code on the loop (callbacks, the
widget).
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
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
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
    QueueFull,
    ReconnectExhausted,
    ReplyTimeout,
    ServerError,
    TranscriptError,
)
from .policy import Disconnect, backoff
from .protocol import (
    AckMessage,
    CancelRequest,
    ErrorMessage,
    ServerMessage,
    UnknownMessage,
    UserMessage,
    dump,
    new_id,
    parse_client_message,
    parse_server_message,
)
from .reply import Reply, ReplyBuilder
from .transcript import Recorder

__all__ = [
    "ChatClient",
    "ConnectionState",
    "Event",
    "destroy_client",
    "get_client",
]

logger = logging.getLogger("nbchat.client")

Event: TypeAlias = Literal["open", "close", "error", "message", "send", "state"]
_EVENTS: frozenset[str] = frozenset({"open", "close", "error", "message", "send", "state"})

# Frames between max_size and this multiple of it are refused one by one (the
# connection survives); beyond it websockets closes the connection (1009) so a
# hostile server cannot make the client buffer without bound.
_HARD_LIMIT_FACTOR = 16

SendArg: TypeAlias = UserMessage | CancelRequest | Mapping[str, Any] | str


class ConnectionState(str, enum.Enum):
    """Where the connection is in its lifecycle (the seed's state diagram)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSING = "closing"

    def __str__(self) -> str:
        return self.value


@dataclass(eq=False)
class _Pending:
    """A user message accepted by ``send()`` whose reply is not complete yet."""

    message: UserMessage
    frame: str
    builder: ReplyBuilder
    future: asyncio.Future[Reply]
    listeners: list[asyncio.Queue[ServerMessage | BaseException]] = field(default_factory=list)
    acked: bool = False
    seen: int = 0
    """Reply messages received so far; a resumed reply (duplicate ack) skips this many."""
    skip: int = 0


class ChatClient:
    """An asyncio chat client with reconnection, a bounded queue and request/reply.

    All methods must be called from the event loop the client runs on (in a
    notebook, the kernel's loop). ``ask_sync`` is the blocking bridge for cells.
    """

    def __init__(self, config: ClientConfig | None = None, **overrides: Any) -> None:
        self.config = ClientConfig.build(config, **overrides)
        self.conversation_id: str = self.config.conversation_id or new_id()
        """Sent with every message unless the caller names another conversation."""
        self.attempt = 0
        """Consecutive failed (re)connection attempts; 0 while connected."""
        self.last_disconnect: Disconnect | None = None
        """How the last connection ended, for status displays."""
        self._state = ConnectionState.DISCONNECTED
        self._listeners: dict[str, tuple[Callable[..., Any], ...]] = {name: () for name in _EVENTS}
        """Copied on (un)subscribe, so emitting iterates without copying."""
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._outbox: deque[tuple[str, str | None]] = deque()
        """Frames to write, with the id of the user message each carries (None: a cancel)."""
        self._wake_writer = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._closed_by_user = False
        self._opened: asyncio.Event | None = None
        self._failure: NbchatError | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._recorder: Recorder | None = None
        self._record_path: str | os.PathLike[str] | None = None
        self._register_config_callbacks()
        if self.config.record is not None:
            self.record(self.config.record)

    def __repr__(self) -> str:
        return f"<ChatClient {self.config.url} {self._state.value}>"

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
    def url(self) -> str:
        """The server URL."""
        return self.config.url

    @property
    def queued(self) -> int:
        """Messages accepted but not yet written to the current connection."""
        return len(self._outbox)

    @property
    def pending(self) -> int:
        """Messages whose reply is not complete yet."""
        return len(self._pending)

    # Public methods: lifecycle

    async def connect(self) -> None:
        """Open the connection, retrying per the policy; raise if it cannot be opened.

        Returns once connected. Raises :class:`HandshakeRejected` (wrong token,
        forbidden origin) at once, :class:`ReconnectExhausted` once the attempts
        are used up, :class:`ConnectionFailed` when the policy gives up.
        """
        self._closed_by_user = False
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
            raise self._failure or ConnectionFailed(f"could not connect to {self.url}")

    async def disconnect(self) -> None:
        """Close with 1000 "Client disconnect"; cancel any pending reconnect; never reconnect.

        Pending ``ask()`` calls fail with :class:`ClientClosed`, and so does every
        accepted message that had no complete reply: they are reported, not lost.
        """
        self._closed_by_user = True
        task = self._task
        if task is None or task.done():
            self._fail_pending(ClientClosed("client disconnected before the reply arrived"))
            self._close_recorder()
            return
        self._set_state(ConnectionState.CLOSING)
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close(1000, "Client disconnect")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._fail_pending(ClientClosed("client disconnected before the reply arrived"))
        self._set_state(ConnectionState.DISCONNECTED)
        self._close_recorder()

    async def aclose(self) -> None:
        """Alias of :meth:`disconnect`, for ``contextlib.aclosing`` and friends."""
        await self.disconnect()

    async def __aenter__(self) -> ChatClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    # Public methods: events

    def on(self, event: Event, callback: Callable[..., Any]) -> Callable[[], None]:
        """Call ``callback`` on ``event``; return a function that unsubscribes it.

        Events and their arguments: ``open()``, ``close(code, reason)``,
        ``error(exc)``, ``message(message)``, ``state(state)``, and
        ``send(message)`` when a user message is accepted. A coroutine
        function is scheduled as a task. A callback that raises is logged and
        does not disturb the client.
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
        flushed one line each as they happen; headers (tokens) never are.
        Recording stops at :meth:`stop_recording`, and pauses while disconnected.
        """
        self.stop_recording()
        self._record_path = path
        self._recorder = Recorder(path, url=self.url)
        return self._recorder

    def stop_recording(self) -> None:
        """Close the transcript file, if one is being written."""
        self._record_path = None
        self._close_recorder()

    def _close_recorder(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()

    # Public methods: messages

    def send(self, message: SendArg) -> str:
        """Accept a message for delivery and return its id; never blocks.

        While not connected the message is queued and a connection is started;
        the queue is flushed in order on open. Raises :class:`QueueFull` when
        ``max_queue`` messages are already waiting (nothing is dropped), and
        :class:`ClientClosed` after :meth:`disconnect` (call :meth:`connect`).
        """
        return self._submit(message).message.id or ""

    async def ask(
        self,
        text: SendArg,
        conversation_id: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """Send a message and wait for its complete reply.

        Raises :class:`ServerError` if the server answers with an error,
        :class:`ReplyTimeout` after ``timeout`` seconds, and the connection's
        failure if the client gives up reconnecting.
        """
        pending = self._submit(text, conversation_id)
        try:
            reply = await asyncio.wait_for(asyncio.shield(pending.future), timeout)
        except asyncio.TimeoutError as exc:
            raise ReplyTimeout(
                f"no complete reply to message {pending.message.id} within {timeout} s: "
                "raise the timeout or check the server"
            ) from exc
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
    ) -> AsyncIterator[ServerMessage]:
        """Send a message now; iterate over its reply's server messages, ending after ``done``.

        An ``error`` reply raises :class:`ServerError` from the iterator.
        """
        pending = self._submit(text, conversation_id)
        queue: asyncio.Queue[ServerMessage | BaseException] = asyncio.Queue()
        for message in pending.builder.messages:
            queue.put_nowait(message)
        pending.listeners.append(queue)
        return self._iterate(pending, queue)

    def cancel(self, conversation_id: str | None = None) -> bool:
        """Ask the server to stop the reply being generated; False if not connected.

        The reply then completes with ``cancelled=True``.
        """
        if not self.is_connected:
            return False
        request = CancelRequest(conversation_id=conversation_id or self.conversation_id)
        self._enqueue(dump(request), None)
        self._emit("send", request)
        return True

    def replies(self) -> Iterator[asyncio.Future[Reply]]:
        """Futures of the replies still pending, oldest first."""
        return (pending.future for pending in list(self._pending.values()))

    # Private methods: submission

    def _submit(self, message: SendArg, conversation_id: str | None = None) -> _Pending:
        if self._closed_by_user:
            raise ClientClosed("client is disconnected: call connect() before sending")
        if len(self._outbox) >= self.config.max_queue:
            raise QueueFull(self.config.max_queue)
        user = self._as_user_message(message, conversation_id)
        assert user.id is not None
        if user.id in self._pending:
            return self._pending[user.id]
        loop = asyncio.get_running_loop()
        pending = _Pending(
            message=user,
            frame=dump(user),
            builder=ReplyBuilder(message_id=user.id, conversation_id=user.conversation_id),
            future=loop.create_future(),
        )
        # A reply nobody awaits must not log "exception was never retrieved".
        pending.future.add_done_callback(_consume_exception)
        self._pending[user.id] = pending
        self._enqueue(pending.frame, user.id)
        self._emit("send", user)
        self._ensure_running()
        return pending

    def _as_user_message(self, message: SendArg, conversation_id: str | None) -> UserMessage:
        cid = conversation_id or self.conversation_id
        if isinstance(message, str):
            return UserMessage(message=message, conversation_id=cid)
        if isinstance(message, CancelRequest):
            raise ConfigError("send a cancel with client.cancel(), not send()")
        if isinstance(message, UserMessage):
            parsed = message
        else:
            try:
                parsed_any = parse_client_message(dump_mapping(message))
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

    def _enqueue(self, frame: str, message_id: str | None) -> None:
        self._outbox.append((frame, message_id))
        self._wake_writer.set()

    async def _iterate(
        self, pending: _Pending, queue: asyncio.Queue[ServerMessage | BaseException]
    ) -> AsyncIterator[ServerMessage]:
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, ErrorMessage):
                    raise ServerError(item.error.code, item.error.message)
                yield item
                if pending.builder.done and queue.empty():
                    return
        finally:
            with contextlib.suppress(ValueError):
                pending.listeners.remove(queue)

    # Private methods: the connection task

    def _ensure_running(self) -> None:
        if self._task is not None and not self._task.done():
            return
        if self._recorder is None and self._record_path is not None:
            self._recorder = Recorder(self._record_path, url=self.url)
        loop = asyncio.get_running_loop()
        self._failure = None
        self._opened = asyncio.Event()
        self._stopped = loop.create_future()
        self._stopped.add_done_callback(_consume_exception)
        # The connection outlives whatever started it (in a notebook: a cell), so it
        # runs in a fresh context rather than inheriting the caller's. ipykernel 7
        # keeps the parent request in a context variable; unset, it falls back to
        # the request running now, so output from events reaches the current cell.
        self._task = contextvars.Context().run(
            loop.create_task, self._run(), name=f"nbchat-client {self.url}"
        )

    async def _run(self) -> None:
        assert self._stopped is not None
        delays = self._delays()
        self.attempt = 0
        try:
            while True:
                disconnect, uptime = await self._connect_once()
                self.last_disconnect = disconnect
                if uptime >= self.config.stable_after:
                    self.attempt = 0
                    delays = self._delays()
                if self._closed_by_user:
                    return
                failure = self._give_up_reason(disconnect)
                if failure is not None:
                    self._stop(failure)
                    return
                self.attempt += 1
                self._set_state(ConnectionState.DISCONNECTED)
                delay = next(delays)
                logger.info(
                    "reconnecting to %s in %.2f s (attempt %d of %d)",
                    self.url,
                    delay,
                    self.attempt,
                    self.config.max_reconnect_attempts,
                )
                await asyncio.sleep(delay)
        finally:
            self._ws = None
            if not self._stopped.done():
                self._stopped.set_result(None)
            if self._state is not ConnectionState.CLOSING:
                self._set_state(ConnectionState.DISCONNECTED)

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
                f"connection to {self.url} {what} and will not be retried: call connect() again"
            )
        if self.attempt >= self.config.max_reconnect_attempts:
            return ReconnectExhausted(self.attempt, self.url)
        return None

    def _stop(self, failure: NbchatError) -> None:
        """Stop for good: say so in an ``error`` event, fail what is pending."""
        self._failure = failure
        logger.error("%s", failure)
        self._emit("error", failure)
        self._fail_pending(failure)

    async def _connect_once(self) -> tuple[Disconnect, float]:
        """Open one connection and serve it until it ends; return how it ended and its uptime."""
        self._set_state(ConnectionState.CONNECTING)
        loop = asyncio.get_running_loop()
        try:
            ws = await ws_connect(
                self.url,
                additional_headers=self.config.headers or None,
                open_timeout=self.config.open_timeout,
                ping_interval=self.config.ping_interval,
                ping_timeout=self.config.ping_timeout,
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
            return Disconnect(status=status, reason=detail, error=exc), 0.0
        except InvalidURI as exc:
            return Disconnect(status=400, reason=str(exc), error=exc), 0.0
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
            reason = str(exc) or type(exc).__name__
            logger.info("could not connect to %s: %s", self.url, reason)
            return Disconnect(reason=reason, error=exc), 0.0
        opened_at = loop.time()
        self._ws = ws
        self._prepare_outbox()
        self.attempt = 0 if self.config.stable_after == 0 else self.attempt
        self._set_state(ConnectionState.CONNECTED)
        assert self._opened is not None
        self._opened.set()
        self._emit("open")
        writer = loop.create_task(self._write(ws), name="nbchat-client writer")
        try:
            await self._read(ws)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            self._ws = None
        code, reason = ws.close_code, ws.close_reason or ""
        if code == 1005:  # "no status received": the server closed without a code
            code = 1000
        self._emit("close", code, reason)
        return Disconnect(code=code, reason=reason), loop.time() - opened_at

    def _prepare_outbox(self) -> None:
        """On open: everything pending whose reply is incomplete goes first, in order, same id."""
        queued = {message_id for _, message_id in self._outbox}
        resend: list[tuple[str, str | None]] = []
        for message_id, pending in self._pending.items():
            if message_id not in queued:
                pending.skip = pending.seen
                resend.append((pending.frame, message_id))
        if resend:
            logger.info("resending %d messages without a complete reply", len(resend))
        # Cancels belong to the connection they were meant for; drop stale ones.
        self._outbox = deque(resend + [item for item in self._outbox if item[1] is not None])
        self._wake_writer.set()

    async def _write(self, ws: ClientConnection) -> None:
        """Drain the outbox in order; on failure the unsent frame stays first in line."""
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            while self._outbox:
                frame, _ = self._outbox[0]
                try:
                    await ws.send(frame)
                except ConnectionClosed:
                    return  # the reader sees the close; the frame stays queued
                self._outbox.popleft()

    async def _read(self, ws: ClientConnection) -> None:
        # The hot loop: one iteration per server frame, tens of thousands a second.
        limit = self.config.max_size or float("inf")
        recv, dispatch = ws.recv, self._dispatch
        while True:
            try:
                frame = await recv()
            except ConnectionClosed:
                return
            if type(frame) is str and len(frame) <= limit:
                try:
                    message = parse_server_message(frame)
                except ProtocolError as exc:
                    self._bad_frame(exc)
                else:
                    dispatch(message)
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
        logger.warning("ignored a bad frame from %s: %s", self.url, exc)
        self._emit("error", exc)

    # Private methods: routing replies

    def _dispatch(self, message: ServerMessage) -> None:
        key = message.reply_to
        pending = self._pending.get(key) if key is not None else self._route(message)
        if message.type == "ack":
            if pending is not None:
                pending.acked = True
                if pending.skip and not getattr(message, "duplicate", None):
                    self._restart(pending)
            self._emit("message", message)
            return
        if pending is not None:
            if pending.skip:
                pending.skip -= 1
                return  # already delivered before the reconnect
            pending.seen += 1
            pending.builder.feed(message)
            for queue in pending.listeners:
                queue.put_nowait(message)
        elif message.type == "error" and isinstance(message, ErrorMessage):
            self._emit("error", ServerError(message.error.code, message.error.message))
        self._emit("message", message)
        if pending is not None and pending.builder.done:
            self._complete(pending)

    def _route(self, message: ServerMessage) -> _Pending | None:
        """Which pending message this answers: by ``reply_to``, else its conversation's oldest."""
        if message.reply_to is not None:
            return self._pending.get(message.reply_to)
        if isinstance(message, AckMessage) and message.id is not None:
            return self._pending.get(message.id)
        for pending in self._pending.values():
            if message.conversation_id in (None, pending.message.conversation_id):
                return pending
        return None

    def _restart(self, pending: _Pending) -> None:
        """The server did not know a resent id (it restarted): the reply begins again."""
        logger.info("reply to %s restarts: the server had no record of it", pending.message.id)
        pending.skip = 0
        pending.seen = 0
        pending.builder = ReplyBuilder(
            message_id=pending.message.id, conversation_id=pending.message.conversation_id
        )
        notice = UnknownMessage(
            type="reply_restart",
            reply_to=pending.message.id,
            conversation_id=pending.message.conversation_id,
        )
        for queue in pending.listeners:
            queue.put_nowait(notice)
        self._emit("message", notice)

    def _complete(self, pending: _Pending) -> None:
        assert pending.message.id is not None
        self._pending.pop(pending.message.id, None)
        if not pending.future.done():
            pending.future.set_result(pending.builder.build())

    def _fail_pending(self, exc: NbchatError) -> None:
        self._outbox.clear()
        while self._pending:
            _, pending = self._pending.popitem(last=False)
            if not pending.future.done():
                pending.future.set_exception(exc)
            for queue in pending.listeners:
                queue.put_nowait(exc)

    # Private methods: events

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        self._emit("state", state)

    def _emit(self, event: str, *args: Any) -> None:
        if self._recorder is not None:
            self._record_event(self._recorder, event, args)
        for callback in self._listeners[event]:
            try:
                result = callback(*args)
                if result is not None and inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
            except Exception:
                logger.exception("nbchat %s callback %r raised", event, callback)

    def _record_event(self, recorder: Recorder, event: str, args: tuple[Any, ...]) -> None:
        try:
            if event == "send":
                recorder.sent(args[0])
            elif event == "message":
                recorder.received(args[0])
            elif event == "state":
                detail = self.last_disconnect.reason if self.last_disconnect else ""
                recorder.state(args[0].value, detail)
            elif event == "error":
                recorder.error(str(args[0]), getattr(args[0], "raw", None))
        except TranscriptError as exc:
            # A full disk must not take the conversation down with it: stop recording, say so.
            self._recorder = None
            logger.error("stopped recording: %s", exc)
            self._emit("error", exc)

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


def dump_mapping(message: Mapping[str, Any]) -> str:
    """A mapping as JSON text, converting a non-serialisable value into a ConfigError."""
    try:
        return json.dumps(dict(message))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"message is not JSON-serialisable: {exc}") from exc


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
