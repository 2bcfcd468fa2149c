"""What a user attaches to a message: images and text, bounded, as the wire carries them (pure).

A message may carry attachments (``ask(text, attach=[fig, df, "notes.txt"])``):
an image travels as base64 PNG, JPEG, GIF or WebP data, anything else as text.
What can be attached is decided here, once, from the value, without importing
pandas or matplotlib: bytes are images by their magic number (else UTF-8 text),
a figure is anything with ``savefig`` (matplotlib's, rendered to PNG in
memory), an object with ``_repr_png_`` / ``_repr_jpeg_`` is its image, a
DataFrame-like value is its first rows as CSV (a model reads a table as text,
never as HTML), a string is text. Files are read by the client
(:mod:`nbchat.client.attach`), which hands their bytes here.

Bounds are in bytes: each attachment at most :data:`MAX_ATTACHMENT_BYTES`, all
of a message's at most :data:`MAX_TOTAL_BYTES` (they must fit one frame of the
server's 1 MiB), at most :data:`MAX_ATTACHMENTS`. Beyond them, and for a value
that is none of the above, :class:`~nbchat.exceptions.AttachmentError` says so
in one line and nothing is sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from .exceptions import AttachmentError

__all__ = [
    "IMAGE_TYPES",
    "MAX_ATTACHMENTS",
    "MAX_ATTACHMENT_BYTES",
    "MAX_TABLE_ROWS",
    "MAX_TOTAL_BYTES",
    "Attachment",
    "attachment_of",
    "attachments_digest",
    "bounded",
    "describe",
]

MAX_ATTACHMENTS = 8
MAX_ATTACHMENT_BYTES = 512 * 1024
"""One attachment's bytes (an image's, before base64; a text's UTF-8)."""
MAX_TOTAL_BYTES = 640 * 1024
"""All of a message's attachments: base64 makes it about 850 KB, inside one 1 MiB frame."""
MAX_TABLE_ROWS = 50
"""A table is attached as its first rows (the model is told how many there are)."""

IMAGE_TYPES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}
"""Magic numbers of the images a vision model takes (WebP is checked apart: RIFF....WEBP)."""
_IMAGE_MIMES = frozenset({*IMAGE_TYPES.values(), "image/webp"})


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
        if self.data is not None and self.mime not in _IMAGE_MIMES:
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


def attachment_of(value: Any, name: str | None = None) -> Attachment:
    """The attachment ``value`` makes: see the module's docstring for what is taken."""
    if isinstance(value, Attachment):
        return _checked(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _of_bytes(bytes(value), name)
    if isinstance(value, str):
        return _checked(Attachment(name=name or "note.txt", mime="text/plain", text=value))
    for method, mime in (("_repr_png_", "image/png"), ("_repr_jpeg_", "image/jpeg")):
        render = getattr(type(value), method, None)
        if render is not None:
            data = _call(value, render, name)
            if isinstance(data, bytes) and data:
                extension = mime.rpartition("/")[2].replace("jpeg", "jpg")
                return _of_bytes(data, name or f"image.{extension}")
    if callable(getattr(value, "savefig", None)):
        return _of_bytes(_figure_png(value, name), name or "figure.png")
    if _is_table(value):
        return _checked(
            Attachment(name=name or "table.csv", mime="text/csv", text=_table_text(value))
        )
    raise AttachmentError(
        f"cannot attach a {type(value).__name__}: attach an image, a figure, a DataFrame, "
        "text, bytes or a file path"
    )


def bounded(attachments: Sequence[Attachment]) -> list[Attachment]:
    """``attachments`` if the message may carry them all, else one line why not."""
    if len(attachments) > MAX_ATTACHMENTS:
        raise AttachmentError(
            f"{len(attachments)} attachments: a message takes at most {MAX_ATTACHMENTS}"
        )
    for attachment in attachments:
        _checked(attachment)
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


def attachments_digest(attachments: Iterable[Attachment] | None) -> str:
    """A digest of what was attached (names, types and content): replay matches on it."""
    digest = hashlib.sha256()
    for attachment in attachments or ():
        body = attachment.data if attachment.data is not None else attachment.text
        digest.update(json.dumps([attachment.name, attachment.mime, body]).encode())
    return digest.hexdigest()[:16]


# Private helpers


def _of_bytes(data: bytes, name: str | None) -> Attachment:
    mime = _image_type(data)
    if mime is not None:
        _check_size(len(data), name or "image")
        extension = mime.rpartition("/")[2].replace("jpeg", "jpg")
        encoded = base64.b64encode(data).decode("ascii")
        return Attachment(name=name or f"image.{extension}", mime=mime, data=encoded)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise AttachmentError(
            f"{name or 'these bytes'} is neither an image (PNG, JPEG, GIF, WebP) nor UTF-8 "
            "text: convert it first"
        ) from None
    return _checked(Attachment(name=name or "data.txt", mime="text/plain", text=text))


def _image_type(data: bytes) -> str | None:
    for magic, mime in IMAGE_TYPES.items():
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _checked(attachment: Attachment) -> Attachment:
    if attachment.data is not None:
        try:
            base64.b64decode(attachment.data, validate=True)
        except (binascii.Error, ValueError):
            raise AttachmentError(f"{attachment.name}: its data is not base64") from None
    _check_size(attachment.size, attachment.name)
    return attachment


def _check_size(size: int, name: str) -> None:
    if size > MAX_ATTACHMENT_BYTES:
        raise AttachmentError(
            f"{name} is {_kb(size)}, over the {_kb(MAX_ATTACHMENT_BYTES)} an attachment "
            "may be: downscale it (savefig(dpi=...)) or attach part of it"
        )


def _call(value: Any, render: Any, name: str | None) -> Any:
    try:
        return render(value)
    except Exception as exc:  # the value's own code: any failure is its own
        raise AttachmentError(
            f"{name or type(value).__name__} could not be drawn as an image "
            f"({type(exc).__name__}: {exc})"
        ) from None


def _figure_png(figure: Any, name: str | None) -> bytes:
    buffer = io.BytesIO()
    _call(figure, lambda fig: fig.savefig(buffer, format="png"), name)
    return buffer.getvalue()


def _is_table(value: Any) -> bool:
    kind = type(value)
    return kind.__module__.split(".")[0] in ("pandas", "polars") and hasattr(value, "shape")


def _table_text(table: Any) -> str:
    """The first rows as CSV, under a line with the table's shape (a model reads text)."""
    shape: tuple[int, ...] = tuple(getattr(table, "shape", ()))
    rows = shape[0] if shape else 0
    head = table.head(MAX_TABLE_ROWS)
    if len(shape) > 1 and shape[1] > MAX_TABLE_ROWS and hasattr(head, "iloc"):
        head = head.iloc[:, :MAX_TABLE_ROWS]
    csv = head.to_csv() if hasattr(head, "to_csv") else head.write_csv()  # pandas, polars
    shown = min(rows, MAX_TABLE_ROWS)
    columns = f" x {shape[1]} columns" if len(shape) > 1 else ""
    more = f", the first {shown} below" if rows > shown else ""
    return f"# a table of {rows} rows{columns}{more}\n{csv}"


def _kb(size: int) -> str:
    return f"{size / 1024:,.0f} KB" if size >= 1024 else f"{size} B"
