"""The connection task: connect, read, write, reconnect with backoff (the I/O half of a client).

One :class:`Connection` per :class:`~nbchat.client.ChatClient`. Its task owns
the WebSocket: it opens it (retrying per :mod:`nbchat.policy`), writes what the
:class:`~nbchat.session.Session` has queued, parses each frame and hands it to
the session, and hands its owner what the session decided (``carry_out``) and,
once, why it gave up (``stopped``): two callables, so the owner keeps them
private. It decides nothing about delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from ..config import ClientConfig
from ..exceptions import (
    ConfigError,
    ConnectionFailed,
    HandshakeRejected,
    NbchatError,
    ProtocolError,
    ReconnectExhausted,
)
from ..jsonprotocol import Codec
from ..parsing import parse_server_frame
from ..policy import NORMAL_CLOSURE, Disconnect, backoff
from ..protocol import (
    CANCEL_FEATURE,
    CLIENT_ID_HEADER,
    CLIENT_TOOLS_FEATURE,
    CONTEXT_FEATURE,
)
from ..session import Outcome, Session
from .announced import Announced
from .clock import AwakeClock, awake_timeout
from .link import ConnectionState, Link

__all__ = ["HARD_LIMIT_FACTOR", "Connection", "ConnectionState"]

logger = logging.getLogger("nbchat.client")

HARD_LIMIT_FACTOR = 16
"""Frames between max_size and this multiple of it are refused one by one (the
connection survives); beyond it websockets closes the connection (1009), so a
hostile server cannot make the client buffer without bound."""
_MESSAGE_TOO_BIG = 1009
_LAST_ATTEMPT = 1.0
"""Seconds an attempt may take however little of ``connect_timeout`` is left."""


class Connection(Link):
    """Keeps one client connected to its server until told to stop, or until the policy gives up."""

    def __init__(
        self,
        config: ClientConfig,
        session: Session,
        identity: str,
        carry_out: Callable[[list[Outcome]], None],
        stopped: Callable[[NbchatError], None],
        emit: Callable[..., None],
        reached: bool = False,
        codec: Codec | None = None,
    ) -> None:
        super().__init__(config, session, carry_out, stopped, emit, reached)
        self.codec = codec
        """None: the server speaks v1; else every frame is translated by it."""
        self._identity = identity
        self._ws: ClientConnection | None = None
        self._awake: AwakeClock | None = None
        """Measures the loop's stalls until a first connection opens (``connect_timeout``)."""

    async def close(self) -> None:
        """Close with 1000 and end the task, waiting at most ``close_timeout`` for the server."""
        self._closing = True
        self.reconnecting = False
        if not self.running:
            return
        self.set_state(ConnectionState.CLOSING)
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    ws.close(NORMAL_CLOSURE, "Client disconnect"), self.config.close_timeout
                )
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.set_state(ConnectionState.DISCONNECTED)

    # The task

    async def _run(self) -> None:
        try:
            await self._connection_loop()
        except asyncio.CancelledError:
            raise
        except ConfigError as exc:  # a setting no attempt can use: said once, in one line
            self._stop(exc)
        except Exception as exc:
            # A bug here must never leave a caller waiting forever: everyone hears of it.
            logger.exception("the connection task of %s failed", self.safe_url)
            self._stop(
                ConnectionFailed(
                    f"the client failed unexpectedly ({exc!r}): send again to start a new "
                    "connection"
                )
            )
        finally:
            self._stop_clock()
            self._ws = None
            self.reconnecting = False
            self.opened.clear()
            self.session.closed()
            if not self.finished.done():
                self.finished.set_result(None)
            if self.state is not ConnectionState.CLOSING:
                self.set_state(ConnectionState.DISCONNECTED)

    async def _connection_loop(self) -> None:
        delays = self._delays()
        timeout = self.config.connect_timeout
        # Until a connection opens, a server never reached is given up after timeout,
        # counting only the time the loop ran, not the cells that blocked it meanwhile.
        awake = self._awake = None if timeout is None or self.reached else AwakeClock(self.loop)
        deadline = None if awake is None or timeout is None else awake.time() + timeout
        while True:
            stalled = self._stalled()
            disconnect, progressed = await self._connect_once(self._left(deadline))
            self.last_disconnect = disconnect
            # An attempt the loop was blocked through had no fair chance: not counted.
            blocked = not self.reached and self._stalled() > stalled
            if progressed:
                # The server answered on that connection: a restart loop that lets
                # work through is ridden out, however short each connection was.
                self.attempt = 0
                delays = self._delays()
            if self._closing:
                return
            failure = self._give_up_reason(disconnect)
            left = self._left(deadline)
            if failure is None and left is not None and left <= 0:
                failure = ReconnectExhausted(self.attempt + 1, self.safe_url, within=timeout)
            if failure is not None:
                self._stop(failure)
                return
            self.attempt += 0 if blocked else 1
            self.reconnecting = True
            self.set_state(ConnectionState.DISCONNECTED)
            delay = next(delays) if left is None else min(next(delays), left)
            self._log_retry(disconnect, delay, timeout if left is not None else None)
            await asyncio.sleep(delay)

    def _stalled(self) -> float:
        return 0.0 if self._awake is None else self._awake.stalled()

    def _left(self, deadline: float | None) -> float | None:
        """Seconds of ``connect_timeout`` left, while no connection has opened yet."""
        awake = self._awake
        return None if awake is None or deadline is None else deadline - awake.time()

    def _stop_clock(self) -> None:
        if self._awake is not None:
            self._awake.stop()
            self._awake = None

    def _log_retry(self, disconnect: Disconnect, delay: float, within: float | None) -> None:
        """One WARNING line per retry: what happened, retry n of m, when the next try is."""
        if disconnect.code is not None:
            what = f"connection to {self.safe_url} closed with code {disconnect.code}"
        elif disconnect.status is not None:
            what = f"{self.safe_url} answered the handshake with HTTP {disconnect.status}"
        else:
            what = f"could not connect to {self.safe_url} ({disconnect.reason or 'no reason'})"
        bound = "" if within is None else f" (giving up {within:g} s after the first try)"
        logger.warning(
            "%s; retry %d of %d in %.2f s%s",
            what,
            self.attempt,
            self.config.max_reconnect_attempts,
            delay,
            bound,
        )

    def _delays(self) -> Iterator[float]:
        config = self.config
        return backoff(
            config.reconnect_interval,
            config.backoff_factor,
            config.max_reconnect_interval,
            config.jitter,
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

    async def _connect_once(self, left: float | None = None) -> tuple[Disconnect, bool]:
        """Open one connection and serve it until it ends: how it ended, and if it progressed.

        Within ``left`` seconds the opening handshake must be done, give or take
        the one second every attempt is allowed.
        """
        self.set_state(ConnectionState.CONNECTING)
        config = self.config
        open_timeout = config.open_timeout
        if left is not None:
            left = max(left, _LAST_ATTEMPT)
            open_timeout = left if open_timeout is None else min(open_timeout, left)
        try:
            # The handshake's time limit counts only the time the loop ran (a cell that
            # blocks the kernel meanwhile is not the server's fault): awake_timeout.
            async with awake_timeout(open_timeout):
                ws = await ws_connect(
                    config.url,
                    additional_headers={
                        **config.handshake_headers(),
                        CLIENT_ID_HEADER: self._identity,
                    },
                    open_timeout=None,
                    ping_interval=config.ping_interval,
                    ping_timeout=config.ping_timeout,
                    close_timeout=config.close_timeout,
                    max_size=None
                    if config.max_size is None
                    else config.max_size * HARD_LIMIT_FACTOR,
                    proxy=None,
                )
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body or b""
            detail = body.decode("utf-8", "replace").strip()[:200]
            return Disconnect(status=status, reason=detail, error=exc), False
        except (InvalidURI, ValueError) as exc:
            # ClientConfig refuses every URL known to be unusable; one websockets still
            # refuses is this client's setting, not a server's answer: never retried.
            raise ConfigError(
                f"invalid client setting url: {self.safe_url} cannot be connected to "
                f"({_one_line(exc)})"
            ) from exc
        except (OSError, asyncio.TimeoutError, InvalidHandshake) as exc:
            reason = str(exc) or type(exc).__name__
            return Disconnect(reason=reason, error=exc), False
        self._ws = ws
        self.reached = True
        self._stop_clock()  # connect_timeout is over
        # A backend with a codec speaks no v1 at all, so it announces no extension either.
        announced = Announced.read(
            ws.response.headers if ws.response else {}, speaks_v1=not self.codec
        )
        self.backend, features = announced.backend, announced.features
        self.features = frozenset(features)
        client_tools = CLIENT_TOOLS_FEATURE in features
        if self.session.tools_frame is not None and not client_tools:
            logger.warning(
                "%s does not support client tools: this client's tools are not offered",
                self.safe_url,
            )
        resent = self.session.opened(
            client_tools, cancel=CANCEL_FEATURE in features, context=CONTEXT_FEATURE in features
        )
        if resent:
            logger.info("resending %d messages without a complete reply", resent)
        self.wake()
        self.attempt = 0 if config.stable_after == 0 else self.attempt
        self.reconnecting = False
        self.failure = None
        self.set_state(ConnectionState.CONNECTED)
        self.opened.set()
        self._emit("open")
        opened_at = self.loop.time()
        writer = self.loop.create_task(self._write(ws), name="nbchat-client writer")
        try:
            progressed = await self._read(ws)
        except asyncio.CancelledError:
            if not self._closing:  # not close(): the loop is ending (a script's exit)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(1001, "going away"), config.close_timeout)
            raise
        finally:
            self.opened.clear()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            # Closed already, unless this task was cancelled (its loop is ending): then
            # release the socket now rather than leave it to the garbage collector.
            ws.transport.abort()
            self._ws = None
            self.session.closed()
        progressed = progressed or self.loop.time() - opened_at >= config.stable_after
        code, reason = ws.close_code, ws.close_reason or ""
        self._emit("close", code, reason)
        return Disconnect(code=code, reason=reason), progressed

    async def _write(self, ws: ClientConnection) -> None:
        """Drain the outbox in order; on failure the unsent frame stays first in line."""
        wake, session = self._wake_writer, self.session
        encode = self.codec.encode if self.codec is not None else None
        while True:
            await wake.wait()
            wake.clear()
            while (frame := session.next_frame()) is not None:
                text = frame if encode is None else encode(frame)
                try:
                    if text is not None:  # None: the codec's backend has no such frame
                        await ws.send(text)
                except ConnectionClosed:
                    return  # the reader sees the close; the frame stays queued
                session.written()

    async def _read(self, ws: ClientConnection) -> bool:
        """Read until the connection ends; True if the server sent anything."""
        # The hot loop: one iteration per server frame, tens of thousands a second.
        limit = self.config.max_size or float("inf")
        recv, receive, carry_out = ws.recv, self.session.receive, self._carry_out
        decode = self.codec.decode if self.codec is not None else None
        progressed = False
        while True:
            try:
                frame = await recv()
            except ConnectionClosed as exc:
                if exc.sent is not None and exc.sent.code == _MESSAGE_TOO_BIG:
                    self._bad_frame(
                        ProtocolError(
                            f"the server sent a frame over {limit * HARD_LIMIT_FACTOR:.0f} "
                            "bytes: connection closed (1009); raise max_size if it is legitimate"
                        )
                    )
                return progressed
            progressed = True
            if decode is not None and len(frame) <= limit:
                try:
                    messages = decode(frame)
                except ProtocolError as exc:
                    self._bad_frame(exc)
                else:
                    for decoded in messages:
                        carry_out(receive(decoded))
            elif type(frame) is str and len(frame) <= limit:
                try:
                    message = parse_server_frame(frame)
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


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
