"""The connection to one MCP server, with the official ``mcp`` SDK: the client's and the server's.

:class:`McpServer` starts a stdio server (or connects to a streamable-HTTP
one), lists its tools, calls them, starts it again after a crash and ends it
with :meth:`~McpServer.close`. It belongs to whoever offers its tools: a client
(``client.mcp(...)``, :mod:`nbchat.client.mcp`), whose stdio server ends with
the client, its loop or the kernel (its stdin closes and the SDK stops it), or
the server's model bridge (``nbchat serve --mcp``,
:mod:`nbchat.server.mcptools`), whose server ends with ``nbchat serve``. It
lives here, beside the one executor, because both use it and neither may
import the other. The SDK's ``ClientSession`` lives in one task of its own
(anyio's task groups must be entered and left by the same task); calls are
made from the tool's task.

Each listed tool is a :class:`~nbchat.schematool.SchemaSpec` of the server's
own JSON Schema (:meth:`McpServer.specs`), so arguments are validated by
``jsonschema`` on the one path every tool's go
(:func:`nbchat.toolspec.prepare_call`) and arguments outside the schema never
reach the server; with it come the tool's annotations, from which its owner
decides approval (:func:`nbchat.mcpspec.confirm_default`).

A call: within :data:`CALL_SECONDS` (cancelling the caller cancels it: the
tool is ``async``); an MCP error or an ``isError`` result is an error result
with the server's message; structured content is the result when there is
some, else the text (one block) or the blocks; a PNG or JPEG image makes the
result an ``Output`` of the text and the image (:func:`nbchat.mcpspec.mcp_result`).
A server that ended makes the call fail in one line; the next call starts it
again, at most :data:`MAX_RESTARTS` times, then says so.
``notifications/tools/list_changed`` lists the tools again and tells the
owner (``on_change``). Starting: a command that does not exist or exits at
once is a :class:`~nbchat.ToolError` naming the command and the last line of
its stderr; a server that does not answer within ``timeout`` seconds, one line
too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..exceptions import ToolError
from ..mcpspec import Target, mcp_result, tool_name
from ..schematool import SchemaSpec, schema_spec

__all__ = [
    "CALL_SECONDS",
    "MAX_RESTARTS",
    "START_SECONDS",
    "ListedTool",
    "McpServer",
]

logger = logging.getLogger("nbchat.tools")

START_SECONDS = 30.0
"""Longest a server may take to start and list its tools."""
CALL_SECONDS = 120.0
"""Longest one call may take."""
MAX_RESTARTS = 3
"""Times a server that ended is started again, on the next call, before giving up."""
_STDERR_TAIL = 4096


@dataclass(frozen=True)
class ListedTool:
    """One tool an MCP server listed: the spec that calls it, and its annotations."""

    spec: SchemaSpec
    annotations: Any
    """The server's ``ToolAnnotations`` (``readOnlyHint``, ``destructiveHint``), or None."""


