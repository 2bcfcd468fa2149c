"""Redaction: every URL form loses its secrets, the rest stays byte-identical, in linear time."""

from __future__ import annotations

import pytest

from nbchat.redact import (
    REDACTED,
    is_sensitive_name,
    redact_pieces,
    redact_text,
    redact_url,
    splits_cleanly,
)
from tests.helpers import TIME_SCALE, best_cpu_times

pytestmark = pytest.mark.unit

SECRET = "S3CRET"

# (url, expected): each names a place a credential hides in a URL.
CORPUS = [
    ("ws://h/ws?token=S3CRET&room=7", "ws://h/ws?token=***&room=7"),
    ("ws://h/ws?api_key=S3CRET", "ws://h/ws?api_key=***"),
    ("ws://h/ws?API_KEY=S3CRET", "ws://h/ws?API_KEY=***"),
    ("ws://h/ws?apiKey=S3CRET", "ws://h/ws?apiKey=***"),
    ("ws://h/ws?X-Api-Key=S3CRET", "ws://h/ws?X-Api-Key=***"),
    ("ws://h/ws?access_token=S3CRET", "ws://h/ws?access_token=***"),
    ("ws://h/ws?Access-Token=S3CRET", "ws://h/ws?Access-Token=***"),
    ("ws://h/ws?secret=S3CRET", "ws://h/ws?secret=***"),
    ("ws://h/ws?client_secret=S3CRET", "ws://h/ws?client_secret=***"),
    ("ws://h/ws?password=S3CRET", "ws://h/ws?password=***"),
    ("ws://h/ws?passwd=S3CRET", "ws://h/ws?passwd=***"),
    ("ws://h/ws?pwd=S3CRET", "ws://h/ws?pwd=***"),
    ("ws://h/ws?auth=S3CRET", "ws://h/ws?auth=***"),
    ("ws://h/ws?session=S3CRET", "ws://h/ws?session=***"),
    ("ws://h/ws?sessionToken=S3CRET", "ws://h/ws?sessionToken=***"),
    ("ws://h/ws?sid=S3CRET", "ws://h/ws?sid=***"),
    ("ws://h/ws?sig=S3CRET", "ws://h/ws?sig=***"),
    ("ws://h/ws?X-Amz-Signature=S3CRET", "ws://h/ws?X-Amz-Signature=***"),
    ("ws://h/ws?X-Amz-Credential=S3CRET", "ws://h/ws?X-Amz-Credential=***"),
    ("ws://h/ws?jwt=S3CRET", "ws://h/ws?jwt=***"),
    ("ws://h/ws?code=S3CRET&state=1", "ws://h/ws?code=***&state=1"),
    ("ws://h/ws?auth[token]=S3CRET", "ws://h/ws?auth[token]=***"),
    # Percent-encoded names, once and twice.
    ("ws://h/ws?%74oken=S3CRET", "ws://h/ws?%74oken=***"),
    ("ws://h/ws?%2574oken=S3CRET", "ws://h/ws?%2574oken=***"),
    ("ws://h/ws?api%5Fkey=S3CRET", "ws://h/ws?api%5Fkey=***"),
    ("ws://h/ws?api+key=S3CRET", "ws://h/ws?api+key=***"),
    # Values holding separators of other levels, or padding.
    ("ws://h/ws?token=S3C=RET==&a=1", "ws://h/ws?token=***&a=1"),
    ("ws://h/ws?token=S3/CR+ET", "ws://h/ws?token=***"),
    # ;-separated query parameters.
    ("ws://h/ws?room=1;token=S3CRET;a=2", "ws://h/ws?room=1;token=***;a=2"),
    # Userinfo.
    ("ws://user:S3CRET@h/ws", "ws://***:***@h/ws"),
    ("wss://S3CRET@h/ws", "wss://***@h/ws"),
    ("wss://u:p@ss:S3CRET@h:8/ws", "wss://***:***@h:8/ws"),
    # The fragment, OAuth style and behind a client-side route.
    (
        "https://h/cb#access_token=S3CRET&expires_in=60",
        "https://h/cb#access_token=***&expires_in=60",
    ),
    ("https://h/#/cb?code=S3CRET&state=x", "https://h/#/cb?code=***&state=x"),
    # Path parameters.
    ("ws://h/ws;jsessionid=S3CRET", "ws://h/ws;jsessionid=***"),
    ("ws://h/ws;JSESSIONID=S3CRET/more", "ws://h/ws;JSESSIONID=***/more"),
    ("ws://h/a;v=1;token=S3CRET/b;x=2", "ws://h/a;v=1;token=***/b;x=2"),
    ("ws://h/token=S3CRET/b", "ws://h/token=***/b"),
    # A URL inside a parameter value, plain or percent-encoded.
    ("https://h/login?next=https://i/?token=S3CRET", "https://h/login?next=https://i/?token=***"),
    ("https://h/login?next=https%3A%2F%2Fi%2F%3Ftoken%3DS3CRET", "https://h/login?next=***"),
    # Everything at once.
    (
        "wss://ada:pw@h:9/ws;jsessionid=S3CRET?Token=S3CRET&room=1#access_token=S3CRET",
        "wss://***:***@h:9/ws;jsessionid=***?Token=***&room=1#access_token=***",
    ),
    # Nothing secret: untouched, byte for byte.
    ("ws://h/ws", "ws://h/ws"),
    (
        "ws://127.0.0.1:8000/ws?room=7&lang=en%20US#top",
        "ws://127.0.0.1:8000/ws?room=7&lang=en%20US#top",
    ),
    ("ws://[::1]:8000/ws?a=1", "ws://[::1]:8000/ws?a=1"),
    # Unparseable: replaced whole.
    ("ws://[::1/ws?token=S3CRET", REDACTED),
]


