"""Every error nbchat raises, in one tree, so callers can catch ``NbchatError``.

::

    NbchatError
    ├── ConfigError (also ValueError)
    ├── ConnectionFailed
    │   ├── HandshakeRejected      the server refused the opening handshake (token, origin)
    │   └── ReconnectExhausted     max_reconnect_attempts (or a first connect_timeout) used up
    ├── ClientClosed               the client was disconnected while work was pending
    ├── QueueFull                  the outgoing queue is at max_queue
    ├── ProtocolError              a frame the client or server could not understand
    ├── ServerError                the server answered a message with an ``error``
    ├── ReplyTimeout (also TimeoutError)
    ├── TranscriptError            a transcript file could not be read or written
    ├── ToolError                  a server tool refused its input (nbchat.server.tools)
    ├── ToolSpecError (also TypeError)      a function cannot be a tool (nbchat.toolspec)
    ├── ToolArgumentsError (also ValueError) a model's arguments do not fit the tool
    └── AttachmentError (also ValueError)    what was attached cannot be sent

Lower-layer exceptions (websockets, pydantic, OSError) are converted where they
cross into nbchat, with ``raise ... from exc`` so the cause stays visible.
Every message is one line that says what happened and what to do.
"""

from __future__ import annotations

__all__ = [
    "AttachmentError",
    "ClientClosed",
    "ConfigError",
    "ConnectionFailed",
    "HandshakeRejected",
    "NbchatError",
    "ProtocolError",
    "QueueFull",
    "ReconnectExhausted",
    "ReplyTimeout",
    "ServerError",
    "ToolArgumentsError",
    "ToolError",
    "ToolSpecError",
    "TranscriptError",
]


class NbchatError(Exception):
    """The root of every error nbchat raises."""


class ConfigError(NbchatError, ValueError):
    """A configuration value is invalid."""


class ConnectionFailed(NbchatError):
    """The client could not reach the server, or lost it for good."""


class HandshakeRejected(ConnectionFailed):
    """The server answered the opening handshake with an HTTP error.

    Retrying cannot help (a wrong token stays wrong), so the client does not.
    """

    def __init__(self, status: int, detail: str = "") -> None:
        self.status = status
        self.detail = detail
        hint = {
            401: "check the token (Authorization: Bearer ...)",
            403: "check the token and the Origin allow-list",
        }.get(status, "check the URL and the server's logs")
        text = f"server refused the connection with HTTP {status}"
        if detail:
            text += f" ({detail})"
        super().__init__(f"{text}: {hint}")


class ReconnectExhausted(ConnectionFailed):
    """Every reconnection attempt failed; the client has stopped trying."""

    def __init__(self, attempts: int, url: str, within: float | None = None) -> None:
        self.attempts = attempts
        self.url = url
        self.within = within
        """Set when a server never reached was given up on after this many seconds."""
        if within is None:
            text = f"gave up after {attempts} reconnection attempts to {url}: start the server"
        else:
            text = (
                f"could not reach {url} within {within:g} s ({attempts} attempts): "
                "check the URL and start the server"
            )
        super().__init__(f"{text} (nbchat serve), then send again: the client reconnects")


class ClientClosed(NbchatError):
    """The client was disconnected while a message or reply was pending."""


class QueueFull(NbchatError):
    """The outgoing queue is full: the message was not accepted (nothing was dropped)."""

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        super().__init__(
            f"outgoing queue is full ({max_queue} messages waiting for a connection): "
            "wait for the connection or raise max_queue"
        )


class ProtocolError(NbchatError):
    """A frame could not be understood; ``raw`` holds what arrived."""

    def __init__(self, message: str, raw: str | bytes | None = None) -> None:
        self.raw = raw
        super().__init__(message)


class ServerError(NbchatError):
    """The server answered with an ``error`` message."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"server error {code}: {message}")


class ReplyTimeout(NbchatError, TimeoutError):
    """No complete reply arrived in time."""


class TranscriptError(NbchatError):
    """A transcript file could not be read or written."""


class ToolError(NbchatError):
    """A server tool could not run on the input it was given; the message says why.

    The server shows the message as the tool call's result (status ``error``).
    """


class ToolSpecError(NbchatError, TypeError):
    """A function cannot be offered as a tool (no type hints, an unusable signature)."""


class ToolArgumentsError(NbchatError, ValueError):
    """A model's arguments for a tool are not valid JSON or do not fit its signature."""


class AttachmentError(NbchatError, ValueError):
    """Something attached to a message cannot be sent (its type, its size, or the server).

    Raised before anything is sent, so nothing is lost: the message can be sent
    again with what can be attached.
    """
