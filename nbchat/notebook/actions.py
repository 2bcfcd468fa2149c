"""A ChatWidget's frontend actions: Send, Stop, Retry, Clear, Run / Deny, on the client's loop.

JupyterLab 4.6 with ipykernel 7 can deliver widget messages on a kernel
subshell, another thread with a loop of its own, while the client and its
queue belong to the loop the widget was made on: every action from the page
is handed home first (:meth:`FrontendActions._call_home`). This part of
:class:`~nbchat.notebook.ChatWidget` holds the actions and the methods that
do what their buttons do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .. import render
from ..client.attach import named_attachment
from ..client.blocking import running_loop
from ..client.tools import Denial
from ..exceptions import ConfigError, NbchatError
from ..protocol import ToolCall, new_id
from .approval import CLEARED, STOPPED, Approvals
from .input import ChatInput, Picked
from .turnlog import TurnLog
from .views import TurnView

if TYPE_CHECKING:
    from ..client.client import ChatClient

__all__ = ["FrontendActions"]


class FrontendActions:
    """The frontend actions of a widget (a base of :class:`~nbchat.notebook.ChatWidget`)."""

    client: ChatClient
    closed: bool
    _views: dict[str, TurnView]
    _log: TurnLog
    _input: ChatInput
    _home_loop: asyncio.AbstractEventLoop | None
    _approvals: Approvals

    def send(self, text: str, *, attach: Iterable[Any] = ()) -> str:
        """Send ``text``; the reply streams into the panel. Returns at once with the message id.

        ``attach`` as for :meth:`ask`, once the panel is connected."""
        return self.client.send(text, attach=attach)

    def _publish(self) -> None:
        """Bring the static copy up to date (the widget defines it)."""
        raise NotImplementedError

    def cancel(self) -> bool:
        """Ask the server to stop the reply that is streaming (what the Stop button does).

        Calls of its reply waiting for approval are denied: the reply was stopped.
        """
        conversation = self.client.conversation_id
        ours = [
            v
            for v in self._views.values()
            if v.message is None or v.message.conversation_id == conversation
        ]
        self._approvals.settle(STOPPED, ours)
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
        self._approvals.settle(CLEARED)
        if any(not view.done for view in self._views.values()):
            self.cancel()
        self.client.conversation_id = new_id()
        self._views.clear()
        self._log.clear()
        self._input.streaming = False
        self._publish()
        return self.client.conversation_id

    def _call_home(self, action: Callable[[], object]) -> None:
        """Run a frontend-triggered action on the client's loop.

        JupyterLab 4.6 with ipykernel 7 can deliver widget messages on a kernel
        subshell: another thread, with a loop of its own. The client and its
        queue belong to the loop the widget was made on, so hand the action over.
        """
        home = self._home_loop
        if home is not None and not home.is_closed() and running_loop() is not home:
            home.call_soon_threadsafe(action)
        else:
            action()

    def _submit(self, text: str, echo: int | None = None, files: Sequence[Picked] = ()) -> None:
        if self.closed:
            self._input.accept(echo, text=text)
            return
        try:
            attached = [named_attachment(data, name, mime or None) for name, mime, data in files]
            self.send(text, attach=attached)
        except NbchatError as exc:
            self._input.accept(echo, text=text)  # the page gives the text back
            self._log.append(widgets.HTML(render.error_banner_html(f"Not sent: {exc}")))
        else:
            self._input.accept(echo)

    async def _approve(self, call: ToolCall) -> bool | Denial:
        """The client's approver: the question on the call's card, then the person's answer."""
        return await self._approvals.ask(call)

    def _retry_from_panel(self) -> None:
        try:
            self.retry()
        except NbchatError as exc:
            self._log.append(widgets.HTML(render.error_banner_html(str(exc))))
