"""ClientConfig defaults, overrides and validation."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from nbchat.config import DEFAULT_URL, REPLAY_ENV, TOKEN_ENV, ClientConfig, replay_instead
from nbchat.exceptions import ConfigError

pytestmark = pytest.mark.unit


def test_defaults_match_the_typescript_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without overrides the config carries the seed's defaults."""
    monkeypatch.delenv("NBCHAT_WS_URL", raising=False)
    config = ClientConfig()
    assert (config.url, config.reconnect, config.reconnect_interval) == (DEFAULT_URL, True, 3.0)
    assert config.max_reconnect_attempts == 5


def test_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``NBCHAT_WS_URL`` sets the default URL."""
    monkeypatch.setenv("NBCHAT_WS_URL", "ws://example.invalid:9/ws")
    assert ClientConfig().url == "ws://example.invalid:9/ws"


def test_overrides_merge_into_a_given_config() -> None:
    """Keyword overrides win over the given config, which is left unchanged."""
    base = ClientConfig(url="ws://a/ws", reconnect_interval=1.0)
    merged = ClientConfig.build(base, reconnect_interval=0.5)
    assert (merged.url, merged.reconnect_interval, base.reconnect_interval) == (
        "ws://a/ws",
        0.5,
        1.0,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"url": "http://x/ws"},
        {"reconnect_interval": -1},
        {"max_queue": 0},
        {"jitter": 2},
        {"nope": 1},
    ],
)
def test_invalid_settings_raise_config_error(overrides: dict[str, Any]) -> None:
    """An invalid setting is a one-line ConfigError naming it."""
    with pytest.raises(ConfigError, match="invalid client setting") as info:
        ClientConfig.build(**overrides)
    assert "\n" not in str(info.value)


def test_recording_path_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``NBCHAT_RECORD`` turns recording on without touching the code that makes clients."""
    monkeypatch.setenv("NBCHAT_RECORD", "/tmp/session.jsonl")
    assert ClientConfig().record == "/tmp/session.jsonl"
    monkeypatch.delenv("NBCHAT_RECORD")
    assert ClientConfig().record is None


def test_token_comes_from_the_environment_and_goes_in_the_handshake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``NBCHAT_TOKEN`` becomes the handshake's bearer token, and is never shown."""
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    config = ClientConfig(headers={"X-Trace": "1"})
    assert config.handshake_headers() == {"X-Trace": "1", "Authorization": "Bearer s3cret"}
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.model_dump())
    monkeypatch.delenv(TOKEN_ENV)
    assert ClientConfig().handshake_headers() == {}


def test_an_authorization_header_given_wins_over_the_token() -> None:
    """Headers the caller set are sent as given, whatever their case; the token is not added."""
    config = ClientConfig.build(token="t", headers={"authorization": "Basic abc"})
    assert config.handshake_headers() == {"authorization": "Basic abc"}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ws://h:99999/ws", "Port out of range"),
        ("ws://h:port/ws", "Port could not be cast"),
        ("ws://h:0/ws", "port 0"),
        ("ws://a b/ws", "'a b'"),
        ("ws:///ws", "no host name"),
        ("ws://[::1/ws", "Invalid IPv6 URL"),
        ("ws://ü..b/ws", "not a valid name"),
        ("ws://h/ws#part", "#fragment"),
        ("ws://ada@h/ws", "needs a password"),
    ],
)
def test_an_unusable_url_is_a_config_error_at_construction(url: str, says: str) -> None:
    """A URL no connection could use is refused by ClientConfig itself, in one line."""
    with pytest.raises(ConfigError, match="invalid client setting url") as info:
        ClientConfig(url=url)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_refused_url_is_shown_redacted() -> None:
    """The refusal quotes the URL with its credentials replaced, never the token itself."""
    with pytest.raises(ConfigError) as info:
        ClientConfig(url="wss://h:99999/ws?token=s3cret")
    assert "s3cret" not in str(info.value) and "token=***" in str(info.value)


@pytest.mark.parametrize(
    "url", ["ws://localhost:8000/ws", "wss://u:p@h/ws?x=1", "ws://[::1]:80/ws", "ws://bücher.de/ws"]
)
def test_usable_urls_are_accepted(url: str) -> None:
    """Ports in range, credentials with a password, IPv6 literals and IDN hosts pass."""
    assert ClientConfig(url=url).url == url


REPLAY = "ws://127.0.0.1:7/ws"
"""A replay server's URL, as the pytest plugin exports it in $NBCHAT_REPLAY."""


def test_replay_wins_over_any_url_and_says_what_it_replaced(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Under $NBCHAT_REPLAY a given URL becomes the replay's, with one WARNING naming it."""
    monkeypatch.setenv(REPLAY_ENV, REPLAY)
    monkeypatch.setenv("NBCHAT_WS_URL", "ws://env.invalid/ws")
    with caplog.at_level(logging.WARNING, logger="nbchat"):
        config = ClientConfig(url="ws://elsewhere.invalid/ws?token=s3cret")
        merged = ClientConfig.build(config, reconnect_interval=0.5)
    assert (config.url, merged.url, ClientConfig().url) == (REPLAY, REPLAY, REPLAY)
    [record] = caplog.records
    assert record.name == "nbchat" and record.levelno == logging.WARNING
    assert "ws://elsewhere.invalid/ws?token=***" in record.getMessage()
    assert REPLAY in record.getMessage() and "s3cret" not in record.getMessage()


def test_a_replay_server_url_is_kept_silently(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A client given one of the active replay servers keeps it; nothing is logged."""
    monkeypatch.setenv(REPLAY_ENV, f"{REPLAY} ws://127.0.0.1:8/ws")
    with caplog.at_level(logging.DEBUG, logger="nbchat"):
        assert ClientConfig(url="ws://127.0.0.1:8/ws").url == "ws://127.0.0.1:8/ws"
        assert replay_instead() == REPLAY
    assert caplog.records == []
    monkeypatch.delenv(REPLAY_ENV)
    assert replay_instead("ws://elsewhere.invalid/ws") is None


def test_the_protocol_is_nbchat_unless_told_and_takes_a_json_protocol() -> None:
    """The default speaks v1; a name or a JsonProtocol is accepted, anything else refused."""
    from nbchat import JsonProtocol

    custom = JsonProtocol(text={"delta": "text"}, end=["end"])
    assert ClientConfig().protocol == "nbchat"
    assert ClientConfig(protocol=custom).protocol is custom
    with pytest.raises(ConfigError, match="protocol"):
        ClientConfig(protocol="graphql")


def test_replay_wins_over_any_protocol_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Under $NBCHAT_REPLAY the protocol is v1 (the replay server's), given or assigned."""
    from nbchat import JsonProtocol

    monkeypatch.setenv(REPLAY_ENV, REPLAY)
    with caplog.at_level(logging.WARNING, logger="nbchat"):
        config = ClientConfig(url="ws://elsewhere.invalid/ws", protocol=JsonProtocol())
        assert (config.url, config.protocol) == (REPLAY, "nbchat")
        agent = ClientConfig(url="http://127.0.0.1:9/agent", protocol="ag-ui")
        assert (agent.url, agent.protocol) == (REPLAY, "nbchat")
        config.protocol = "ag-ui"
    assert config.protocol == "nbchat"
    assert any(
        "protocol 'JsonProtocol' replaced by nbchat" in r.getMessage() for r in caplog.records
    )
