"""ChatWidget: a chat panel for notebook cells, a thin shell around ChatClient.

The widget listens to its client's events and hands each message, with the
reply the session assembled so far, to the view of the turn it answers (the
client says which: ``reply_to``); the views (:mod:`nbchat.notebook.views`)
render and throttle. This module is the panel itself: construction, the public
methods, display and close. How it renders client events is in
:mod:`~nbchat.notebook.rendering`; the frontend actions (Send, Stop, Retry,
Clear, Run / Deny), handed to the loop the client runs on, in
:mod:`~nbchat.notebook.actions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

import ipywidgets as widgets

from .. import render
from ..client.blocking import running_loop
from ..client.client import ChatClient
from ..client.kernel import Kernel, asks_each_time, offer_kernel_tools
from ..config import DEMO_DELAY
from ..exceptions import ConfigError, NbchatError
from ..mentions import completions
from ..protocol import ToolCall
from ..reply import Reply
from ..transcript import Recorder, Transcript
from .actions import FrontendActions
from .approval import CLOSED, Approvals, PendingCall
from .input import ChatInput, shared_style
from .rendering import EventRendering
from .static_view import EMPTY_TEXT, StaticConversation
from .turnlog import TurnLog
from .views import Throttle, TurnView, close_tree

if TYPE_CHECKING:
    from ..client.tools import ClientTool
    from ..server import ChatServer, Responder

_F = TypeVar("_F", bound=Callable[..., Any])

__all__ = ["ChatWidget", "current_widget"]

MAX_FPS = 30.0
PANEL_TEXT = "nbchat ChatWidget (live while its kernel runs; the conversation follows)"
"""The panel's own plain fallback: the static outputs after it hold the conversation."""


_by_cell: dict[str, weakref.ref[ChatWidget]] = {}
_current: weakref.ref[ChatWidget] | None = None


def current_widget() -> ChatWidget | None:
    """The most recently created widget that is still open, if any."""
    widget = _current() if _current is not None else None
    return widget if widget is not None and not widget.closed else None


