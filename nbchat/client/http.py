"""The run connection: AG-UI and AI SDK agents over HTTP + SSE, with the shape of Connection.

An agent speaking AG-UI (``protocol="ag-ui"``) or the AI SDK's UI message
stream (``protocol="ai-sdk"``) answers each POST with one SSE stream: one run.
:class:`HttpConnection` has :class:`~nbchat.client.connection.Connection`'s
interface (states, ``running``, ``wake()``, ``close()``, ``opened``,
``reached``, the events ``state``, ``open``, ``close``, ``error``), so the
client, the widget and the session do not know which one they drive. It reads
the session's outbox as Connection writes it to a socket: a user message
starts a run, a cancel closes its stream (the reply ends ``cancelled``), the
``tools`` declaration is kept to offer the client's tools, a ``tool_response``
is handed to the run that waits for it. What the stream says is translated by
the pure :mod:`nbchat.agui` / :mod:`nbchat.aisdk` into v1 messages and fed to
the session, which routes and assembles them as it does any server's. An
AG-UI agent's shared state is kept per thread (``threads.state(conversation_id)``)
and each change of it emitted as ``agent_state(conversation_id, state)``.

These protocols have no resume and no acks. Each run is acked here when its
stream opens; a stream that drops mid-run (the peer went away) counts as a
lost connection: after the backoff the session writes its pending messages
again, each is run again from its user message (the history rolled back), and
the session's ack rule makes the reply restart (``restart`` event, the panel
marks it). An answer that is no event stream (HTML, 404, 405, any status) is
one line naming the URL and the status, and the client stops: never a retry
loop. A stream silent for ``ping_interval + ping_timeout`` seconds (a run
that never finishes) or malformed ends its reply in one ``error`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from pydantic import BaseModel

from .. import agui, aisdk
from ..config import ClientConfig
from ..exceptions import ConnectionFailed, NbchatError, ProtocolError, ReconnectExhausted
from ..parsing import parse_client_message
from ..policy import Disconnect, backoff
from ..protocol import (
    ATTACHMENTS_FEATURE,
    AckMessage,
    CancelRequest,
    ClientToolInfo,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    ToolAck,
    ToolResponse,
    ToolsDeclaration,
    UserMessage,
)
from ..redact import redact_url
from ..session import Outcome, Session
from .link import ConnectionState, Link

__all__ = ["HttpConnection"]

logger = logging.getLogger("nbchat.client")


class _Dropped(Exception):
    """A run's stream broke off (the peer went away): the connection is lost."""


class _Refused(Exception):
    """The URL answers with something that is no event stream: retrying cannot help."""


