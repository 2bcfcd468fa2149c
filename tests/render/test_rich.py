"""Rich tool results: each value's view for the card and its text for the model, decided once."""

from __future__ import annotations

import base64
import io
import re
import struct
import subprocess
import sys
import time
from typing import Any

import matplotlib
import pandas as pd
import pytest
from IPython.display import HTML, SVG, Image, Latex, Markdown, Math
from matplotlib.figure import Figure
from PIL import Image as PILImage

from nbchat.render.rich import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_MODEL_CHARS,
    MAX_REPR_CHARS,
    rich_result,
)
from nbchat.render.richtable import MAX_COLUMNS, MAX_ROWS
from nbchat.render.richtypes import TIMES

from .audit import problems, text_of

matplotlib.use("Agg")

pytestmark = pytest.mark.unit

DATA_URL = re.compile(r'src="data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)"')


def png(width: int = 4, height: int = 3) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(width: int = 5, height: int = 7) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), "blue").save(buffer, format="JPEG")
    return buffer.getvalue()


def shown_image(markup: str) -> PILImage.Image:
    """The image a card's data URL carries, decoded."""
    match = DATA_URL.search(markup)
    assert match is not None, markup[:200]
    return PILImage.open(io.BytesIO(base64.b64decode(match.group(2))))


def assert_short_text(text: str) -> None:
    assert "<" not in text and len(text) <= MAX_MODEL_CHARS + 20


# Tables


def test_a_large_dataframe_is_a_bounded_table_and_a_summary() -> None:
    """50,000 rows and 30 columns: 20 of each shown, the rest counted; the model gets CSV."""
    frame = pd.DataFrame({f"c{i}": range(50_000) for i in range(30)})
    frame["name"] = "x"
    started = time.perf_counter()
    shown = rich_result(frame)
    assert time.perf_counter() - started < 1
    assert shown is not None and shown.kind == "table"
    assert shown.html.count("<tr>") == MAX_ROWS + 1  # the head and the first rows
    assert shown.html.count("<td") == MAX_ROWS * MAX_COLUMNS
    assert "… 49,980 more rows and 11 more columns" in text_of(shown.html)
    assert problems(shown.html) == []
    assert shown.text.startswith(f"a pandas DataFrame: 50,000 rows {TIMES} 31 columns\n")
    assert "c0 (int64)" in shown.text and ", and 11 more" in shown.text
    assert "\n,c0,c1," in shown.text and "\n9,9,9," in shown.text and "\n10,10" not in shown.text
    assert shown.text.endswith("(49,990 more rows not shown)")
    assert_short_text(shown.text)


def test_a_series_is_a_one_column_table_named_as_it_is() -> None:
    """A Series shows its name, dtype and values; numbers are aligned right."""
    shown = rich_result(pd.Series([1.5, 2.5], name="price"))
    assert shown is not None and shown.kind == "table"
    assert shown.text.startswith("a pandas Series named 'price': 2 rows, dtype float64")
    assert '<td align="right">2.5</td>' in shown.html
    assert "more rows" not in shown.html


def test_table_cells_are_escaped_cut_and_redacted() -> None:
    """A cell holding markup is text, a long one is cut, a credential is redacted in the card."""
    secret = "sk-" + "a" * 40
    frame = pd.DataFrame({"<b>col</b>": ["<script>alert(1)</script>", "y" * 500, secret]})
    shown = rich_result(frame)
    assert shown is not None
    assert problems(shown.html) == []
    assert "&lt;script&gt;" in shown.html and "<script>" not in shown.html
    assert "y" * 99 + "…" in shown.html and "y" * 101 not in shown.html
    assert secret not in shown.html


def test_an_empty_dataframe_says_it_has_no_rows() -> None:
    """No rows is a table with only its head, and the model is told so."""
    shown = rich_result(pd.DataFrame({"a": []}))
    assert shown is not None
    assert "no rows" in shown.text and "<tbody></tbody>" in shown.html


def test_a_huge_dataframe_summary_stays_within_the_model_bound() -> None:
    """Very wide cells cannot make the model's text longer than its bound."""
    frame = pd.DataFrame({f"column_{i}_" + "n" * 90: ["v" * 100] * 20 for i in range(40)})
    shown = rich_result(frame)
    assert shown is not None
    assert len(shown.text) <= MAX_MODEL_CHARS + 20 and shown.text.endswith("[summary cut]")


# Images