class ChatWidget(EventRendering, FrontendActions, widgets.VBox):
    """A chat panel: the conversation, tool calls as they run, and the client underneath.

    ``ChatWidget()`` talks to ``$NBCHAT_WS_URL`` or, when unset, to a built-in
    reference server it starts on a free loopback port, answering with the demo
    agent, or with a model when ``$NBCHAT_OPENAI_BASE_URL`` and ``$NBCHAT_MODEL``
    are set. ``ChatWidget(backend=OpenAIAgent(...))`` runs any responder as the
    built-in server; ``ChatWidget(client)`` wraps an existing client;
    ``ChatWidget(url=..., **config)`` makes one. ``history=`` (a transcript
    file or :class:`Transcript`) opens the panel on a recorded conversation, to
    read it or to go on with it on the same conversation id.
    ``kernel_tools=True`` lets the model read this kernel's variables, last
    error and cells (secrets withheld); ``run_code=True`` lets it run code here,
    each time after Run (:mod:`nbchat.client.kernel`). With it, ``@`` in the input
    completes the kernel's variable names, and ``@df`` in a message carries df's
    description to the backend (:mod:`nbchat.mentions`).

    Displayed, the panel's cell gets more outputs: the conversation as
    static HTML, split over them and kept current after each reply, so a saved notebook shows it
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
        kernel_tools: bool | Kernel = False,
        run_code: bool = False,
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
            from ..server.backend import wants_builtin_server  # the one chooser: replay wins

            if url is None and wants_builtin_server(backend):
                self._server = _builtin_server(backend, delay)
                url = self._server.url
            client = ChatClient(url=url, **config) if url else ChatClient(**config)
        if kernel_tools is not False or run_code:  # opt-in: sharing the namespace is a choice
            client.kernel = offer_kernel_tools(client.tool, kernel_tools, run_code=run_code)
        self.client = client
        """The :class:`ChatClient` underneath: everything it can do stays available."""
        self.closed = False
        self._connected_once = False
        self._views: dict[str, TurnView] = {}
        self._throttle = Throttle(self.max_fps)
        self._connect_task: asyncio.Task[None] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self._approvals = Approvals(self._views.values, self._where, self._asks_each_time)

        self._header = widgets.HTML()
        self._log = TurnLog()
        self._input = ChatInput()
        kernel = client.kernel
        if kernel is not None:  # @ completes the names the kernel tools share
            self._input.completer = lambda prefix: completions(kernel.namespace(), prefix)
            self._input.mentions = True
        self._home_loop = running_loop()
        """The loop the client runs on; frontend events are handed over to it."""
        self._input.on_submit(
            lambda text, echo, files: self._call_home(lambda: self._submit(text, echo, files))
        )
        self._input.on_action("stop", lambda: self._call_home(self.cancel))
        self._input.on_action("retry", lambda: self._call_home(self._retry_from_panel))
        self._input.on_action("clear", lambda: self._call_home(self.clear))
        super().__init__([shared_style(), self._header, self._log.box, self._input])
        self.add_class("nbchat")

        if client.approver is None:  # a client brought with its own approver keeps it
            client.approver = self._approve
        self._unsubscribe = [
            client.on("send", self._on_send),
            client.on("reply", self._on_reply),
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

    async def ask(
        self, text: str, timeout: float | None = None, *, attach: Iterable[Any] = ()
    ) -> Reply:
        """Send ``text`` and wait for the complete reply, which also shows in the panel.

        ``attach``: figures, images, DataFrames, text and file paths for the model to
        see (:meth:`nbchat.ChatClient.ask`); the user's bubble names each one.
        """
        return await self.client.ask(text, timeout=timeout, attach=attach)

    def ask_sync(
        self, text: str, timeout: float | None = None, *, attach: Iterable[Any] = ()
    ) -> Reply:
        """Block the cell until the reply is complete; the panel keeps updating meanwhile."""
        __tracebackhide__ = True  # IPython and pytest show the caller's line, then the reason
        return self.client.ask_sync(text, timeout=timeout, attach=attach)

    @overload
    def tool(
        self,
        fn: _F,
        *,
        name: str | None = None,
        confirm: bool = False,
        schema: Mapping[str, Any] | None = None,
    ) -> _F: ...

    @overload
    def tool(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        confirm: bool = False,
        schema: Mapping[str, Any] | None = None,
    ) -> Callable[[_F], _F]: ...

    def tool(
        self,
        fn: _F | None = None,
        *,
        name: str | None = None,
        confirm: bool = False,
        schema: Mapping[str, Any] | None = None,
    ) -> _F | Callable[[_F], _F]:
        """Let the model call a typed function of this notebook; it runs in this kernel.

        ``@chat.tool``, ``chat.tool(fn)`` or ``@chat.tool(confirm=True)``: with
        ``confirm``, the call's card shows Run / Deny and nothing runs until the
        person decides. ``schema={...}`` (or an :class:`~nbchat.Tool`) describes
        the arguments by a JSON Schema instead of type hints. See :meth:`ChatClient.tool`.
        """
        return self.client.tool(fn, name=name, confirm=confirm, schema=schema)

    def mcp(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        confirm: bool | None = None,
        prefix: str | None = None,
        **options: Any,
    ) -> list[str]:
        """Offer an MCP server's tools to the model, from a cell; return the names added.

        ``chat.mcp("mcp-server-time")``: the server runs beside this kernel and
        ends with the panel (:meth:`close`) or the kernel. See :meth:`ChatClient.mcp`.
        """
        return self.client.mcp_sync(
            command, env=env, cwd=cwd, confirm=confirm, prefix=prefix, **options
        )

    @property
    def pending(self) -> list[PendingCall]:
        """The tool calls waiting for approval, oldest first: id, tool, arguments, where."""
        return self._approvals.pending

    async def next_pending(self, timeout: float | None = None) -> PendingCall:
        """The oldest call waiting for approval, once one waits (``asyncio.TimeoutError`` past
        ``timeout`` seconds): ``task = asyncio.ensure_future(chat.ask(...))``, then
        ``chat.approve((await chat.next_pending()).id)`` answers it from code."""
        return await self._approvals.next_pending(timeout)

    def approve(self, call_id: str | None = None, *, always: bool = False) -> PendingCall:
        """Run a call waiting for approval (the oldest, without ``call_id``), as Run does.

        ``always=True`` is "Always allow <tool>": later calls of the same tool run
        without asking, in this panel. Returns the call answered;
        :class:`ConfigError` (one line) when nothing waits or ``call_id`` does not.
        """
        return self._approvals.approve(call_id, always=always)

    def deny(self, call_id: str | None = None, reason: str | None = None) -> PendingCall:
        """Refuse a call waiting for approval (the oldest, without ``call_id``), as Deny does.

        The model is told it was denied, and ``reason`` when given. Returns the
        call answered; :class:`ConfigError` (one line) when nothing waits or
        ``call_id`` does not.
        """
        return self._approvals.deny(call_id, reason)

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
        self._approvals.settle(CLOSED)
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

        for child in self.children:
            close_tree(child)

    # Display: the live panel, then the static conversation for viewers without a kernel

    def _ipython_display_(self) -> None:
        from IPython.display import display

        bundle = dict(super()._repr_mimebundle_() or {})
        bundle["text/plain"] = PANEL_TEXT
        display(bundle, raw=True)
        self._static.display(self._views.values())

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The fallback is the conversation at display time and is never updated
        # afterwards: nbval compares a cell's outputs as they were first sent, and
        # a display updated later (as JupyterLab saves it) would never match.
        bundle: dict[str, Any] = dict(super()._repr_mimebundle_(**kwargs) or {})
        turns = [view.turn for view in self._views.values()]
        bundle["text/plain"] = render.conversation_text(turns) or EMPTY_TEXT
        bundle["text/markdown"] = render.conversation_markdown(turns) or f"*{EMPTY_TEXT}*"
        return bundle

    # Private methods

    def _asks_each_time(self, call: ToolCall) -> bool:
        """Whether "Always allow" is never offered for this call's tool (run_code)."""
        return asks_each_time(self.client.tools.get(call.name))

    def _where(self, call: ToolCall) -> str:
        """Where a call of the notebook's tool runs, as the tool says (its card, its question)."""
        tool = self.client.tools.get(call.name)
        return tool.where if tool is not None else "in this kernel"

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
    from ..server.backend import builtin_server

    return builtin_server(backend, delay=delay).serve_in_thread()


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
