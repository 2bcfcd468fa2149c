"""A pandas DataFrame or Series as a bounded table for the card, and a summary for the model (pure).

pandas is never imported: the value is read through its own methods
(``shape``, ``iloc``, ``dtypes``, ``itertuples``), and only the corner that is
shown is ever read, so a 50,000-row frame costs what 20 rows cost. The card
gets the first :data:`MAX_ROWS` rows and :data:`MAX_COLUMNS` columns, each
cell cut to :data:`MAX_CELL_CHARS` and redacted (the card becomes the saved
copy), with a line saying how many rows and columns are not shown. The model
gets the shape, the columns with their dtypes and the first
:data:`MODEL_ROWS` rows as CSV, within
:data:`~nbchat.render.richtypes.MAX_MODEL_CHARS`.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from typing import Any

from ..redact import redact_text
from .richtypes import MAX_MODEL_CHARS, TIMES, Rich

__all__ = ["MAX_CELL_CHARS", "MAX_COLUMNS", "MAX_ROWS", "MODEL_ROWS", "table_rich"]

MAX_ROWS = 20
"""Rows the card shows; the rest are counted."""
MAX_COLUMNS = 20
"""Columns the card (and the model's summary) shows; the rest are counted."""
MAX_CELL_CHARS = 100
"""A cell's text is cut to this many characters."""
MODEL_ROWS = 10
"""Rows the model's summary carries as CSV."""

_NUMERIC = ("int", "uint", "float", "complex", "Int", "UInt", "Float")


@dataclass(frozen=True)
class _Corner:
    """The part of a table that is shown, as text, and the size of the whole."""

    what: str
    """"a pandas DataFrame", "a pandas Series named 'x'"."""
    rows: int
    columns: int
    names: list[str]
    dtypes: list[str]
    index: list[str]
    cells: list[list[str]]


def table_rich(value: Any, kind: str) -> Rich:
    """``value`` (a pandas ``DataFrame`` or ``Series``, by ``kind``) as a table and a summary."""
    corner = _corner(value, kind)
    return Rich("table", _summary(corner), _table_html(corner))


# Private helpers


def _corner(value: Any, kind: str) -> _Corner:
    if kind == "Series":
        name = value.name
        what = "a pandas Series" + (f" named {_cell(name)!r}" if name is not None else "")
        rows, columns = len(value), 1
        frame = value.iloc[:MAX_ROWS].to_frame()
    else:
        what = "a pandas DataFrame"
        rows, columns = (int(n) for n in value.shape)
        frame = value.iloc[:MAX_ROWS, :MAX_COLUMNS]
    return _Corner(
        what=what,
        rows=rows,
        columns=columns,
        names=[_cell(name) for name in frame.columns],
        dtypes=[str(dtype) for dtype in frame.dtypes],
        index=[_cell(label) for label in frame.index],
        cells=[[_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)],
    )


def _cell(value: Any) -> str:
    text = str(value)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def _shape(corner: _Corner) -> str:
    rows = f"{corner.rows:,} row{'s' if corner.rows != 1 else ''}"
    if corner.what.startswith("a pandas Series"):
        return f"{rows}, dtype {corner.dtypes[0] if corner.dtypes else '?'}"
    return f"{rows} {TIMES} {corner.columns:,} column{'s' if corner.columns != 1 else ''}"


def _more(corner: _Corner) -> str:
    """ "… 49,980 more rows and 3 more columns", or "" when everything is shown."""
    rows = corner.rows - len(corner.cells)
    columns = corner.columns - len(corner.names)
    parts = [
        f"{n:,} more {word}{'s' if n != 1 else ''}"
        for n, word in ((rows, "row"), (columns, "column"))
        if n > 0
    ]
    return f"… {' and '.join(parts)}" if parts else ""


def _table_html(corner: _Corner) -> str:
    numeric = [dtype.startswith(_NUMERIC) for dtype in corner.dtypes]

    def text(value: str) -> str:
        return html.escape(redact_text(value))

    head = "".join(
        f'<th title="{html.escape(dtype, quote=True)}">{text(name)}</th>'
        for name, dtype in zip(corner.names, corner.dtypes, strict=True)
    )
    body = "".join(
        f"<tr><th>{text(label)}</th>"
        + "".join(
            f'<td align="right">{text(cell)}</td>' if right else f"<td>{text(cell)}</td>"
            for cell, right in zip(row, numeric, strict=False)
        )
        + "</tr>"
        for label, row in zip(corner.index, corner.cells, strict=True)
    )
    more = _more(corner)
    caption = f"{text(corner.what)} · {html.escape(_shape(corner))}"
    note = f'<div class="nbchat-rich-note">{html.escape(more)}</div>' if more else ""
    return (
        '<div class="nbchat-rich nbchat-rich-table">'
        f'<div class="nbchat-rich-caption">{caption}</div>'
        '<div class="nbchat-table-scroll"><table class="nbchat-table">'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table></div>{note}</div>"
    )


def _summary(corner: _Corner) -> str:
    """The table as a model reads it: shape, columns and dtypes, the first rows as CSV."""
    columns = ", ".join(
        f"{name} ({dtype})" for name, dtype in zip(corner.names, corner.dtypes, strict=True)
    )
    hidden = corner.columns - len(corner.names)
    if hidden > 0:
        columns += f", and {hidden:,} more"
    rows = corner.cells[:MODEL_ROWS]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["", *corner.names])
    writer.writerows([label, *row] for label, row in zip(corner.index, rows, strict=False))
    lines = [
        f"{corner.what}: {_shape(corner)}",
        f"columns: {columns}",
        f"first {len(rows)} rows, as CSV:" if rows else "no rows",
    ]
    text = "\n".join(lines) + ("\n" + out.getvalue().rstrip("\n") if rows else "")
    rest = corner.rows - len(rows)
    if rest > 0:
        text += f"\n({rest:,} more rows not shown)"
    if len(text) > MAX_MODEL_CHARS:
        text = text[:MAX_MODEL_CHARS] + " … [summary cut]"
    return text