@pytest.mark.parametrize(("url", "expected"), CORPUS)
def test_redact_url_corpus(url: str, expected: str) -> None:
    """Each URL form loses exactly its credentials."""
    assert redact_url(url) == expected
    assert SECRET not in (redact_url(url) or "")


@pytest.mark.parametrize(("url", "expected"), CORPUS)
def test_redact_text_finds_urls_in_prose(url: str, expected: str) -> None:
    """A URL inside an error message is redacted like the URL alone, the prose kept."""
    text = f"gave up after 2 reconnection attempts to {url}. Check the server."
    assert (
        redact_text(text)
        == f"gave up after 2 reconnection attempts to {expected}. Check the server."
    )


@pytest.mark.parametrize(("url", "expected"), CORPUS)
def test_redact_text_inside_json(url: str, expected: str) -> None:
    """A URL inside a JSON string ends at its closing quote, so a JSON line stays valid."""
    assert redact_text(f'{{"url":"{url}","n":1}}') == f'{{"url":"{expected}","n":1}}'


def test_redact_url_none() -> None:
    """No URL stays no URL."""
    assert redact_url(None) is None


def test_redact_text_several_urls_and_bearer() -> None:
    """Every URL in a text is redacted, and an Authorization bearer token too."""
    text = "ws://a/?token=S3CRET then https://u:S3CRET@b/x and Bearer S3CRET.x-y_0123456789"
    assert redact_text(text) == "ws://a/?token=*** then https://***:***@b/x and Bearer ***"


def test_redact_text_leaves_plain_text() -> None:
    """Text without URLs or bearer tokens is returned unchanged."""
    text = "token=abc is not a URL; a://, ://x and x:// are not either. Use a Bearer token."
    assert redact_text(text) == text


@pytest.mark.parametrize("name", ["token", "X-API-KEY", "%70assword", "SessionId", "jsessionid"])
def test_sensitive_names(name: str) -> None:
    """Names that carry credentials are recognised whatever their spelling."""
    assert is_sensitive_name(name)


@pytest.mark.parametrize("name", ["room", "lang", "conversation_id", "v"])
def test_harmless_names(name: str) -> None:
    """Ordinary parameter names are left alone."""
    assert not is_sensitive_name(name)


