"""A model server's failures as one-line protocol errors saying what to do (the SDK's boundary).

The ``openai`` SDK's typed errors are mapped here, once: unreachable, timed out,
a refused key, an unknown model (listing what the endpoint offers, when it can),
rate limited, failed. The URL is redacted and the key never appears: not in an
error, a log line or a transcript.

A server's own words (an error body, a ``/models`` listing) may quote the key
in any form: whole, upper-cased, split by a space or a line break, or part of
it. So they are redacted (:func:`nbchat.redact.redact_text`, and the key itself
in any case), then checked for any fragment of the key (:data:`KEY_FRAGMENT`
letters and digits of it in a row, case and separators ignored); when one is
left, the words are not echoed at all, only the status and a fixed line.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ...config import API_KEY_ENV
from ...protocol import ErrorInfo, ErrorMessage
from ...redact import redact_text

__all__ = ["KEY_FRAGMENT", "UpstreamErrors", "error"]

logger = logging.getLogger("nbchat.server.bridge")

_MAX_ERROR_TEXT = 200
_MAX_LISTED_MODELS = 10
_MODELS_TIMEOUT = 5.0
KEY_FRAGMENT = 8
"""Letters and digits of the key in a row that count as quoting it (the whole of a shorter key)."""
_MIN_KEY = 4
"""A key shorter than this (``"x"``, a local server's placeholder) cannot be searched for."""
_WITHHELD = "its message was withheld: it quoted the API key"
_NOT_ALNUM = re.compile(r"[\W_]+")


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
        if isinstance(exc, openai.NotFoundError) or _names_unknown_model(exc):
            return error("upstream_not_found", await self.not_found(_status(exc)))
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

    def stalled(self) -> ErrorMessage:
        """The server answered, then sent nothing for ``timeout`` seconds mid-reply."""
        return error(
            "upstream_timeout",
            f"the model server at {self.url} stalled: it sent nothing for {self.timeout:g}s "
            "in the middle of the reply: check its load and logs, or raise the timeout",
        )

    def broke(self, exc: Exception) -> ErrorMessage:
        return error(
            "upstream_unreachable",
            f"the connection to the model server at {self.url} broke mid-reply "
            f"({type(exc).__name__}): check the server, then send again",
        )

    async def not_found(self, status: int = 404) -> str:
        """The line for an unknown model, naming the models the server lists (when it can)."""
        try:
            names = await asyncio.wait_for(self.list_models(), _MODELS_TIMEOUT)
        except Exception:  # listing is a courtesy: any failure means "cannot list"
            names = None
        if names is None:
            return (
                f"the model server at {self.url} has no model {self.model!r} (HTTP {status}): "
                "check --model, and that the URL ends in /v1"
            )
        if self.model in names:
            return (
                f"the model server at {self.url} answered {status} for its own model "
                f"{self.model!r}: "
                "check that the URL is the API root (it usually ends in /v1)"
            )
        listed = self._redacted(", ".join(names[:_MAX_LISTED_MODELS])) or "none"
        if listed == _WITHHELD:
            listed = f"{len(names)} models ({_WITHHELD})"
        elif len(names) > _MAX_LISTED_MODELS:
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
        text = " ".join(text.split())
        if len(text) > _MAX_ERROR_TEXT:
            text = text[: _MAX_ERROR_TEXT - 3] + "..."
        return f": {self._redacted(text)}"

    def _redacted(self, text: str) -> str:
        """``text`` redacted, the key masked in any case; a fixed line if a fragment is left."""
        key = self.key or ""
        if len(key) >= _MIN_KEY:
            text = re.sub(re.escape(key), "***", text, flags=re.IGNORECASE)
        text = redact_text(text)
        compact_key = _NOT_ALNUM.sub("", key.casefold())
        if len(compact_key) < _MIN_KEY:
            return text
        size = min(KEY_FRAGMENT, len(compact_key))
        pieces = {compact_key[i : i + size] for i in range(len(compact_key) - size + 1)}
        compact = _NOT_ALNUM.sub("", text.casefold())
        if any(compact[i : i + size] in pieces for i in range(len(compact) - size + 1)):
            return _WITHHELD
        return text


_UNKNOWN_MODEL = re.compile(
    r"invalid model|unknown model|model[ _]not[ _]found|no such model|model .{0,80}"
    r"(?:does not exist|not found|is not supported)",
    re.IGNORECASE,
)
"""How gateways word an unknown model in a 400 (LiteLLM: "Invalid model name passed in
model=..."; vLLM: "The model `x` does not exist"; others: ``code: model_not_found``)."""


def _names_unknown_model(exc: Exception) -> bool:
    """Whether a 400 or 422 says the model is unknown (not a 404: some servers do)."""
    if getattr(exc, "status_code", None) not in (400, 422):
        return False
    body = getattr(exc, "body", None)
    inner = body.get("error", body) if isinstance(body, Mapping) else body
    words: list[str] = []
    if isinstance(inner, Mapping):
        words = [str(inner.get(name) or "")[:500] for name in ("code", "type", "message")]
    elif isinstance(inner, str):
        words = [inner[:500]]
    return any(_UNKNOWN_MODEL.search(word) for word in words)


def _status(exc: Exception) -> int:
    status = getattr(exc, "status_code", 404)
    return status if isinstance(status, int) else 404
