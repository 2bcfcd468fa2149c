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
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeAlias

from ..attachments import Attachment
from ..config import HTTP_PROTOCOLS, ClientConfig
from ..exceptions import (
    ClientClosed,
    ConfigError,
    ConnectionFailed,
    NbchatError,
    ProtocolError,
    ReplyTimeout,
    ServerError,
)
from ..jsonprotocol import JsonProtocol
from ..parsing import as_user_message
from ..protocol import UserMessage, new_id
from ..reply import Reply
from ..session import Outcome, Pending, Session
from .attach import Attachable, attach_to, read_attachments
from .blocking import run_sync, running_loop
from .connection import Connection, ConnectionState
from .dispatch import Dispatcher
from .events import ClientEvent, Emitter, Listening
from .http import HttpConnection
from .kernel import Kernel, offer_kernel_tools, with_mentions
from .offering import ToolOffering
from .recording import Recording
from .status import ClientStatus
from .tools import ToolRunner
from .waiters import ReplyRestarted, StreamItem, Waiters

__all__ = ["ChatClient", "ClientEvent", "ConnectionState", "ReplyRestarted"]

logger = logging.getLogger("nbchat.client")


SendArg: TypeAlias = UserMessage | Mapping[str, Any] | str


class ChatClient(ClientStatus, Listening, ToolOffering, Recording):
    """An asyncio chat client with reconnection, a bounded queue and request/reply.

    All methods must be called from the event loop the client runs on (in a
    notebook, the kernel's loop); a client whose loop has ended moves to the
    next loop that uses it. ``ask_sync`` is the blocking bridge for cells and
    scripts. ``kernel_tools=True`` (in a kernel; a :class:`~nbchat.client.kernel.Kernel`
    elsewhere) offers the notebook's variables, last error and cells to the model,
    ``run_code=True`` running code too, each call approved (:mod:`nbchat.client.kernel`);
    ``@df`` in a message then carries df's description (``client.kernel`` is what they read).
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        tools: Iterable[Callable[..., Any]] = (),
        kernel_tools: bool | Kernel = False,
        run_code: bool = False,
        **overrides: Any,
    ) -> None:
        self.config = ClientConfig.build(config, **overrides)
        self.conversation_id: str = self.config.conversation_id or new_id()
        """Sent with every message unless the caller names another conversation."""
        self.failure: NbchatError | None = None
        """Why the client stopped trying, until the next :meth:`connect` or send."""
        self.closed_by_user = False
        """True after :meth:`disconnect`: no reconnection, sends refused until connect()."""
        self._session = Session(
            max_pending=self.config.max_queue, max_reply_bytes=self.config.max_reply_bytes
        )
        self._connection: Connection | None = None
        self._events = Emitter()
        self._emit = self._events.emit
        self._waiters = Waiters()
        self._identity = secrets.token_hex(16)
        """Sent in the handshake: the server scopes ids, resume and cancel to it. Never logged."""
        self._recorder = self._record_path = None
        self._tools = ToolRunner(self._send_tool_response)
        self._dispatcher = Dispatcher(self._waiters, self._events, self._tools)
        for function in tools:
            self.tool(function)
        self.kernel: Kernel | None = None  # the notebook's state, opt-in (kernel.py)
        if kernel_tools is not False or run_code:
            self.kernel = offer_kernel_tools(self.tool, kernel_tools, run_code=run_code)
        self._listen_to_config(self.config)
        if self.config.record is not None:
            self.record(self.config.record)

    def __repr__(self) -> str:
        return f"<ChatClient {self.safe_url} {self.state.value}>"

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
        await self._end_tools()  # running calls cancelled, the MCP servers it started ended
        connection = self._connection
        if connection is not None and connection.loop is running_loop():
            await connection.close()
        self._outcomes(
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

    # Public methods: messages

    def send(self, message: SendArg, *, attach: Iterable[Attachable] = ()) -> str:
        """Accept a message for delivery and return its id; never blocks.

        While not connected the message is queued and a connection is started;
        the queue is flushed in order on open. Raises :class:`QueueFull` when
        ``max_queue`` messages are already pending (nothing is dropped),
        :class:`ClientClosed` after :meth:`disconnect` (call :meth:`connect`),
        and :class:`ConfigError` where no event loop runs (a script), since
        nothing could deliver the message in the background: use ``ask_sync``.
        ``attach``: see :meth:`ask`; here only while connected.
        """
        if running_loop() is None:
            raise ConfigError(
                "send() delivers in the background and no event loop is running: "
                "in a script, use ask_sync(), or call send() inside asyncio.run()"
            )
        return self._submit(message, attachments=read_attachments(attach)).id

    async def ask(
        self,
        text: SendArg,
        conversation_id: str | None = None,
        timeout: float | None = None,
        *,
        attach: Iterable[Attachable] = (),
    ) -> Reply:
        """Send a message and wait for its complete reply.

        Raises :class:`ServerError` if the server answers with an error,
        :class:`ReplyTimeout` after ``timeout`` seconds, and the connection's
        failure if the client gives up reconnecting. A caller that gives up
        (timeout, cancelled task) abandons the message: it is not resent and
        the server is asked to stop its reply.

        ``attach``: figures, images, DataFrames, text, bytes and file paths to show
        the model (:mod:`nbchat.attachments`); it connects first, to learn whether
        the server takes them, and raises :class:`AttachmentError` before sending
        anything if they cannot be sent.
        """
        attachments = read_attachments(attach)
        if attachments and not self.is_connected:
            await self.connect()
        pending = self._submit(text, conversation_id, attachments)
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
        *,
        attach: Iterable[Attachable] = (),
    ) -> Reply:
        """:meth:`ask` for synchronous code: blocks until the reply is complete.

        In a notebook cell it runs on the kernel's own loop (see
        :mod:`nbchat.client.blocking`), so widgets keep updating while it waits.
        """
        __tracebackhide__ = True  # IPython and pytest show the caller's line, then the reason
        return run_sync(self.ask(text, conversation_id, timeout, attach=attach))

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
        """Stop the replies of a conversation; False if none is pending.

        A server that announced ``cancel`` is asked to stop them: the cancel is
        written again after a reconnect until those replies end, each of them
        then completing with ``cancelled=True``. Any other server is sent
        nothing: the replies complete here at once, ``cancelled=True``, with a
        WARNING that the server may still be generating.
        """
        conversation = conversation_id or self.conversation_id
        targets = {
            message_id
            for message_id, pending in self._session.pending.items()
            if pending.conversation_id == conversation
        }
        request, stopped = self._session.cancel(conversation)
        if request is None and not stopped:
            return False
        self._tools.cancel(targets)
        if request is None:
            self._outcomes(stopped)
            return True
        self._wake()
        self._emit("send", request)
        return True

    def replies(self) -> Iterator[asyncio.Future[Reply]]:
        """Futures of the replies still pending, oldest first."""
        return (self._waiters.future(message_id) for message_id in list(self._session.pending))

    # Private methods: submission

    def _submit(
        self,
        message: SendArg,
        conversation_id: str | None = None,
        attachments: list[Attachment] | None = None,
    ) -> Pending:
        if self.closed_by_user:
            raise ClientClosed("client is disconnected: call connect() before sending")
        try:
            user = as_user_message(message, conversation_id or self.conversation_id)
        except ProtocolError as exc:
            raise ConfigError(f"cannot send this: {exc}") from exc
        if conversation_id is not None and user.conversation_id != conversation_id:
            user = user.model_copy(update={"conversation_id": conversation_id})
        user = with_mentions(user, self.kernel)  # @df: its description, as context
        features = self.features if self.is_connected else None
        user = attach_to(user, attachments or [], features, self.safe_url)
        self._ensure_running()
        pending, new = self._session.submit(user)
        if new:
            self._emit("send", user)
        self._wake()
        return pending

    def _abandon(self, message_id: str, error: NbchatError) -> None:
        self._tools.cancel({message_id})
        self._outcomes(self._session.abandon(message_id, error))
        self._wake()

    # Carrying out what the session decided

    def _outcomes(self, outcomes: list[Outcome]) -> None:
        """Carry out what the session decided (also for the connection, once per frame)."""
        self._dispatcher.carry_out(outcomes)

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
        self._connection = self._new_connection(reached)
        return self._connection

    def _new_connection(self, reached: bool) -> Connection:
        """The connection task ``config.protocol`` needs: the one place it is chosen.

        ``"nbchat"``: protocol v1 over a WebSocket; a :class:`~nbchat.JsonProtocol`:
        the same WebSocket task, translating every frame through the protocol's codec.
        """
        protocol = self.config.protocol
        if protocol in HTTP_PROTOCOLS:  # AG-UI, the AI SDK: runs over HTTP, histories kept
            old = self._connection
            return HttpConnection(  # type: ignore[return-value]
                self.config,
                self._session,
                self._identity,
                self._dispatcher.carry_out,
                self._stopped,
                self._emit,
                reached,
                threads=old.threads if isinstance(old, HttpConnection) else None,
            )
        return Connection(
            self.config,
            self._session,
            self._identity,
            self._dispatcher.carry_out,  # straight to it: called once per frame
            self._stopped,
            self._emit,
            reached,
            codec=protocol.codec() if isinstance(protocol, JsonProtocol) else None,
        )

    def _move_to(self, old: Connection) -> None:
        """The loop changed: refuse if the old one still runs elsewhere, else start afresh."""
        if not old.loop.is_closed() and old.loop.is_running():
            raise ConfigError(
                "this ChatClient runs on another thread's event loop: "
                "use it from that loop, or make one ChatClient per loop"
            )
        logger.info("client moves to a new event loop; the old one has ended")
        # The old loop's futures never run again: the session's messages stay (resent), they go.
        self._session.closed()
        self._waiters.forget()
        self._events.forget_tasks()
        old.set_state(ConnectionState.DISCONNECTED)

    def _wake(self) -> None:
        if self._connection is not None:
            self._connection.wake()

    # What the connection hands this client besides the outcomes

    def _stopped(self, failure: NbchatError) -> None:
        """The connection gave up: fail what is pending (for the connection)."""
        self.failure = failure
        self._tools.cancel()
        self._emit("error", failure)
        self._outcomes(self._session.fail_all(failure))
