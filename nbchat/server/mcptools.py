"""MCP servers' tools as the server's own: ``nbchat serve --openai … --mcp "COMMAND"``.

A shared backend offers an MCP server's tools to its model beside its built-in
ones, and runs them here, through the one executor, like them (the connection
is :class:`nbchat.tools.mcp.McpServer`, the one a client uses too). The server
process belongs to the bridge: it ends when the bridge closes, which
``nbchat serve`` does as it ends.

Approval. A server tool runs with no one asked: there is no panel on the
server's side, and every client's model may call it. So the annotations keep
their meaning by deciding what is offered at all: a tool that is not
``readOnlyHint``, or is ``destructiveHint`` (those a panel would ask about,
:func:`nbchat.mcpspec.confirm_default`), is withheld, and said to be, unless
the operator opts in (``allow_writes``, ``--mcp-allow-writes``); then it runs
unasked, like the server's own tools. A tool whose name another server tool
has is refused, naming both (``prefix`` avoids it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..exceptions import ToolError
from ..mcpspec import confirm_default, parse_target
from ..tools.mcp import START_SECONDS, McpServer
from ..toolspec import Spec

__all__ = ["McpOffer", "McpTools"]

logger = logging.getLogger("nbchat.server")

_AFRESH = "restart nbchat serve to start it afresh"


@dataclass
class McpOffer:
    """One MCP server a bridge uses: the tools it offers, and those it withholds."""

    server: McpServer
    allow_writes: bool
    prefix: str | None
    specs: dict[str, Spec] = field(default_factory=dict)
    """The tools offered to the model, by name."""
    withheld: list[str] = field(default_factory=list)
    """The tools that may change things, not offered without ``allow_writes``."""

    @property
    def line(self) -> str:
        """What this server gives the model, in one line (``nbchat serve`` prints it)."""
        where = self.server.where
        offered = ", ".join(self.specs) or "no tools"
        text = f"{where}: offering {offered}"
        if self.withheld:
            text += (
                f"; withholding {', '.join(self.withheld)} (not read-only: "
                "pass --mcp-allow-writes to offer them, run without approval)"
            )
        return text

    def sort(self, taken: Mapping[str, Spec]) -> None:
        """Sort the server's listed tools into offered and withheld; a clash is refused."""
        specs: dict[str, Spec] = {}
        withheld: list[str] = []
        for tool in self.server.specs(self.prefix):
            name = tool.spec.name
            if confirm_default(tool.annotations, None) and not self.allow_writes:
                withheld.append(name)
                continue
            if name in taken or name in specs:
                raise ToolError(
                    f"tool {name!r} ({self.server.where}) clashes with the server tool "
                    f"{name!r} already offered: give this server's tools a prefix, or leave "
                    "the other out"
                )
            specs[name] = tool.spec
        self.specs, self.withheld = specs, withheld


class McpTools:
    """The MCP servers a bridge offers tools of: started, sorted, listed again, closed."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.offers: list[McpOffer] = []
        self._on_change = on_change
        """Told when a server's tools changed (``tools/list_changed``), to offer them anew."""

    @property
    def specs(self) -> dict[str, Spec]:
        """Every offered MCP tool, by name."""
        return {name: spec for offer in self.offers for name, spec in offer.specs.items()}

    # Public methods

    async def add(
        self,
        command: str | Sequence[str],
        *,
        taken: Mapping[str, Spec],
        allow_writes: bool = False,
        prefix: str | None = None,
        timeout: float = START_SECONDS,
    ) -> McpOffer:
        """Start the server and sort its tools; :class:`ToolError` in one line, nothing left."""
        server = McpServer(
            parse_target(command), timeout=timeout, on_change=self._changed, afresh=_AFRESH
        )
        await server.start()
        offer = McpOffer(server, allow_writes, prefix)
        try:
            offer.sort({**taken, **self.specs})
        except BaseException:
            await server.close()
            raise
        self.offers.append(offer)
        return offer

    async def aclose(self) -> None:
        """End every server (its process, for stdio)."""
        offers, self.offers = self.offers, []
        for offer in offers:
            await offer.server.close()

    # Private methods

    def _changed(self, server: McpServer) -> None:
        """``notifications/tools/list_changed``: the server's tools sorted again, offered."""
        for offer in self.offers:
            if offer.server is not server:
                continue
            others = {n: s for o in self.offers if o is not offer for n, s in o.specs.items()}
            try:
                offer.sort(others)
            except ToolError as exc:
                logger.warning("the new tools of MCP server %s are refused: %s", server.label, exc)
                return
            logger.info("%s", offer.line)
        self._on_change()
