"""What ``attach=`` takes, made into a message's attachments: files read here, the rest pure.

The one place nbchat reads a file a user attaches: its size is checked before
it is read, and a file that cannot be read is one line. Everything else
(figures, images, DataFrames, text, bytes) is :func:`nbchat.render.attachable.attachment_of`'s.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..attachments import MAX_ATTACHMENT_BYTES, Attachment, bounded, oversized
from ..exceptions import AttachmentError
from ..protocol import ATTACHMENTS_FEATURE, UserMessage
from ..render.attachable import attachment_of

__all__ = ["Attachable", "attach_to", "named_attachment", "read_attachments"]

Attachable = Any
"""A figure, an image, a DataFrame, text, bytes, a path, or an
:class:`~nbchat.attachments.Attachment`."""

_TEXT_TYPES = ("application/json", "application/xml", "application/x-yaml")


def read_attachments(values: Iterable[Attachable]) -> list[Attachment]:
    """Each value as an attachment, within the bounds of one message.

    A :class:`~pathlib.Path` (or ``os.PathLike``) is a file, and so is a
    one-line string naming a file that exists; any other string is text.
    """
    return bounded([_attachment(value) for value in values])


def attach_to(
    message: UserMessage,
    attachments: list[Attachment],
    features: frozenset[str] | None,
    url: str,
) -> UserMessage:
    """``message`` with ``attachments``, if the server announced it takes them.

    Never sent to a server that did not: it would drop them, and the model
    would answer a question about a picture it never saw. ``features`` is None
    while no connection is open (what the server takes is not known yet).
    """
    if not attachments:
        return message
    if features is None:
        raise AttachmentError(
            f"not connected to {url} yet, so whether it takes attachments is not known: "
            "use ask(..., attach=...), which connects first"
        )
    if ATTACHMENTS_FEATURE not in features:
        raise AttachmentError(
            f"{url} does not take attachments (it did not announce them): send the text "
            "alone, or use a backend that does (nbchat serve, the OpenAI bridge)"
        )
    return message.model_copy(update={"attachments": attachments})


def _attachment(value: Attachable) -> Attachment:
    path = _path(value)
    return _read(path) if path is not None else attachment_of(value)


def _path(value: Attachable) -> Path | None:
    if isinstance(value, os.PathLike):
        return Path(value)
    if isinstance(value, str) and "\n" not in value and 0 < len(value) < 4096:
        try:
            return Path(value) if Path(value).is_file() else None
        except OSError:
            return None
    return None


def _read(path: Path) -> Attachment:
    try:
        size = path.stat().st_size
        if size > MAX_ATTACHMENT_BYTES:
            raise oversized(path.name, size)
        data = path.read_bytes()
    except OSError as exc:
        raise AttachmentError(f"cannot read {path}: {exc.strerror or exc}") from None
    return named_attachment(data, path.name)


def named_attachment(data: bytes, name: str, mime: str | None = None) -> Attachment:
    """A file's bytes as an attachment (a file read here, or one the panel's page sent):
    an image by its bytes, else text typed by ``mime`` or the name's extension."""
    attachment = attachment_of(data, name=name)
    guessed = mime or mimetypes.guess_type(name)[0]
    if attachment.text is not None and guessed and _is_text(guessed):
        return attachment.model_copy(update={"mime": guessed})
    return attachment


def _is_text(mime: str) -> bool:
    return mime.startswith("text/") or mime in _TEXT_TYPES
