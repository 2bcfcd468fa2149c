"""ClientConfig: every setting of a ChatClient, validated once, with the defaults in one place."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from .exceptions import ConfigError
from .jsonprotocol import JsonProtocol
from .policy import ReconnectPolicy, should_reconnect
from .redact import redact_url

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_URL",
    "DEMO_DELAY",
    "HTTP_PROTOCOLS",
    "MODEL_ENV",
    "PROTOCOLS",
    "RECORD_ENV",
    "REPLAY_ENV",
    "SYSTEM_ENV",
    "TOKEN_ENV",
    "URL_ENV",
    "ClientConfig",
    "ProtocolSetting",
    "default_url",
    "replay_instead",
    "replay_urls",
]

logger = logging.getLogger("nbchat")

# Every environment variable nbchat reads, named once.

URL_ENV = "NBCHAT_WS_URL"
"""The backend a client connects to when no URL is given."""
RECORD_ENV = "NBCHAT_RECORD"
"""Set to a path to record every client's session there, e.g. while executing a notebook."""
TOKEN_ENV = "NBCHAT_TOKEN"
"""The bearer token: ``nbchat serve`` requires it, every client sends it."""
API_KEY_ENV = "OPENAI_API_KEY"
"""Where a model server's API key is read from unless told otherwise (``api_key_env=``)."""
BASE_URL_ENV = "NBCHAT_OPENAI_BASE_URL"
"""Makes the built-in backend (widget, ``nbchat chat``) a model: its OpenAI-compatible base URL."""
MODEL_ENV = "NBCHAT_MODEL"
"""The model name used with ``$NBCHAT_OPENAI_BASE_URL`` (and ``--model``'s default)."""
SYSTEM_ENV = "NBCHAT_SYSTEM"
"""An optional system prompt for the built-in model backend."""
REPLAY_ENV = "NBCHAT_REPLAY"
"""Set while nbchat's pytest plugin replays (``--nbchat-replay``, ``nbchat_replay``, a notebook's
``nbchat.replay`` metadata): the replay servers' URLs, space-separated. While it is set, every
client, in this process and in the kernels it starts, talks to the first of them, whatever URL
or backend it was given (:func:`replay_instead`)."""

DEFAULT_URL = "ws://localhost:8000/ws"
DEFAULT_MAX_SIZE = 2**20
"""Largest frame either side accepts by default, in bytes (1 MiB)."""
DEMO_DELAY = 0.02
"""Seconds between the demo agent's tokens when a person watches (widget, demo, chat)."""

PROTOCOLS = ("nbchat", "ag-ui", "ai-sdk")
"""The wire protocols a client speaks by name; a :class:`~nbchat.JsonProtocol` describes others."""
HTTP_PROTOCOLS = ("ag-ui", "ai-sdk")
"""The protocols spoken over HTTP (``http://``, ``https://``): one POST, one SSE stream a run."""
ProtocolSetting: TypeAlias = Literal["nbchat", "ag-ui", "ai-sdk"] | JsonProtocol
"""``ClientConfig.protocol``: a protocol's name, or a custom JSON backend described."""


def default_url() -> str:
    """The replay server while one is active, else ``$NBCHAT_WS_URL``, else the default address."""
    replaying = replay_urls()
    return replaying[0] if replaying else os.environ.get(URL_ENV) or DEFAULT_URL


def replay_urls() -> tuple[str, ...]:
    """The active replay servers' URLs (``$NBCHAT_REPLAY``), the one clients go to first."""
    return tuple(os.environ.get(REPLAY_ENV, "").split())


