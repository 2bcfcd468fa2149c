"""Notebook functions as tools: what a client offers the server, and how it runs each call.

A :class:`ClientTool` is a typed function described by :mod:`nbchat.toolspec`
(JSON Schema from its signature, arguments validated by the same model,
results serialised through pydantic and bounded). :class:`ToolRunner` is the
client's half of the protocol's client tools (docs/protocol.md): it keeps the
tools, answers each ``tool_request`` with one ``tool_response``, and runs a
call id at most once: a request sent again (a resumed reply) gets the result
kept for it (the last :data:`MAX_KEPT_RESULTS`), a request whose call is still
running is ignored, and one whose result is no longer kept is refused
(:data:`RAN_BEFORE`; ids are remembered up to :data:`MAX_KEPT_ID_CHARS`).

Each call, in order: an unknown name, arguments that do not fit the signature,
a confirmation refused or impossible, and a function that raises (``SystemExit``
and ``KeyboardInterrupt`` included) all become an ``error`` result with a
one-line message; the conversation goes on. The call is run by
:func:`nbchat.tools.execute`, as the server's bridge runs its own: an ``async
def`` on the client's loop, cancelled by Stop; a plain function on nbchat's
bounded tool threads (the kernel's process, its variables), so the connection
stays alive while it works. Stop cannot end a plain function: its result then
says it is still running in a thread that could not be stopped, and its thread
no longer holds back later calls.

A result with a view of its own (a DataFrame, a figure: :mod:`nbchat.render.rich`)
is sent as the text the model reads of it; its view (sanitized HTML) stays
here, by call, for the card to show (:meth:`ToolRunner.shown`), the newest
:data:`MAX_SHOWN_CHARS` of them: it never goes on the wire, and a transcript
records only what the model read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ..attachments import Attachment
from ..exceptions import ConfigError
from ..protocol import ClientToolInfo, ToolCall, ToolRequest, ToolResponse, ToolsDeclaration
from ..schematool import schema_spec
from ..tools import execute, still_running
from ..toolspec import Spec, ToolOutcome, error_text, tool_spec

__all__ = [
    "MAX_KEPT_ID_CHARS",
    "MAX_KEPT_RESULTS",
    "MAX_SHOWN_CHARS",
    "ClientTool",
    "Denial",
    "ToolApprover",
]

logger = logging.getLogger("nbchat.client")


@dataclass(frozen=True)
class Denial:
    """An approver's no with its reason, which the model is told (Stop, Clear, a person's why)."""

    reason: str


ToolApprover: TypeAlias = Callable[[ToolCall], Awaitable["bool | Denial"]]
"""Asked before a ``confirm=True`` tool runs, with the call (id, name, arguments):
only ``True`` runs it; a :class:`Denial` refuses it with its reason; anything else
(False, None, a string such as "n" or even "yes") returns a refusal to the model."""

MAX_KEPT_RESULTS = 256
"""Results kept by call id to answer a resent request without running it again."""
MAX_KEPT_ID_CHARS = 1_000_000
"""Call ids remembered (beyond the kept results), in characters: a repeat of one of them
is refused without running. Past this bound (tens of thousands of calls in one client's
life) the oldest ids are forgotten, and only then could a repeated id run again."""
MAX_SHOWN_CHARS = 32_000_000
"""The views of rich results kept for their cards, in characters (images are most of it):
past it the oldest are forgotten, and their cards show the text the model read."""
_ID_OVERHEAD = 64
"""What one remembered id costs beyond its characters, roughly, in this bound."""
RAN_BEFORE = "this call already ran and its result is no longer kept: it is not run again"

DENIED = "denied by the user: the call did not run"
NO_APPROVER = (
    "this tool needs confirmation and nothing can ask for it (set client.approver, "
    "or show the chat in a ChatWidget): the call did not run"
)
_Status: TypeAlias = Literal["done", "error"]

ABANDONED = "the reply this call belongs to is no longer awaited: the call did not run"
STOPPED = "cancelled: the reply was stopped"


@dataclass(frozen=True)
class ClientTool:
    """A function of this client offered to the server's model as a tool."""

    name: str
    description: str
    """The function's docstring (cut to ``toolspec.MAX_DESCRIPTION_CHARS``)."""
    parameters: dict[str, Any] = field(repr=False)
    """The JSON Schema of the arguments, made from the signature by pydantic."""
    confirm: bool
    """Whether each call waits for ``client.approver`` to say yes."""
    function: Callable[..., Any] = field(repr=False)
    spec: Spec = field(repr=False, compare=False)
    """How the arguments are validated and the function called."""
    where: str = "in this kernel"
    """Where a call runs, as its card and its approval say ("MCP: time" for an MCP server's)."""

    @classmethod
    def of(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        confirm: bool = False,
        schema: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> ClientTool:
        """Describe ``function``; :class:`~nbchat.ToolSpecError` (one line) if it cannot be.

        Without ``schema`` the JSON Schema comes from the signature; with it, the
        schema is checked (``jsonschema``) and the arguments are validated against it.
        """
        spec: Spec
        if schema is None:
            spec = tool_spec(function, name=name, description=description)
        else:
            spec = schema_spec(function, schema, name=name, description=description)
        return cls.from_spec(spec, confirm=confirm)

    @classmethod
    def from_spec(
        cls, spec: Spec, *, confirm: bool = False, where: str | None = None
    ) -> ClientTool:
        """The tool of a spec made elsewhere (a schema tool, an MCP server's)."""
        return cls(
            name=spec.name,
            description=spec.description,
            parameters=spec.parameters(),
            confirm=confirm,
            function=spec.function,
            spec=spec,
            **({"where": where} if where is not None else {}),
        )

    def info(self) -> ClientToolInfo:
        """The tool as declared to the server."""
        return ClientToolInfo(
            name=self.name, description=self.description, parameters=self.parameters
        )


class _ReadOnlyTools(Mapping[str, ClientTool]):
    """A live, read-only view of a client's tools by name."""

    def __init__(self, tools: dict[str, ClientTool]) -> None:
        self._tools = tools

    def __getitem__(self, name: str) -> ClientTool:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"<tools {sorted(self._tools)}>"


class ToolRunner:
    """A client's tools and the calls of them: at most one run per call id."""

    def __init__(self, send: Callable[[ToolResponse], None]) -> None:
        self._send = send
        """Hands a response to the session (which resends it until acked)."""
        self._tools: dict[str, ClientTool] = {}
        self.view: Mapping[str, ClientTool] = _ReadOnlyTools(self._tools)
        self.approver: ToolApprover | None = None
        self._results: OrderedDict[tuple[str | None, str], ToolResponse] = OrderedDict()
        self._ran: OrderedDict[tuple[str | None, str], int] = OrderedDict()
        """Every call that ran, by key, with what it costs in ``MAX_KEPT_ID_CHARS``."""
        self._ran_chars = 0
        self._shown: OrderedDict[tuple[str | None, str], str] = OrderedDict()
        """The card's view of each rich result, by key (newest last)."""
        self._shown_chars = 0
        self._running: dict[tuple[str | None, str], tuple[asyncio.Task[None], str | None]] = {}
        """Calls in progress by key, with the message id whose reply they belong to."""

    # Registration

    def add(self, tool: ClientTool) -> None:
        """Offer ``tool``, replacing one of the same name that runs in the same place.

        A tool of the same name from somewhere else (a kernel function and an
        MCP server's, two MCP servers) is a clash: :class:`ConfigError` naming both.
        """
        clash = self.clash(tool)
        if clash is not None:
            raise ConfigError(clash)
        self._tools[tool.name] = tool

    def clash(self, tool: ClientTool) -> str | None:
        """Why ``tool`` cannot be added (a tool of its name runs elsewhere), or None."""
        old = self._tools.get(tool.name)
        if old is None or old.where == tool.where:
            return None
        return (
            f"tool {tool.name!r} ({tool.where}) clashes with the tool {old.name!r} ({old.where}): "
            f"remove that one first (remove_tool({old.name!r})), or pass prefix=..."
        )

    def remove(self, name: str) -> None:
        """Stop offering the tool ``name``; ConfigError if there is none."""
        if self._tools.pop(name, None) is None:
            known = ", ".join(sorted(self._tools)) or "none"
            raise ConfigError(f"no client tool named {name!r} (tools: {known})")

    def declaration(self) -> ToolsDeclaration:
        """Every tool, as the ``tools`` message declares them."""
        return ToolsDeclaration(tools=[tool.info() for tool in self._tools.values()])

    # Calls

    def requested(self, request: ToolRequest, key: tuple[str | None, str]) -> None:
        """Answer a request: the kept result, nothing (running), or a new run."""
        kept = self._results.get(key)
        if kept is not None:
            self._send(kept)
            return
        if key in self._ran:  # ran long ago: its result is gone, never its id
            self._send(ToolResponse(id=request.id, status="error", result=RAN_BEFORE))
            return
        if key in self._running:
            return  # sent again while it runs: the one run answers
        task = asyncio.get_running_loop().create_task(
            self._run(request, key), name=f"nbchat tool {request.name}"
        )
        self._running[key] = (task, request.reply_to)

    def cancel(self, message_ids: set[str] | None = None) -> int:
        """Cancel the running calls of these messages' replies (all when None); how many."""
        count = 0
        for task, reply_to in list(self._running.values()):
            if message_ids is None or reply_to in message_ids:
                count += task.cancel()
        return count

    def shown(self, reply_to: str | None, call_id: str) -> str | None:
        """The card's view of call ``call_id``'s result in the reply to ``reply_to``, if rich."""
        return self._shown.get((reply_to, call_id))

    @property
    def running(self) -> int:
        """Calls in progress."""
        return len(self._running)

    async def _run(self, request: ToolRequest, key: tuple[str | None, str]) -> None:
        # Bound before anything can raise: the finally answers the server whatever happened.
        status: _Status = "error"
        result: Any = "the call ended unexpectedly"
        images: list[Attachment] | None = None
        try:
            outcome = await self._outcome(request)
            status, result, images = outcome.status, outcome.result, list(outcome.images) or None
            if outcome.html is not None:
                self._show(key, outcome.html)
        except asyncio.CancelledError as exc:
            note = still_running(exc)
            result = STOPPED if note is None else f"{STOPPED}; {note}"
            raise
        except BaseException as exc:  # a bug here must still answer the server
            logger.exception("running client tool %s failed", request.name)
            result = error_text(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            del self._running[key]
            response = ToolResponse(id=request.id, status=status, result=result, attachments=images)
            self._results[key] = response
            while len(self._results) > MAX_KEPT_RESULTS:
                self._results.popitem(last=False)
            self._remember(key)
            self._send(response)

    def _show(self, key: tuple[str | None, str], html: str) -> None:
        if len(html) > MAX_SHOWN_CHARS:
            return
        old = self._shown.pop(key, None)
        self._shown_chars += len(html) - (len(old) if old is not None else 0)
        self._shown[key] = html
        while self._shown_chars > MAX_SHOWN_CHARS:
            self._shown_chars -= len(self._shown.popitem(last=False)[1])

    def _remember(self, key: tuple[str | None, str]) -> None:
        cost = len(key[0] or "") + len(key[1]) + _ID_OVERHEAD
        self._ran[key] = cost
        self._ran_chars += cost
        while self._ran_chars > MAX_KEPT_ID_CHARS:
            self._ran_chars -= self._ran.popitem(last=False)[1]

    async def _outcome(self, request: ToolRequest) -> ToolOutcome:
        """Run one call: its result, and the card's view and images when it has them."""
        tool = self._tools.get(request.name)
        if tool is not None and request.reply_to is None:
            return ToolOutcome.failed(ABANDONED)

        async def approve(spec: Spec) -> str | None:
            return await self._confirm(request) if tool is not None and tool.confirm else None

        specs = {name: tool.spec for name, tool in self._tools.items()}
        return await execute(specs, request.name, request.arguments, approve=approve, rich=True)

    async def _confirm(self, request: ToolRequest) -> str | None:
        """None when the person says run; else why the call does not run."""
        approver = self.approver
        if approver is None:
            return NO_APPROVER
        try:
            approved = await approver(request.call())
        except Exception as exc:
            return f"the confirmation failed ({error_text(exc)}): the call did not run"
        if isinstance(approved, Denial):
            return f"denied by the user ({approved.reason}): the call did not run"
        return None if approved is True else DENIED  # only True: a string "n" is no
