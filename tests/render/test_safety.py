"""Untrusted content through every entry point of nbchat.render: nothing becomes active."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nbchat.protocol import ToolCall
from nbchat.render import (
    StreamingMarkdown,
    assistant_message_html,
    conversation_html,
    conversation_markdown,
    error_banner_html,
    markdown_to_html,
    status_header_html,
    tool_call_html,
    user_message_html,
)
from nbchat.render.markdown import sanitize_html
from nbchat.render.rich import rich_result
from nbchat.turn import Turn
from tests.payloads import PAYLOADS

from .audit import error, permissive_markdown, problems, text_of, tool_call

pytestmark = pytest.mark.unit


def streamed(text: str) -> str:
    stream = StreamingMarkdown()
    stream.render(text[: len(text) // 2])
    return assistant_message_html(text, streaming=True, renderer=stream)


ESCAPE_CORPUS: list[str] = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)' x='",
    "</code></pre></div><script>alert(1)</script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    '<a href="javascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    "<!-- <script>alert(1)</script> -->",
]
"""What can break out of ``html.escape``'d text or an attribute: quotes, tags, entities, comments.

The escape-only entry points below are one ``html.escape`` each, so the whole
corpus would test that function 76 times over; the Markdown ones get it all.
"""

MARKDOWN_ENTRY_POINTS: dict[str, Callable[[str], str]] = {
    "markdown_to_html": markdown_to_html,
    "assistant final": assistant_message_html,
    "assistant streaming": lambda p: assistant_message_html(p, streaming=True),
    "assistant streamed": streamed,
    "conversation markdown, our renderer": lambda p: markdown_to_html(
        conversation_markdown(
            [Turn(user=p, assistant=p, tool_calls=[tool_call(name=p, result=p)], error=error(p))]
        )
    ),
    "conversation markdown, permissive renderer": lambda p: permissive_markdown(
        conversation_markdown(
            [
                Turn(
                    user=p,
                    assistant=p,
                    tool_calls=[tool_call(name=p, arguments={p: p}, status="done", result=p)],
                    error=error(p),
                )
            ]
        )
    ),
    "conversation html": lambda p: conversation_html(
        [
            Turn(user=p, assistant=p, tool_calls=[tool_call(name=p, result=p)], error=error(p)),
            Turn(user=p, assistant=p, complete=False),
        ],
        title=p,
        styles=False,
    ),
}
"""Entry points that parse Markdown: each gets the whole injection corpus."""

ESCAPE_ENTRY_POINTS: dict[str, Callable[[str], str]] = {
    "user message": user_message_html,
    "error banner": error_banner_html,
    "status state": lambda p: status_header_html(p, p),
    "status detail": lambda p: status_header_html("connected", p),
    "tool name": lambda p: tool_call_html(tool_call(name=p)),
    "tool arguments": lambda p: tool_call_html(tool_call(arguments={p: p, "n": [p]})),
    "tool raw arguments": lambda p: tool_call_html(tool_call(arguments=p)),
    "tool text result": lambda p: tool_call_html(tool_call(status="done", result=p)),
    "tool JSON result": lambda p: tool_call_html(tool_call(status="error", result={"e": p})),
    "tool status": lambda p: tool_call_html(
        ToolCall.model_construct(id=p, name=p, arguments={}, status=p, result=p)
    ),
}


# The audit itself

IMAGE_BOX = '<div class="nbchat-rich nbchat-rich-image">'


@pytest.mark.parametrize(
    "markup",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        '<a href="jav&#x09;ascript:alert(1)">x</a>',
        '<a href=" JAVASCRIPT:alert(1)">x</a>',
        '<p style="color:red">x</p>',
        '<p class="jp-mod-hidden">x</p>',
        '<a href="https://x" target="_top">x</a>',
        "<!-- x -->",
        "<custom>x</custom>",
        '<span class="nbchat-tok-zz">x</span>',
        '<code class="nbchat-tok-k">x</code>',
        "<button>x</button>",
        '<button type="submit" class="nbchat-copy nbchat-code-copy">x</button>',
        '<button type="button" class="nbchat-copy nbchat-code-copy" formaction="x">x</button>',
        '<math><maction actiontype="toggle"><mi>x</mi></maction></math>',
        '<math><mrow href="javascript:alert(1)"><mi>x</mi></mrow></math>',
        '<math><mstyle mathcolor="red"><mi>x</mi></mstyle></math>',
        '<math><mspace width="url(javascript:x)"></mspace></math>',
        "<math><semantics><annotation-xml>x</annotation-xml></semantics></math>",
        # an image anywhere but in nbchat's image box, or of anything but a base64 PNG/JPEG
        '<img src="data:image/png;base64,AAAA" alt="x">',
        '<div class="nbchat-rich-image"><img src="data:image/png;base64,AAAA"></div>',
        f'{IMAGE_BOX}<p><img src="data:image/png;base64,AA"></p></div>',
        '<div class="nbchat-rich nbchat-rich-image"><img src="https://x.org/a.png"></div>',
        '<div class="nbchat-rich nbchat-rich-image"><img src="data:image/svg+xml;base64,AA"></div>',
        '<div class="nbchat-rich nbchat-rich-image"><img src="data:text/html;base64,AA"></div>',
        '<div class="nbchat-rich nbchat-rich-image"><img src="data:image/png,<svg>"></div>',
        '<div class="nbchat-rich nbchat-rich-image"><img src="data:image/png;base64,A A"></div>',
        '<div class="nbchat-rich nbchat-rich-image"><img src="data:image/png;base64,AA" onerror=x>'
        "</div>",
        f'{IMAGE_BOX}<img src="data:image/png;base64,AA" src=x></div>',
        '<div class="nbchat-rich nbchat-rich-image"><img></div>',
        '<div class="nbchat-rich nbchat-rich-image"><img srcset="data:image/png;base64,AA"></div>',
    ],
)
def test_audit_catches_active_markup(markup: str) -> None:
    """The audit rejects each kind of active markup it looks for, so its passes mean something."""
    assert problems(markup)


def test_audit_accepts_plain_safe_markup() -> None:
    """The audit lets through ordinary links, relative URLs and our own classes."""
    markup = (
        '<div class="nbchat-msg"><a href="https://x.org/a" rel="noopener" target="_blank">a</a>'
        '<a href="/relative">b</a><a href="mailto:a@b.c">c</a></div>'
    )
    assert problems(markup) == []


def test_audit_accepts_highlighting_math_and_the_copy_button() -> None:
    """Pygments' prefixed classes on spans, MathML layout and the code Copy button are allowed."""
    markup = (
        '<div class="nbchat-code"><button type="button" class="nbchat-copy nbchat-code-copy"'
        ' aria-label="Copy this code">Copy</button><pre><code class="language-python">'
        '<span class="nbchat-tok-k">def</span> <span class="nbchat-tok-s2">"x"</span></code></pre>'
        '</div><math display="block"><mfrac linethickness="0"><mi>a</mi><mi>b</mi></mfrac>'
        '<mspace width="0.167em"></mspace></math>'
    )
    assert problems(markup) == []