def replay_instead(given: object = None) -> str | None:
    """Where a client goes instead of ``given`` while a replay is active; None when none is.

    The one decision that replay wins: the client's URL (``ClientConfig.url``) and
    the built-in backend (:func:`nbchat.server.backend.wants_builtin_server`) both
    ask it. ``given`` is a URL, a backend (a responder) or None (nothing given); a
    URL that is itself an active replay server's is kept. Anything else replaced
    is said once, in one WARNING line of the ``nbchat`` logger naming it (a URL
    redacted).
    """
    replaying = replay_urls()
    if not replaying:
        return None
    if given is None or (isinstance(given, str) and given in replaying):
        return given or replaying[0]
    what = redact_url(given) if isinstance(given, str) else f"the backend {given!r}"
    logger.warning(
        "replay wins: %s replaced by the replay server %s ($%s)", what, replaying[0], REPLAY_ENV
    )
    return replaying[0]


class ClientConfig(BaseModel):
    """Settings of a :class:`~nbchat.ChatClient`; the first block mirrors the TypeScript client."""

    model_config = ConfigDict(
        arbitrary_types_allowed=True, extra="forbid", validate_assignment=True
    )

    protocol: ProtocolSetting = "nbchat"
    """What the backend speaks: ``"nbchat"`` (protocol v1, with its delivery guarantees),
    ``"ag-ui"`` (an AG-UI agent over HTTP), ``"ai-sdk"`` (the AI SDK UI message stream over
    HTTP), or a :class:`~nbchat.JsonProtocol` describing a custom JSON WebSocket backend.
    Declared before ``url``, so the URL check can read it. While a replay is active it is
    ``"nbchat"``, whatever was given (the replay server speaks v1)."""
    url: str = Field(default_factory=default_url)
    """WebSocket URL of the backend (``ws://`` or ``wss://``)."""
    reconnect: bool = True
    """Reconnect after a connection is lost for a reason the policy retries."""
    reconnect_interval: float = Field(3.0, ge=0)
    """First reconnection delay, in seconds; later ones grow by ``backoff_factor``."""
    max_reconnect_attempts: int = Field(5, ge=0)
    """Consecutive failed attempts after which the client stops and reports it."""
    on_open: Callable[[], Any] | None = None
    on_close: Callable[[int | None, str], Any] | None = None
    on_error: Callable[[BaseException], Any] | None = None
    on_message: Callable[[Any], Any] | None = None

    # Beyond the TypeScript client.
    max_reconnect_interval: float = Field(10.0, ge=0)
    """Cap on any one reconnection delay, in seconds: a person waits at most this long."""
    backoff_factor: float = Field(2.0, ge=1)
    jitter: float = Field(1.0, ge=0, le=1)
    """Fraction of each delay drawn at random (1.0 = full jitter, 0.0 = none)."""
    stable_after: float = Field(5.0, ge=0)
    """Seconds a connection must stay up before the attempt count resets."""
    should_reconnect: ReconnectPolicy = should_reconnect
    """Predicate deciding, from a :class:`~nbchat.policy.Disconnect`, whether to retry."""
    max_queue: int = Field(1000, ge=1)
    """Messages whose reply is not complete, connected or not; one more raises ``QueueFull``."""
    ping_interval: float | None = Field(5.0, gt=0)
    """Seconds between keepalive pings: with ``ping_timeout``, a hung server is noticed in 10 s."""
    ping_timeout: float | None = Field(5.0, gt=0)
    open_timeout: float | None = Field(10.0, gt=0)
    connect_timeout: float | None = Field(5.0, gt=0)
    """Seconds to keep trying a server this client never reached (a wrong URL fails this fast).

    Counted from the first attempt, in time the client could try: while its
    event loop is blocked (in a notebook, another cell running) the clock
    stops, and an attempt cut short that way is not counted. Each attempt's
    ``open_timeout`` is cut to what is left (at least one second). Once a
    connection has succeeded, reconnects follow ``max_reconnect_attempts``
    alone. None: no time limit.
    """
    close_timeout: float = Field(2.0, gt=0)
    """Longest ``disconnect()`` waits for the server's closing handshake."""
    max_size: int | None = Field(DEFAULT_MAX_SIZE, ge=1)
    """Largest frame accepted from the server, in bytes."""
    max_reply_bytes: int | None = Field(16 * 2**20, ge=1)
    """Largest reply kept, in bytes (16 MiB): past it the reply fails with a one-line
    ``ProtocolError`` and the server is asked to stop it. None: no bound."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra handshake headers, e.g. ``{"Authorization": "Bearer ..."}``; never recorded."""
    token: SecretStr | None = Field(
        default_factory=lambda: (
            SecretStr(os.environ[TOKEN_ENV]) if os.environ.get(TOKEN_ENV) else None
        )
    )
    """Sent as ``Authorization: Bearer ...`` (default ``$NBCHAT_TOKEN``); never shown."""
    conversation_id: str | None = None
    """Conversation to join; a fresh one is made when None."""
    record: str | os.PathLike[str] | None = Field(
        default_factory=lambda: os.environ.get(RECORD_ENV) or None
    )
    """Append every event of the session to this JSON Lines transcript (nbchat.transcript)."""

    def __init__(self, **settings: Any) -> None:
        """Validate every setting; the first invalid one is a one-line :class:`ConfigError`."""
        try:
            super().__init__(**settings)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"invalid client setting {where}: {err['msg']}") from exc

    @field_validator("protocol")
    @classmethod
    def _replay_speaks_v1(cls, value: ProtocolSetting) -> ProtocolSetting:
        """Replay wins the protocol as it wins the URL (below): the replay server speaks v1."""
        if value == "nbchat" or not replay_urls():
            return value
        shown = value if isinstance(value, str) else type(value).__name__
        logger.warning("replay wins: protocol %r replaced by nbchat ($%s)", shown, REPLAY_ENV)
        return "nbchat"

    @field_validator("url")
    @classmethod
    def _websocket_url(cls, value: str, info: ValidationInfo) -> str:
        if replay_urls():
            pass  # replaced below whatever its scheme: the protocol was made "nbchat" above
        elif info.data.get("protocol") in HTTP_PROTOCOLS:  # AG-UI, the AI SDK: one POST a run
            if not value.startswith(("http://", "https://")):
                raise ValueError(
                    f"url must start with http:// or https:// for protocol "
                    f"{info.data['protocol']!r}, got {redact_url(value)!r}"
                )
        elif not value.startswith(("ws://", "wss://")):
            raise ValueError(f"url must start with ws:// or wss://, got {value!r}")
        _check_url(value)
        return replay_instead(value) or value

    def handshake_headers(self) -> dict[str, str]:
        """The headers of the opening handshake: ``headers``, plus the token if it has none."""
        headers = dict(self.headers)
        has_auth = any(name.lower() == "authorization" for name in headers)
        if self.token is not None and not has_auth:
            headers["Authorization"] = f"Bearer {self.token.get_secret_value()}"
        return headers

    @classmethod
    def build(cls, config: ClientConfig | None = None, **overrides: Any) -> ClientConfig:
        """Merge keyword overrides into a config (ConfigError, one line, if one is invalid)."""
        if config is None:
            return cls(**overrides)
        return cls(**{**dict(config), **overrides}) if overrides else config


# Private helpers

_HOST_FORBIDDEN = frozenset(' \t\r\n\\<>"{}|^`%')


def _check_url(url: str) -> None:
    """Refuse, with the reason, a URL no connection attempt could use (decided here, once)."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port out of range or not a number, a bad IPv6 literal
        raise ValueError(f"{exc} in {shown}") from None
    host = parts.hostname
    if not host:
        raise ValueError(f"no host name in {shown}")
    if any(char in _HOST_FORBIDDEN for char in host):
        raise ValueError(f"the host name {host!r} has characters no host name has")
    if not host.isascii():
        try:
            host.encode("idna")
        except UnicodeError as exc:
            raise ValueError(f"the host name {host!r} is not a valid name ({exc})") from None
    if port == 0:
        raise ValueError(f"port 0 cannot be connected to, in {shown}")
    if parts.fragment:
        raise ValueError(f"a WebSocket URL has no #fragment, got {shown}")
    if parts.username is not None and parts.password is None:
        raise ValueError("a user name in the URL needs a password (user:password@host)")
