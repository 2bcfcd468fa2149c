"""Images a tool returned, as a card shows them and a model reads of them (pure).

An image reaches the card as ``<img src="data:image/png;base64,...">`` (or
``image/jpeg``) inside ``<div class="nbchat-rich-image">``, the one place the
render audit allows an ``<img>``: the bytes are nbchat's own (a figure saved
here, a PIL image encoded here) or checked here (their magic number and the
size their header declares), never a URL, never SVG. Everything is bounded
before any work that could grow with the input: a 1 GB ``bytes`` value is
measured, not copied; a figure's pixels are counted from its size in inches
and its dpi before it is drawn; a JPEG's header is read segment by segment
for at most :data:`_MAX_SEGMENTS` steps. Past a bound the card says so in one
line and the model is told what was not shown.

Drawing a figure (``savefig``) is the slow step; the caller runs this off its
event loop, within its time limit (:mod:`nbchat.tools`).
"""

from __future__ import annotations

import base64
import binascii
import html
import io
import struct
from typing import Any

from ..redact import redact_text
from ..toolspec import error_text
from .richtypes import TIMES, Rich, refused

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "figure_rich",
    "image_format",
    "image_rich",
    "pil_rich",
    "repr_image_rich",
]

MAX_IMAGE_BYTES = 2_000_000
"""An encoded image larger than this is not shown (it would travel to the page, and into
every saved copy, base64-encoded: a third larger again)."""
MAX_IMAGE_PIXELS = 12_000_000
"""An image of more pixels than this (4000 by 3000) is not shown, nor a figure drawn."""

