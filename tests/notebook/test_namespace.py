"""What the kernel tools share of a namespace, built by hand: listed, described, withheld."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nbchat.client.kernel import Kernel, kernel_tools, timed_repr
from nbchat.client.runcode import run_code
from nbchat.namespace import MAX_LISTED, MAX_TEXT, cell_text, describe, error_text, listing

pytestmark = pytest.mark.unit

KEY = "sk-" + "a1B2" * 10
"""A value shaped like an OpenAI key."""


class RaisingRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr for you")


class SlowRepr:
    def __init__(self) -> None:
        self.release = threading.Event()

    def __repr__(self) -> str:
        self.release.wait(30)
        return "slow"


def namespace() -> dict[str, Any]:
    """A notebook's namespace as IPython keeps it, with data, code, secrets and IPython's own."""
    return {
        "df": pd.DataFrame({"city": ["Paris", "Lima", "Oslo"], "temp": [21.5, 18.0, 9.25]}),
        "arr": np.zeros((3, 4), dtype="int32"),
        "config": {"host": "db", "port": 5432},
        "count": 42,
        "OPENAI_API_KEY": KEY,
        "db_password": "hunter22",
        "anonymous": "ghp_" + "x" * 36,
        "np": np,
        "os": os,
        "helper": lambda: None,
        "Frame": pd.DataFrame,
        "_private": 1,
        "_": 3,
        "_oh": {},
        "_i1": "x = 1",
        "In": ["", "x = 1"],
        "Out": {},
        "exit": object(),
        "quit": object(),
        "get_ipython": lambda: None,
        "chat_tools": Kernel(namespace=dict),
    }


def test_listing_shows_data_and_never_code_private_ipython_or_nbchat_names() -> None:
    """Data is listed with type, shape and size; code, IPython's and nbchat's names never."""
    text = listing(namespace())
    names = [line.split(":")[0] for line in text.splitlines()]
    assert names == ["OPENAI_API_KEY", "anonymous", "arr", "config", "count", "db_password", "df"]
    assert "df: pandas.DataFrame, shape 3 x 2" in text
    assert "arr: numpy.ndarray, shape 3 x 4, 48 B" in text
    assert "config: dict, len 2" in text and "count: int, 28 B, = 42" in text


def test_code_is_listed_only_when_asked() -> None:
    """include_code adds modules, functions and classes; match narrows by name."""
    text = listing(namespace(), include_code=True)
    assert all(f"\n{name}:" in f"\n{text}" for name in ("np", "os", "helper", "Frame"))
    assert listing(namespace(), match="AR").splitlines()[0].startswith("arr:")
    assert listing(namespace(), match="zzz") == "no variables matching 'zzz'"


def test_secrets_are_listed_without_a_value_and_never_described() -> None:
    """A credential's name or shape: listed as withheld; describe refuses; no result holds it."""
    ns = namespace()
    text = listing(ns)
    for name in ("OPENAI_API_KEY", "db_password", "anonymous"):
        line = next(line for line in text.splitlines() if line.startswith(f"{name}:"))
        assert line.endswith("value withheld: looks like a credential")
        assert "looks like a credential: its value is not shared" in describe(ns, name)
    assert KEY not in text and "hunter22" not in text and "ghp_" not in text


def test_results_are_scrubbed_of_secret_values_and_key_shapes() -> None:
    """A secret's value or a key's shape inside any other result becomes ***."""
    ns = namespace()
    ns["note"] = "the password is hunter22"
    ns["items"] = ["first", KEY]
    assert describe(ns, "note").endswith("'the password is ***'")
    described = describe(ns, "items")
    assert KEY not in described and "'first', '***'" in described
    cells = cell_text(['OPENAI_API_KEY = "abc123"', 'os.environ["GH_TOKEN"] = "t0k"', "x = 1"], ns)
    assert "abc123" not in cells and "t0k" not in cells and "x = 1" in cells


def test_a_dataframe_is_described_by_its_shape_columns_dtypes_and_first_rows() -> None:
    """describe_variable of a DataFrame: its size, and the summary a tool's table gives the
    model: shape, each column's dtype, the first rows as CSV."""
    text = describe(namespace(), "df")
    assert text.startswith("df (")
    assert " B) is a pandas DataFrame: 3 rows \u00d7 2 columns\n" in text
    assert "city (" in text and "temp (float64)" in text
    assert "Paris" in text and "9.25" in text


def test_an_array_a_dict_and_other_values_are_described() -> None:
    """An array's shape and dtype, a dict's keys, any other value a bounded repr."""
    ns = namespace()
    ns["big"] = list(range(1_000_000))
    assert "dtype: int32" in describe(ns, "arr")
    assert "keys: 'host', 'port'" in describe(ns, "config")
    big = describe(ns, "big")
    assert "len 1,000,000" in big and len(big) < 500


