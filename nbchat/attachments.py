"""What a user attaches to a message, as the wire carries it: images and texts, bounded (pure).

A message may carry attachments (``ask(text, attach=[fig, df, "notes.txt"])``):
an image travels as base64 PNG or JPEG data, anything else as text. What a
value becomes is decided where every value is looked at,
:mod:`nbchat.render.attachable` (through :mod:`nbchat.render.rich`); files are
read by the client (:mod:`nbchat.client.attach`). This module holds the wire
form and its bounds, so the protocol, the client and the server check them alike.

Bounds are in bytes: each attachment at most :data:`MAX_ATTACHMENT_BYTES`, all
of a message's at most :data:`MAX_TOTAL_BYTES` (they must fit one frame of the
server's 1 MiB), at most :data:`MAX_ATTACHMENTS`. Beyond them
:class:`~nbchat.exceptions.AttachmentError` says so in one line and nothing is
sent.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, model_validator

from .exceptions import AttachmentError

__all__ = [
    "IMAGE_TYPES",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENT_BYTES",
    "MAX_TOTAL_BYTES",
    "Attachment",
    "bounded",
    "checked",
    "describe",
    "oversized",
]

MAX_ATTACHMENTS = 8
MAX_ATTACHMENT_BYTES = 512 * 1024
"""One attachment's bytes (an image's, before base64; a text's UTF-8)."""
MAX_TOTAL_BYTES = 640 * 1024
"""All of a message's attachments: base64 makes it about 850 KB, inside one 1 MiB frame."""

IMAGE_TYPES = frozenset({"image/png", "image/jpeg"})
"""The images an attachment carries: those nbchat checks and bounds (nbchat.render.richimage)."""


class Attachment(BaseModel):
    """One attachment on the wire: an image as base64 ``data``, or ``text``; never both."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    """What the user called it (a file's name, or one made up: ``figure.png``)."""
    mime: str
    data: str | None = None
    """Base64 of an image's bytes."""
    text: str | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Attachment:
        if (self.data is None) == (self.text is None):
            raise ValueError("an attachment holds either data (an image) or text")
        if self.data is not None and self.mime not in IMAGE_TYPES:
            raise ValueError(f"data attachments are images; {self.mime!r} is not one")
        return self

    @property
    def size(self) -> int:
        """Bytes of the content (decoded): what the bounds count."""
        if self.text is not None:
            return len(self.text.encode("utf-8", "surrogatepass"))
        assert self.data is not None
        return len(self.data) * 3 // 4 - self.data[-2:].count("=")

    @property
    def is_image(self) -> bool:
        return self.data is not None

    def data_url(self) -> str:
        """The image as a ``data:`` URL (what an OpenAI-compatible model is given)."""
        if self.data is None:
            raise AttachmentError(f"{self.name} is text, not an image")
        return f"data:{self.mime};base64,{self.data}"


def bounded(attachments: Sequence[Attachment]) -> list[Attachment]:
    """``attachments`` if the message may carry them all, else one line why not."""
    if len(attachments) > MAX_ATTACHMENTS:
        raise AttachmentError(
            f"{len(attachments)} attachments: a message takes at most {MAX_ATTACHMENTS}"
        )
    for attachment in attachments:
        checked(attachment)
    total = sum(attachment.size for attachment in attachments)
    if total > MAX_TOTAL_BYTES:
        raise AttachmentError(
            f"the attachments hold {_kb(total)} in all, over the {_kb(MAX_TOTAL_BYTES)} a "
            "message takes: attach fewer, or smaller images"
        )
    return list(attachments)


def describe(attachment: Attachment) -> str:
    """One line a person or a model reads: ``plot.png (image/png, 12 KB)``."""
    return f"{attachment.name} ({attachment.mime}, {_kb(attachment.size)})"


def checked(attachment: Attachment) -> Attachment:
    """``attachment`` if its data is base64 and its size within :data:`MAX_ATTACHMENT_BYTES`."""
    if attachment.data is not None:
        try:
            base64.b64decode(attachment.data, validate=True)
        except (binascii.Error, ValueError):
            raise AttachmentError(f"{attachment.name}: its data is not base64") from None
    if attachment.size > MAX_ATTACHMENT_BYTES:
        raise oversized(attachment.name, attachment.size)
    return attachment


def oversized(name: str, size: int) -> AttachmentError:
    """The one line for content over :data:`MAX_ATTACHMENT_BYTES` (a file is measured before
    it is read, with this same line)."""
    return AttachmentError(
        f"{name} is {_kb(size)}, over the {_kb(MAX_ATTACHMENT_BYTES)} an attachment may be: "
        "downscale it (savefig(dpi=...)) or attach part of it"
    )


def _kb(size: int) -> str:
    return f"{size / 1024:,.0f} KB" if size >= 1024 else f"{size} B"
