"""Credentials out of URLs and free text, before anything is written down (pure).

A transcript is meant to be committed next to the notebook that made it, so a
secret that reaches one is public. Every string a transcript stores goes through
:func:`redact_text`; a URL on its own through :func:`redact_url`. Both replace
the secret parts of a URL with ``***`` and leave the rest byte-identical, so a
redacted transcript still says which server and which route were used.

What counts as secret, in every URL form:

- the userinfo: ``ws://ada:s3cret@host`` becomes ``ws://***:***@host``;
- the value of any parameter whose name looks like a credential (``token``,
  ``api_key``, ``X-Api-Key``, ``sessionToken``, ``jsessionid``, ``sig``, ...;
  matched after percent-decoding and lower-casing), wherever parameters occur:
  the query (``&`` or ``;`` separated), the fragment (``#access_token=...``,
  ``#/callback?code=...``) and path parameters (``/ws;jsessionid=...``);
- a URL nested in a parameter's value (``?next=https://h/?token=...``);
- in free text, ``Bearer <token>`` (16 characters or more), and API keys by
  their shape wherever they stand: OpenAI's ``sk-...`` and ``sk-proj-...``,
  GitHub's ``ghp_...`` (and ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``,
  ``github_pat_``), Slack's ``xox?-...``, AWS access key ids ``AKIA...`` and
  JSON Web Tokens (``eyJ...``, three dot-separated parts).

Over-redacting a harmless parameter costs nothing; leaking a token costs a lot,
so a name merely *containing* a telling word counts. Every function here runs in
time linear in its input (no backtracking regular expression over untrusted
text): a 1 MB error message is redacted in milliseconds.

The one redaction, applied wherever text becomes durable: the transcript (the
recorder, every line written, and the turns read back), the saved static copy
and every export (:mod:`nbchat.render`'s conversation renderers), the replay
server's comparisons and messages, and the model bridge's error text. A reply
arrives in pieces, and a secret split across two token frames is in neither of
them; so redaction is applied to assembled text: :func:`redact_turn` redacts a
turn's text runs whole (the runs exactly as :meth:`~nbchat.turn.Turn.segments`
joins them), and :func:`redact_pieces` redacts pieces as the text they make,
handing back one piece for each, so a reply keeps its frames and their times.
:func:`splits_cleanly` says where a text may be cut without changing what its
redaction finds (next to whitespace, unless after ``Bearer``): the recorder
writes a long reply in parts cut only there.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from .protocol import (
    ErrorMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
)
from .turn import Turn

__all__ = [
    "REDACTED",
    "is_sensitive_name",
    "looks_like_key",
    "redact_call",
    "redact_pieces",
    "redact_text",
    "redact_turn",
    "redact_url",
    "redact_value",
    "splits_cleanly",
]

REDACTED = "***"
"""What a secret is replaced with."""

_SENSITIVE_NAMES = frozenset({"sid", "pat", "jwt", "otp", "pin", "code", "nonce", "hash"})
"""Whole names that are secrets but too short to search for inside other names."""

_SENSITIVE_PARTS = (
    "token",
    "secret",
    "passw",
    "pwd",
    "auth",
    "key",
    "credential",
    "session",
    "sessid",
    "sig",
    "cookie",
    "bearer",
    "ticket",
    "hmac",
    "private",
    "jwt",
    "apikey",
)
"""Words that make any name containing them secret (``x-api-key``, ``sessionToken``)."""

_SENSITIVE_PART = re.compile("|".join(_SENSITIVE_PARTS))
"""The words as one pattern of literals: one scan of a name, no backtracking."""

_MAX_SCHEME = 32
"""Letters looked at before a ``://`` to find its scheme: bounded, so scanning stays linear."""

_MAX_DEPTH = 3
"""URLs nested in parameter values looked into; deeper ones are replaced whole."""

_URL_BODY = re.compile(r"[^\s\"'<>`\\]*")
"""The rest of a URL after ``://``: up to whitespace, a quote, a bracket or a backslash.

A backslash ends it so that a URL inside JSON text stops at an escaped character."""