class HttpConnection(Link):
    """Runs a client's messages against an AG-UI or AI SDK agent; see the module docstring."""

    def __init__(
        self,
        config: ClientConfig,
        session: Session,
        identity: str,
        carry_out: Callable[[list[Outcome]], None],
        stopped: Callable[[NbchatError], None],
        emit: Callable[..., None],
        reached: bool = False,
        threads: agui.Threads | aisdk.Chats | None = None,
    ) -> None:
        self.protocol = str(getattr(config, "protocol", "ag-ui"))
        self.threads: agui.Threads | aisdk.Chats = threads or (
            aisdk.Chats() if self.protocol == "ai-sdk" else agui.Threads()
        )
        """The histories, kept by the client across connections (passed back in)."""
        self._tools: list[ClientToolInfo] = []
        self._runs: dict[str, tuple[asyncio.Task[None], str | None]] = {}
        self._results: dict[str, asyncio.Future[ToolResponse]] = {}
        self._dropped: asyncio.Future[Disconnect] | None = None
        super().__init__(config, session, carry_out, stopped, emit, reached)
        self.features = frozenset({ATTACHMENTS_FEATURE})
        """Both protocols carry images and texts in a user message (no announcement needed)."""

    async def close(self) -> None:
        """Close every run's stream and end the task."""
        self._closing = True
        self.reconnecting = False
        if not self.running:
            return
        self.set_state(ConnectionState.CLOSING)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.set_state(ConnectionState.DISCONNECTED)

    # The task

    async def _run(self) -> None:
        timeout = httpx.Timeout(
            connect=self.config.open_timeout,
            read=_silence(self.config),
            write=self.config.open_timeout,
            pool=None,
        )
        try:
            async with httpx.AsyncClient(
                timeout=timeout, headers=self.config.handshake_headers(), trust_env=False
            ) as http:
                await self._connection_loop(http)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must never leave a caller waiting forever
            logger.exception("the connection task of %s failed", self.safe_url)
            self._stop(ConnectionFailed(f"the client failed unexpectedly ({exc!r})"))
        finally:
            self._end_runs()
            self.opened.clear()
            self.session.closed()
            if not self.finished.done():
                self.finished.set_result(None)
            if self.state is not ConnectionState.CLOSING:
                self.set_state(ConnectionState.DISCONNECTED)

    async def _connection_loop(self, http: httpx.AsyncClient) -> None:
        config = self.config
        delays = backoff(
            config.reconnect_interval,
            config.backoff_factor,
            config.max_reconnect_interval,
            config.jitter,
        )
        limit = config.connect_timeout
        deadline = None if limit is None or self.reached else self.loop.time() + limit
        while True:
            self._dropped = self.loop.create_future()
            _open(self.session)
            self.set_state(ConnectionState.CONNECTED)
            self.opened.set()
            self._emit("open")
            writer = self.loop.create_task(self._write(http))
            try:
                disconnect = await self._dropped
            except _Refused as exc:
                self._stop(ConnectionFailed(str(exc)))
                return
            finally:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
                self._end_runs()
                self.opened.clear()
                self.session.closed()
            self.last_disconnect = disconnect
            self._emit("close", None, disconnect.reason)
            if self._closing:
                return
            self.attempt += 1
            past = deadline is not None and self.loop.time() >= deadline
            if not config.reconnect or self.attempt > config.max_reconnect_attempts or past:
                self._stop(ReconnectExhausted(self.attempt, self.safe_url))
                return
            self.reconnecting = True
            self.set_state(ConnectionState.DISCONNECTED)
            delay = next(delays)
            logger.warning(
                "%s: %s; retry %d of %d in %.2f s",
                self.safe_url,
                disconnect.reason,
                self.attempt,
                config.max_reconnect_attempts,
                delay,
            )
            await asyncio.sleep(delay)
            self.reconnecting = False

    def _end_runs(self) -> None:
        for task, _ in self._runs.values():
            task.cancel()
        self._runs.clear()
        for future in self._results.values():
            future.cancel()
        self._results.clear()

    def _drop(self, error: BaseException) -> None:
        dropped = self._dropped
        if dropped is not None and not dropped.done():
            if isinstance(error, _Refused):
                dropped.set_exception(error)
            else:
                dropped.set_result(Disconnect(reason=str(error) or type(error).__name__))

    # The outbox

    async def _write(self, http: httpx.AsyncClient) -> None:
        wake, session = self._wake_writer, self.session
        while True:
            # What the session queued on open first: after a dropped run, its resends.
            while (frame := session.next_frame()) is not None:
                session.written()
                self._frame(http, parse_client_message(frame))
            await wake.wait()
            wake.clear()

    def _frame(self, http: httpx.AsyncClient, message: Any) -> None:
        if isinstance(message, UserMessage):
            assert message.id is not None
            known = self._runs.pop(message.id, None)
            if known is not None:
                known[0].cancel()
            task = self.loop.create_task(self._reply(http, message), name="nbchat run")
            self._runs[message.id] = (task, message.conversation_id)
        elif isinstance(message, CancelRequest):
            self._cancel(message)
        elif isinstance(message, ToolsDeclaration):
            self._tools = list(message.tools)
        elif isinstance(message, ToolResponse):
            future = self._results.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message)
            self._carry_out(self.session.receive(ToolAck(id=message.id)))

    def _cancel(self, request: CancelRequest) -> None:
        """Stop closes the stream: the agent sees the request end; the reply ends cancelled."""
        for message_id, (task, conversation) in list(self._runs.items()):
            if request.id not in (None, message_id) or conversation != request.conversation_id:
                continue
            task.cancel()
            del self._runs[message_id]
            done = DoneMessage(conversation_id=conversation, reply_to=message_id, cancelled=True)
            self.threads.finished(message_id)
            self._carry_out(self.session.receive(done))

    # One reply: its runs

    async def _reply(self, http: httpx.AsyncClient, message: UserMessage) -> None:
        assert message.id is not None
        receive, carry_out = self.session.receive, self._carry_out
        body, run = self.threads.start(message, self._tools)
        ack = AckMessage(id=message.id, conversation_id=message.conversation_id)
        first = True
        try:
            while True:
                async with _sse(http, self.config.url, body) as source:
                    if first:
                        carry_out(receive(ack.model_copy(update={"reply_to": message.id})))
                        first = False
                    self.reached = True
                    await self._stream(source, run)
                if not isinstance(run, agui.Run) or not run.calls:
                    break
                body, run = await self._tools_ran(run)
        except (_Refused, _Dropped) as exc:
            self._drop(exc)
            return
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            self._drop(_Dropped(f"could not connect ({_one_line(exc)})"))
            return
        except (ProtocolError, httpx.TimeoutException) as exc:
            error = _error(exc, self.safe_url, _silence(self.config))
            carry_out(receive(run.v1(ErrorMessage, error=error)))
        finally:
            self._runs.pop(message.id, None)
        self.threads.finished(message.id)

    async def _stream(self, source: Any, run: Any) -> None:
        receive, carry_out = self.session.receive, self._carry_out
        decode = aisdk.decode_part if self.protocol == "ai-sdk" else agui.decode_event
        try:
            async for event in source.aiter_sse():
                if not event.data:
                    continue
                try:
                    part = decode(event.data)
                except ProtocolError as exc:
                    logger.warning("ignored a bad event from %s: %s", self.safe_url, exc)
                    self._emit("error", exc)
                    continue
                state = run.thread.state
                for message in run.feed(part):
                    carry_out(receive(message))
                if run.thread.state is not state:  # STATE_SNAPSHOT, STATE_DELTA
                    self._emit("agent_state", run.thread.id, run.thread.state)
                if run.finished:
                    break  # anything after the end would answer the next message
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise _Dropped(f"the stream broke off ({_one_line(exc)})") from exc
        if not run.finished:
            raise ProtocolError("the stream ended before the run finished")

    async def _tools_ran(self, run: agui.Run) -> tuple[Any, agui.Run]:
        """Hand the run's pending calls to the client's tools; wait; the follow-up run."""
        receive, carry_out = self.session.receive, self._carry_out
        futures = []
        for request in run.calls:
            future = self._results[request.id] = self.loop.create_future()
            futures.append(future)
            carry_out(receive(request))
        results = list(await asyncio.gather(*futures))
        assert isinstance(self.threads, agui.Threads)
        cards, body, follow = self.threads.follow_up(run, results, self._tools)
        for card in cards:
            carry_out(receive(card))
        return body, follow