class McpServer:
    """One MCP server used by a client: started, listed, called, restarted, closed."""

    def __init__(
        self,
        target: Target,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = START_SECONDS,
        call_timeout: float = CALL_SECONDS,
        on_change: Callable[[McpServer], None] | None = None,
        afresh: str = "call mcp(...) to start it afresh",
    ) -> None:
        self.target = target
        self.label = target.label
        self.where = f"MCP: {self.label}"
        self.tools: list[Any] = []
        """The server's tools as it last listed them (``mcp.types.Tool``)."""
        self.restarts = 0
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._timeout = timeout
        self._call_timeout = call_timeout
        self._on_change = on_change
        self._afresh = afresh
        """What to do once the restarts are used up, said by the owner (a notebook, serve)."""
        self._session: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._errlog: Any = None
        self._dead: str | None = None
        """Why the running server is unusable (it ended), until it is started again."""

    def __repr__(self) -> str:
        return f"<McpServer {self.label} {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        """Whether the server is up (started, not ended, not closed)."""
        return self._task is not None and not self._task.done() and self._dead is None

    # Public methods

    async def start(self) -> list[Any]:
        """Start (or connect), initialize and list the tools; :class:`ToolError` in one line."""
        _require_sdk()
        await self.close()
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._stop = asyncio.Event()
        self._dead = None
        if self.target.url is None:
            self._errlog = tempfile.TemporaryFile(  # noqa: SIM115 - open while the server runs
                "w+", encoding="utf-8", errors="replace"
            )
        self._task = loop.create_task(
            self._serve(ready, self._stop), name=f"nbchat mcp {self.label}"
        )
        try:
            await asyncio.wait_for(asyncio.shield(ready), self._timeout)
        except asyncio.TimeoutError:
            await self.close()
            raise ToolError(
                f"the MCP server {self.target.shown!r} did not start within {self._timeout:g}s"
                f"{self._stderr_note()}"
            ) from None
        except ToolError:
            await self.close()
            raise
        except asyncio.CancelledError:
            await self.close()
            raise
        return self.tools

    async def call(self, name: str, arguments: Mapping[str, Any]) -> Any:
        """Call tool ``name`` of the server (starting it again if it ended); the value."""
        if not self.running:
            await self._restart()
        from mcp.shared.exceptions import MCPError

        session = self._session
        try:
            result = await asyncio.wait_for(
                session.call_tool(name, dict(arguments)), self._call_timeout
            )
        except asyncio.TimeoutError:
            raise ToolError(
                f"{name} ({self.where}) did not finish within {self._call_timeout:g}s"
            ) from None
        except MCPError as exc:
            if self._task is None or self._task.done() or _closed(exc):
                self._dead = f"the MCP server {self.label} ended"
                raise ToolError(
                    f"the MCP server {self.label} ended during the call"
                    f"{self._stderr_note()}; it is started again on the next call"
                ) from None
            raise ToolError(" ".join(str(exc.message).split()) or "MCP error") from None
        return mcp_result(result)

    async def close(self) -> None:
        """End the server (its process, for stdio) and wait until it has ended."""
        task, self._task = self._task, None
        if self._stop is not None:
            self._stop.set()
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), 10)
            except BaseException:  # closing must not raise; a stuck one is cancelled
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._session = None
        if self._errlog is not None:
            with contextlib.suppress(OSError):
                self._errlog.close()
            self._errlog = None

    def specs(self, prefix: str | None = None) -> list[ListedTool]:
        """The listed tools as specs of their own JSON Schema, named ``prefix`` + their name."""
        made = []
        for tool in self.tools:
            spec = schema_spec(
                _caller(self, tool.name),
                tool.input_schema or {"type": "object"},
                name=tool_name(f"{prefix or ''}{tool.name}"),
                description=tool.description or tool.title or "",
            )
            made.append(ListedTool(spec, tool.annotations))
        return made

    # Private methods

    async def _restart(self) -> None:
        if self.restarts >= MAX_RESTARTS:
            raise ToolError(
                f"the MCP server {self.label} ended and was started again {MAX_RESTARTS} times: "
                f"it is not started again ({self._afresh})"
            )
        self.restarts += 1
        logger.warning("MCP server %s ended; starting it again (%d)", self.label, self.restarts)
        await self.start()

    async def _serve(self, ready: asyncio.Future[None], stop: asyncio.Event) -> None:
        """The task that owns the session: enters the SDK's contexts, waits, leaves them."""
        from mcp.client.session import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())
                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=self._message)
                )
                await session.initialize()
                self.tools = await _list_tools(session)
                self._session = session
                ready.set_result(None)
                await stop.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except BaseException as exc:  # the SDK raises groups, OSError, MCPError
            reason = _leaf(exc)
            if not ready.done():
                ready.set_exception(ToolError(self._start_failure(reason)))
            else:
                self._dead = f"the MCP server {self.label} ended ({reason})"
                logger.warning("%s", self._dead)
        finally:
            if self._session is not None and stop.is_set():
                self._session = None

    def _transport(self) -> Any:
        if self.target.url is not None:
            from mcp.client import streamable_http

            connect = getattr(streamable_http, "streamable_http_client", None)
            if connect is None:  # mcp 1.x
                connect = getattr(streamable_http, "streamablehttp_client")  # noqa: B009

            @contextlib.asynccontextmanager
            async def http() -> Any:
                async with connect(self.target.url) as streams:
                    yield streams[0], streams[1]

            return http()
        from mcp.client.stdio import StdioServerParameters, stdio_client

        argv = self.target.argv
        params = StdioServerParameters(
            command=argv[0],
            args=list(argv[1:]),
            env=self._env,
            cwd=os.fspath(self._cwd) if self._cwd is not None else None,
        )
        return stdio_client(params, errlog=self._errlog)

    async def _message(self, message: Any) -> None:
        """Server notifications: a changed tool list is listed again."""
        from mcp.types import ToolListChangedNotification

        if isinstance(message, ToolListChangedNotification):
            asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        session = self._session
        if session is None:
            return
        try:
            self.tools = await asyncio.wait_for(_list_tools(session), self._timeout)
        except Exception as exc:  # a failed refresh keeps the old list
            logger.warning("listing the tools of MCP server %s again failed: %s", self.label, exc)
            return
        if self._on_change is not None:
            self._on_change(self)

    def _start_failure(self, reason: str) -> str:
        return f"the MCP server {self.target.shown!r} did not start ({reason}){self._stderr_note()}"

    def _stderr_note(self) -> str:
        line = self._stderr_tail()
        return f"; its stderr said: {line}" if line else ""

    def _stderr_tail(self) -> str:
        errlog = self._errlog
        if errlog is None:
            return ""
        try:
            errlog.flush()
            size = errlog.seek(0, os.SEEK_END)
            errlog.seek(max(0, size - _STDERR_TAIL))
            lines = [line.strip() for line in errlog.read().splitlines() if line.strip()]
        except (OSError, ValueError):
            return ""
        return " ".join(lines[-1].split())[:300] if lines else ""


# Private helpers


def _require_sdk() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ToolError(
            "MCP servers need the mcp package: pip install 'jupyter-nbchat[mcp]'"
        ) from None


async def _list_tools(session: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(100):  # pages, bounded
        from mcp.types import PaginatedRequestParams

        params = PaginatedRequestParams(cursor=cursor) if cursor else None
        listed = await session.list_tools(params=params)
        tools.extend(listed.tools)
        cursor = listed.next_cursor
        if not cursor:
            break
    return tools


def _caller(server: McpServer, name: str) -> Callable[..., Any]:
    async def call(**arguments: Any) -> Any:
        return await server.call(name, arguments)

    call.__name__ = call.__qualname__ = re.sub(r"\W", "_", name) or "tool"
    return call


def _closed(exc: Any) -> bool:
    return "closed" in str(getattr(exc, "message", exc)).lower()


def _leaf(exc: BaseException) -> str:
    """The first real exception inside the SDK's exception groups, in one line."""
    inner = getattr(exc, "exceptions", None)  # an (anyio) exception group
    while isinstance(inner, tuple) and inner:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    if isinstance(exc, FileNotFoundError):
        return f"no such command: {exc.filename or exc}"
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    return text or type(exc).__name__
