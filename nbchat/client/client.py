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
listeners; the connection task (:mod:`nbchat.connection`) moves the bytes.
``send()`` only hands a message to the session and wakes the writer, so it can
be called from synchronous code on the loop (callbacks, the widget).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeAlias, TypeVar, overload

from ..config import ClientConfig
from ..exceptions import (
    ClientClosed,
    ConfigError,
    ConnectionFailed,
    NbchatError,
    ProtocolError,
    ReplyTimeout,
    ServerError,
)
from ..policy import Disconnect
from ..protocol import (
    ErrorMessage,
    ServerMessage,
    ToolResponse,
    UserMessage,
    as_user_message,
    dump,
    new_id,
)
from ..redact import redact_url
from ..reply import Reply
from ..session import (
    NOTICES,
    Completed,
    Failed,
    Outcome,
    Pending,
    Restarted,
    Session,
    ToolRequested,
)
from ..transcript import Recorder
from .blocking import run_sync
from .connection import Connection, ConnectionState
from .events import ClientEvent, Emitter
from .tools import ClientTool, ToolApprover, ToolRunner
from .waiters import ReplyRestarted, StreamItem, Waiters

__all__ = [
    "ChatClient",
    "ClientEvent",
    "ConnectionState",
    "ReplyRestarted",
    "destroy_client",
    "get_client",
]

logger = logging.getLogger("nbchat.client")


SendArg: TypeAlias = UserMessage | Mapping[str, Any] | str

_NOTICE_TYPES = frozenset(NOTICES)

_F = TypeVar("_F", bound=Callable[..., Any])


