"""A value a user attaches, made into an :class:`~nbchat.attachments.Attachment` (pure).

What a value is, for a person and for a model, is decided once, by
:func:`~nbchat.render.rich.rich_result`: a figure, a PIL image, PNG or JPEG
bytes and ``_repr_png_`` / ``_repr_jpeg_`` are its checked, bounded image, which
an attachment sends as it is; a DataFrame, or a value with an HTML or Markdown
repr, is the text a model reads of it (a table's shape, dtypes and first rows as
CSV; never HTML). Beyond that, a string is text, and bytes that are no image are
their UTF-8 text. Files are read by the client (:mod:`nbchat.client.attach`),
which hands their bytes here.
"""

from __future__ import annotations

from typing import Any

from ..attachments import Attachment, checked
from ..exceptions import AttachmentError
from .rich import rich_result

__all__ = ["attachment_of"]

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
