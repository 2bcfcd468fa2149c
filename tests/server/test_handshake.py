"""The handshake rules alone, without a socket: each refusal, their order, what is logged."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from websockets.datastructures import Headers

from nbchat.protocol import CLIENT_ID_HEADER
from nbchat.server.handshake import PATH, check_request, client_identity

pytestmark = pytest.mark.loopback

IDENTITY = "c" * 32


def status(path: str = PATH, token: str | None = None, **headers: str) -> HTTPStatus | None:
    """The status a request would be refused with, or None if accepted."""
    fields = Headers(**{name.replace("_", "-"): value for name, value in headers.items()})
    refusal = check_request(path, fields, token=token, allowed_origins=frozenset())
    return None if refusal is None else refusal.status


def test_a_plain_request_is_accepted() -> None:
    """No Origin, no token required, no identity: accepted, and the client is the connection."""
    assert status() is None
    assert client_identity(Headers()) is None
    assert client_identity(Headers({CLIENT_ID_HEADER: IDENTITY})) == IDENTITY


def test_rules_apply_in_order_path_origin_token_identity() -> None:
    """A request wrong in every way is refused for its path first, then origin, then token."""
    bad = {"Origin": "https://evil.example", "Nbchat_Client": "short"}
    assert status("/other", "t", **bad) == HTTPStatus.NOT_FOUND
    assert status(PATH, "t", **bad) == HTTPStatus.FORBIDDEN
    assert status(PATH, "t", Nbchat_Client="short") == HTTPStatus.UNAUTHORIZED
    assert status(PATH, None, Nbchat_Client="short") == HTTPStatus.BAD_REQUEST


@pytest.mark.parametrize("value", ["x" * 15, "x" * 257, "a" * 20 + " " + "b", "é" * 20])
def test_an_identity_must_be_long_visible_ascii(value: str) -> None:
    """Short (guessable), overlong, spaced or non-ASCII identities are refused with 400."""
    assert status(Nbchat_Client=value) == HTTPStatus.BAD_REQUEST


def test_refusals_never_log_the_token_or_the_identity() -> None:
    """What the server logs about a refusal holds neither secret."""
    headers = Headers({"Authorization": "Bearer wrong-secret", CLIENT_ID_HEADER: "x"})
    refusal = check_request(PATH, headers, token="right-secret", allowed_origins=())
    assert refusal is not None and "secret" not in refusal.log
    headers = Headers({CLIENT_ID_HEADER: "my-identity"})
    refusal = check_request(PATH, headers, token=None, allowed_origins=())
    assert refusal is not None and "my-identity" not in refusal.log + refusal.body
