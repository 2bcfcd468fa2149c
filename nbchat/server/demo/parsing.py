"""What the demo agent reads in a message: arithmetic, words, a name; pure and linear.

Every function here is linear in the length of its text, whatever the text:
the agent runs them on the event loop, on messages of up to ``max_size``
bytes, so a crafted message must cost no more than its length (the regular
expressions never backtrack, ``_balance`` never re-counts).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["find_arithmetic", "first_name", "split_tokens", "stream_tokens"]

# A run of what arithmetic is made of: numbers (with an exponent: 1e308), operators,
# parentheses and spaces. One + over alternatives with nothing after it: matched
# greedily in one pass, never backtracked.
_ARITHMETIC_RUN = re.compile(r"(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[\s.+\-*/%()])+")
# An operand, an operator, an operand. Possessive quantifiers (*+): a failed
# attempt gives nothing back, so each attempt is linear and attempts do not overlap.
_HAS_OPERATION = re.compile(r"[\d.)]\s*+(?:\*\*|//|[-+*/%])[-+(\s]*+[\d.(]")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_WORD = re.compile(r"\S+")


def find_arithmetic(text: str) -> str | None:
    """The longest arithmetic expression in ``text`` (``"What is 6*7?"`` -> ``"6*7"``).

    A run glued to a word (``x2+3``, ``0x10+1``) is not taken: the expression
    is taken whole or not at all. Linear in ``len(text)``.
    """
    best: str | None = None
    for match in _ARITHMETIC_RUN.finditer(text):
        run = match.group()
        start = match.start() + len(run) - len(run.lstrip())
        end = match.end() - len(run) + len(run.rstrip())
        if (start > 0 and _is_word(text[start - 1])) or (end < len(text) and _is_word(text[end])):
            continue
        candidate = _balance(run.strip().rstrip("."))
        if not _HAS_OPERATION.search(candidate) or _DATE.fullmatch(candidate):
            continue
        if best is None or len(candidate) > len(best):
            best = candidate
    return best


def _is_word(character: str) -> bool:
    return character.isalnum() or character == "_"


def _balance(expression: str) -> str:
    """Drop parentheses a sentence wrapped around an expression: ``(is 2+2)`` -> ``2+2``.

    One pass from each end (counting once), not a loop that re-counts and
    re-slices: ``"(" * 200000 + "1+1"`` costs the same as its length.
    """
    opened, closed = expression.count("("), expression.count(")")
    start, end = 0, len(expression)
    while opened > closed and start < end and expression[start] == "(":
        start += 1
        opened -= 1
        while start < end and expression[start].isspace():
            start += 1
    while closed > opened and end > start and expression[end - 1] == ")":
        end -= 1
        closed -= 1
        while end > start and expression[end - 1].isspace():
            end -= 1
    return expression[start:end]


def split_tokens(text: str) -> list[str]:
    """Split text into word tokens that join back to exactly ``text``; linear in its length.

    Each token is a word and the whitespace after it; the first also takes the
    whitespace before it. Text without a word is one token (none if empty).
    """
    starts = [match.start() for match in _WORD.finditer(text)]
    if not starts:
        return [text] if text else []
    starts[0] = 0
    ends = [*starts[1:], len(text)]
    return [text[start:end] for start, end in zip(starts, ends, strict=True)]


def stream_tokens(text: str, limit: int) -> Iterator[str]:
    """The tokens of :func:`split_tokens`, found one at a time; past ``limit``, the rest as one.

    Lazy, so a long text costs the loop one token per step, never all at once;
    bounded, so no reply holds more than ``limit + 1`` tokens.
    """
    words = _WORD.finditer(text)
    first = next(words, None)
    if first is None:
        if text:
            yield text
        return
    start = 0
    for count, word in enumerate(words, 1):
        if count >= limit:
            break
        yield text[start : word.start()]
        start = word.start()
    yield text[start:]


def first_name(text: str) -> str:
    """The name in ``my name is Ada Lovelace and ...``: the first word and capitalised ones."""
    words = re.split(r"[\s.,!?;:]+", text.strip())
    name = [words[0]]
    for word in words[1:]:
        if not word[:1].isupper():
            break
        name.append(word)
    return " ".join(name)[:60]
