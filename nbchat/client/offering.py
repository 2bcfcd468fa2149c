"""The client's tool API: offering this process's functions to the server's model.

A part of :class:`~nbchat.client.ChatClient` kept in its own module because
it is its own concept: which functions are offered, and telling the session
when that changes. Running the calls is :mod:`nbchat.client.tools`' job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from ..protocol import ToolResponse, dump
from ..session import Session
from .tools import ClientTool, ToolApprover, ToolRunner

__all__ = ["ToolOffering"]

_F = TypeVar("_F", bound=Callable[..., Any])


class ToolOffering:
    """The tool methods of a client (a base of :class:`~nbchat.client.ChatClient`)."""

    _tools: ToolRunner
    _session: Session

    def _wake(self) -> None:
        """Wake the writer: the session has a frame to write (the client defines it)."""
        raise NotImplementedError

    @property
    def tools(self) -> Mapping[str, ClientTool]:
        """The functions offered to the server as tools, by name (read-only, live)."""
        return self._tools.view

    @property
    def approver(self) -> ToolApprover | None:
        """Asked before each call of a ``confirm=True`` tool: ``await approver(call)``.

        ``call`` is the :class:`~nbchat.ToolCall` (id, name, arguments); only
        ``True`` runs it, anything else (False, None, a string such as "n")
        returns "denied by the user" to the model. While None, such
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
        on nbchat's bounded tool threads (:mod:`nbchat.tools.threads`). See
        :mod:`nbchat.client.tools` for what each call does with bad arguments,
        exceptions and large results.
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

    # Private methods

    def _declare_tools(self) -> None:
        self._session.declare_tools(dump(self._tools.declaration()))
        self._wake()

    def _send_tool_response(self, response: ToolResponse) -> None:
        self._session.tool_result(response.id, dump(response))
        self._wake()
