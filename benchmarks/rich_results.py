"""What a rich tool result costs to put in its card: a 1,000-row DataFrame, a 1-megapixel figure.

Timed: everything between a tool's return value and its card's markup, as a
client tool's result goes (``nbchat.tools.executor``'s reading step, without the
thread hop): ``rich_result`` (the table read and escaped, or the figure drawn to
a PNG and base64-encoded), the model's text bounded by ``serialize_result``, and
``tool_call_html`` of the done call with the view. The baseline, timed in the
same run, is what Jupyter itself does to show the same value in a cell output:
pandas' ``DataFrame._repr_html_()`` (its own bounded table) and matplotlib's
``savefig`` to a PNG in memory (what the inline backend does). Median and worst
of ``--rounds`` after one warm-up, interleaved with the baseline. Target: <= 50 ms
each.

Run from the repository root: ``.venv/bin/python benchmarks/rich_results.py``
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).absolute().parent.parent
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nbchat.protocol import ToolCall  # noqa: E402
from nbchat.render.html import tool_call_html  # noqa: E402
from nbchat.render.rich import rich_result  # noqa: E402
from nbchat.toolresult import serialize_result  # noqa: E402

TARGET_MS = 50.0


def frame(rows: int) -> pd.DataFrame:
    """A DataFrame of ``rows`` rows and 6 columns: ints, floats, strings, dates."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "value": rng.random(rows),
            "score": rng.integers(0, 100, rows),
            "city": rng.choice(["Paris", "Lima", "Oslo", "Kyoto"], rows),
            "when": pd.date_range("2026-01-01", periods=rows, freq="h"),
            "note": [f"row {i} of the table" for i in range(rows)],
        }
    )


def figure(pixels: int) -> Figure:
    """A line chart of 1,000 points with a title and labels, ``pixels`` in all (square)."""
    side = round(pixels**0.5) / 100
    fig = Figure(figsize=(side, side), dpi=100)
    axes = fig.subplots()
    x = np.linspace(0, 10, 1_000)
    axes.plot(x, np.sin(x), label="sin")
    axes.plot(x, np.cos(x), label="cos")
    axes.set_title("Waves")
    axes.set_xlabel("x")
    axes.legend()
    return fig


def card(value: Any) -> str:
    """A value as its card: the view, the model's bounded text, the card's markup."""
    shown = rich_result(value)
    assert shown is not None
    text = serialize_result(shown.text)
    call = ToolCall(id="c1", name="tool", status="done", result=text.value, runs_in="client")
    return tool_call_html(call, shown=shown.html)


def savefig(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def timed(
    work: Callable[[], object], baseline: Callable[[], object], rounds: int
) -> tuple[list[float], list[float]]:
    """Milliseconds of ``rounds`` runs of each, interleaved, after one warm-up of each."""
    work(), baseline()
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        for call, into in ((work, ours), (baseline, theirs)):
            start = time.perf_counter()
            call()
            into.append((time.perf_counter() - start) * 1000)
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1_000)
    parser.add_argument("--pixels", type=int, default=1_000_000)
    args = parser.parse_args()
    table, chart = frame(args.rows), figure(args.pixels)
    print(
        f"Python {platform.python_version()}, pandas {pd.__version__}, matplotlib "
        f"{matplotlib.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    failed = False
    for label, work, baseline, what in (
        (
            f"{args.rows:,}-row DataFrame",
            lambda: card(table),
            table._repr_html_,
            "pandas' _repr_html_",
        ),
        (
            f"{args.pixels / 1e6:g}-megapixel figure",
            lambda: card(chart),
            lambda: savefig(chart),
            "matplotlib's savefig to PNG",
        ),
    ):
        ours, theirs = timed(work, baseline, args.rounds)
        median, base = statistics.median(ours), statistics.median(theirs)
        ok = median <= TARGET_MS
        failed |= not ok
        size = len(work())  # type: ignore[arg-type]
        print(
            f"{label}: card median {median:.1f} ms, worst {max(ours):.1f} ms, {size:,} chars; "
            f"{what} {base:.1f} ms; ratio {median / base:.2f} "
            f"({'ok' if ok else 'over'} the {TARGET_MS:.0f} ms target)"
        )
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
