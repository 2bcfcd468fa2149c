"""A model server's failures mapped to one-line errors, without a server (the SDK's own types)."""

from __future__ import annotations

import httpx
import openai
import pytest

from nbchat.server.openai.upstream import UpstreamErrors

pytestmark = pytest.mark.loopback


async def no_models() -> list[str]:
    """An endpoint that cannot list its models."""
    raise RuntimeError("no listing here")


def errors(key: str | None = "sk-secret-key-123") -> UpstreamErrors:
    """The mapper of one scripted endpoint."""
    return UpstreamErrors(
        url="http://***@127.0.0.1:9/v1",
        model="m",
        timeout=5.0,
        max_retries=2,
        key=key,
        list_models=no_models,
    )


def status_error(status: int, message: str) -> openai.APIStatusError:
    """An SDK status error as the SDK makes it from a response."""
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx.Response(status, request=request)
    return openai.APIStatusError(message, response=response, body={"error": {"message": message}})


async def test_the_servers_words_are_kept_but_never_the_key() -> None:
    """A 5xx carries the server's message, with the key and any URL secret redacted."""
    exc = status_error(503, "overloaded for sk-secret-key-123 at http://u:pw@h/x?token=abc")
    message = await errors().map(exc)
    text = message.error.message
    assert message.error.code == "upstream_failed" and "503" in text and "overloaded" in text
    assert "sk-secret-key-123" not in text and "pw@" not in text and "abc" not in text


@pytest.mark.parametrize(
    ("status", "code"), [(401, "upstream_auth"), (429, "upstream_rate_limited")]
)
async def test_status_codes_name_what_to_do(status: int, code: str) -> None:
    """401 names the key variable; 429 says how many retries were made."""
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx.Response(status, request=request)
    kind = openai.AuthenticationError if status == 401 else openai.RateLimitError
    message = await errors().map(kind("no", response=response, body=None))
    assert message.error.code == code
    assert ("OPENAI_API_KEY" if status == 401 else "2 retries") in message.error.message


async def test_an_unlistable_endpoint_still_names_the_model() -> None:
    """A 404 whose endpoint cannot list models names the model and what to check."""
    message = await errors().map(status_error_404())
    assert message.error.code == "upstream_not_found" and "'m'" in message.error.message


def status_error_404() -> openai.NotFoundError:
    """The SDK's 404."""
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    return openai.NotFoundError("nope", response=httpx.Response(404, request=request), body=None)


def test_a_broken_stream_is_one_line() -> None:
    """A transport error mid-reply says the connection broke and what to do."""
    message = errors().broke(ConnectionResetError())
    assert message.error.code == "upstream_unreachable"
    assert "ConnectionResetError" in message.error.message and "\n" not in message.error.message
