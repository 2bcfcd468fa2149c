"""What the bridge shows the model of a round's tool images (pure)."""

from __future__ import annotations

import base64

import pytest

from nbchat.attachments import MAX_ATTACHMENTS, Attachment
from nbchat.protocol import ToolCall
from nbchat.server.openai.history import tool_images_message
from tests.helpers import png

pytestmark = pytest.mark.unit


def image(name: str) -> Attachment:
    """A small PNG attachment named ``name``."""
    return Attachment(name=name, mime="image/png", data=base64.b64encode(png()).decode())


def test_no_images_no_message() -> None:
    """A round whose tools showed no image adds nothing to the conversation."""
    assert tool_images_message([(ToolCall(id="c1", name="rows"), ())]) == []


def test_images_past_the_bound_are_counted_not_sent() -> None:
    """Of many images across calls, the first MAX_ATTACHMENTS go, each after its call's line."""
    calls = [
        (ToolCall(id=f"c{n}", name="plot"), [image(f"a{n}.png"), image(f"b{n}.png")])
        for n in range(MAX_ATTACHMENTS)
    ]
    (message,) = tool_images_message(calls)
    parts = message["content"]
    assert message["role"] == "user"
    assert sum(part["type"] == "image_url" for part in parts) == MAX_ATTACHMENTS
    assert parts[0] == {"type": "text", "text": "a0.png, shown by plot (call c0):"}
    assert parts[-1] == {"type": "text", "text": f"({MAX_ATTACHMENTS} more images not shown)"}
