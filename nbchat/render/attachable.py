"""A value a user attaches, made into an :class:`~nbchat.attachments.Attachment` (pure).

What a value is, for a person and for a model, is decided once, by
:func:`~nbchat.render.rich.rich_result`: a figure, a PIL image, PNG or JPEG
bytes and ``_repr_png_`` / ``_repr_jpeg_`` are its checked, bounded image, which
an attachment sends as it is; a DataFrame, or a value with an HTML or Markdown
repr, is the text a model reads of it (a table's shape, dtypes and first rows as
CSV; never HTML). Beyond that, a string is text, and bytes that are no image are
their UTF-8 text. Files are read by the client (:mod:`nbchat.client.attach`),
which hands their bytes here.

A tool's value travels the other way, from the notebook to the model: the
images it showed go with its result as attachments (:func:`tool_images`), for
a model that reads images (``OpenAIAgent(vision=True)``).
"""

from __future__ import annotations

from typing import Any

from ..attachments import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_TOTAL_BYTES,
    Attachment,
    checked,
)
from ..exceptions import AttachmentError
from .rich import rich_result
from .richtypes import Rich

__all__ = ["attachment_of", "tool_images"]

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg"}


def attachment_of(value: Any, name: str | None = None) -> Attachment:
    """The attachment ``value`` makes, bounded; one :class:`AttachmentError` line if none."""
    if isinstance(value, Attachment):
        return checked(value)
    if isinstance(value, str):
        return checked(Attachment(name=name or "note.txt", mime="text/plain", text=value))
    shown = rich_result(value)
    if shown is not None and shown.image is not None:
        mime, data = shown.image
        return checked(Attachment(name=name or f"image.{_EXTENSIONS[mime]}", mime=mime, data=data))
    if shown is not None and shown.kind == "refused":
        raise AttachmentError(f"cannot attach {shown.reason}")
    if shown is not None:  # a table, an HTML or Markdown repr: what a model reads of it
        kind = "table" if shown.kind == "table" else "text"
        return checked(Attachment(name=name or f"{kind}.txt", mime="text/plain", text=shown.text))
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise AttachmentError(
                f"{name or 'these bytes'} is neither an image (PNG, JPEG) nor UTF-8 text: "
                "convert it first"
            ) from None
        return checked(Attachment(name=name or "data.txt", mime="text/plain", text=text))
    raise AttachmentError(
        f"cannot attach a {type(value).__name__}: attach an image, a figure, a DataFrame, "
        "text, bytes or a file path"
    )


def tool_images(tool: str, shown: Rich) -> tuple[Attachment, ...]:
    """The images a tool's value showed, as attachments: those that fit one message's bounds,
    first come first; the text the model reads describes every one (``tool.png``,
    ``tool-2.png`` when there are several)."""
    found = shown.images
    kept: list[Attachment] = []
    total = 0
    for number, (mime, data) in enumerate(found, 1):
        suffix = "" if len(found) == 1 else f"-{number}"
        image = Attachment(name=f"{tool}{suffix}.{_EXTENSIONS[mime]}", mime=mime, data=data)
        if len(kept) == MAX_ATTACHMENTS:
            break
        if image.size <= MAX_ATTACHMENT_BYTES and total + image.size <= MAX_TOTAL_BYTES:
            kept.append(image)
            total += image.size
    return tuple(kept)
