"""ChatWidget: a chat panel for notebook cells, a thin shell around ChatClient.

The widget listens to its client's events and moves each message into a view:
one HTML child per user message, per run of assistant text, per tool call card,
per error banner. A view is updated in place (chatlab's good idea) and only the
views that changed are sent to the frontend; a finished view is never sent
again. Streaming text is coalesced: whatever the token rate, a streaming view
is sent at most ``max_fps`` times a second, and once more when it completes
(Jupyter Server drops output messages beyond ``iopub_msg_rate_limit``, so this
is correctness, not only speed).

Everything rendered goes through :mod:`nbchat.render`, which treats model
output and tool data as untrusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import ipywidgets as widgets

from . import render
from .client import ChatClient
from .config import DEMO_DELAY, URL_ENV
from .connection import ConnectionState
from .exceptions import ConnectionFailed, NbchatError, ProtocolError
from .input import ChatInput, shared_style
from .protocol import (
    CancelRequest,
    ErrorMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    UserMessage,
)
from .reply import Reply, ReplyBuilder
from .transcript import Recorder
from .turn import Turn

__all__ = ["ChatWidget", "Throttle", "TurnLog", "TurnView", "current_widget"]

MAX_FPS = 30.0
EMPTY_TEXT = "nbchat ChatWidget: no messages yet"


@dataclass(eq=False)
class _TextRun:
    """A run of assistant text between tool calls: one HTML child, re-rendered while it grows."""

    html: widgets.HTML
    parts: list[str] = field(default_factory=list)
    streaming: bool = True
    renderer: render.StreamingMarkdown = field(default_factory=render.StreamingMarkdown)
    """Keeps the HTML of finished Markdown blocks, so each update re-parses only the tail."""

    @property
    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


class TurnView:
    """One exchange on screen: the user's message, then the assistant's text runs and tool cards.

    Fed server messages in order; renders lazily through the owner's throttle.
    """

    def __init__(
        self,
        user_text: str,
        schedule: Callable[[TurnView], None],
        message: UserMessage | None = None,
    ) -> None:
        self.user_text = user_text
        self.message = message
        """The user message this turn shows, when it came from the client."""
        self.builder = self._new_builder()
        self.box = widgets.VBox([widgets.HTML(render.user_message_html(user_text))])
        self.box.add_class("nbchat-turn")
        self._schedule = schedule
        self._runs: list[_TextRun] = []
        self._cards: dict[str, widgets.HTML] = {}
        self._dirty: set[int] = set()
        self.note = ""
        """A line under the reply while it is interrupted (connection lost)."""
        self.done = False

    # Feeding

    def feed(self, message: ServerMessage) -> None:
        """Take one server message of this turn's reply."""
        self.builder.feed(message)
        if isinstance(message, TokenMessage):
            run = self._open_run()
            run.parts.append(message.response)
            self._dirty.add(id(run))
            self._schedule(self)
        elif isinstance(message, ToolCallMessage | ToolResultMessage):
            self._close_run()
            for call in message.tool_calls:
                self._show_call(self.builder.tool_call(call.id) or call)
        elif isinstance(message, ErrorMessage):
            self._close_run()
            text = f"{message.error.code}: {message.error.message}"
            self.box.children += (widgets.HTML(render.error_banner_html(text)),)
        if self.builder.done:
            self.finish()

    def finish(self) -> None:
        """The reply is complete: render the last run one final time."""
        self.done = True
        self.note = ""
        self._close_run()
        if not self._runs and not self._cards and self.builder.error is None:
            self._open_run()  # an empty reply still shows as a (blank) assistant bubble
            self._close_run()
        self.flush()

    def show_note(self, note: str) -> None:
        """Put a line under an unfinished reply (why it stalled); an empty note clears it."""
        if not self.done:
            self.note = note
            run = self._open_run()
            self._dirty.add(id(run))
            self.flush()

    def fail(self, note: str) -> None:
        """The reply will never be complete: say why under what arrived, and stop streaming."""
        if not self.done:
            self.show_note(note)
            self.done = True
            self._close_run()

    def restart(self) -> None:
        """The server had lost the reply and begins it again: clear what was shown."""
        self.builder = self._new_builder()
        self.box.children = self.box.children[:1]
        self._runs.clear()
        self._cards.clear()
        self._dirty.clear()

    def flush(self) -> int:
        """Send the views that changed since the last flush; return the characters sent."""
        sent = 0
        for run in self._runs:
            if id(run) in self._dirty:
                note = self.note if run is self._runs[-1] else ""
                run.html.value = render.assistant_message_html(
                    run.text + (f"\n\n*{note}*" if note else ""),
                    streaming=run.streaming,
                    renderer=run.renderer,
                )
                sent += len(run.html.value)
        self._dirty.clear()
        return sent

    @property
    def reply(self) -> Reply:
        """What has arrived so far, as a Reply."""
        return self.builder.build()

    @property
    def turn(self) -> Turn:
        """This exchange as the one turn type, for text fallbacks and exports."""
        return Turn.from_reply(self.user_text, self.reply, complete=self.done)

    # Private

    def _new_builder(self) -> ReplyBuilder:
        message = self.message
        if message is None:
            return ReplyBuilder()
        return ReplyBuilder(message_id=message.id, conversation_id=message.conversation_id)

    def _open_run(self) -> _TextRun:
        if self._runs and self._runs[-1].streaming:
            return self._runs[-1]
        run = _TextRun(widgets.HTML())
        self._runs.append(run)
        self.box.children += (run.html,)
        return run

    def _close_run(self) -> None:
        if self._runs and self._runs[-1].streaming:
            run = self._runs[-1]
            run.streaming = False
            self._dirty.add(id(run))
            self.flush()

    def _show_call(self, call: ToolCall) -> None:
        card = self._cards.get(call.id)
        if card is None:
            card = self._cards[call.id] = widgets.HTML()
            self.box.children += (card,)
        card.value = render.tool_call_html(call)


