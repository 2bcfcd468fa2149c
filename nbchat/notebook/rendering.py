"""How a ChatWidget renders its client's events: each into the view of the turn it answers.

The client says which message a server message answers (``reply_to``) and
hands over the reply as the session assembled it (the ``reply`` event); this
part of :class:`~nbchat.notebook.ChatWidget` only finds the view and lets it
render, keeps the status line current, and brings the static copy up to date
once per completed reply. An AG-UI agent's shared state, when it sends one, shows
in a collapsible "Agent state" view under the conversation, updated on each change.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import render
from ..client.connection import ConnectionState
from ..exceptions import ConnectionFailed, NbchatError, ProtocolError
from ..protocol import CancelRequest, ServerMessage, ToolCall, UserMessage, new_id
from ..render.html import agent_state_html
from ..reply import ReplyBuilder
from ..transcript import Transcript
from ..transcript.format import gc_paused
from .input import ChatInput
from .static_view import StaticConversation
from .turnlog import TurnLog
from .views import Throttle, TurnView

if TYPE_CHECKING:
    from ..client.client import ChatClient
    from ..server import ChatServer

__all__ = ["EventRendering"]

WAITING = "connecting: the message goes out once the server answers"
"""The note under a message while a server never reached is tried (the header: connecting)."""
RESUMING = "reconnecting: the reply resumes once connected"
"""The note under a reply while a lost connection is tried again (the header: reconnecting)."""
GAVE_UP = "Disconnected: {failure}"
"""The banner once the client gave up (the header: disconnected, and the same reason)."""


class EventRendering:
    """The client-event handlers of a widget (a base of :class:`~nbchat.notebook.ChatWidget`)."""

    client: ChatClient
    _views: dict[str, TurnView]
    _throttle: Throttle
    _log: TurnLog
    _input: ChatInput
    _header: widgets.HTML
    _static: StaticConversation
    _server: ChatServer | None
    _connected_once: bool
    _unsubscribe: list[Callable[[], None]]
    children: tuple[widgets.Widget, ...]
    """The panel's parts (the VBox's): stylesheet, header, log, controls."""
    _where: Callable[[ToolCall], str]
    """Where a call of the client's tools runs (the widget asks its tools)."""
    _gave_up: widgets.HTML | None = None
    """The give-up banner, removed as soon as it no longer holds."""
    _agent_state: widgets.HTML | None = None
    """The "Agent state" view (AG-UI), made when the agent first sends its state."""
    _watching_state = False

    def _publish(self) -> None:
        """Bring the static conversation up to date (once per completed reply, not per token)."""
        self._static.update(self._views.values())

    def _on_send(self, message: UserMessage | CancelRequest) -> None:
        if not isinstance(message, UserMessage):
            return
        assert message.id is not None
        view = TurnView(
            message.message,
            self._throttle,
            message,
            where=self._where,
            shown=lambda reply_to, call: self.client.tool_result_html(reply_to, call.id),
        )
        self._views[message.id] = view
        self._log.append(view.box)
        self._input.streaming = True
        self._watch_agent_state()

    def _watch_agent_state(self) -> None:
        """Follow the agent's shared state from the first message on (it comes in runs only)."""
        if self._watching_state:
            return
        self._watching_state = True
        self._unsubscribe.append(self.client.on("agent_state", self._on_agent_state))
        if self.client.agent_state is not None:  # a client brought with a state of its own
            self._on_agent_state(self.client.conversation_id, self.client.agent_state)

    def _on_agent_state(self, conversation_id: str, state: Any) -> None:
        if conversation_id != self.client.conversation_id:
            return
        view = self._agent_state
        if view is None:  # below the conversation, above the controls
            view = self._agent_state = widgets.HTML()
            *above, controls = self.children
            self.children = (*above, view, controls)
        view.value = agent_state_html(state)

    def _on_reply(self, message: ServerMessage, reply: ReplyBuilder) -> None:
        # The session decided which message this answers (reply_to) and assembled
        # the reply so far; acks never come here. Never guess, never rebuild.
        view = self._views.get(message.reply_to or "")
        if view is None or view.done:
            return
        self._drop_give_up()  # an answer arrived: the client did not give up
        view.feed(message, reply)
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
        if state is not ConnectionState.DISCONNECTED:
            self._drop_give_up()  # trying again, or connected: the give-up no longer holds
        if state is ConnectionState.CONNECTED:
            self._connected_once = True
        self._update_header()
        note = self._note()
        for view in self._views.values():
            if view.note != note and (note or view.note in (WAITING, RESUMING)):
                view.show_note(note)

    def _on_error(self, exc: BaseException) -> None:
        # Errors answering a message arrive in its turn; these answer none.
        banner = widgets.HTML()
        if isinstance(exc, ProtocolError):
            banner.value = render.error_banner_html(
                f"Ignored a malformed message from the server: {exc}"
            )
        elif isinstance(exc, ConnectionFailed):
            self._drop_give_up()
            banner.value = render.error_banner_html(GAVE_UP.format(failure=exc))
            self._gave_up = banner
        else:
            banner.value = render.error_banner_html(str(exc))
        self._log.append(banner)
        self._update_header()

    def _drop_give_up(self) -> None:
        banner, self._gave_up = self._gave_up, None
        if banner is not None:
            self._log.remove(banner)

    def _note(self) -> str:
        """The note unfinished replies carry in this state: one wording, as the header's."""
        client = self.client
        if client.state is ConnectionState.CONNECTED or not client.reconnecting:
            return ""
        # A reply can only resume on a server that was reached once.
        return RESUMING if self._connected_once else WAITING

    def _update_header(self) -> None:
        client = self.client
        state = client.state.value
        detail = ""
        if state != "connected" and client.reconnecting:
            state = "reconnecting" if self._connected_once else "connecting"
            detail = f"attempt {client.attempt} of {client.config.max_reconnect_attempts}"
        elif state == "disconnected" and client.failure is not None:
            detail = str(client.failure)
        elif state == "disconnected" and client.last_disconnect is not None:
            last = client.last_disconnect
            detail = last.reason or (f"code {last.code}" if last.code else "")
        # What answers, when the server says; the built-in server's loopback URL is noise.
        backend = client.backend
        if self._server is not None:
            where = backend or f"{client.safe_url} (built-in server)"
        else:
            where = f"{backend} · {client.safe_url}" if backend else client.safe_url
        self._header.value = render.status_header_html(state, f"{detail} · {where}".lstrip(" ·"))

    def _show_history(self, history: Transcript | str | os.PathLike[str]) -> None:
        """Show a recorded conversation's turns, and go on in its conversation."""
        transcript = history if isinstance(history, Transcript) else Transcript.load(history)
        turns = transcript.turns
        # Thousands of widgets made at once: the collector's full passes over the growing
        # heap made this superlinear (4,000 turns took 4.6x what 1,000 did); none of these
        # objects is in a cycle the collector would free.
        with gc_paused():
            for turn in turns:
                view = TurnView.of_turn(turn, self._throttle)
                self._views[turn.message_id or new_id()] = view
                self._log.append(view.box)
        last = next((t.conversation_id for t in reversed(turns) if t.conversation_id), None)
        if last is not None:
            self.client.conversation_id = last