class ChatClient:
    """An asyncio chat client with reconnection, a bounded queue and request/reply.

    All methods must be called from the event loop the client runs on (in a
    notebook, the kernel's loop); a client whose loop has ended moves to the
    next loop that uses it. ``ask_sync`` is the blocking bridge for cells and
    scripts.
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        tools: Iterable[Callable[..., Any]] = (),
        **overrides: Any,
    ) -> None:
        self.config = ClientConfig.build(config, **overrides)
        self.conversation_id: str = self.config.conversation_id or new_id()
        """Sent with every message unless the caller names another conversation."""
        self.failure: NbchatError | None = None
        """Why the client stopped trying, until the next :meth:`connect` or send."""
        self.closed_by_user = False
        """True after :meth:`disconnect`: no reconnection, sends refused until connect()."""
        self._session = Session(max_pending=self.config.max_queue)
        self._connection: Connection | None = None
        self._events = Emitter()
        self._emit = self._events.emit
        self._waiters = Waiters()
        self._identity = secrets.token_hex(16)
        """Sent in the handshake: the server scopes ids, resume and cancel to it. Never logged."""
        self._recorder: Recorder | None = None
        self._record_path: str | os.PathLike[str] | None = None
        self._tools = ToolRunner(self._send_tool_response)
        for function in tools:
            self.tool(function)
        self._register_config_callbacks()
        if self.config.record is not None:
            self.record(self.config.record)

    def __repr__(self) -> str:
        return f"<ChatClient {self.safe_url} {self.state.value}>"

    # Public properties

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        connection = self._connection
        return connection.state if connection is not None else ConnectionState.DISCONNECTED

    @property
    def is_connected(self) -> bool:
        """True while a connection is open."""
        return self.state is ConnectionState.CONNECTED

    @property
    def reconnecting(self) -> bool:
        """True between connections while the client will try again."""
        return self._connection is not None and self._connection.reconnecting

    @property
    def attempt(self) -> int:
        """Consecutive failed (re)connection attempts; 0 while connected."""
        return self._connection.attempt if self._connection is not None else 0

    @property
    def last_disconnect(self) -> Disconnect | None:
        """How the last connection ended, for status displays."""
        return self._connection.last_disconnect if self._connection is not None else None

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

    @property
    def tools(self) -> Mapping[str, ClientTool]:
        """The functions offered to the server as tools, by name (read-only, live)."""
        return self._tools.view

    @property
    def approver(self) -> ToolApprover | None:
        """Asked before each call of a ``confirm=True`` tool: ``await approver(call)``.

        ``call`` is the :class:`~nbchat.ToolCall` (id, name, arguments); True runs
        it, False returns "denied by the user" to the model. While None, such
        calls are refused, saying that confirmation is needed and nothing can
        ask. :class:`~nbchat.ChatWidget` sets it to show Run / Deny on the card.
        """
        return self._tools.approver

    @approver.setter
    def approver(self, approver: ToolApprover | None) -> None:
        self._tools.approver = approver

    # Public methods: tools

    @overload
    def tool(self, fn: _F, *, name: str | None = None, confirm: bool = False) -> _F: ...

    @overload
    def tool(
        self, fn: None = None, *, name: str | None = None, confirm: bool = False
    ) -> Callable[[_F], _F]: ...

    def tool(
        self, fn: _F | None = None, *, name: str | None = None, confirm: bool = False
    ) -> _F | Callable[[_F], _F]:
        """Offer a typed function (sync or async) to the server's model; return it unchanged.

        Usable as ``client.tool(fn)``, ``@client.tool`` and
        ``@client.tool(confirm=True)``. The JSON Schema comes from the signature
        and the docstring (:mod:`nbchat.toolspec`); a function without type hints
        raises :class:`~nbchat.ToolSpecError` with a one-line reason. A tool of
        the same name is replaced. The server learns of the change at once (if
        connected) and on every reconnect. Calls run in this process: an
        ``async def`` on the client's loop (Stop cancels it), a plain function
        in a worker thread. See :mod:`nbchat.client_tools` for what each call
        does with bad arguments, exceptions and large results.
        """

        def register(function: _F) -> _F:
            self._tools.add(ClientTool.of(function, name=name, confirm=confirm))
            self._declare_tools()
            return function

        return register if fn is None else register(fn)

    def remove_tool(self, name: str) -> None:
        """Stop offering the tool ``name``; :class:`ConfigError` (one line) if there is none."""
        self._tools.remove(name)
        self._declare_tools()

    # Public methods: lifecycle

    async def connect(self) -> None:
        """Open the connection, retrying per the policy; raise if it cannot be opened.

        Returns once connected. Raises :class:`HandshakeRejected` (wrong token,
        forbidden origin) at once, :class:`ReconnectExhausted` once the attempts
        are used up (or, for a server never reached, after ``connect_timeout``
        seconds: 5 by default), :class:`ConnectionFailed` when the policy gives
        up. Each retry is logged (logger ``nbchat.client``, WARNING) and seen
        as ``state`` events.
        """
        self.closed_by_user = False
        connection = self._ensure_running()
        if not self.is_connected:
            opened: asyncio.Future[Any] = asyncio.ensure_future(connection.opened.wait())
            try:
                waiting: set[asyncio.Future[Any]] = {opened, connection.finished}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
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
        self._tools.cancel()
        connection = self._connection
        if connection is not None and connection.loop is _running_loop():
            await connection.close()
        self.outcomes(
            self._session.fail_all(ClientClosed("client disconnected before the reply arrived"))
        )
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
        return self._events.on(event, callback)

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
        ``max_queue`` messages are already pending (nothing is dropped),
        :class:`ClientClosed` after :meth:`disconnect` (call :meth:`connect`),
        and :class:`ConfigError` where no event loop runs (a script), since
        nothing could deliver the message in the background: use ``ask_sync``.
        """
        if _running_loop() is None:
            raise ConfigError(
                "send() delivers in the background and no event loop is running: "
                "in a script, use ask_sync(), or call send() inside asyncio.run()"
            )
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
        future = self._waiters.future(pending.id)
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
    ) -> AsyncIterator[StreamItem]:
        """Send a message now; iterate over its reply's server messages, ending after ``done``.

        An ``error`` reply raises :class:`ServerError` from the iterator; a
        :class:`ReplyRestarted` item means the reply starts over. Leaving the
        iteration early abandons the message, as a timed-out :meth:`ask` does.
        """
        pending = self._submit(text, conversation_id)

        def abandon(message_id: str) -> None:
            self._abandon(message_id, ClientClosed("the caller stopped reading the reply"))

        return self._waiters.stream(pending.id, pending.builder.messages, abandon)

    def cancel(self, conversation_id: str | None = None) -> bool:
        """Ask the server to stop the replies of a conversation; False if none is pending.

        The cancel is written again after a reconnect until those replies end,
        each of them then completing with ``cancelled=True``.
        """
        conversation = conversation_id or self.conversation_id
        request = self._session.cancel(conversation)
        if request is None:
            return False
        self._tools.cancel(
            {
                message_id
                for message_id, pending in self._session.pending.items()
                if pending.conversation_id == conversation
            }
        )
        self._wake()
        self._emit("send", request)
        return True

    def replies(self) -> Iterator[asyncio.Future[Reply]]:
        """Futures of the replies still pending, oldest first."""
        return (self._waiters.future(message_id) for message_id in list(self._session.pending))

    # Private methods: submission

    def _submit(self, message: SendArg, conversation_id: str | None = None) -> Pending:
        if self.closed_by_user:
            raise ClientClosed("client is disconnected: call connect() before sending")
        try:
            user = as_user_message(message, conversation_id or self.conversation_id)
        except ProtocolError as exc:
            raise ConfigError(f"cannot send this: {exc}") from exc
        if conversation_id is not None and user.conversation_id != conversation_id:
            user = user.model_copy(update={"conversation_id": conversation_id})
        self._ensure_running()
        pending, new = self._session.submit(user)
        if new:
            self._emit("send", user)
        self._wake()
        return pending

    def _abandon(self, message_id: str, error: NbchatError) -> None:
        self._tools.cancel({message_id})
        self.outcomes(self._session.abandon(message_id, error))
        self._wake()

    # Carrying out what the session decided

    def outcomes(self, outcomes: list[Outcome]) -> None:
        """Carry out what the session decided (also for the connection, once per frame)."""
        waiters, emit = self._waiters, self._emit
        for outcome in outcomes:
            if type(outcome) not in _NOTICE_TYPES:  # the hot path: a server message, each frame
                # Narrowed by the check above (a set lookup: isinstance on a tuple costs more).
                message: ServerMessage = outcome  # type: ignore[assignment]
                if waiters.streams:
                    waiters.received(message)
                if message.reply_to is None and isinstance(message, ErrorMessage):
                    emit("error", ServerError(message.error.code, message.error.message))
                emit("message", message)
            elif isinstance(outcome, Completed):
                waiters.completed(outcome.message_id, outcome.reply)
            elif isinstance(outcome, Restarted):
                logger.info("reply to %s restarts: the server had lost it", outcome.message_id)
                waiters.restarted(outcome.message_id)
                emit("restart", outcome.message_id)
            elif isinstance(outcome, Failed):
                waiters.failed(outcome.message_id, outcome.error)
                emit("failed", outcome.message_id, outcome.error)
            elif isinstance(outcome, ToolRequested):
                self._tools.requested(outcome.request, outcome.key)

    # Private methods: tools

    def _declare_tools(self) -> None:
        self._session.declare_tools(dump(self._tools.declaration()))
        self._wake()

    def _send_tool_response(self, response: ToolResponse) -> None:
        self._session.tool_result(response.id, dump(response))
        self._wake()

    # Private methods: the connection

    def _ensure_running(self) -> Connection:
        """Start a connection on the running loop (moving there if the old one ended)."""
        loop = asyncio.get_running_loop()
        connection = self._connection
        if connection is not None and connection.loop is not loop:
            self._move_to(connection)
            connection = None
        if connection is not None and connection.running:
            return connection
        if self._recorder is None and self._record_path is not None:
            self._open_recorder(self._record_path)
        self.failure = None
        reached = self._connection is not None and self._connection.reached
        self._connection = Connection(
            self.config, self._session, self._identity, self, self._emit, reached
        )
        return self._connection

    def _move_to(self, old: Connection) -> None:
        """The loop changed: refuse if the old one still runs elsewhere, else start afresh."""
        if not old.loop.is_closed() and old.loop.is_running():
            raise ConfigError(
                "this ChatClient runs on another thread's event loop: "
                "use it from that loop, or make one ChatClient per loop"
            )
        logger.info("client moves to a new event loop; the old one has ended")
        # The old loop's tasks and futures can never run again: what the session
        # holds stays (pending messages are resent), the waiters of that loop go.
        self._session.closed()
        self._waiters.forget()
        self._events.forget_tasks()
        old.set_state(ConnectionState.DISCONNECTED)

    def _wake(self) -> None:
        if self._connection is not None:
            self._connection.wake()

    # ConnectionListener: what the connection hands this client

    def stopped(self, failure: NbchatError) -> None:
        """The connection gave up: fail what is pending (for the connection)."""
        self.failure = failure
        self._tools.cancel()
        self._emit("error", failure)
        self.outcomes(self._session.fail_all(failure))

    # Private methods: events and recording

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
