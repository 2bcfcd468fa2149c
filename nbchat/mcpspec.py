"""An MCP server's tools as pure data: what to start, approval, results, the transcript's record.

Pure code, no I/O and no import of the ``mcp`` SDK (its objects are read by
attribute): :mod:`nbchat.tools.mcp` is the shell that starts servers and
calls them.

* :func:`parse_target`: a command line (split like a shell's), an argv list or
  an ``http(s)://`` URL; its :attr:`Target.label` names the server on cards
  ("MCP: time").
* :func:`confirm_default`: the annotations decide approval: a tool that is not
  ``readOnlyHint``, or is ``destructiveHint``, waits for approval, unless
  ``confirm`` says otherwise for every tool.
* :func:`mcp_result`: a ``CallToolResult`` as the tool's value: structured
  content when there is some; with PNG or JPEG images, an
  :class:`~nbchat.render.richtypes.Output` of the text and the images, shown in
  the card as any tool's figure is (and given to a model that reads images),
  never as base64 text; else the text (one block) or the blocks; an error
  result is a :class:`~nbchat.ToolError` with the server's message.
* Replay: when ``client.mcp(...)`` starts a server while the client records,
  the tools it added are written as one ``client`` line (:func:`mcp_line`,
  ``event: "mcp_tools"``). A replay server reads them (:func:`recorded_mcp_tools`)
  and gives them at :data:`MCP_TOOLS_PATH`, beside its WebSocket, so a client
  under replay registers the same tools without starting the server, and the
  replay answers their calls from the recording.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .exceptions import ToolError
from .render.richtypes import Output
from .toolspec import NAME_PATTERN

__all__ = [
    "MAX_IMAGE_CHARS",
    "MCP_EVENT",
    "MCP_TOOLS_PATH",
    "Target",
    "confirm_default",
    "mcp_line",
    "mcp_result",
    "parse_target",
    "recorded_mcp_tools",
    "tool_name",
]

MCP_EVENT = "mcp_tools"
"""The ``event`` of the transcript line recording an MCP server's tools."""
MCP_TOOLS_PATH = "/nbchat-replay/mcp"
"""Where a replay server gives the recorded MCP tool lists (JSON), beside its WebSocket."""
MAX_IMAGE_CHARS = 2_700_000
"""An image (base64) longer than this is described, not decoded (the bound of a tool's
image, :data:`nbchat.render.richimage.MAX_IMAGE_BYTES`, in base64)."""
_SHOWN_IMAGES = frozenset({"image/png", "image/jpeg"})


@dataclass(frozen=True)
class Target:
    """What to start or connect to: a stdio command (argv) or a streamable-HTTP URL."""

    argv: tuple[str, ...] = ()
    url: str | None = None

    @property
    def label(self) -> str:
        """The server's short name, for cards ("MCP: time") and messages."""
        if self.url is not None:
            return re.sub(r"^https?://", "", self.url).split("/")[0]
        words = [w for w in self.argv if not w.startswith("-")]
        module = self.argv[self.argv.index("-m") + 1] if "-m" in self.argv[:-1] else None
        name = os.path.basename(module or (words[-1] if len(words) > 1 else words[0]))
        name = re.sub(r"\.py$", "", name)
        return re.sub(r"^mcp[-_]server[-_]|[-_]mcp$|^mcp_server_", "", name) or name

    @property
    def shown(self) -> str:
        """The command as a person would type it."""
        return self.url if self.url is not None else shlex.join(self.argv)


def parse_target(command: str | Sequence[str]) -> Target:
    """``command`` as a target: an ``http(s)://`` URL, a shell-like line, or an argv list."""
    if isinstance(command, str):
        if re.match(r"https?://", command.strip()):
            return Target(url=command.strip())
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ToolError(f"cannot read the MCP command {command!r}: {exc}") from None
    else:
        argv = [str(part) for part in command]
    if not argv:
        raise ToolError("the MCP command is empty: give a command line, an argv list or a URL")
    return Target(argv=tuple(argv))


def confirm_default(annotations: Any, confirm: bool | None) -> bool:
    """Whether a tool waits for approval: ``confirm`` when given, else by its annotations."""
    if confirm is not None:
        return confirm
    read_only = bool(getattr(annotations, "read_only_hint", None))
    destructive = bool(getattr(annotations, "destructive_hint", None))
    return destructive or not read_only


def mcp_result(result: Any) -> Any:
    """A ``CallToolResult`` as a value; :class:`ToolError` with the server's text if an error."""
    blocks = [_block(block) for block in (result.content or [])]
    if result.is_error:
        text = " ".join(b["text"] for b in blocks if b.get("type") == "text")
        raise ToolError(" ".join(text.split()) or "the MCP server reported an error")
    if result.structured_content is not None:
        return result.structured_content
    images = [_image(block) for block in result.content or ()]
    if any(image is not None for image in images):
        lines = [_line(block) for block, image in zip(blocks, images, strict=True) if not image]
        return Output("\n".join(lines), tuple(image for image in images if image))
    if len(blocks) == 1 and blocks[0].get("type") == "text":
        return blocks[0]["text"]
    return blocks


def mcp_line(target: Target, tools: Sequence[Any]) -> dict[str, Any]:
    """The transcript's record of an MCP server's tools (a ``client`` line), for replay."""
    return {
        "event": MCP_EVENT,
        "command": target.shown,
        "label": target.label,
        "tools": [
            {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
                "confirm": tool.confirm,
                "where": tool.where,
            }
            for tool in tools
        ],
    }


def recorded_mcp_tools(events: Iterable[Any]) -> list[dict[str, Any]]:
    """The MCP tool lists of a transcript's ``client`` lines, the last one per command."""
    found: dict[str, dict[str, Any]] = {}
    for line in events:
        data = getattr(line, "data", None)
        if getattr(line, "dir", None) != "client" or not isinstance(data, dict):
            continue
        if data.get("event") == MCP_EVENT and isinstance(data.get("tools"), list):
            found[str(data.get("command"))] = data
    return list(found.values())


# Private helpers


def tool_name(name: str) -> str:
    """An MCP tool's name as OpenAI-compatible APIs accept it (other characters as ``_``)."""
    fixed = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "tool"
    assert NAME_PATTERN.fullmatch(fixed)
    return fixed


def _image(block: Any) -> bytes | None:
    """A PNG or JPEG block's bytes, within the bound; None for any other block."""
    if getattr(block, "type", None) != "image" or block.mime_type not in _SHOWN_IMAGES:
        return None
    data = block.data
    if isinstance(data, str):
        if len(data) > MAX_IMAGE_CHARS:
            return None
        try:
            return base64.b64decode(data, validate=True)
        except ValueError:  # binascii.Error is one
            return None
    return bytes(data) if len(data) * 4 // 3 <= MAX_IMAGE_CHARS else None


def _line(block: dict[str, Any]) -> str:
    """A block beside images, as a line of the tool's text."""
    if block.get("type") == "text":
        return str(block["text"])
    if "note" in block:
        return f"[{block['type']}: {block['mimeType']}, {block['note']}]"
    return json.dumps(block)


def _block(block: Any) -> dict[str, Any]:
    kind = getattr(block, "type", None)
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind in ("image", "audio"):  # described: base64 is no text for a model or a person
        data = block.data
        size = len(data) * 3 // 4 - data[-2:].count("=") if isinstance(data, str) else len(data)
        return {"type": kind, "mimeType": block.mime_type, "note": f"{size:,} bytes, not shown"}
    dumped = block.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dumped if isinstance(dumped, dict) else {"type": str(kind)}