class TurnLog:
    """The conversation area: appending a turn costs the same however many came before.

    A box's children travel whole on every change, so one flat box of turns
    makes each new turn re-send every earlier one (quadratic traffic over a
    long conversation). Turns go instead into pages of at most ``page_size``;
    a full page gets the next page as its last child. Each append changes one
    page: at most ``page_size + 1`` ids on the wire, whatever the length.
    """

    def __init__(self, page_size: int = 16) -> None:
        self.page_size = page_size
        self.box = widgets.VBox()
        self.box.add_class("nbchat-log")
        self._page = self.box
        self._count = 0
        """Turns on the current page."""

    def append(self, child: widgets.Widget) -> None:
        """Add ``child`` (a turn or a banner) after everything shown."""
        if self._count == self.page_size:
            page = widgets.VBox([child])
            page.add_class("nbchat-page")
            self._page.children += (page,)
            self._page = page
            self._count = 1
            return
        self._page.children += (child,)
        self._count += 1


class Throttle:
    """Coalesces view updates to at most ``fps`` per second, with a trailing flush.

    A streaming message is re-sent whole on each update, so a very long one
    would cost its size times the frame rate. The interval therefore also
    stretches to keep the traffic under ``bandwidth`` characters a second: a
    short reply updates 30 times a second, a 100 kB one about 10 times, and the
    bytes sent stay proportional to the stream's duration.
    """

    def __init__(
        self,
        fps: float,
        clock: Callable[[], float] = time.monotonic,
        bandwidth: float = 1_000_000.0,
    ) -> None:
        self.min_interval = 1.0 / fps
        self.interval = self.min_interval
        self.bandwidth = bandwidth
        self._clock = clock
        self._last = 0.0
        self._pending: dict[int, TurnView] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, view: TurnView) -> None:
        self._pending[id(view)] = view
        now = self._clock()
        if now - self._last >= self.interval:
            self.flush()
        elif self._timer is None:
            with contextlib.suppress(RuntimeError):  # no loop: the next token or done flushes
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self.interval - (now - self._last), self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last = self._clock()
        pending, self._pending = self._pending, {}
        sent = sum(view.flush() for view in pending.values())
        self.interval = max(self.min_interval, sent / self.bandwidth)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()


_by_cell: dict[str, weakref.ref[ChatWidget]] = {}
_current: weakref.ref[ChatWidget] | None = None


def current_widget() -> ChatWidget | None:
    """The most recently created widget that is still open, if any."""
    widget = _current() if _current is not None else None
    return widget if widget is not None and not widget.closed else None