def test_a_figure_is_drawn_as_a_png_of_its_own_size() -> None:
    """A 640 by 480 figure shows as a PNG data URL of that size; the model gets a description."""
    figure = Figure(figsize=(6.4, 4.8), dpi=100)
    axes = figure.subplots()
    axes.plot([1, 3, 2])
    axes.set_title("Sales")
    shown = rich_result(figure)
    assert shown is not None and shown.kind == "image"
    assert shown_image(shown.html).size == (640, 480)
    assert problems(shown.html) == []
    assert shown.text == (
        f"a matplotlib figure titled 'Sales', 640{TIMES}480 (PNG), shown to the person in the"
        " tool's card"
    )
    assert rich_result(axes) == shown  # an Axes shows its figure


def test_a_figure_too_large_is_not_drawn() -> None:
    """A 40-megapixel figure is refused from its size, before savefig runs."""

    class Huge(Figure):
        def savefig(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("drawn")

    shown = rich_result(Huge(figsize=(80, 50), dpi=100))
    assert shown is not None and shown.kind == "refused"
    assert f"40,000,000 pixels (8000{TIMES}5000)" in shown.html and "not drawn" in shown.html
    assert "data:" not in shown.html and problems(shown.html) == []
    assert_short_text(shown.text)


def test_a_figure_whose_savefig_raises_is_one_line() -> None:
    """A figure that fails to draw says so in the card and to the model; nothing raises."""

    class Broken(Figure):
        def savefig(self, *args: Any, **kwargs: Any) -> None:
            raise ValueError("bad\nartist")

    shown = rich_result(Broken())
    assert shown is not None and shown.kind == "refused"
    assert "it could not be drawn (ValueError: bad artist)" in shown.text
    assert "\n" not in text_of(shown.html)


def test_pil_images_are_encoded_and_bounded() -> None:
    """A PIL image shows as a PNG (CMYK converted); one of 40 megapixels is refused."""
    shown = rich_result(PILImage.new("CMYK", (30, 20)))
    assert shown is not None and shown.kind == "image"
    assert shown_image(shown.html).size == (30, 20)
    huge = rich_result(PILImage.new("L", (8000, 5000)))
    assert huge is not None and huge.kind == "refused"
    assert "40,000,000 pixels" in huge.text


def test_png_and_jpeg_bytes_are_images_by_their_magic_number() -> None:
    """PNG and JPEG bytes show with their sizes; other bytes are not rich."""
    for data, mime, size in ((png(4, 3), "png", (4, 3)), (jpeg(5, 7), "jpeg", (5, 7))):
        shown = rich_result(data)
        assert shown is not None and shown.kind == "image"
        assert f"data:image/{mime};base64," in shown.html
        assert shown_image(shown.html).size == size
        assert f"{size[0]}{TIMES}{size[1]}" in shown.text
    assert rich_result(bytearray(png())) is not None
    assert rich_result(b"just bytes") is None


def test_a_gigabyte_of_bytes_is_measured_not_read() -> None:
    """1 GB behind a PNG signature is refused in well under a second, copying nothing."""
    data = memoryview(bytearray(1_000_000_000))
    data[:8] = b"\x89PNG\r\n\x1a\n"
    started = time.perf_counter()
    shown = rich_result(data)
    assert time.perf_counter() - started < 0.5
    assert shown is not None and shown.kind == "refused"
    assert f"above the limit of {MAX_IMAGE_BYTES:,} bytes" in shown.text
    assert_short_text(shown.text)


def test_an_image_header_claiming_too_many_pixels_is_refused() -> None:
    """A PNG whose header says 40,000 by 40,000 is never put on the page (a decompression bomb)."""
    data = bytearray(png())
    data[16:24] = struct.pack(">II", 40_000, 40_000)
    shown = rich_result(bytes(data))
    assert shown is not None and shown.kind == "refused"
    assert f"above the limit of {MAX_IMAGE_PIXELS:,} pixels" in shown.text


def test_a_truncated_image_is_refused() -> None:
    """A PNG or JPEG signature with no readable size shows one line."""
    for data in (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF"):
        shown = rich_result(data)
        assert shown is not None and shown.kind == "refused" and "gives no size" in shown.text


def test_ipython_images_and_repr_png_objects_show() -> None:
    """IPython.display.Image (PNG or JPEG) and any object with _repr_png_ show as images."""

    class Plot:
        def _repr_png_(self) -> bytes:
            return png(2, 2)

    for value, size in ((Image(data=png(3, 3)), (3, 3)), (Image(data=jpeg()), (5, 7))):
        shown = rich_result(value)
        assert shown is not None and shown.kind == "image"
        assert shown_image(shown.html).size == size
    shown = rich_result(Plot())
    assert shown is not None and shown_image(shown.html).size == (2, 2)


def test_a_repr_png_giving_something_else_is_refused() -> None:
    """A _repr_png_ returning SVG text or bytes of no known image is one line, not shown."""

    class Liar:
        def _repr_png_(self) -> str:
            return "<svg onload=alert(1)>"

    class Other:
        def _repr_png_(self) -> bytes:
            return b"GIF89a"

    for value in (Liar(), Other()):
        shown = rich_result(value)
        assert shown is not None and shown.kind == "refused"
        assert "<svg" not in shown.html and problems(shown.html) == []


# HTML, Markdown, SVG


def test_an_html_repr_is_sanitized_and_the_model_reads_its_text() -> None:
    """_repr_html_ goes through the model-text sanitizer; the model gets its text, not HTML."""
    shown = rich_result(HTML("<p>Hello <strong>there</strong></p><script>alert(1)</script>"))
    assert shown is not None and shown.kind == "html"
    assert "<strong>there</strong>" in shown.html and "script" not in shown.html
    assert shown.text == "Hello there"


def test_a_markdown_repr_is_rendered_as_model_text_is() -> None:
    """_repr_markdown_ becomes sanitized HTML; the model reads the Markdown."""
    shown = rich_result(Markdown("# Title\n\n[x](javascript:alert(1))"))
    assert shown is not None and shown.kind == "markdown"
    assert "<h1>Title</h1>" in shown.html and "href" not in shown.html
    assert shown.text.startswith("# Title")


def test_a_long_html_repr_is_cut_before_it_is_sanitized() -> None:
    """An HTML repr of megabytes is cut, says so, and the model's text stays bounded."""
    shown = rich_result(HTML("<p>" + "word " * 1_000_000 + "</p>"))
    assert shown is not None
    assert f"cut: {MAX_REPR_CHARS:,} of its" in shown.html
    assert len(shown.html) < 2 * MAX_REPR_CHARS
    assert_short_text(shown.text)


def test_svg_is_never_shown_as_svg() -> None:
    """An object with only _repr_svg_ is one line saying SVG is not shown."""
    shown = rich_result(SVG('<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>'))
    assert shown is not None and shown.kind == "refused"
    assert "<svg" not in shown.html and "nbchat shows no SVG" in shown.text


def test_a_latex_repr_is_mathml_and_the_model_reads_the_latex() -> None:
    """_repr_latex_ (sympy, IPython's Math and Latex) shows as display MathML, bare or
    delimited; the model reads the LaTeX, and LaTeX latex2mathml cannot read shows as code."""
    square = "<msup><mi>x</mi><mn>2</mn></msup>"
    for value in (Math(r"x^2"), Latex(r"$$x^2$$"), Latex(r"\[x^2\]"), Latex(r"\(x^2\)")):
        shown = rich_result(value)
        assert shown is not None and shown.kind == "math", value.data
        assert '<math display="block">' in shown.html and square in shown.html
        assert shown.text == value._repr_latex_().strip() and problems(shown.html) == []
    bad = rich_result(Latex(r"\frac{1}{"))
    assert bad is not None and "nbchat-math-error" in bad.html and "<math" not in bad.html


def test_latex_text_with_formulas_in_it_renders_as_model_text() -> None:
    """Latex("where $x$ is $y$") is text with two inline formulas, not one formula."""
    shown = rich_result(Latex("where $x$ is $y$"))
    assert shown is not None and shown.kind == "markdown"
    assert shown.html.count('<math display="inline">') == 2 and "where" in text_of(shown.html)


class Bundle:
    """A value that shows itself through ``_repr_mimebundle_`` only, as altair and plotly do."""

    def __init__(self, bundle: object) -> None:
        self.bundle = bundle

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> object:
        return self.bundle


def test_a_mime_bundle_is_shown_by_the_view_nbchat_prefers() -> None:
    """A bundle's PNG (base64, as Jupyter sends it) comes before its HTML; HTML, Markdown and
    LaTeX views show as their methods' would; (data, metadata) is read as data."""
    encoded = base64.b64encode(png(6, 4)).decode()
    shown = rich_result(Bundle({"image/png": encoded, "text/html": "<b>chart</b>"}))
    assert shown is not None and shown.kind == "image" and shown_image(shown.html).size == (6, 4)
    for bundle, kind in (
        ({"text/html": "<b>chart</b>", "text/plain": "Chart()"}, "html"),
        (({"text/markdown": "**chart**"}, {"text/markdown": {}}), "markdown"),
        ({"text/latex": "$x^2$"}, "math"),
    ):
        shown = rich_result(Bundle(bundle))
        assert shown is not None and shown.kind == kind
        assert shown.text in ("chart", "**chart**", "$x^2$")


def test_a_view_that_needs_script_gives_way_to_the_next_or_to_the_values_text() -> None:
    """An HTML view that is all script (plotly's) is not shown blank: the bundle's next view is
    taken, or else the value is not rich and its text goes as any value's does."""
    script = '<div id="plot"></div><script>Plotly.newPlot("plot", [])</script>'
    encoded = base64.b64encode(png(2, 2)).decode()
    shown = rich_result(Bundle({"text/html": script, "image/jpeg": None, "text/latex": "$y$"}))
    assert shown is not None and shown.kind == "math"
    assert rich_result(Bundle({"text/html": script, "text/plain": "Figure()"})) is None
    assert rich_result(HTML(script)) is None
    shown = rich_result(Bundle({"text/html": script, "image/png": encoded}))
    assert shown is not None and shown.kind == "image"


def test_a_bundle_with_only_svg_or_unknown_views_is_refused_or_not_rich() -> None:
    """SVG in a bundle is refused as _repr_svg_ is; a bundle of views nbchat cannot show
    (Vega-Lite's JSON), or one that is not a dict, leaves the value to its text."""
    shown = rich_result(Bundle({"image/svg+xml": "<svg onload=alert(1)></svg>"}))
    assert shown is not None and shown.kind == "refused" and "<svg" not in shown.html
    for bundle in ({"application/vnd.vegalite.v5+json": {}, "text/plain": "Chart"}, None, "x"):
        assert rich_result(Bundle(bundle)) is None


# What is not rich, and what fails


def test_plain_values_and_unsupported_types_are_not_rich() -> None:
    """Strings, numbers, containers and unknown objects keep the JSON path (None)."""
    for value in ("text", 3, 2.5, None, {"a": 1}, [1], (1,), object(), 1j):
        assert rich_result(value) is None


def test_an_object_answering_every_attribute_is_not_rich() -> None:
    """A proxy whose __getattr__ answers anything is not taken for a displayable object."""

    class Anything:
        def __getattr__(self, name: str) -> Any:
            return lambda: "<b>x</b>"

    assert rich_result(Anything()) is None


def test_a_repr_that_raises_is_one_line() -> None:
    """A value whose display method raises is shown as one line naming the error."""

    class Broken:
        def _repr_html_(self) -> str:
            raise RuntimeError("no\nhtml")

    shown = rich_result(Broken())
    assert shown is not None and shown.kind == "refused"
    assert shown.text.startswith("a tests.Broken: not shown, it could not be shown (RuntimeError")


def test_the_module_never_imports_pandas_matplotlib_or_pil() -> None:
    """Deciding that a value is plain loads none of the libraries it recognises."""
    code = (
        "import sys; from nbchat.render.rich import rich_result; rich_result(object()); "
        "print(sorted(m for m in ('pandas', 'matplotlib', 'PIL', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_codes_output_shows_its_text_then_each_value_it_showed() -> None:
    """An Output's card is its text as a block, then each value as it shows alone; the model
    reads the text and a line per value; scrub reaches both, and plain values add nothing."""
    import pandas as pd

    from nbchat.render.richtypes import Output

    secret = "s3cr3t-value"
    frame = pd.DataFrame({"key": [secret], "n": [7]})
    shown = rich_result(
        Output("stdout:\nhi <b>", (frame, 42), scrub=lambda t: t.replace(secret, "***"))
    )
    assert shown is not None and shown.kind == "output"
    assert shown.html.startswith(
        '<div class="nbchat-rich nbchat-rich-output"><pre class="nbchat-rich-text"><code>'
        "stdout:\nhi &lt;b&gt;</code></pre>"
    )
    assert "nbchat-rich-table" in shown.html and secret not in shown.html
    assert shown.text.startswith("stdout:\nhi <b>\ndisplayed: a pandas DataFrame: 1 row")
    assert secret not in shown.text and problems(shown.html) == []
    assert rich_result(Output("ran without output", (42, "text"))) is None
