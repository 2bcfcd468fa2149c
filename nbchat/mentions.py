"""``@``-mentions of the notebook's variables (pure): found in a message's text, described as
its context, offered as completions while the person types.

A mention is ``@name`` where ``name`` is an identifier the namespace shares
(:func:`nbchat.namespace.shared`): ``@df`` in "what columns does @df have?".
Anything else stays plain text: a name the namespace does not hold, a private
one, an e-mail address (``ada@example.org``: the ``@`` follows a letter), a
second ``@`` (``@@df``). Each mentioned variable becomes one
:class:`~nbchat.protocol.ContextItem` whose value is ``describe_variable``'s own
text (:func:`nbchat.namespace.describe`: bounded, redacted, a secret never
described), and the context of one message is bounded in bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from .namespace import describe, safe_repr, shared, type_name
from .protocol import ContextItem

__all__ = [
    "MAX_COMPLETIONS",
    "MAX_CONTEXT_BYTES",
    "MAX_MENTIONS",
    "completions",
    "context_for",
    "mentioned",
    "segments",
]

MAX_CONTEXT_BYTES = 16_000
"""UTF-8 bytes of context one message carries at most, all its mentions together."""
MAX_MENTIONS = 10
"""Variables one message describes at most; later mentions stay plain text."""
MAX_COMPLETIONS = 50
"""Names one completion list offers at most."""

_MENTION = re.compile(r"(?<![\w@.+-])@([^\W\d]\w*)")
"""``@`` then an identifier, not after a word character, a dot, ``+``, ``-`` or another ``@``
(so an e-mail address is no mention); the identifier runs as far as it can."""
_CUT_NOTE = "\n… (cut: the message's context is full)"


def mentioned(text: str, names: Collection[str]) -> list[str]:
    """The names ``text`` mentions that are among ``names``, each once, in order of mention."""
    found: dict[str, None] = {}
    for match in _MENTION.finditer(text):
        if match[1] in names:
            found[match[1]] = None
    return list(found)


def segments(text: str, names: Collection[str]) -> list[tuple[str, bool]]:
    """``text`` in pieces, each with whether it is a mention of one of ``names`` (``"@df"``).

    What a bubble shows as chips: the pieces joined are ``text`` again.
    """
    pieces: list[tuple[str, bool]] = []
    start = 0
    for match in _MENTION.finditer(text):
        if match[1] not in names:
            continue
        if match.start() > start:
            pieces.append((text[start : match.start()], False))
        pieces.append((match[0], True))
        start = match.end()
    if start < len(text) or not pieces:
        pieces.append((text[start:], False))
    return pieces


def context_for(
    text: str,
    namespace: Mapping[str, Any],
    bounded_repr: Callable[[Any], str] = safe_repr,
    *,
    max_bytes: int = MAX_CONTEXT_BYTES,
) -> list[ContextItem]:
    """One item per variable ``text`` mentions (at most :data:`MAX_MENTIONS`), described as
    ``describe_variable`` describes it, all of them within ``max_bytes`` of UTF-8."""
    snapshot = shared(namespace, include_code=True)
    items: list[ContextItem] = []
    room = max_bytes
    for name in mentioned(text, snapshot)[:MAX_MENTIONS]:
        value = describe(namespace, name, bounded_repr)
        size = len(value.encode("utf-8", "replace"))
        if size > room:
            keep = room - len(_CUT_NOTE.encode())
            if keep < 100:  # not enough left to say anything: the rest stay plain text
                break
            value = value.encode("utf-8", "replace")[:keep].decode("utf-8", "ignore") + _CUT_NOTE
            size = len(value.encode("utf-8", "replace"))
        room -= size
        items.append(
            ContextItem(description=f"the notebook variable {name}", value=value, mention=name)
        )
    return items


def completions(
    namespace: Mapping[str, Any], prefix: str, limit: int = MAX_COMPLETIONS
) -> list[dict[str, str]]:
    """The shared variables whose name starts with ``prefix`` (any case), with their types:
    what typing ``@`` + ``prefix`` offers. Exact-case matches first, then by name."""
    folded = prefix.casefold()
    names = [n for n in shared(namespace) if n.casefold().startswith(folded)]
    names.sort(key=lambda n: (not n.startswith(prefix), n.casefold()))
    snapshot = dict(namespace)
    return [{"name": n, "type": type_name(snapshot[n])} for n in names[:limit]]
