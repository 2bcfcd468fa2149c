"""The client's tool API: offering this process's functions to the server's model.

A part of :class:`~nbchat.client.ChatClient` kept in its own module because
it is its own concept: which functions are offered, and telling the session
when that changes. Running the calls is :mod:`nbchat.client.tools`' job.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from ..config import replay_instead
from ..exceptions import NbchatError, ToolError
from ..mcpspec import Target, mcp_line, parse_target
from ..protocol import ATTACHMENTS_FEATURE, ToolResponse, dump
from ..schematool import Tool
from ..session import Session
from ..tools.mcp import START_SECONDS, McpServer
from .blocking import run_sync
from .mcp import client_tools, replayed_tools
from .tools import ClientTool, ToolApprover, ToolRunner

__all__ = ["ToolOffering"]

logger = logging.getLogger("nbchat.client")


@dataclass
class _McpEntry:
    """An MCP server of a client: the server (None when replayed) and the names it added."""

    server: McpServer | None
    target: Target
    confirm: bool | None
    prefix: str | None
    names: list[str]


_F = TypeVar("_F", bound=Callable[..., Any])


class ToolOffering:
    """The tool methods of a client (a base of :class:`~nbchat.client.ChatClient`)."""

    _tools: ToolRunner
    _session: Session

    def _wake(self) -> None:
        """Wake the writer: the session has a frame to write (the client defines it)."""
        raise NotImplementedError

    @property
    def features(self) -> frozenset[str]:
        """The extensions the server announced (the client defines it)."""
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

    def tool_result_html(self, message_id: str | None, call_id: str) -> str | None:
        """How a client tool's rich result shows in its card (sanitized HTML: a table, an
        image), for the call ``call_id`` of the reply to ``message_id``; None when the result
        had no view of its own (its JSON shows) or the view is no longer kept."""
        return self._tools.shown(message_id, call_id)

    # Public methods: tools

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
        """Offer a typed function (sync or async) to the server's model; return it unchanged.

        Usable as ``client.tool(fn)``, ``@client.tool`` and
        ``@client.tool(confirm=True)``. The JSON Schema comes from the signature
        and the docstring (:mod:`nbchat.toolspec`); a function without type hints
        raises :class:`~nbchat.ToolSpecError` with a one-line reason. With
        ``schema={...}`` (or an :class:`~nbchat.Tool`) the arguments are described
        by that JSON Schema instead, checked here and validated before each call
        (:mod:`nbchat.schematool`); the function is called with them as keywords.
        A tool of the same name is replaced (one of that name from an MCP server
        is a clash, refused). The server learns of the change at once (if
        connected) and on every reconnect. Calls run in this process: an
        ``async def`` on the client's loop (Stop cancels it), a plain function
        on nbchat's bounded tool threads (:mod:`nbchat.tools.threads`). See
        :mod:`nbchat.client.tools` for what each call does with bad arguments,
        exceptions and large results.
        """

        def register(function: _F) -> _F:
            if isinstance(function, Tool):
                tool = ClientTool.from_spec(function.spec(), confirm=confirm)
            else:
                tool = ClientTool.of(function, name=name, confirm=confirm, schema=schema)
            self._tools.add(tool)
            self._declare_tools()
            return function

        return register if fn is None else register(fn)

    async def mcp(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        confirm: bool | None = None,
        prefix: str | None = None,
        timeout: float = START_SECONDS,
        live: bool = False,
    ) -> list[str]:
        """Offer an MCP server's tools to the model; return the names added.

        ``command``: a command line (split like a shell's) or an argv list for a
        stdio server, which this client starts and ends (with :meth:`disconnect`),
        or an ``http(s)://`` URL of a streamable-HTTP server. Each tool keeps the
        server's JSON Schema (arguments outside it never reach the server) and
        waits for approval unless the server marks it ``readOnlyHint`` (and not
        ``destructiveHint``); ``confirm`` True or False decides for all of them.
        ``prefix`` goes before each tool's name; a name that clashes with another
        tool is refused, naming both. Under a replay the server is not started
        (``live=True`` starts it): see :mod:`nbchat.client.mcp`; the connection is
        :mod:`nbchat.tools.mcp`.
        :class:`~nbchat.ToolError` (one line) when the server cannot be started.
        """
        servers = self._mcp_servers()
        target = parse_target(command)
        old = servers.get(target.shown)
        if replay_instead() is not None and not live:
            tools = await replayed_tools(target, confirm, prefix)
            server = None
        else:
            server = McpServer(
                target, env=env, cwd=cwd, timeout=timeout, on_change=self._mcp_changed
            )
            await server.start()
            try:
                tools = client_tools(server, confirm, prefix)
            except BaseException:
                await server.close()
                raise
        kept = {name: tool for name, tool in self._tools.view.items()}
        if old is not None:  # the same server again (a cell run twice): it replaces itself
            for name in old.names:
                kept.pop(name, None)
        for tool in tools:
            clash = kept.get(tool.name)
            if clash is not None and clash.where != tool.where:
                if server is not None:
                    await server.close()
                raise ToolError(
                    f"tool {tool.name!r} ({tool.where}) clashes with the tool {clash.name!r} "
                    f"({clash.where}): pass prefix=... to mcp(), or remove_tool({clash.name!r})"
                )
        if old is not None:
            await self._drop_mcp(old)
        entry = _McpEntry(server, target, confirm, prefix, [tool.name for tool in tools])
        servers[target.shown] = entry
        for tool in tools:
            self._tools.add(tool)
        self._declare_tools()
        if server is not None:
            self._record_mcp(entry, tools)
        return list(entry.names)

    def mcp_sync(self, command: str | Sequence[str], **options: Any) -> list[str]:
        """:meth:`mcp` for synchronous code (a cell, a script)."""
        return run_sync(self.mcp(command, **options))

    @property
    def mcp_servers(self) -> Mapping[str, McpServer | None]:
        """The MCP servers in use, by command (None: replayed, not started)."""
        return {shown: entry.server for shown, entry in self._mcp_servers().items()}

    def remove_tool(self, name: str) -> None:
        """Stop offering the tool ``name``; :class:`ConfigError` (one line) if there is none."""
        self._tools.remove(name)
        self._declare_tools()

    # Private methods

    def _mcp_servers(self) -> dict[str, _McpEntry]:
        servers: dict[str, _McpEntry] | None = self.__dict__.get("_mcp")
        if servers is None:
            servers = self.__dict__["_mcp"] = {}
        return servers

    async def _end_tools(self) -> None:
        """At disconnect: cancel the running calls, end the MCP servers this client started."""
        self._tools.cancel()
        await self._close_mcp()

    async def _close_mcp(self) -> None:
        """End every MCP server this client started (its tools stay, failing in one line)."""
        for entry in list(self._mcp_servers().values()):
            if entry.server is not None:
                await entry.server.close()

    async def _drop_mcp(self, entry: _McpEntry) -> None:
        for name in entry.names:
            if name in self._tools.view:
                self._tools.remove(name)
        if entry.server is not None:
            await entry.server.close()

    def _mcp_changed(self, server: McpServer) -> None:
        """``notifications/tools/list_changed``: the tools listed again replace the server's."""
        for entry in self._mcp_servers().values():
            if entry.server is not server:
                continue
            try:
                tools = client_tools(server, entry.confirm, entry.prefix)
            except NbchatError as exc:
                logger.warning("the new tools of MCP server %s are refused: %s", server.label, exc)
                return
            for name in entry.names:
                if name in self._tools.view:
                    self._tools.remove(name)
            added = []
            for tool in tools:
                if self._tools.clash(tool) is None:
                    self._tools.add(tool)
                    added.append(tool.name)
            entry.names = added
            self._declare_tools()
            self._record_mcp(entry, tools)

    def _record_mcp(self, entry: _McpEntry, tools: list[ClientTool]) -> None:
        """Put the server's tool list in the transcript being recorded, for replay."""
        recorder = getattr(self, "_recorder", None)
        if recorder is None:
            return
        line = mcp_line(entry.target, tools)
        with contextlib.suppress(Exception):  # recording never breaks the client
            recorder.client_event(line)

    def _declare_tools(self) -> None:
        declaration = self._tools.declaration()
        replayed = {
            name
            for entry in self._mcp_servers().values()
            if entry.server is None
            for name in entry.names
        }
        if replayed:  # a replay answers their calls from the recording (server/replaytools.py)
            declaration.tools = [tool for tool in declaration.tools if tool.name not in replayed]
        self._session.declare_tools(dump(declaration))
        self._wake()

    def _send_tool_response(self, response: ToolResponse) -> None:
        if response.attachments and ATTACHMENTS_FEATURE not in self.features:
            response = response.model_copy(update={"attachments": None})
        self._session.tool_result(response.id, dump(response))
        self._wake()
