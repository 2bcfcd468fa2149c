"""ChatWidget: a chat panel for notebook cells, a thin shell around ChatClient.

The widget listens to its client's events and hands each message to the view
of the turn it answers (the client says which: ``reply_to``); the views
(:mod:`nbchat.views`) render and throttle. Frontend actions (Send, Enter,
Stop) are handed to the loop the client runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

import ipywidgets as widgets

from .. import render
from ..client.client import ChatClient
from ..client.connection import ConnectionState
from ..config import DEMO_DELAY, URL_ENV
from ..exceptions import ConfigError, ConnectionFailed, NbchatError, ProtocolError
from ..protocol import CancelRequest, ServerMessage, ToolCall, UserMessage, new_id
from ..reply import Reply
from ..transcript import Recorder, Transcript
from ..turn import Turn
from .input import ChatInput, shared_style
from .static_view import EMPTY_TEXT, StaticConversation
from .views import Throttle, TurnLog, TurnView

if TYPE_CHECKING:
    from ..client.tools import ClientTool
    from ..server import ChatServer, Responder

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["ChatWidget", "current_widget"]

MAX_FPS = 30.0
PANEL_TEXT = "nbchat ChatWidget (live while its kernel runs; the conversation follows)"
"""The panel's own plain fallback: the static output after it holds the conversation."""


_by_cell: dict[str, weakref.ref[ChatWidget]] = {}
_current: weakref.ref[ChatWidget] | None = None


def current_widget() -> ChatWidget | None:
    """The most recently created widget that is still open, if any."""
    widget = _current() if _current is not None else None
    return widget if widget is not None and not widget.closed else None


