"""Markdown to sanitized HTML, in full and while streaming."""

from __future__ import annotations

import html
import random
import re

import pytest
from pygments.lexer import Lexer

from nbchat.render import (
    StreamingMarkdown,
    markdown_to_html,
)
from nbchat.render import highlight as highlight_module

from .audit import problems, text_of

pytestmark = pytest.mark.unit

# Markdown rendering


def test_inline_markdown_renders() -> None:
    """Bold, italics, strikethrough and inline code become their elements."""
    out = markdown_to_html("**b** *i* ~~s~~ `c<d>`")
    assert "<strong>b</strong>" in out
    assert "<em>i</em>" in out
    assert "<s>s</s>" in out
    assert "<code>c&lt;d&gt;</code>" in out


def test_code_fence_keeps_language_class() -> None:
    """A fenced block keeps markdown-it's language class, highlighted and escaped."""
    out = markdown_to_html("```python\nif a < b:\n    pass\n```")
    assert '<pre><code class="language-python"><span class="nbchat-tok-k">if</span>' in out
    assert '<span class="nbchat-tok-o">&lt;</span>' in out
    assert text_of(out.split("<pre>")[1]) == text_of("if a &lt; b:\n    pass\n")


def test_code_fence_drops_crafted_class() -> None:
    """An info string that is not a plain language name leaves no class at all."""
    out = markdown_to_html('```x" onclick="y\n1\n```')
    assert "<pre><code>1\n</code></pre>" in out


def test_highlighted_code_text_is_the_code_exactly() -> None:
    """The spans' text is the code as written, leading blank line and indent included."""
    code = "\n    x = '<a>'  # c\n\tdef f(): pass\n"
    out = markdown_to_html(f"```python\n{code}```")
    inner = out.split("<code")[1].split(">", 1)[1].split("</code>")[0]
    assert "nbchat-tok-" in inner
    assert html.unescape(re.sub(r"<[^>]+>", "", inner)) == code


def test_unknown_language_stays_plain() -> None:
    """A language Pygments does not know is shown escaped, with no spans."""
    out = markdown_to_html("```nosuchlang\n<x>\n```")
    assert '<code class="language-nosuchlang">&lt;x&gt;\n</code>' in out
    assert "nbchat-tok-" not in out


def test_each_code_block_gets_a_copy_button() -> None:
    """Every fenced or indented block sits in a box with its own Copy button; inline code not."""
    out = markdown_to_html("```\na\n```\n\n`inline`\n\n~~~py\nb\n~~~")
    button = (
        '<div class="nbchat-code"><button type="button" class="nbchat-copy nbchat-code-copy"'
        ' aria-label="Copy this code">Copy</button><pre>'
    )
    assert out.count(button) == 2
    assert problems(out) == []


def test_copy_box_cannot_be_forged_by_text() -> None:
    """The box the button goes into comes only from a fence: typed HTML stays text."""
    out = markdown_to_html('<div class="nbchat-code">x</div> `<div class="nbchat-code">`')
    assert "<button" not in out


@pytest.mark.parametrize(
    ("source", "tag"),
    [
        ("$x^2$", "<msup><mi>x</mi><mn>2</mn></msup>"),
        ("\\(x^2\\)", "<msup><mi>x</mi><mn>2</mn></msup>"),
        ("$$\\frac{a}{b}$$", '<math display="block"><mrow><mfrac>'),
        ("\\[\\frac{a}{b}\\]", '<math display="block"><mrow><mfrac>'),
        ("$$\n\\sqrt{2}\n$$", '<p><math display="block"><mrow><msqrt>'),
    ],
)
def test_math_becomes_mathml(source: str, tag: str) -> None:
    """Each of the four delimiters becomes MathML, inline or display, with no script."""
    out = markdown_to_html(f"see {source}" if source.startswith(("$x", "\\(")) else source)
    assert tag in out
    assert problems(out) == []


def test_math_at_the_start_of_a_paragraph_ending_in_a_digit() -> None:
    """``$x^2$ is 4`` is math: the check for a digit before the dollar does not wrap around."""
    assert "<msup>" in markdown_to_html("$x^2$ is 4")
    assert "<math" not in markdown_to_html("$5 and $10")


def test_thin_space_survives_in_math() -> None:
    """``\\,`` stays a thin space inside math instead of becoming a comma."""
    out = markdown_to_html("$a\\,b$")
    assert '<mspace width="0.167em"></mspace>' in out
    assert "," not in text_of(out)


@pytest.mark.parametrize("text", ["It costs $5 and $10.", "from $5 to $ 10", "$ x $"])
def test_dollars_as_currency_stay_text(text: str) -> None:
    """Dollar amounts are text, not math (dollarmath's rules for currency)."""
    out = markdown_to_html(text)
    assert "<math" not in out
    assert text_of(out) == text


