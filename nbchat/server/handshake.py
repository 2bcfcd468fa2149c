"""The opening handshake's checks, pure: which requests the server refuses, and how.

In order: path (404), Origin (403), token (401), client identity (400). The
server turns a :class:`Refusal` into an HTTP response; nothing here does I/O,
so each rule is tested without a socket.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Collection
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from websockets.datastructures import Headers

from ..protocol import (
    ATTACHMENTS_FEATURE,
    CANCEL_FEATURE,
    CLIENT_ID_HEADER,
    CLIENT_TOOLS_FEATURE,
    CONTEXT_FEATURE,
    REASONING_FEATURE,
)

__all__ = [
    "FEATURES",
    "PATH",
    "Refusal",
    "check_request",
    "client_identity",
    "full",
    "is_loopback_origin",
]

PATH = "/ws"
"""The only path that accepts WebSocket connections; any other is answered 404."""

FEATURES: tuple[str, ...] = (
    CLIENT_TOOLS_FEATURE,
    CANCEL_FEATURE,
    REASONING_FEATURE,
    ATTACHMENTS_FEATURE,
    CONTEXT_FEATURE,
)
"""The extensions of v1 this server supports, announced in ``Nbchat-Features`` (in order)."""

_LOOPBACK_ORIGIN = re.compile(
    r"https?://(?:localhost|127\.0\.0\.1|\[::1\])(?::\d{1,5})?", re.IGNORECASE
)
_CLIENT_ID = re.compile(r"[\x21-\x7e]{16,256}")
"""A client identity: 16 to 256 visible ASCII characters (nbchat sends 32 random hex digits)."""


@dataclass(frozen=True)
class Refusal:
    """Why a handshake is refused: the HTTP answer, and the line the server logs."""

    status: HTTPStatus
    body: str
    log: str
    """Safe to log: it never holds a token or an identity."""
    headers: tuple[tuple[str, str], ...] = ()


def is_loopback_origin(origin: str) -> bool:
    """Whether a browser Origin is a page served from this machine (any port)."""
    return _LOOPBACK_ORIGIN.fullmatch(origin) is not None


def client_identity(headers: Headers) -> str | None:
    """The client's identity from an accepted handshake; None when it sent none."""
    return headers.get(CLIENT_ID_HEADER)


def check_request(
    path: str, headers: Headers, *, token: str | None, allowed_origins: Collection[str]
) -> Refusal | None:
    """The refusal for a handshake request, or None to accept it."""
    if urlsplit(path).path != PATH:
        return Refusal(HTTPStatus.NOT_FOUND, f"Not found: connect to {PATH}.\n", "unknown path")
    origins = headers.get_all("Origin")
    if len(origins) > 1 or (origins and not _origin_allowed(origins[0], allowed_origins)):
        return Refusal(
            HTTPStatus.FORBIDDEN,
            "Forbidden origin: start the server with --allow-origin for this page.\n",
            f"refused a connection from origin {', '.join(origins)[:200]}",
        )
    if token is not None and not _token_valid(headers, token):
        return Refusal(
            HTTPStatus.UNAUTHORIZED,
            "Missing or wrong token: send Authorization: Bearer <token>.\n",
            "refused a connection without a valid token",
            (("WWW-Authenticate", 'Bearer realm="nbchat"'),),
        )
    identities = headers.get_all(CLIENT_ID_HEADER)
    if len(identities) > 1 or (identities and not _CLIENT_ID.fullmatch(identities[0])):
        return Refusal(
            HTTPStatus.BAD_REQUEST,
            f"Bad {CLIENT_ID_HEADER} header: send one value of 16 to 256 visible ASCII "
            "characters, random and kept secret, or none.\n",
            f"refused a connection with a malformed {CLIENT_ID_HEADER} header",
        )
    return None


def full(max_connections: int) -> Refusal:
    """The refusal of a connection past the server's cap: 503, in one line."""
    return Refusal(
        HTTPStatus.SERVICE_UNAVAILABLE,
        f"Server full: it serves at most {max_connections} connections; try again later.\n",
        f"refused a connection: {max_connections} open, the limit",
    )


def _origin_allowed(origin: str, allowed_origins: Collection[str]) -> bool:
    return (
        is_loopback_origin(origin)
        or origin.rstrip("/") in allowed_origins
        or "*" in allowed_origins
    )


def _token_valid(headers: Headers, token: str) -> bool:
    values = headers.get_all("Authorization")
    if len(values) != 1:
        return False
    scheme, _, credentials = values[0].strip().partition(" ")
    # compare_digest: the time taken does not reveal how much of the token matched.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        credentials.strip().encode(), token.encode()
    )
