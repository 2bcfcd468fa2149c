"""What the registry decides with and answers: its bounds, what it reads of a log, its answers.

Pure data, no I/O: the inputs and outputs of :class:`~nbchat.server.registry.Registry`
(which re-exports them), kept apart so the registry holds only its rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

__all__ = ["Accepted", "Limits", "LogLike", "Refused", "Turn"]


class LogLike(Protocol):
    """What the registry reads of a reply log: its ids, and the bytes its frames hold."""

    @property
    def message_id(self) -> str: ...

    @property
    def conversation_id(self) -> str | None: ...

    @property
    def size(self) -> int: ...


L = TypeVar("L", bound=LogLike)


@dataclass(frozen=True)
class Limits:
    """The bounds a registry enforces (see ``registry.py``'s docstring)."""

    max_logs: int
    max_log_bytes: int
    """Bytes of every log and waiting text, over all clients."""
    max_client_bytes: int
    """Bytes of one client's logs and waiting texts."""
    max_generations: int
    max_queued: int
    grace: float
    max_tool_calls: int = 16
    """Client tool calls one client may have in progress; one more is an error result."""
    max_departed: int = 256
    """Clients within their grace period at once, over all sources."""
    max_departed_per_source: int = 16
    """Clients of one source (remote address) within their grace period at once."""


@dataclass(frozen=True)
class Accepted(Generic[L]):
    """A message's log: new and queued, or already known (a resend: ``duplicate``)."""

    log: L
    duplicate: bool


@dataclass(frozen=True)
class Refused:
    """A message the registry did not accept; ``code`` and ``text`` go into an ``error``."""

    code: str
    text: str


@dataclass(frozen=True)
class Turn(Generic[L]):
    """What happens next for one client's waiting replies, oldest first."""

    start: list[L]
    """Logs whose generation starts now."""
    stop: list[L]
    """Logs stopped before they started, whose turn has come: to end as cancelled now."""