def test_audit_accepts_an_image_only_in_its_box() -> None:
    """A base64 PNG or JPEG with alt text, directly in nbchat's image box, is allowed."""
    for mime in ("png", "jpeg"):
        markup = (
            '<div class="nbchat-rich nbchat-rich-image">'
            f'<img src="data:image/{mime};base64,iVBORw0KGgo=" alt="a &quot;PNG&quot;"></div>'
        )
        assert problems(markup) == []


# Injection corpus through every entry point


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("entry", list(MARKDOWN_ENTRY_POINTS))
def test_payload_stays_inert_through_markdown(entry: str, payload: str) -> None:
    """No payload turns into an element, attribute, class or URL that could run code."""
    markup = MARKDOWN_ENTRY_POINTS[entry](payload)
    assert problems(markup) == [], markup


@pytest.mark.parametrize("payload", ESCAPE_CORPUS)
@pytest.mark.parametrize("entry", list(ESCAPE_ENTRY_POINTS))
def test_payload_stays_inert_through_escaping(entry: str, payload: str) -> None:
    """No breakout string escapes the text or attribute it is escaped into."""
    markup = ESCAPE_ENTRY_POINTS[entry](payload)
    assert problems(markup) == [], markup


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_text_survives_in_user_message(payload: str) -> None:
    """The user's text is shown as typed, not dropped: escaping, not stripping."""
    shown = text_of(user_message_html(payload))
    assert shown == " ".join(payload.split())


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_stays_inert_beside_a_mention_chip(payload: str) -> None:
    """A user bubble with @df as a chip keeps every payload escaped, shown as typed."""
    text = f"@df {payload} @df"
    markup = user_message_html(text, ["df"])
    assert problems(markup) == [], markup
    assert markup.count('<span class="nbchat-mention">@df</span>') >= 2
    assert text_of(markup) == " ".join(text.split())


