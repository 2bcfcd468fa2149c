"""What a value attaches as, decided where every value is looked at (nbchat.render.rich)."""

from __future__ import annotations

import base64

import pytest

from nbchat.attachments import MAX_ATTACHMENTS
from nbchat.exceptions import AttachmentError
from nbchat.render.attachable import attachment_of, tool_images
from nbchat.render.rich import Output, Rich, rich_result
from tests.helpers import png

pytestmark = pytest.mark.unit


def test_image_bytes_and_a_repr_png_are_their_checked_image() -> None:
    """PNG bytes, and an object with _repr_png_, are sent as the same bytes, base64."""

    class Picture:
        def _repr_png_(self) -> bytes:
            return png(3, 3)

    for value, data in ((png(), png()), (Picture(), png(3, 3))):
        attachment = attachment_of(value)
        assert (attachment.name, attachment.mime) == ("image.png", "image/png")
        assert attachment.data is not None and base64.b64decode(attachment.data) == data


def test_a_matplotlib_figure_is_its_png() -> None:
    """A figure is drawn to PNG in memory, never attached as its repr."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(2, 2), dpi=50)
    axes.plot([1, 2, 3])
    try:
        attachment = attachment_of(figure, name="plot.png")
    finally:
        plt.close(figure)
    assert (attachment.name, attachment.mime) == ("plot.png", "image/png")
    assert attachment.data is not None
    assert base64.b64decode(attachment.data).startswith(b"\x89PNG")


def test_a_dataframe_is_the_text_a_model_reads_of_it() -> None:
    """A table is its shape, dtypes and first rows as CSV, as a tool's result is: never HTML."""
    import pandas as pd

    frame = pd.DataFrame({"x": range(1000), "y": ["a"] * 1000})
    attachment = attachment_of(frame)
    assert (attachment.name, attachment.mime) == ("table.txt", "text/plain")
    assert attachment.text is not None
    assert attachment.text.startswith("a pandas DataFrame: 1,000 rows \u00d7 2 columns\n")
    assert ",x,y\n0,0,a\n" in attachment.text and "<" not in attachment.text


def test_text_and_utf8_bytes_are_text_and_other_bytes_are_refused() -> None:
    """A string or UTF-8 bytes travel as text; binary that is no image is one line, refused."""
    assert attachment_of("a note").text == "a note"
    assert attachment_of("héllo".encode(), name="h.txt").text == "héllo"
    with pytest.raises(AttachmentError, match=r"neither an image \(PNG, JPEG\) nor UTF-8"):
        attachment_of(b"\xff\xfe\x00binary")


def test_what_cannot_be_shown_cannot_be_attached() -> None:
    """A figure that fails to draw, an SVG, an image over the bound, an object: one line each."""

    class Broken:
        __module__ = "matplotlib.figure"

        def savefig(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("no renderer")

        def get_size_inches(self) -> tuple[float, float]:
            return (1.0, 1.0)

        dpi = 10.0

    class Svg:
        def _repr_svg_(self) -> str:
            return "<svg onload=alert(1)/>"

    for value, words in (
        (Broken(), "could not be drawn"),
        (Svg(), "nbchat shows no SVG"),
        (png(padding=600 * 1024), "over the 512 KB an attachment may be"),
        (object(), "cannot attach a object"),
    ):
        with pytest.raises(AttachmentError, match=words):
            attachment_of(value)


def test_a_tools_image_is_one_attachment_named_after_the_tool() -> None:
    """A PNG result gives one attachment, tool.png, holding the same bytes."""
    image = png(4, 3)
    shown = rich_result(image)
    assert shown is not None
    (attached,) = tool_images("plot", shown)
    assert attached.name == "plot.png" and base64.b64decode(attached.data or "") == image


def test_code_that_displayed_several_images_gives_each_within_the_bounds() -> None:
    """run_code's figures are numbered; past the count bound or an image's byte bound they
    are left to the text, which describes every one."""
    shown = rich_result(Output("", (png(2, 1), "text", png(2, 2))))
    assert shown is not None and shown.text.count("displayed: a PNG image") == 2
    assert [image.name for image in tool_images("run_code", shown)] == [
        "run_code-1.png",
        "run_code-2.png",
    ]
    encoded = base64.b64encode(png()).decode()
    many = Rich("output", "", "", displayed=(("image/png", encoded),) * (MAX_ATTACHMENTS + 2))
    assert len(tool_images("run_code", many)) == MAX_ATTACHMENTS
    big = rich_result(png(2, 2, padding=600 * 1024))
    assert big is not None and big.image is not None and tool_images("plot", big) == ()


def test_a_table_gives_no_images() -> None:
    """A result without an image (a string, a table) gives nothing to attach."""
    import pandas as pd

    shown = rich_result(pd.DataFrame({"x": [1]}))
    assert shown is not None and tool_images("table", shown) == ()
