"""A model server's failures as one-line protocol errors saying what to do (the SDK's boundary).

The ``openai`` SDK's typed errors are mapped here, once: unreachable, timed out,
a refused key, an unknown model (listing what the endpoint offers, when it can),
rate limited, failed. The URL is redacted and the key never appears: not in an
error, a log line or a transcript.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ...config import API_KEY_ENV
from ...protocol import ErrorInfo, ErrorMessage
from ...redact import redact_text

__all__ = ["UpstreamErrors", "error"]

logger = logging.getLogger("nbchat.server.bridge")

_MAX_ERROR_TEXT = 200
_MAX_LISTED_MODELS = 10
_MODELS_TIMEOUT = 5.0


def error(code: str, message: str) -> ErrorMessage:
    logger.warning("%s: %s", code, message)
    return ErrorMessage(error=ErrorInfo(code=code, message=message))


@dataclass
class UpstreamErrors:
    """Maps one model server's errors; knows its (redacted) URL, model and limits."""

    url: str
    """Redacted already."""
    model: str
    timeout: float
    max_retries: int
    key: str | None
    """Replaced by ``***`` wherever the server's own words quote it."""
    list_models: Callable[[], Awaitable[list[str]]]
    key_env: str = API_KEY_ENV
    """The environment variable the key is read from (``api_key_env=``, ``--api-key-env``)."""

    async def map(self, exc: Exception) -> ErrorMessage:
        """One line per SDK error, saying what happened and what to do; never the key."""
        import openai

        url = self.url
        if isinstance(exc, openai.APITimeoutError):
            return error(
                "upstream_timeout",
                f"the model server at {url} did not answer within {self.timeout:g}s: "
                "check that it is running, or raise the timeout",
            )
        if isinstance(exc, openai.APIConnectionError):
            return error(
                "upstream_unreachable",
                f"cannot reach the model server at {url}: start it, or check the URL (--openai)",
            )
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            refused = "refused the API key" if self.key else "needs an API key and got none"
            return error(
                "upstream_auth",
                f"the model server at {url} {refused} (HTTP {exc.status_code}): "
                f"set ${self.key_env} to a valid key (or read another variable: --api-key-env)",
            )
        if isinstance(exc, openai.NotFoundError):
            return error("upstream_not_found", await self._not_found())
        if isinstance(exc, openai.RateLimitError):
            return error(
                "upstream_rate_limited",
                f"the model server at {url} is rate limiting (HTTP 429) and still was after "
                f"{self.max_retries} retries: wait a minute, then send again",
            )
        if isinstance(exc, openai.APIStatusError):
            detail = self._detail(exc)
            if exc.status_code >= 500:
                return error(
                    "upstream_failed",
                    f"the model server at {url} failed (HTTP {exc.status_code}{detail}): "
                    "try again, or check its logs",
                )
            return error(
                "upstream_refused",
                f"the model server at {url} refused the request (HTTP {exc.status_code}"
                f"{detail}): check the model's options",
            )
        return error(
            "upstream_failed",
            f"the model server at {url} sent an error{self._detail(exc)}: try again",
        )

    def broke(self, exc: Exception) -> ErrorMessage:
        return error(
            "upstream_unreachable",
            f"the connection to the model server at {self.url} broke mid-reply "
            f"({type(exc).__name__}): check the server, then send again",
        )

    async def _not_found(self) -> str:
        try:
            names = await asyncio.wait_for(self.list_models(), _MODELS_TIMEOUT)
        except Exception:  # listing is a courtesy: any failure means "cannot list"
            names = None
        if names is None:
            return (
                f"the model server at {self.url} has no model {self.model!r} (HTTP 404): "
                "check --model, and that the URL ends in /v1"
            )
        if self.model in names:
            return (
                f"the model server at {self.url} answered 404 for its own model {self.model!r}: "
                "check that the URL is the API root (it usually ends in /v1)"
            )
        listed = ", ".join(names[:_MAX_LISTED_MODELS]) or "none"
        if len(names) > _MAX_LISTED_MODELS:
            listed += f" (and {len(names) - _MAX_LISTED_MODELS} more)"
        return (
            f"unknown model {self.model!r} at {self.url}; it offers: {listed}: "
            "pass one of them with --model"
        )

    def _detail(self, exc: Exception) -> str:
        """The server's own words, redacted (never the key) and cut to one short line."""
        body = getattr(exc, "body", None)
        text = None
        if isinstance(body, Mapping):
            inner = body.get("error", body)
            text = inner.get("message") if isinstance(inner, Mapping) else inner
        if not isinstance(text, str) or not text.strip():
            return ""
        text = redact_text(" ".join(text.split()))
        if self.key:
            text = text.replace(self.key, "***")
        if len(text) > _MAX_ERROR_TEXT:
            text = text[: _MAX_ERROR_TEXT - 3] + "..."
        return f": {text}"