class ChatWidget(widgets.VBox):
    """A chat panel: the conversation, tool calls as they run, and the client underneath.

    ``ChatWidget()`` talks to ``$NBCHAT_WS_URL`` or, when unset, to a built-in
    reference server it starts on a free loopback port, answering with the demo
    agent, or with a model when ``$NBCHAT_OPENAI_BASE_URL`` and ``$NBCHAT_MODEL``
    are set. ``ChatWidget(backend=OpenAIAgent(...))`` runs any responder as the
    built-in server; ``ChatWidget(client)`` wraps an existing client;
    ``ChatWidget(url=..., **config)`` makes one. ``history=`` (a transcript
    file or :class:`Transcript`) opens the panel on a recorded conversation, to
    read it or to go on with it on the same conversation id.

    Displayed, the panel's cell gets a second output: the conversation as
    static HTML, kept current after each reply, so a saved notebook shows it
    where no kernel runs (:mod:`nbchat.static_view`).
    """

    max_fps: ClassVar[float] = MAX_FPS

    def __init__(
        self,
        client: ChatClient | None = None,
        *,
        url: str | None = None,
        backend: Responder | None = None,
        delay: float = DEMO_DELAY,
        history: Transcript | str | os.PathLike[str] | None = None,
        **config: Any,
    ) -> None:
        self.closed = True
        """True once closed (and until built: a refused construction has nothing to release)."""
        self._server: ChatServer | None = None
        if client is not None and (url is not None or backend is not None or config):
            raise ConfigError("pass either a client or url/backend/config settings, not both")
        if url is not None and backend is not None:
            raise ConfigError("pass either a url or a backend to run here, not both")
        if client is None:
            if url is None and (backend is not None or not os.environ.get(URL_ENV)):
                self._server = _builtin_server(backend, delay)
                url = self._server.url
            client = ChatClient(url=url, **config) if url else ChatClient(**config)
        self.client = client
        """The :class:`ChatClient` underneath: everything it can do stays available."""
        self.closed = False
        self._connected_once = False
        self._views: dict[str, TurnView] = {}
        self._throttle = Throttle(self.max_fps)
        self._connect_task: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None

        self._header = widgets.HTML()
        self._log = TurnLog()
        self._input = ChatInput()
        self._home_loop = _running_loop()
        """The loop the client runs on; frontend events are handed over to it."""
        self._input.on_submit(lambda text, echo: self._call_home(lambda: self._submit(text, echo)))
        self._input.on_action("stop", lambda: self._call_home(self.cancel))
        self._input.on_action("retry", lambda: self._call_home(self._retry_from_panel))
        self._input.on_action("clear", lambda: self._call_home(self.clear))
        super().__init__([shared_style(), self._header, self._log.box, self._input])
        self.add_class("nbchat")

        if client.approver is None:  # a client brought with its own approver keeps it
            client.approver = self._approve
        self._unsubscribe = [
            client.on("send", self._on_send),
            client.on("message", self._on_message),
            client.on("state", self._on_state),
            client.on("error", self._on_error),
            client.on("restart", self._on_restart),
            client.on("failed", self._on_failed),
        ]
        self._static = StaticConversation()
        if history is not None:
            self._show_history(history)
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

    @overload
    def tool(self, fn: _F, *, name: str | None = None, confirm: bool = False) -> _F: ...

    @overload
    def tool(
        self, fn: None = None, *, name: str | None = None, confirm: bool = False
    ) -> Callable[[_F], _F]: ...

    def tool(
        self, fn: _F | None = None, *, name: str | None = None, confirm: bool = False
    ) -> _F | Callable[[_F], _F]:
        """Let the model call a typed function of this notebook; it runs in this kernel.

        ``@chat.tool``, ``chat.tool(fn)`` or ``@chat.tool(confirm=True)``: with
        ``confirm``, the call's card shows Run / Deny and nothing runs until the
        person decides. See :meth:`ChatClient.tool`.
        """
        return self.client.tool(fn, name=name, confirm=confirm)

    @property
    def tools(self) -> Mapping[str, ClientTool]:
        """The notebook functions offered as tools, by name."""
        return self.client.tools

    def remove_tool(self, name: str) -> None:
        """Stop offering the tool ``name``."""
        self.client.remove_tool(name)

    def record(self, path: str | os.PathLike[str]) -> Recorder:
        """Record this conversation to a JSON Lines transcript (see :meth:`ChatClient.record`)."""
        return self.client.record(path)

    def cancel(self) -> bool:
        """Ask the server to stop the reply that is streaming (what the Stop button does)."""
        return self.client.cancel()

    def retry(self) -> str:
        """Ask the last message again, for a new reply (what the Retry button does).

        A reply still streaming is stopped first. Returns the new message id.
        The server keeps the earlier exchange in the conversation: the new reply
        is a second answer, shown as a new turn.
        """
        last = next(reversed(self._views.values()), None)
        if last is None:
            raise ConfigError("nothing to retry: send a message first")
        if not last.done:
            self.cancel()
        return self.send(last.user_text)

    def clear(self) -> str:
        """Start a new conversation with an empty panel (what the Clear button does).

        Replies of the old conversation still streaming are stopped. Returns the
        new conversation id; the server forgets nothing, the client just moves on.
        """
        if any(not view.done for view in self._views.values()):
            self.cancel()
        self.client.conversation_id = new_id()
        self._views.clear()
        self._log.clear()
        self._input.streaming = False
        self._publish()
        return self.client.conversation_id

    def copy(self, index: int = -1) -> str:
        """The Markdown of one reply (default: the last), what its Copy button copies."""
        turns = self.turns
        if not turns:
            raise ConfigError("no reply to copy yet")
        try:
            return turns[index].markdown
        except IndexError:
            raise ConfigError(f"no reply {index}: the panel shows {len(turns)}") from None

    @property
    def turns(self) -> list[TurnView]:
        """The exchanges shown, oldest first."""
        return list(self._views.values())

    def close(self, *, remove: bool = False) -> None:
        """Release the connection, the tasks and any built-in server.

        The conversation stays on the page, read-only and marked closed; with
        ``remove=True`` the panel is removed too (re-running its cell does that).
        Inside a running loop (a notebook) the release finishes in the background;
        ``await chat.aclose()`` waits for it.
        """
        if remove:
            with contextlib.suppress(Exception):
                self.close_all_children()
            super().close()
        if self.closed:
            return
        self.closed = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self.client.approver == self._approve:
            self.client.approver = None
        self._throttle.flush()
        if not remove:
            self._freeze()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            from ..client.blocking import run_sync

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
            await asyncio.to_thread(server.close_sync)

    def _freeze(self) -> None:
        """Leave the conversation readable: unfinished replies say why they stopped."""
        for view in self._views.values():
            if not view.done:
                view.fail("stopped: the chat was closed")
        self._input.streaming = False
        self._input.closed = True
        self._header.value = render.status_header_html(
            "closed", "chat.close() ended this conversation; it stays here to read"
        )
        self._publish()

    def close_all_children(self) -> None:
        """Close every child widget (they hold comms of their own)."""

        def walk(widget: widgets.Widget) -> None:
            for child in getattr(widget, "children", ()):
                walk(child)
            widget.close()

        for child in self.children:
            walk(child)

    # Display: the live panel, then the static conversation for viewers without a kernel

    def _ipython_display_(self) -> None:
        from IPython.display import display

        bundle = dict(super()._repr_mimebundle_() or {})
        bundle["text/plain"] = PANEL_TEXT
        display(bundle, raw=True)
        self._static.display(self._turns())

    def _turns(self) -> list[Turn]:
        return [view.turn for view in self._views.values()]

    def _publish(self) -> None:
        """Bring the static conversation up to date (once per completed reply, not per token)."""
        self._static.update(self._turns())

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
        self._publish()
        if all(v.done for v in self._views.values()):
            self._input.streaming = False

    def _on_state(self, state: ConnectionState) -> None:
        self._update_header()
        if state is ConnectionState.CONNECTED:
            self._connected_once = True
            for view in self._views.values():
                if view.note:
                    view.show_note("")
        elif state is ConnectionState.DISCONNECTED and self.client.reconnecting:
            # A reply can only resume on a server that was reached once.
            note = (
                "connection lost: the reply resumes when it is back"
                if self._connected_once
                else "waiting for the server: the message goes out once it answers"
            )
            for view in self._views.values():
                view.show_note(note)

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

    def _submit(self, text: str, echo: int | None = None) -> None:
        if self.closed:
            self._input.accept(echo, text=text)
            return
        try:
            self.send(text)
        except NbchatError as exc:
            self._input.accept(echo, text=text)  # the page gives the text back
            self._log.append(widgets.HTML(render.error_banner_html(f"Not sent: {exc}")))
        else:
            self._input.accept(echo)

    async def _approve(self, call: ToolCall) -> bool:
        """The client's approver: Run / Deny under the call's card, then the person's answer."""
        loop = asyncio.get_running_loop()
        decided: asyncio.Future[bool] = loop.create_future()

        def decide(run: bool) -> None:  # a button click, maybe on another thread
            def settle() -> None:
                if not decided.done():
                    decided.set_result(run)

            loop.call_soon_threadsafe(settle)

        view = next((v for v in self._views.values() if v.has_call(call.id)), None)
        if view is None:
            raise ConfigError(f"no card shows the call of {call.name}: it cannot be confirmed")
        controls = view.confirm(call, decide)
        try:
            return await decided
        finally:
            view.remove(controls)

    def _show_history(self, history: Transcript | str | os.PathLike[str]) -> None:
        """Show a recorded conversation's turns, and go on in its conversation."""
        transcript = history if isinstance(history, Transcript) else Transcript.load(history)
        turns = transcript.turns
        for turn in turns:
            view = TurnView.of_turn(turn, self._throttle)
            self._views[turn.message_id or new_id()] = view
            self._log.append(view.box)
        last = next((t.conversation_id for t in reversed(turns) if t.conversation_id), None)
        if last is not None:
            self.client.conversation_id = last

    def _retry_from_panel(self) -> None:
        try:
            self.retry()
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
                old.close(remove=True)  # the cell's outputs are cleared: nothing to read
            _by_cell[cell] = weakref.ref(self)
        _current = weakref.ref(self)


_closing: set[asyncio.Task[None]] = set()


def _builtin_server(backend: Responder | None, delay: float) -> ChatServer:
    """The embedded backend: ``backend``, else a model from the environment, else the demo."""
    from ..server import ChatServer, DemoServer
    from ..server.backend import agent_from_environment

    responder = backend if backend is not None else agent_from_environment()
    if responder is None:
        return DemoServer.start_in_thread(port=0, delay=delay)
    return ChatServer.start_in_thread(responder, port=0)


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