@pytest.mark.parametrize("latex", ["\\frac{", "x^", "\\begin{foo}", "{" * 3000])
def test_bad_latex_shows_as_code(latex: str) -> None:
    """LaTeX that cannot be read shows its source as code, never an error or a traceback."""
    out = markdown_to_html(f"$${latex}$$")
    assert '<code class="nbchat-math-error">' in out
    assert "<math" not in out


@pytest.mark.parametrize(
    "latex",
    [
        "\\href{javascript:alert(1)}{x}",
        "\\style{background:url(javascript:alert(1))}{x}",
        "\\color{red}{x}",
        "\\text{<img src=x onerror=alert(1)>}",
        "\\text{</math><script>alert(1)</script>}",
    ],
)
def test_math_keeps_nothing_active(latex: str) -> None:
    """latex2mathml's href, style and colour attributes and raw text are dropped or escaped."""
    out = markdown_to_html(f"${latex}$")
    assert problems(out) == [], out
    assert "href" not in out and " style=" not in out and "mathcolor" not in out


def test_remote_images_stay_links() -> None:
    """An image in model output is never fetched: it stays a link, next to math and code."""
    out = markdown_to_html("![plot](https://example.org/p.png) $x$\n\n```py\n1\n```")
    assert "<img" not in out and '<a href="https://example.org/p.png"' in out


def test_tables_and_task_lists_render_as_before() -> None:
    """Tables stay tables and task list items stay list items with their box as text."""
    out = markdown_to_html("| $x$ | `c` |\n|---|---|\n| 1 | 2 |\n\n- [ ] todo\n- [x] done")
    assert "<th><math" in out and "<li>[ ] todo</li>" in out


def test_lists_render() -> None:
    """Bullet and ordered lists render, with the ordered list's start number."""
    out = markdown_to_html("- a\n- b\n\n3. c\n4. d")
    assert "<ul>\n<li>a</li>\n<li>b</li>\n</ul>" in out
    assert '<ol start="3">' in out


def test_tables_render_with_alignment() -> None:
    """Tables render and keep column alignment as ``align``, never as ``style``."""
    out = markdown_to_html("| a | b |\n|--:|---|\n| 1 | 2 |")
    assert '<th align="right">a</th>' in out
    assert "<th>b</th>" in out
    assert '<td align="right">1</td>' in out
    assert "style" not in out


def test_safe_links_keep_href_and_rel() -> None:
    """An https link keeps its href and title, and gets rel and a new-tab target."""
    out = markdown_to_html('[docs](https://example.org/a?b=1&c=2 "Docs")')
    assert 'href="https://example.org/a?b=1&amp;c=2"' in out
    assert 'title="Docs"' in out
    assert 'rel="noopener noreferrer nofollow"' in out
    assert 'target="_blank"' in out


def test_mailto_and_relative_links_are_kept() -> None:
    """mailto: and relative links are allowed schemes and keep their href."""
    out = markdown_to_html("[m](mailto:a@example.org) [r](docs/page.md)")
    assert 'href="mailto:a@example.org"' in out
    assert 'href="docs/page.md"' in out


def test_images_become_links() -> None:
    """An image renders as a link labelled by its alt text, so nothing loads by itself."""
    out = markdown_to_html("![a chart](https://example.org/c.png)")
    assert "<img" not in out
    assert ">a chart</a>" in out
    assert 'href="https://example.org/c.png"' in out


def test_raw_html_is_shown_as_text() -> None:
    """Raw HTML in a reply is displayed literally rather than dropped."""
    assert "&lt;b&gt;bold&lt;/b&gt;" in markdown_to_html("<b>bold</b>")


def test_half_written_message_renders() -> None:
    """An unclosed code fence, as seen mid-stream, renders as an open code block."""
    out = markdown_to_html("Here:\n\n```python\ndef f(")
    assert '<pre><code class="language-python"><span class="nbchat-tok-k">def</span>' in out


@pytest.mark.parametrize(
    "text",
    [
        "word " * 20_000,
        "[" * 100_000,
        "*a" * 50_000,
        "```\n" + "x = 1\n" * 20_000,
        "```python\n" + "x = 1\n" * 15_000,
        "$" * 100_000,
        "$a" * 50_000,
        "\\(" * 50_000,
        "\\[a" * 50_000,
    ],
)
def test_large_inputs_render(text: str) -> None:
    """100k-character replies, including pathological ones, render to sanitized HTML."""
    out = markdown_to_html(text)
    assert out
    assert problems(out) == []


# Streaming


STREAM_DOCUMENTS = [
    "# Title\n\nSome *text* here.\n\n- a\n- b\n\n  continued\n- c\n\nEnd.\n",
    "Intro\n\n```python\ndef f():\n\n    return 1\n\n\n```\n\nAfter the code.\n",
    "| a | b |\n|--:|---|\n| 1 | 2 |\n\ntext\n---\n\n> quote\n> more\n\nlast",
    "1. one\n\n2. two\n\n   indented para\n\n3. three\n\n    code\n\n        more\n\nplain",
    "para\n- list right after\n\nsetext\n===\n\n***\n\n~~~\ntilde fence\n\n~~~\n",
    "line one  \nline two\\\nline three\n\n> q\n\n> separate q\n\n* x\n\n\n* y\n",
    "Math $x^2$, \\(a\\,b\\) and $5 or $10\n\n$$\n\\frac{1}{2}\n$$\n\n\\[y\\] ok\n\n"
    '```python\ndef f():\n    return """x"""\n```\n\n~~~\nplain\n~~~\n\nend $$z$$.\n',
]


