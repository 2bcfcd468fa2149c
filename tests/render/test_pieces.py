"""Code blocks and formulas sanitized once each: the same HTML as sanitizing the whole reply."""

from __future__ import annotations

import random
from typing import Any

import pytest

from nbchat.render import StreamingMarkdown, markdown_to_html
from nbchat.render import highlight as highlight_module
from nbchat.render import markdown as markdown_module
from nbchat.render import math as math_module

from .test_markdown import STREAM_DOCUMENTS

pytestmark = pytest.mark.unit


def whole(text: str) -> str:
    """The HTML of ``text`` with the whole markup sanitized in one go (no pieces)."""
    return markdown_module._clean(markdown_module._md.render(text))


def cold_caches() -> None:
    """Empty the highlighting, MathML and sanitized-piece caches."""
    highlight_module._highlighted.cache_clear()
    math_module.latex_to_mathml.cache_clear()
    markdown_module._clean_piece.cache_clear()


TRICKY = [
    "| a | $x^2$ |\n|---|---|\n| $\\frac{1}{2}$ | \\(y\\) |\n",
    "- item\n\n  ```python\n  x = 1\n  ```\n- $a$ and $$b$$\n\n> ```js\n> var a = 1;\n> ```\n",
    "[$x$](http://e.org) **$y$** # $z$\n\n$$\n\\text{&lt;b&gt;} \\href{javascript:x}{y}\n$$\n",
    "```\nno lang <b>\n```\n\n```nope\nz\n```\n\n$\\badcommand{$ and $$\\frac{$$\n",
    "1. ```python\n   def f(): pass\n   ```\n2. $\\alpha$\n\n<div>raw</div> $x<y>z$\n",
]


@pytest.mark.parametrize("document", STREAM_DOCUMENTS + TRICKY)
def test_pieces_give_the_html_of_sanitizing_the_whole(document: str) -> None:
    """Each code block and formula cleaned alone gives byte for byte the whole reply cleaned."""
    cold_caches()
    assert markdown_to_html(document) == whole(document)
    assert markdown_to_html(document) == whole(document)  # from the caches, still the same


def test_pieces_on_random_markdown() -> None:
    """Random mixes of math, code, tables, lists and quotes render as the whole cleaned."""
    atoms = [
        "$x_1$", "$$y$$", "\\(z\\)", "```python\nx = 1\n```\n", "\n\n", "- ", "> ", "1. ",
        "| a |\n|---|\n| $q$ |\n", "word ", "**b** ", "`c` ", "\n", "[l](http://e.org)",
        "$\\frac{", "}$", "\ue001", "0\ue002",
    ]  # fmt: skip
    rng = random.Random(23)
    for _ in range(200):
        document = "".join(rng.choice(atoms) for _ in range(rng.randint(1, 40)))
        assert markdown_to_html(document) == whole(document), repr(document)


def test_a_stand_in_character_in_the_text_is_kept_as_text() -> None:
    """Text holding the stand-ins' private-use characters falls back to cleaning the whole."""
    document = "a \ue0010\ue002 b $x$\n\n```python\nx = 1\n```\n"
    out = markdown_to_html(document)
    assert out == whole(document)
    assert "a \ue0010\ue002 b <math" in out


def test_a_finished_block_is_not_rendered_or_sanitized_again() -> None:
    """Once a reply's blocks are finished, later renders and the final one reuse their HTML."""
    cold_caches()
    blocks = [f"Step {i}: $x_{{{i}}}^2$\n\n```python\ny = {i}\n```\n\n" for i in range(20)]
    document = "".join(blocks) + "The end."
    stream = StreamingMarkdown()
    for end in range(1, len(blocks) + 1):
        stream.render("".join(blocks[:end]))
    cleaned = markdown_module._clean_piece.cache_info()
    converted = math_module.latex_to_mathml.cache_info()
    highlighted = highlight_module._highlighted.cache_info()
    final = markdown_to_html(document)
    assert markdown_module._clean_piece.cache_info().misses == cleaned.misses == 40
    assert math_module.latex_to_mathml.cache_info().misses == converted.misses == 20
    assert highlight_module._highlighted.cache_info().misses == highlighted.misses == 20
    cold_caches()
    assert final == markdown_to_html(document) == whole(document)


@pytest.mark.parametrize("last", [" ", "    ", "\t", " \t ", "\u3000", "\x0c", "  x"])
def test_an_open_fence_ending_in_a_line_of_blanks_skips_the_parse(
    last: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A last line of spaces (a new line's indent) renders as the full parse does, unparsed."""
    stream = StreamingMarkdown()
    text = "Intro\n\n```python\ndef f():\n"
    stream.render(text)
    stream.render(text + "    return 1\n")
    parsed = markdown_module._md.parse
    calls: list[str] = []

    def counting(src: str, env: Any = None) -> Any:
        calls.append(src)
        return parsed(src, env)

    monkeypatch.setattr(markdown_module._md, "parse", counting)
    out = stream.render(text + "    return 1\n" + last)
    monkeypatch.undo()
    assert out == markdown_to_html(text + "    return 1\n" + last)
    assert calls == []


def test_a_long_piece_is_cleaned_each_time_and_not_kept() -> None:
    """A code block over the kept size is cleaned anew, so the cache stays bounded."""
    cold_caches()
    document = "```python\n" + "x = 1\n" * 5_000 + "```\n"
    assert markdown_to_html(document) == whole(document)
    assert markdown_module._clean_piece.cache_info().currsize == 0
