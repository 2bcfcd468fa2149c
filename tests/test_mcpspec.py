"""An MCP tool result as a tool's value (pure: blocks are read by attribute, as from the SDK)."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest

from nbchat.mcpspec import MAX_IMAGE_CHARS, mcp_result
from nbchat.render.rich import Output, rich_result
from tests.helpers import png

pytestmark = pytest.mark.unit


def result(*content: Any, structured: Any = None) -> SimpleNamespace:
    """A CallToolResult of these blocks."""
    return SimpleNamespace(content=list(content), is_error=False, structured_content=structured)


def text(value: str) -> SimpleNamespace:
    """A text block."""
    return SimpleNamespace(type="text", text=value)


def image(data: bytes | str, mime: str = "image/png") -> SimpleNamespace:
    """An image block, its data base64 as the SDK gives it."""
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode()
    return SimpleNamespace(type="image", data=encoded, mime_type=mime)


def test_a_png_block_is_shown_as_an_image_beside_the_text() -> None:
    """Text and a PNG: an Output of the text and the image's bytes, described for the model."""
    picture = png(3, 2)
    value = mcp_result(result(text("the chart:"), image(picture)))
    assert value == Output("the chart:", (picture,))
    shown = rich_result(value)
    assert shown is not None and shown.text == (
        "the chart:\ndisplayed: a PNG image, 3\u00d72, shown to the person in the tool's card"
    )
    assert len(shown.images) == 1


def test_other_images_and_oversized_ones_are_a_line_never_base64() -> None:
    """A WebP block, undecodable data and data over the bound are one line each, no bytes."""
    webp = image(b"RIFF....WEBPVP8 ", "image/webp")
    value = mcp_result(result(text("a"), webp, image(png())))
    assert isinstance(value, Output)
    assert value.text == "a\n[image: image/webp, 16 bytes, not shown]"
    alone = mcp_result(result(webp))
    assert alone == [{"type": "image", "mimeType": "image/webp", "note": "16 bytes, not shown"}]
    assert mcp_result(result(image("not base64!"))) == [
        {"type": "image", "mimeType": "image/png", "note": "8 bytes, not shown"}
    ]
    huge = "A" * (MAX_IMAGE_CHARS + 4)
    (note,) = mcp_result(result(image(huge)))
    assert note["note"].endswith("bytes, not shown") and "data" not in note


def test_structured_content_and_a_single_text_keep_their_values() -> None:
    """Structured content wins; one text block is its string."""
    assert mcp_result(result(text("x"), image(png()), structured={"k": 1})) == {"k": 1}
    assert mcp_result(result(text("just this"))) == "just this"
