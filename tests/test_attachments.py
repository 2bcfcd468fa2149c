"""What can be attached, decided from the value: images, figures, tables, text, and the bounds."""

from __future__ import annotations

import base64
import io

import pytest

from nbchat.attachments import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_TABLE_ROWS,
    Attachment,
    attachment_of,
    attachments_digest,
    bounded,
    describe,
)
from nbchat.exceptions import AttachmentError

pytestmark = pytest.mark.unit

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def test_image_bytes_are_known_by_their_magic_number() -> None:
    """PNG, JPEG, GIF and WebP bytes become base64 images; their type comes from the bytes."""
    cases = {
        PNG: "image/png",
        b"\xff\xd8\xff\xe0" + b"\0" * 8: "image/jpeg",
        b"GIF89a" + b"\0" * 8: "image/gif",
        b"RIFF\0\0\0\0WEBPVP8 ": "image/webp",
    }
    for data, mime in cases.items():
        attachment = attachment_of(data)
        assert (attachment.mime, attachment.is_image) == (mime, True)
        assert attachment.data is not None and base64.b64decode(attachment.data) == data
    assert attachment_of(PNG, name="plot.png").data_url().startswith("data:image/png;base64,")


def test_text_and_utf8_bytes_are_text_and_other_bytes_are_refused() -> None:
    """A string or UTF-8 bytes travel as text; binary that is no image is one line, refused."""
    assert attachment_of("a note").text == "a note"
    assert attachment_of("héllo".encode()).text == "héllo"
    with pytest.raises(AttachmentError, match=r"neither an image .* nor UTF-8 text"):
        attachment_of(b"\xff\xfe\x00binary")


def test_a_matplotlib_figure_is_its_png() -> None:
    """A figure (anything with savefig) is drawn to PNG in memory, never shown as its repr."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(2, 2), dpi=50)
    axes.plot([1, 2, 3])
    attachment = attachment_of(figure)
    plt.close(figure)
    assert (attachment.name, attachment.mime) == ("figure.png", "image/png")
    assert attachment.data is not None
    assert base64.b64decode(attachment.data).startswith(b"\x89PNG")


def test_a_figure_that_fails_to_draw_is_one_line() -> None:
    """A savefig that raises becomes an AttachmentError naming the failure."""

    class Broken:
        def savefig(self, target: io.BytesIO, format: str) -> None:
            raise RuntimeError("no renderer")

    with pytest.raises(AttachmentError, match=r"could not be drawn .*RuntimeError: no renderer"):
        attachment_of(Broken())


def test_a_repr_png_object_is_its_image() -> None:
    """An object with _repr_png_ (IPython's Image, a PIL image in Jupyter) is attached as it."""

    class Picture:
        def _repr_png_(self) -> bytes:
            return PNG

    assert attachment_of(Picture()).mime == "image/png"


def test_a_dataframe_is_its_first_rows_as_csv_with_its_shape() -> None:
    """A model gets a table as text: a line with its shape, then the first rows as CSV."""
    import pandas as pd

    frame = pd.DataFrame({"x": range(1000), "y": ["a"] * 1000})
    attachment = attachment_of(frame)
    assert attachment.mime == "text/csv" and attachment.text is not None
    first, header, *rows = attachment.text.splitlines()
    assert first == f"# a table of 1000 rows x 2 columns, the first {MAX_TABLE_ROWS} below"
    assert header == ",x,y" and len(rows) == MAX_TABLE_ROWS
    assert "<" not in attachment.text  # never HTML


def test_unsupported_values_and_oversized_ones_are_refused_in_one_line() -> None:
    """An object that is none of the above, or content over the bound, is refused by name."""
    with pytest.raises(AttachmentError, match="cannot attach a object"):
        attachment_of(object())
    with pytest.raises(AttachmentError, match="over the 512 KB an attachment may be"):
        attachment_of(PNG + b"\0" * MAX_ATTACHMENT_BYTES)
    with pytest.raises(AttachmentError, match="at most 8"):
        bounded([attachment_of("x")] * (MAX_ATTACHMENTS + 1))
    with pytest.raises(AttachmentError, match="in all"):
        bounded([attachment_of("x" * (MAX_ATTACHMENT_BYTES - 10))] * 2)


def test_a_wire_attachment_must_hold_one_body_of_valid_base64() -> None:
    """Data and text together, neither, a non-image with data, or bad base64 are refused."""
    for fields in (
        {"data": "AAAA", "text": "x"},
        {},
        {"mime": "text/html", "data": "AAAA"},
    ):
        with pytest.raises(ValueError):
            Attachment.model_validate({"name": "a", "mime": "image/png", **fields})
    with pytest.raises(AttachmentError, match="not base64"):
        bounded([Attachment(name="a", mime="image/png", data="not base64!")])


def test_describe_and_digest() -> None:
    """One readable line per attachment; the digest changes with the content, not the call."""
    image = attachment_of(PNG, name="plot.png")
    assert describe(image) == "plot.png (image/png, 40 B)"
    assert attachments_digest([image]) == attachments_digest([attachment_of(PNG, "plot.png")])
    assert attachments_digest([image]) != attachments_digest([attachment_of("x", "plot.png")])
    assert attachments_digest(None) == attachments_digest([])