_TRAILING = ".,;:!?)]}"
"""Punctuation that ends a sentence rather than a URL."""

_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")

_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{16,}")
"""An ``Authorization: Bearer`` credential: a literal word first, so each position fails fast.

Sixteen characters at least: real tokens are longer, and "a bearer token" in prose stays."""

_NAME_NOISE = re.compile(r"[^a-z0-9]+")

_TOKEN_RUN = re.compile(r"[A-Za-z0-9_.\-]{20,}")
"""A run of the characters keys are made of: found once each, left to right (linear).

Shapes are then checked on each run in Python rather than with one regular
expression per shape, which backtracks quadratically over text like ``-eyJ-eyJ...``."""

_KEY_PREFIXES = ("sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "AKIA")
_SLACK_PREFIXES = ("xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "xoxe-")
_KEY_HINTS = ("sk-", "gh", "github_pat_", "xox", "AKIA", "eyJ")
"""Substrings one of which every key shape holds: text without any is left alone at once."""


def is_sensitive_name(name: str) -> bool:
    """True when a parameter called ``name`` probably carries a credential.

    Compared after percent-decoding (twice: ``%2574oken`` is ``token`` encoded
    twice), lower-casing and dropping punctuation, so ``X-Api-Key``,
    ``%41PI_KEY`` and ``auth[token]`` all count.
    """
    if "%" in name or "+" in name:
        name = unquote_plus(unquote_plus(name))
    compact = _NAME_NOISE.sub("", name.lower())
    return compact in _SENSITIVE_NAMES or _SENSITIVE_PART.search(compact) is not None


def redact_url(url: str | None) -> str | None:
    """``url`` with its credentials replaced by ``***``; None stays None.

    ``wss://ada:s3cret@host/ws;jsessionid=x?token=abc&room=1#access_token=y``
    becomes ``wss://***:***@host/ws;jsessionid=***?token=***&room=1#access_token=***``.
    A URL that cannot be parsed is replaced whole: a transcript must never be the
    place a secret leaks from.
    """
    if url is None:
        return None
    return _redact_url(url, 0)


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (:func:`redact_url`), and bearer tokens.

    For error messages, state details and whole JSON lines: a URL is found by its
    ``://`` and ends at whitespace, a quote, an angle bracket, a backtick or a
    backslash (so one inside JSON text ends with its string).
    """
    if "://" in text:
        text = _redact_urls_in(text, 0)
    if "earer" in text or "EARER" in text:
        text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    if any(hint in text for hint in _KEY_HINTS):
        text = _TOKEN_RUN.sub(_redact_key, text)
    return text


def looks_like_key(token: str) -> bool:
    """True when ``token`` has the shape of an API key or a JSON Web Token."""
    if token.startswith(_KEY_PREFIXES) or token.startswith(_SLACK_PREFIXES):
        return len(token) >= 20
    if token.startswith("eyJ"):
        parts = token.split(".")
        return len(parts) == 3 and all(len(part) >= 8 for part in parts)
    return False


def splits_cleanly(text: str, at: int) -> bool:
    """True when redacting ``text[:at]`` and ``text[at:]`` apart finds what redacting ``text`` does.

    Every rule here stops at whitespace (a URL's end, a key's run of characters,
    a scheme looked for before ``://``) except ``Bearer <token>``, which spans
    it. So a cut next to whitespace is clean unless the word before it is
    ``bearer``. Cost: the whitespace run before ``at``.
    """
    if at <= 0 or at >= len(text):
        return True
    if not (text[at - 1].isspace() or text[at].isspace()):
        return False
    end = at
    while end > 0 and text[end - 1].isspace():
        end -= 1
    return text[max(0, end - 6) : end].lower() != "bearer"


def redact_pieces(pieces: Sequence[str]) -> list[str]:
    """``pieces`` redacted as the one text they make, one piece back for each.

    The result joins to ``redact_text("".join(pieces))``. Pieces before the
    first change and after the last keep their text; the piece where the
    changed span begins takes all of its redacted form, and the pieces wholly
    inside it become empty. So no piece, and no run of pieces, holds a secret
    that was split across them. Linear.
    """
    text = "".join(pieces)
    redacted = redact_text(text)
    if redacted == text:
        return list(pieces)
    n, m = len(text), len(redacted)
    head = _common_prefix(text, redacted, min(n, m))
    tail = _common_prefix(text[::-1], redacted[::-1], min(n, m) - head)
    out: list[str] = []
    start = 0
    begin = 0
    for piece in pieces:
        end = start + len(piece)
        stop = end if end <= head else (end + m - n if end >= n - tail else m - tail)
        out.append(redacted[begin:stop])
        start, begin = end, stop
    return out


def redact_value(value: Any) -> Any:
    """A JSON-like value (tool arguments, a result) with every string in it redacted, keys too."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact_value(key): redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def redact_call(call: ToolCall) -> ToolCall:
    """A tool call with its name, arguments and result redacted (itself when nothing changes)."""
    name = redact_text(call.name)
    arguments = redact_value(call.arguments)
    result = redact_value(call.result)
    if name == call.name and arguments == call.arguments and result == call.result:
        return call
    return call.model_copy(update={"name": name, "arguments": arguments, "result": result})


def redact_turn(turn: Turn) -> Turn:
    """``turn`` as durable text may hold it: user text, replies, tool data and error redacted.

    Redacted as assembled, so a secret split across token frames is caught:
    each text run (the tokens :meth:`~nbchat.turn.Turn.segments` joins into one
    piece of text) goes through :func:`redact_pieces`, keeping one message per
    frame (and so the times a replay paces by); the whole reply text too. The
    turn itself comes back when nothing in it changes.
    """
    messages = _redacted_messages(turn.messages)
    calls = [redact_call(call) for call in turn.tool_calls]
    error = turn.error
    if error is not None and redact_text(error.message) != error.message:
        error = error.model_copy(update={"message": redact_text(error.message)})
    user = redact_text(turn.user)
    assistant = redact_text(turn.assistant)
    reasoning = redact_text(turn.reasoning)
    attached = [redact_text(line) for line in turn.attached]
    if (
        messages is turn.messages
        and all(a is b for a, b in zip(calls, turn.tool_calls, strict=True))
        and error is turn.error
        and user == turn.user
        and assistant == turn.assistant
        and reasoning == turn.reasoning
        and attached == turn.attached
    ):
        return turn
    # Every other field as it was (the rich views were redacted as they were made,
    # nbchat.render.rich), so a field added to Turn is never lost here.
    return dataclasses.replace(
        turn,
        user=user,
        assistant=assistant,
        tool_calls=calls,
        messages=messages,
        error=error,
        reasoning=reasoning,
        attached=attached,
    )


# Private functions


def _redacted_messages(messages: list[ServerMessage]) -> list[ServerMessage]:
    """A reply's messages with each text run redacted whole (the list itself if unchanged).

    A run ends where :meth:`~nbchat.turn.Turn.segments` ends one: at a tool
    message announcing a call not seen before. Other messages (acks, a
    repeated result) are inside a run for the text's sake.
    """
    out = list(messages)
    changed = False
    placed: set[str] = set()
    run: list[int] = []  # indexes of the current run's plain tokens

    def close_run() -> None:
        nonlocal changed
        texts = [out[i].response for i in run]  # type: ignore[union-attr]
        redacted = redact_pieces(texts)
        for index, old, new in zip(run, texts, redacted, strict=True):
            if new != old:
                out[index] = out[index].model_copy(update={"response": new})
                changed = True
        run.clear()

    for index, message in enumerate(messages):
        if type(message) is TokenMessage:
            run.append(index)
        elif isinstance(message, ToolCallMessage | ToolResultMessage):
            if any(call.id not in placed for call in message.tool_calls):
                close_run()
            placed.update(call.id for call in message.tool_calls)
            calls = [redact_call(call) for call in message.tool_calls]
            if any(a is not b for a, b in zip(calls, message.tool_calls, strict=True)):
                out[index] = message.model_copy(update={"tool_calls": calls})
                changed = True
        elif isinstance(message, ErrorMessage):
            text = redact_text(message.error.message)
            if text != message.error.message:
                error = message.error.model_copy(update={"message": text})
                out[index] = message.model_copy(update={"error": error})
                changed = True
    close_run()
    return out if changed else messages


def _common_prefix(a: str, b: str, limit: int) -> int:
    """How many leading characters ``a`` and ``b`` share, at most ``limit`` (compared in blocks)."""
    done = 0
    block = 4096
    while done < limit:
        size = min(block, limit - done)
        if a[done : done + size] == b[done : done + size]:
            done += size
            continue
        while a[done] == b[done]:
            done += 1
        return done
    return done


def _redact_key(match: re.Match[str]) -> str:
    """One run of key characters: ``***`` if it is a key (trailing dots end a sentence: kept)."""
    run = match.group(0)
    token = run.rstrip(".")
    return REDACTED + run[len(token) :] if looks_like_key(token) else run


def _redact_urls_in(text: str, depth: int) -> str:
    """Every ``scheme://...`` in ``text`` redacted; one left-to-right pass."""
    out: list[str] = []
    done = 0  # text[:done] is already in out
    search = 0
    while True:
        mark = text.find("://", search)
        if mark < 0:
            break
        start = mark
        floor = max(done, mark - _MAX_SCHEME)
        while start > floor and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < mark and not text[start].isalpha():
            start += 1  # a scheme begins with a letter
        body = _URL_BODY.match(text, mark + 3)
        end = body.end() if body is not None else mark + 3
        while end > mark + 3 and text[end - 1] in _TRAILING:
            end -= 1
        if start < mark:
            out.append(text[done:start])
            out.append(_redact_url(text[start:end], depth))
            done = end
        search = max(end, mark + 3)
    if not out:
        return text
    out.append(text[done:])
    return "".join(out)


def _redact_url(url: str, depth: int) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        netloc = (
            f"{REDACTED}:{REDACTED}@{hostport}" if ":" in userinfo else f"{REDACTED}@{hostport}"
        )
    path = parts.path
    if ";" in path or "=" in path:
        path = "/".join(_redact_pairs(segment, ";", depth) for segment in path.split("/"))
    query = _redact_pairs(parts.query, "&;", depth)
    fragment = _redact_pairs(parts.fragment, "&;", depth)
    if (netloc, path, query, fragment) == (parts.netloc, parts.path, parts.query, parts.fragment):
        return url  # nothing secret: byte-identical (urlunsplit would normalise ``a://``)
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def _redact_pairs(text: str, separators: str, depth: int) -> str:
    """``name=value`` pairs in ``text`` with secret values replaced, the rest untouched.

    A name is read after the last ``?`` or ``/`` before its ``=``, so a fragment
    such as ``/callback?access_token=x`` is understood too. Edited in place rather
    than re-encoded, so harmless parameters stay byte-identical.
    """
    if "=" not in text:
        return text
    pieces = re.split(f"([{re.escape(separators)}])", text)  # separators kept at odd indexes
    for index in range(0, len(pieces), 2):
        name, equals, value = pieces[index].partition("=")
        if not equals:
            continue
        bare = name[max(name.rfind("?"), name.rfind("/")) + 1 :]
        if is_sensitive_name(bare):
            pieces[index] = f"{name}={REDACTED}"
        elif "://" in value or "%3a%2f%2f" in value.lower():
            pieces[index] = f"{name}={_redact_nested(value, depth)}"
    return "".join(pieces)


def _redact_nested(value: str, depth: int) -> str:
    """A parameter value holding a URL (maybe percent-encoded): redacted, or replaced whole."""
    if depth >= _MAX_DEPTH:
        return REDACTED
    if "://" in value:
        return _redact_urls_in(value, depth + 1)
    decoded = unquote_plus(value)
    return value if _redact_urls_in(decoded, depth + 1) == decoded else REDACTED
