"""The wire form of attachments: one body each, valid base64, and the bounds in bytes."""

from __future__ import annotations

import base64

import pytest

from nbchat.attachments import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    Attachment,
    bounded,
    checked,
    describe,
)
from nbchat.exceptions import AttachmentError

pytestmark = pytest.mark.unit

DATA = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


def text(size: int, name: str = "t") -> Attachment:
    """A text attachment of ``size`` bytes."""
    return Attachment(name=name, mime="text/plain", text="x" * size)


def test_a_wire_attachment_holds_one_body_and_images_only_as_data() -> None:
    """Data and text together, neither, or data under a non-image type are refused."""
    for fields in ({"data": DATA, "text": "x"}, {}, {"mime": "text/html", "data": DATA}):
        with pytest.raises(ValueError):
            Attachment.model_validate({"name": "a", "mime": "image/png", **fields})
    image = Attachment(name="a.png", mime="image/png", data=DATA)
    assert image.is_image and image.size == 40
    assert image.data_url() == f"data:image/png;base64,{DATA}"
    with pytest.raises(AttachmentError, match="is text, not an image"):
        text(1).data_url()


def test_bad_base64_and_oversized_content_are_refused_in_one_line() -> None:
    """Data that is not base64, or content over 512 KB, is named and refused."""
    with pytest.raises(AttachmentError, match=r"a\.png: its data is not base64"):
        checked(Attachment(name="a.png", mime="image/png", data="not base64!"))
    with pytest.raises(AttachmentError, match="big is 513 KB, over the 512 KB"):
        checked(text(MAX_ATTACHMENT_BYTES + 1024, "big"))
    assert checked(text(MAX_ATTACHMENT_BYTES)).size == MAX_ATTACHMENT_BYTES


def test_a_message_is_bounded_in_count_and_in_bytes() -> None:
    """At most 8 attachments and 640 KB in all; within both, all of them."""
    with pytest.raises(AttachmentError, match="9 attachments: a message takes at most 8"):
        bounded([text(1)] * (MAX_ATTACHMENTS + 1))
    with pytest.raises(AttachmentError, match="1,024 KB in all, over the 640 KB"):
        bounded([text(MAX_ATTACHMENT_BYTES)] * 2)
    assert len(bounded([text(1)] * MAX_ATTACHMENTS)) == MAX_ATTACHMENTS


def test_describe_names_the_type_and_size() -> None:
    """One readable line per attachment, in bytes under a kilobyte and in KB above."""
    assert describe(Attachment(name="a.png", mime="image/png", data=DATA)) == (
        "a.png (image/png, 40 B)"
    )
    assert describe(text(4096, "notes.md")) == "notes.md (text/plain, 4 KB)"
