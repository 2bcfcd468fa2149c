"""A model server's failures mapped to one-line errors, without a server (the SDK's own types)."""

from __future__ import annotations

import logging

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


KEY = "sk-proj-Ab12Cd34Ef56Gh78Ij90"


@pytest.mark.parametrize(
    "body",
    [
        f"invalid request for {KEY.upper()}",
        f"bad key {KEY[:14]} {KEY[14:]}",
        f"bad key {KEY[:14]}\n{KEY[14:]}",
        f"key ending in ...{KEY[-10:]} refused",
        f"echo: {KEY.lower()[::1].replace('-', '_')}",
    ],
)
async def test_no_form_of_the_key_reaches_the_error_or_the_log(
    body: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Upper-cased, split or in part, the key leaves neither the client's error nor the log."""
    with caplog.at_level(logging.DEBUG, logger="nbchat.server.bridge"):
        message = await errors(KEY).map(status_error(400, body))
    written = [message.error.message] + [record.getMessage() for record in caplog.records]
    for text in written:
        compact = "".join(ch for ch in text.casefold() if ch.isalnum())
        assert "ab12cd34" not in compact and "gh78ij90" not in compact, text
        assert "400" in text


async def test_a_models_listing_that_quotes_the_key_is_withheld() -> None:
    """A 404 whose /models listing holds the key, split across names, names no part of it."""

    async def leaky() -> list[str]:
        return ["llama", KEY[:12], KEY[12:].upper()]

    mapper = errors(KEY)
    mapper.list_models = leaky
    message = await mapper.map(status_error_404())
    compact = "".join(ch for ch in message.error.message.casefold() if ch.isalnum())
    assert "ab12" not in compact and "gh78ij90" not in compact
    assert message.error.code == "upstream_not_found" and "3 models" in message.error.message