def test_bad_names_and_bad_reprs_give_one_line() -> None:
    """An unknown name, a private one, a repr that raises or hangs: one bounded line each."""
    ns = namespace()
    slow = SlowRepr()
    ns.update(raising=RaisingRepr(), slow=slow)
    assert describe(ns, "nope") == "no variable named 'nope' (list_variables shows what there is)"
    assert describe(ns, "DF") == "no variable named 'DF' (did you mean 'df'?)"
    assert "is not shared" in describe(ns, "_oh")
    assert "(its repr raised ValueError: no repr for you)" in describe(ns, "raising", timed_repr)
    try:
        hung = describe(ns, "slow", lambda value: timed_repr(value, 0.05))
    finally:
        slow.release.set()
    assert hung.endswith("(its repr did not finish within 0.05s)")


def test_the_last_error_and_a_listing_are_bounded() -> None:
    """The last error: type, message, traceback, cut; 10,000 variables list MAX_LISTED lines."""
    assert error_text(None) == "no error has been raised in this kernel"
    try:
        raise KeyError("x" * (3 * MAX_TEXT))
    except KeyError as exc:
        text = error_text(exc)
    assert text.startswith("KeyError: 'xxx") and len(text) < 2 * MAX_TEXT
    many = {f"v{i:05d}": i for i in range(10_000)}
    lines = listing(many).splitlines()
    assert len(lines) == MAX_LISTED + 1 and lines[-1].startswith("… and 9,900 more")


def test_kernel_tools_are_offered_with_run_code_confirmed() -> None:
    """The four tools always; run_code only when asked, and it waits for approval."""
    plain = kernel_tools(Kernel(namespace=dict))
    assert [t.name for t in plain] == [
        "list_variables",
        "describe_variable",
        "last_error",
        "cell_history",
    ]
    assert not any(t.confirm for t in plain)
    offered = kernel_tools(Kernel(namespace=dict), run_code=True)
    (run,) = [t for t in offered if t.name == "run_code"]
    assert run.confirm and run.where == "in this kernel"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("print('hi')\nx = 2\nx * 21", "stdout:\nhi\nvalue: 42"),
        (
            "raise SystemExit(3)",
            "error: SystemExit: 3 (line 1): the code asked to exit; the kernel goes on",
        ),
        ("raise KeyboardInterrupt", "error: KeyboardInterrupt (line 1)"),
        ("1/0", "error: ZeroDivisionError: division by zero (line 1)"),
        ("def f(:", "error: SyntaxError: invalid syntax (line 1)"),
        ("bytearray(10**13)", "error: MemoryError (line 1)"),
        ("y = 1", "ran without output"),
    ],
)
def test_run_code_gives_output_value_or_one_line(code: str, expected: str) -> None:
    """Output and a last value, or one line for SystemExit, KeyboardInterrupt, errors, 10 TB."""
    ns: dict[str, Any] = {}
    assert asyncio.run(run_code(code, ns)).text == expected


def test_code_that_never_ends_is_stopped_at_its_time_limit() -> None:
    """``while True`` is interrupted past the limit; the namespace keeps what it did."""
    ns: dict[str, Any] = {"n": 0}
    text = asyncio.run(run_code("print('start')\nwhile True:\n    n += 1", ns, timeout=0.2)).text
    assert text == "stdout:\nstart\nerror: stopped: the code did not finish within 0.2s"
    assert ns["n"] > 0


def test_the_last_error_leaves_out_ipythons_own_frame() -> None:
    """The frame of IPython's run_code that ran the cell is not in the traceback, the cell's is."""
    runner: dict[str, Any] = {}
    source = "def run_code(cell):\n try:\n  cell()\n except Exception as e:\n  return e\n"
    exec(compile(source, "/venv/site-packages/IPython/core/interactiveshell.py", "exec"), runner)

    def cell() -> None:
        raise ZeroDivisionError("division by zero")

    text = error_text(runner["run_code"](cell))  # caught where IPython catches it
    assert text.startswith("ZeroDivisionError: division by zero")
    assert "interactiveshell" not in text and "in cell" in text


def test_mentions_of_slow_reprs_hold_a_send_at_most_the_repr_budget_in_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Five mentioned values whose repr hangs cost one repr budget together, not five."""
    import time

    from nbchat.client import kernel as kernel_module
    from nbchat.protocol import UserMessage

    monkeypatch.setattr(kernel_module, "REPR_SECONDS", 0.2)
    slow = {f"s{i}": SlowRepr() for i in range(5)}
    message = UserMessage(message=" ".join(f"@s{i}" for i in range(5)))
    started = time.monotonic()
    try:
        sent = kernel_module.with_mentions(message, Kernel(namespace=lambda: slow))
    finally:
        for value in slow.values():
            value.release.set()
    assert time.monotonic() - started < 0.6  # five reprs of 0.2 s each would take 1 s
    assert [item.mention for item in sent.context or ()] == list(slow)
    assert all("did not finish" in item.value for item in sent.context or ())