ADVERSARIAL = [
    "a" * 1_000_000,
    "a://" * 250_000,
    " " * 1_000_000,
    "x://" + "=" * 1_000_000,
    "ws://h/?" + "a=b&" * 250_000,
    "ws://h/?" + "%41=b;" * 160_000,
    "ws://h/" + ";" * 1_000_000,
    "ws://h/" + "a;b=c/" * 160_000,
    "ws://h/?next=" + "https://" * 120_000,
    "ws://h/#" + "/?" * 500_000,
    "bearer " * 140_000,
    "-eyJ" * 250_000,
    "sk-" + "a" * 1_000_000,
    "ws://" + "@" * 1_000_000,
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda text: repr(text[:12]))
def test_redaction_is_linear(text: str) -> None:
    """Twice the input costs about twice the time (quadratic would cost four times)."""

    half = text[: len(text) // 2]
    small, large = best_cpu_times(lambda: redact_text(half), lambda: redact_text(text), rounds=4)
    # Linear gives 2; quadratic 4. Tiny timings are noise-dominated: an absolute floor too.
    assert large < 3.0 * small or large < 0.05 * TIME_SCALE, (small, large)
    assert large < 3.0 * TIME_SCALE


@pytest.mark.parametrize(
    "key",
    [
        "sk-" + "a1B2" * 12,
        "sk-proj-" + "Zx9_" * 10,
        "ghp_" + "A1b2" * 9,
        "github_pat_" + "11AB" * 10,
        "xoxb-1234567890-0987654321-" + "abc" * 6,
        "AKIAIOSFODNN7EXAMPLE",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ],
)
def test_api_keys_are_redacted_by_their_shape(key: str) -> None:
    """A key of a common shape is redacted wherever it stands in free text, the sentence kept."""
    assert redact_text(f"the key: {key}. Use it.") == "the key: ***. Use it."
    assert redact_text(f'{{"api_key": "{key}"}}') == '{"api_key": "***"}'


@pytest.mark.parametrize(
    "text",
    ["sk-short", "skeleton-key-of-the-castle-doors", "eyJ-is-not-a-token-without-dots", "AKIA"],
)
def test_text_that_only_resembles_a_key_is_kept(text: str) -> None:
    """Short or differently shaped words with a key's prefix are not keys."""
    assert redact_text(text) == text


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
SPLIT_SECRETS = [
    (["see https://ada:s3", "cret-pw@host/x ok"], "s3cret-pw"),
    (["Authorization: Bearer ", JWT[:20], JWT[20:], " done"], JWT[20:40]),
    (["call https://api.example/v1?api_key=", "SK-" + "Q7w" * 8, " now"], "Q7wQ7w"),
    (["Bearer", " ", "Zq8" * 8, " then"], "Zq8Zq8"),
]
"""A reply's token frames, each holding part of a secret, and a part that must not survive."""


@pytest.mark.parametrize(("pieces", "secret"), SPLIT_SECRETS)
def test_pieces_are_redacted_as_the_text_they_make(pieces: list[str], secret: str) -> None:
    """A secret split across pieces is caught; one piece back for each, joined as the whole."""
    redacted = redact_pieces(pieces)
    assert len(redacted) == len(pieces)
    assert "".join(redacted) == redact_text("".join(pieces))
    assert secret not in "".join(redacted)
    assert redacted[-1].endswith(pieces[-1][-3:])  # text after the secret is kept


@pytest.mark.parametrize(
    "text",
    [
        "a https://ada:pw@h/x?token=abc and Bearer  " + "Zq8" * 8 + " or sk-" + "a1B2" * 12,
        f"x\tAuthorization: bearer\n{JWT} https://h/?api_key=SK-abc ghp_{'A1b2' * 9}.",
    ],
)
def test_a_clean_cut_never_changes_what_redaction_finds(text: str) -> None:
    """Wherever splits_cleanly allows a cut, the two halves redact to the whole's redaction."""
    whole = redact_text(text)
    cuts = [at for at in range(len(text) + 1) if splits_cleanly(text, at)]
    assert len(cuts) >= 10  # whitespace offers cuts; inside a word there are none
    for at in cuts:
        assert redact_text(text[:at]) + redact_text(text[at:]) == whole, at
    assert not splits_cleanly("Bearer " + "Zq8" * 8, len("Bearer "))
