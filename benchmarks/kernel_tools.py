"""The kernel tools' cost: ``list_variables`` over 10,000 variables, ``describe_variable``
of a 1,000,000-row DataFrame, and for ``@``-mentions the kernel's half of a completion list
over the same 10,000 and a message's context mentioning the DataFrame, each against 100 ms.

What is timed is the tool's whole function as a call runs it (the namespace read,
what is shared, the text made, redacted and scrubbed of secret values), on
namespaces built here: 10,000 variables of mixed kinds (ints, strings, lists,
dicts, small arrays and DataFrames, and a few credentials), and a DataFrame of
1,000,000 rows and 5 columns (ints, floats, strings). Median and worst of
``--rounds`` calls, after one warm-up. The whole completion, key to list in JupyterLab
(the comm both ways and the page's drawing), is measured in the browser by
tests/browser/test_mentions_browser.py. Run: ``.venv/bin/python benchmarks/kernel_tools.py``
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from nbchat.client.kernel import Kernel, kernel_tools, timed_repr
from nbchat.mentions import completions, context_for

TARGET_MS = 100.0


def many_variables(count: int) -> dict[str, Any]:
    """``count`` variables of the kinds a notebook holds, a few of them secrets."""
    kinds: list[Callable[[int], Any]] = [
        lambda i: i,
        lambda i: f"text {i}",
        lambda i: list(range(i % 50)),
        lambda i: {"a": i, "b": [i]},
        lambda i: np.arange(i % 100),
        lambda i: pd.DataFrame({"x": range(i % 20)}),
    ]
    ns: dict[str, Any] = {f"v{i:05d}": kinds[i % len(kinds)](i) for i in range(count - 10)}
    ns.update({f"API_KEY_{i}": f"sk-{'x' * 40}{i}" for i in range(10)})
    return ns


def big_frame(rows: int) -> pd.DataFrame:
    """A DataFrame of ``rows`` rows: ints, floats, strings."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "value": rng.random(rows),
            "score": rng.integers(0, 100, rows),
            "city": rng.choice(["Paris", "Lima", "Oslo", "Kyoto"], rows),
            "ratio": rng.random(rows) * 3,
        }
    )


def timed(call: Callable[[], str], rounds: int) -> tuple[float, float, str]:
    """Median and worst milliseconds of ``rounds`` calls (after a warm-up), and one result."""
    text = call()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times), text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--variables", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    ns = many_variables(args.variables)
    ns["big"] = big_frame(args.rows)
    tools = {tool.name: tool.function for tool in kernel_tools(Kernel(namespace=lambda: ns))}
    print(f"Python {platform.python_version()}, pandas {pd.__version__}, {platform.machine()}")
    failed = False
    for label, call in (
        (f"list_variables, {len(ns):,} variables", lambda: tools["list_variables"]()),
        (
            f"describe_variable, {args.rows:,}-row DataFrame",
            lambda: tools["describe_variable"]("big"),
        ),
        (
            f"@v completions, {len(ns):,} variables",
            lambda: str(completions(ns, "v")),
        ),
        (
            f"context of 'what columns does @big have?', {args.rows:,} rows",
            lambda: str(context_for("what columns does @big have?", ns, timed_repr)),
        ),
    ):
        median, worst, text = timed(call, args.rounds)
        ok = median <= TARGET_MS
        failed |= not ok
        print(
            f"{label}: median {median:.1f} ms, worst {worst:.1f} ms, {len(text):,} chars "
            f"({'ok' if ok else 'over'} the {TARGET_MS:.0f} ms target)"
        )
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