# Rich tool results: a value's own HTML, Markdown or SVG, and the card around them


class _Repr:
    """A value whose display methods return ``payload`` (as its ``kind`` repr)."""

    def __init__(self, kind: str, payload: object) -> None:
        self.kind = kind
        self.payload = payload

    def _repr_html_(self) -> object:
        return self.payload if self.kind == "html" else None

    def _repr_markdown_(self) -> object:
        return self.payload if self.kind == "markdown" else None

    def _repr_latex_(self) -> object:
        return self.payload if self.kind == "latex" else None

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> object:
        return {"text/html": self.payload, "text/plain": "x"} if self.kind == "bundle" else None


class _Svg:
    def _repr_svg_(self) -> str:
        return "<svg onload=alert(1)><script>alert(1)</script></svg>"


RICH_CORPUS = [
    *PAYLOADS,
    '<img src="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">',
    '<div class="nbchat-rich nbchat-rich-image"><img src="data:image/png;base64,AA"></div>',
    '<div class="nbchat-rich nbchat-rich-image"><img src="x" onerror="alert(1)"></div>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<iframe src="data:text/html,<script>alert(1)</script>"></iframe>',
    '<object data="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"></object>',
    '<div class="nbchat-code"><button onclick="alert(1)">Copy</button></div>',
    '<table><tr><td style="background:url(javascript:alert(1))">x</td></tr></table>',
    "![x](data:image/png;base64,iVBORw0KGgo=)",
]
"""HTML, SVG and data URLs a tool's value could carry in its reprs."""

LATEX_CORPUS = [
    r"$\href{javascript:alert(1)}{x}$",
    r"\style{background:url(javascript:alert(1))}{x}",
    r"$$\text{<script>alert(1)</script>}$$",
    r"\color{red}{x} \mathrm{<img src=x onerror=alert(1)>}",
    r"where $\href{javascript:alert(1)}{x}$ is <b onclick=alert(1)>bold</b>",
]
"""LaTeX that latex2mathml turns into links, styles or raw markup."""


@pytest.mark.parametrize("kind", ["html", "markdown", "latex", "bundle"])
@pytest.mark.parametrize("payload", RICH_CORPUS + LATEX_CORPUS)
def test_a_values_own_markup_stays_inert_in_its_card(kind: str, payload: str) -> None:
    """An HTML, Markdown, LaTeX or mime-bundle repr carrying script, handlers, SVG or data URLs
    shows nothing active, in the card and in the saved copy, and the model's text is never
    HTML; an HTML view that would show no text is not taken (the value's text goes instead)."""
    shown = rich_result(_Repr(kind, payload))
    if shown is None:
        assert kind in ("html", "bundle") and text_of(sanitize_html(payload)).strip() == ""
        return
    card = tool_call_html(tool_call(status="done", result=shown.text), shown=shown.html)
    turn = Turn(user="u", tool_calls=[tool_call(status="done")], shown={"c1": shown.html})
    for markup in (card, conversation_html([turn], styles=False)):
        assert problems(markup) == [], markup
        assert "<img" not in markup
    if kind in ("html", "bundle"):  # the model reads what the person sees, as text
        assert "".join(shown.text.split()) == "".join(text_of(shown.html).split())
    else:  # it reads the source, which is text to it
        assert shown.text == payload.strip()


def test_svg_and_svg_as_image_bytes_are_never_shown() -> None:
    """An SVG repr, and SVG text returned as a PNG repr, become one inert line."""

    class SvgAsPng:
        def _repr_png_(self) -> str:
            return "PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"  # base64 of <svg onload=alert(1)>

    for value in (_Svg(), SvgAsPng()):
        shown = rich_result(value)
        assert shown is not None and shown.kind == "refused"
        assert problems(tool_call_html(tool_call(status="done"), shown=shown.html)) == []
        assert "svg" not in shown.html.replace("SVG", "")


def test_a_card_shows_its_rich_view_only_when_done() -> None:
    """The view replaces a done call's result text, its card open; an error shows its reason."""
    view = '<div class="nbchat-rich nbchat-rich-html">table</div>'
    done = tool_call_html(tool_call(status="done", result="what it read"), shown=view)
    assert (
        view in done
        and "what it read" not in done
        and '<details class="nbchat-tool nbchat-tool-done" open>' in done
    )
    failed = tool_call_html(tool_call(status="error", result="boom"), shown=view)
    assert view not in failed and "boom" in failed