@pytest.mark.parametrize("document", STREAM_DOCUMENTS)
def test_streaming_equals_full_render_at_every_step(document: str) -> None:
    """Rendering a growing reply incrementally gives exactly the full render at every length."""
    stream = StreamingMarkdown()
    for end in range(1, len(document) + 1):
        assert stream.render(document[:end]) == markdown_to_html(document[:end]), end


def test_streaming_equals_full_render_on_random_markdown() -> None:
    """Random Markdown-ish text, streamed in random chunks, always matches the full render.

    Reference definitions are left out: one defined after its use is the
    documented exception, resolved by the final full render.
    """
    pieces = [
        "a", "b c", " ", "  ", "\t", "\n", "\n\n", "- ", "+ ", "1. ", "2", ".", ")", "> ",
        "    ", "```", "~~~", "`", "*", "_", "#", "| x |", "|---|", ":-:", "===", "---", "\\",
        "[l](http://e.org)", "![i](/p)", "[r]", "<", "&amp;", "~~", "$", "$$", "x^2", "\\(",
        "\\)", "\\[", "\\]", "```python", "def f(", "\\frac{",
    ]  # fmt: skip
    rng = random.Random(1234)
    for _ in range(150):
        document = "".join(rng.choice(pieces) for _ in range(rng.randint(20, 120)))
        stream = StreamingMarkdown()
        end = 0
        while end < len(document):
            end = min(len(document), end + rng.randint(1, 12))
            expected = markdown_to_html(document[:end])
            assert stream.render(document[:end]) == expected, repr(document[:end])


def test_streaming_an_open_fence_stays_linear() -> None:
    """A long code block still open at the end costs each update only its newest lines.

    Checked by work, not time: each update lexes at most the last piece plus what arrived.
    """
    stream = StreamingMarkdown()
    line = "value = compute(x, 'text', 42)  # note\n"
    text = "Code:\n\n```python\n"
    lexed: list[int] = []
    real = highlight_module._spans

    def counting(code: str, lexer: Lexer) -> str:
        lexed.append(len(code))
        return real(code, lexer)

    highlight_module._spans = counting
    try:
        for _ in range(1_000):
            text += line
            out = stream.render(text)
    finally:
        highlight_module._spans = real
    assert max(lexed) < 3 * highlight_module._PIECE
    assert sum(lexed) < 1_000 * 2 * highlight_module._PIECE
    assert out.count("nbchat-tok-") > 1_000 * 5
    assert text_of(out.split("<pre>")[1]) == text_of(line * 1_000)
    assert stream.render(text + "```\n\nafter") == markdown_to_html(text + "```\n\nafter")


def test_streaming_caches_finished_blocks() -> None:
    """Blocks followed by a blank line and a complete line are kept and not parsed again."""
    stream = StreamingMarkdown()
    stream.render("first paragraph\n\nsecond paragraph\n\nthird")
    assert stream._stable_text == "first paragraph\n\n"
    stream.render("first paragraph\n\nsecond paragraph\n\nthird\n")
    assert stream._stable_text == "first paragraph\n\nsecond paragraph\n\n"


def test_streaming_does_not_cache_a_boundary_an_append_can_undo() -> None:
    """A ``2`` after a list is not final: the ``.`` that follows makes it the list's next item."""
    stream = StreamingMarkdown()
    stream.render("1. one\n\n2")
    assert stream._stable_text == ""
    assert stream.render("1. one\n\n2. two") == markdown_to_html("1. one\n\n2. two")


def test_streaming_resets_when_text_is_replaced() -> None:
    """A text that does not extend the previous one is rendered from scratch."""
    stream = StreamingMarkdown()
    stream.render("old paragraph\n\nmore\n\nand more")
    assert stream.render("new *text*") == markdown_to_html("new *text*")


def test_streaming_resolves_earlier_reference_definitions() -> None:
    """A reference defined in an earlier, cached block still resolves in later blocks."""
    document = "[r]: https://example.org\n\nintro\n\nsee [the site][r]\n\nend"
    stream = StreamingMarkdown()
    for end in range(1, len(document) + 1):
        out = stream.render(document[:end])
    assert out == markdown_to_html(document)
    assert 'href="https://example.org"' in out


def test_streaming_normalizes_newlines() -> None:
    """CRLF and CR line ends stream to the same HTML as the full render."""
    document = "a\r\n\r\nb\r\rc\r\n\r\n```\r\nx\r\n\r\ny\r\n```\r\n"
    stream = StreamingMarkdown()
    for end in range(1, len(document) + 1):
        assert stream.render(document[:end]) == markdown_to_html(document[:end])