_PNG_OPTIONS = {"compress_level": 3}
"""zlib's level for a figure's PNG: at its default (6) a 1-megapixel chart took 52 ms to save
instead of 45, for a file a quarter smaller (benchmarks/rich_results.py)."""
_NO_SOFTWARE = {"Software": None}
"""No "Matplotlib version ..." in the PNG: the same figure gives the same bytes (and the same
saved notebook) under another matplotlib."""
_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg"}
_MAX_SEGMENTS = 256
"""A JPEG header whose size is not found within this many segments is not shown."""
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""JPEG start-of-frame markers (baseline, progressive...), which hold the size."""
_MAX_TITLE = 120


def image_format(data: bytes | bytearray | memoryview) -> str | None:
    """ "PNG" or "JPEG" by magic number, else None (only the first bytes are read)."""
    head = bytes(data[:8])
    if head == _PNG:
        return "PNG"
    return "JPEG" if head.startswith(_JPEG) else None


def image_rich(data: bytes | bytearray | memoryview, what: str | None = None) -> Rich | None:
    """PNG or JPEG bytes as an image in the card (None when they are neither).

    ``what`` names the value ("a matplotlib figure"); by default, the format.
    """
    kind = image_format(data)
    if kind is None:
        return None
    name = what or f"a {kind} image"
    if len(data) > MAX_IMAGE_BYTES:
        return refused(
            f"{name} of {len(data):,} bytes",
            f"above the limit of {MAX_IMAGE_BYTES:,} bytes",
        )
    raw = bytes(data)
    size = _png_size(raw) if kind == "PNG" else _jpeg_size(raw)
    if size is None:
        return refused(name, f"its {kind} header gives no size")
    width, height = size
    too_large = _too_many_pixels(name, width, height)
    if too_large is not None:
        return too_large
    described = f"{name}, {width}{TIMES}{height}" + ("" if what is None else f" ({kind})")
    encoded = base64.b64encode(raw).decode("ascii")
    markup = (
        '<div class="nbchat-rich nbchat-rich-image">'
        f'<img src="data:{_MIME[kind]};base64,{encoded}"'
        f' alt="{html.escape(redact_text(described), quote=True)}"></div>'
    )
    shown = f"{described}, shown to the person in the tool's card"
    return Rich("image", shown, markup, image=(_MIME[kind], encoded))


def figure_rich(figure: Any) -> Rich:
    """A matplotlib figure drawn as a PNG (its own size and dpi), counted before it is drawn."""
    width_in, height_in = (float(x) for x in figure.get_size_inches())
    dpi = float(figure.dpi)
    width, height = round(width_in * dpi), round(height_in * dpi)
    name = "a matplotlib figure" + _titles(figure)
    too_large = _too_many_pixels(name, width, height, "; not drawn")
    if too_large is not None:
        return too_large
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", pil_kwargs=_PNG_OPTIONS, metadata=_NO_SOFTWARE)
    except Exception as exc:  # a figure's artists are user code: their failure is the note
        return refused(name, f"it could not be drawn ({error_text(exc)})")
    shown = image_rich(buffer.getvalue(), name)
    assert shown is not None  # savefig(format="png") writes a PNG
    return shown


def pil_rich(image: Any) -> Rich:
    """A PIL image encoded as a PNG, its pixels counted before it is encoded."""
    width, height = (int(x) for x in image.size)
    name = "a PIL image"
    too_large = _too_many_pixels(name, width, height, "; not encoded")
    if too_large is not None:
        return too_large
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="PNG")
    except (OSError, ValueError):  # a mode PNG cannot hold (CMYK...): as RGBA
        buffer = io.BytesIO()
        image.convert("RGBA").save(buffer, format="PNG")
    shown = image_rich(buffer.getvalue(), name)
    assert shown is not None
    return shown


def repr_image_rich(data: Any, method: str) -> Rich | None:
    """What ``_repr_png_``/``_repr_jpeg_`` returned (bytes, base64 text, or either with
    metadata, as Jupyter's display protocol allows), as an image; None when it gave none."""
    if isinstance(data, tuple) and data:
        data = data[0]
    if isinstance(data, str):
        if len(data) > MAX_IMAGE_BYTES * 4 // 3 + 4:
            return refused(
                f"an image of {len(data):,} base64 characters",
                f"above the limit of {MAX_IMAGE_BYTES:,} bytes",
            )
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return refused("an image", f"its {method} gave text that is not base64")
    if not isinstance(data, bytes | bytearray | memoryview):
        return None
    shown = image_rich(data)
    if shown is None:
        return refused("an image", f"its {method} gave neither a PNG nor a JPEG")
    return shown


# Private helpers


def _too_many_pixels(name: str, width: int, height: int, then: str = "") -> Rich | None:
    """The refusal of an image over :data:`MAX_IMAGE_PIXELS` (counted before any work)."""
    if width * height <= MAX_IMAGE_PIXELS:
        return None
    return refused(
        f"{name} of {width * height:,} pixels ({width}{TIMES}{height})",
        f"above the limit of {MAX_IMAGE_PIXELS:,} pixels{then}",
    )


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return (width, height) if width and height else None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The size in a JPEG's first start-of-frame segment, hopping from segment to segment."""
    at = 2
    for _ in range(_MAX_SEGMENTS):
        while at < len(data) and data[at] == 0xFF and at + 1 < len(data) and data[at + 1] == 0xFF:
            at += 1  # fill bytes
        if at + 4 > len(data) or data[at] != 0xFF:
            return None
        marker = data[at + 1]
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _SOF:
            if at + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return (width, height) if width and height else None
        if marker == 0xDA or length < 2:  # image data began with no size seen
            return None
        at += 2 + length
    return None


def _titles(figure: Any) -> str:
    """The figure's axes titles, for the model and the alt text ('titled "Sales"')."""
    titles: list[str] = []
    for axes in list(getattr(figure, "axes", []))[:8]:
        title = getattr(axes, "get_title", lambda: "")()
        if isinstance(title, str) and title.strip():
            titles.append(" ".join(title.split())[:_MAX_TITLE])
    return f" titled {', '.join(repr(t) for t in titles)}" if titles else ""