@contextlib.asynccontextmanager
async def _sse(http: httpx.AsyncClient, url: str, body: Any) -> Any:
    """POST ``body``; the SSE source, or :class:`_Refused` for an answer that is no stream."""
    if isinstance(body, BaseModel):
        content = body.model_dump_json(by_alias=True, exclude_none=True)
    else:
        content = json.dumps(body)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    async with aconnect_sse(http, "POST", url, content=content, headers=headers) as source:
        response = source.response
        kind = response.headers.get("content-type", "")
        if response.status_code != 200 or not kind.startswith("text/event-stream"):
            shown = redact_url(url)
            what = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            if response.status_code == 200:
                what += f" with {kind.split(';')[0] or 'no content type'}"
            raise _Refused(
                f"{shown} answered {what}, not an event stream: check the URL and the protocol"
            )
        yield source


_ANNOUNCES = "cancel" in inspect.signature(Session.opened).parameters


def _open(session: Session) -> None:
    """Open the session as a peer that runs client tools and understands cancel (Stop
    closes the stream)."""
    if _ANNOUNCES:
        session.opened(client_tools=True, cancel=True, context=True)  # type: ignore[call-arg, unused-ignore]
    else:
        session.opened(client_tools=True)


def _silence(config: ClientConfig) -> float | None:
    """Seconds a run may stay silent: the time a WebSocket client takes to call a server hung."""
    parts = (config.ping_interval, config.ping_timeout)
    return None if None in parts else float(sum(p for p in parts if p is not None))


def _error(exc: BaseException, url: str, silence: float | None) -> ErrorInfo:
    if isinstance(exc, httpx.TimeoutException):
        return ErrorInfo(
            code="timeout", message=f"{url} sent nothing for {silence:g} s: the run was given up"
        )
    return ErrorInfo(code="protocol_error", message=f"{url}: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