class ChatWidget(widgets.VBox):
    """A chat panel: the conversation, tool calls as they run, and the client underneath.

    ``ChatWidget()`` talks to ``$NBCHAT_WS_URL`` or, when unset, to a built-in
    reference server it starts on a free loopback port. ``ChatWidget(client)``
    wraps an existing client; ``ChatWidget(url=..., **config)`` makes one.
    """

    max_fps: ClassVar[float] = MAX_FPS

    def __init__(
        self,
        client: ChatClient | None = None,
        *,
        url: str | None = None,
        delay: float = DEMO_DELAY,
        **config: Any,
    ) -> None:
        self._server: Any = None
        if client is None:
            if url is None and not os.environ.get(URL_ENV):
                from .server import DemoServer

                self._server = DemoServer.start_in_thread(port=0, delay=delay)
                url = self._server.url
            client = ChatClient(url=url, **config) if url else ChatClient(**config)
        elif url is not None or config:
            raise NbchatError("pass either a client or url/config settings, not both")
        self.client = client
        """The :class:`ChatClient` underneath: everything it can do stays available."""
        self.closed = False
        self._views: dict[str, TurnView] = {}
        self._throttle = Throttle(self.max_fps)
        self._connect_task: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None

        self._header = widgets.HTML()
        self._log = TurnLog()
        self._input = ChatInput()
        self._home_loop = _running_loop()
        """The loop the client runs on; frontend events are handed over to it."""
        self._input.on_submit(lambda text: self._call_home(lambda: self._submit(text)))
        self._input.on_stop(lambda: self._call_home(self.stop))
        super().__init__([shared_style(), self._header, self._log.box, self._input])
        self.add_class("nbchat")

        self._unsubscribe = [
            client.on("send", self._on_send),
            client.on("message", self._on_message),
            client.on("state", self._on_state),
            client.on("error", self._on_error),
            client.on("restart", self._on_restart),
            client.on("failed", self._on_failed),
        ]
        self._update_header()
        self._claim_cell()
        self._start_connecting()

    def __repr__(self) -> str:
        return f"<ChatWidget {self.client.url} {self.client.state.value}>"

    # Public methods

    def send(self, text: str) -> str:
        """Send ``text``; the reply streams into the panel. Returns at once with the message id."""
        return self.client.send(text)

    async def ask(self, text: str, timeout: float | None = None) -> Reply:
        """Send ``text`` and wait for the complete reply, which also shows in the panel."""
        return await self.client.ask(text, timeout=timeout)

    def ask_sync(self, text: str, timeout: float | None = None) -> Reply:
        """Block the cell until the reply is complete; the panel keeps updating meanwhile."""
        return self.client.ask_sync(text, timeout=timeout)

    def record(self, path: str | os.PathLike[str]) -> Recorder:
        """Record this conversation to a JSON Lines transcript (see :meth:`ChatClient.record`)."""
        return self.client.record(path)

    def stop(self) -> bool:
        """Ask the server to stop the reply that is streaming."""
        return self.client.cancel()

    @property
    def turns(self) -> list[TurnView]:
        """The exchanges shown, oldest first."""
        return list(self._views.values())

    def close(self) -> None:
        """Release the connection, the tasks and any built-in server; then close the views.

        Inside a running loop (a notebook) the release finishes in the background;
        ``await chat.aclose()`` waits for it.
        """
        if self.closed:
            return
        self.closed = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._throttle.cancel()
        with contextlib.suppress(Exception):
            self.close_all_children()
        super().close()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            from .blocking import run_sync

            run_sync(self._release())
            return
        self._release_task = loop.create_task(self._release())
        _closing.add(self._release_task)
        self._release_task.add_done_callback(_closing.discard)

    async def aclose(self) -> None:
        """Close and wait until the connection and any built-in server are released."""
        self.close()
        if self._release_task is not None:
            await asyncio.shield(self._release_task)

    async def _release(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
        await self.client.disconnect()
        server, self._server = self._server, None
        if server is not None:
            # The server's loop waits for this loop's client to finish closing: stop it
            # from a worker thread so this loop stays free to answer.
            await asyncio.to_thread(server.stop)

    def close_all_children(self) -> None:
        """Close every child widget (they hold comms of their own)."""

        def walk(widget: widgets.Widget) -> None:
            for child in getattr(widget, "children", ()):
                walk(child)
            widget.close()

        for child in self.children:
            walk(child)

    # Display: a plain fallback for viewers without a widget manager

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The fallback is the conversation at display time and is never updated
        # afterwards: nbval compares a cell's outputs as they were first sent, and
        # a display updated later (as JupyterLab saves it) would never match.
        bundle: dict[str, Any] = dict(super()._repr_mimebundle_(**kwargs) or {})
        turns = [view.turn for view in self._views.values()]
        bundle["text/plain"] = render.conversation_text(turns) or EMPTY_TEXT
        bundle["text/markdown"] = render.conversation_markdown(turns) or f"*{EMPTY_TEXT}*"
        return bundle

    # Client events

    def _on_send(self, message: UserMessage | CancelRequest) -> None:
        if not isinstance(message, UserMessage):
            return
        assert message.id is not None
        view = TurnView(message.message, self._throttle, message)
        self._views[message.id] = view
        self._log.append(view.box)
        self._input.streaming = True

    def _on_message(self, message: ServerMessage) -> None:
        # The client decided which message this answers (reply_to); never guess here.
        view = self._views.get(message.reply_to) if message.reply_to else None
        if view is None or view.done or message.type == "ack":
            return
        view.feed(message)
        if view.done:
            self._reply_ended()

    def _on_restart(self, message_id: str) -> None:
        view = self._views.get(message_id)
        if view is not None:
            view.restart()

    def _on_failed(self, message_id: str, exc: NbchatError) -> None:
        view = self._views.get(message_id)
        if view is not None and not view.done:
            view.fail(f"no reply: {exc}")
            self._reply_ended()

    def _reply_ended(self) -> None:
        self._throttle.flush()
        if all(v.done for v in self._views.values()):
            self._input.streaming = False

    def _on_state(self, state: ConnectionState) -> None:
        self._update_header()
        if state is ConnectionState.CONNECTED:
            for view in self._views.values():
                if view.note:
                    view.show_note("")
        elif state is ConnectionState.DISCONNECTED and self.client.reconnecting:
            for view in self._views.values():
                view.show_note("connection lost: the reply resumes when it is back")

    def _on_error(self, exc: BaseException) -> None:
        # Errors answering a message arrive in its turn; these answer none.
        if isinstance(exc, ProtocolError):
            text = f"Ignored a malformed message from the server: {exc}"
        elif isinstance(exc, ConnectionFailed):
            text = f"Connection lost for good: {exc}"
        else:
            text = str(exc)
        self._log.append(widgets.HTML(render.error_banner_html(text)))
        self._update_header()

    # Private methods

    def _update_header(self) -> None:
        client = self.client
        state = client.state.value
        detail = ""
        if state != "connected" and client.reconnecting:
            state = "reconnecting"
            detail = f"attempt {client.attempt} of {client.config.max_reconnect_attempts}"
        elif state == "disconnected" and client.failure is not None:
            detail = str(client.failure)
        elif state == "disconnected" and client.last_disconnect is not None:
            last = client.last_disconnect
            detail = last.reason or (f"code {last.code}" if last.code else "")
        where = client.safe_url + (" (built-in server)" if self._server is not None else "")
        self._header.value = render.status_header_html(state, f"{detail} · {where}".lstrip(" ·"))

    def _call_home(self, action: Callable[[], object]) -> None:
        """Run a frontend-triggered action on the client's loop.

        JupyterLab 4.6 with ipykernel 7 can deliver widget messages on a kernel
        subshell: another thread, with a loop of its own. The client and its
        queue belong to the loop the widget was made on, so hand the action over.
        """
        home = self._home_loop
        if home is not None and not home.is_closed() and _running_loop() is not home:
            home.call_soon_threadsafe(action)
        else:
            action()

    def _submit(self, text: str) -> None:
        try:
            self.send(text)
        except NbchatError as exc:
            self._log.append(widgets.HTML(render.error_banner_html(str(exc))))

    def _start_connecting(self) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: the first send connects
            loop = asyncio.get_running_loop()
            self._connect_task = loop.create_task(self._connect_quietly())

    async def _connect_quietly(self) -> None:
        with contextlib.suppress(NbchatError):  # shown by the error event and the header
            await self.client.connect()

    def _claim_cell(self) -> None:
        """Close the widget an earlier run of this same cell made, so connections don't pile up."""
        global _current
        cell = _cell_id()
        if cell is not None:
            previous = _by_cell.get(cell)
            old = previous() if previous is not None else None
            if old is not None and old is not self:
                old.close()
            _by_cell[cell] = weakref.ref(self)
        _current = weakref.ref(self)


_closing: set[asyncio.Task[None]] = set()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _cell_id() -> str | None:
    """The id of the notebook cell being executed (JupyterLab sends it), if any."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return None
    with contextlib.suppress(Exception):
        cell: Any = kernel.get_parent().get("metadata", {}).get("cellId")
        return str(cell) if cell else None
    return None
