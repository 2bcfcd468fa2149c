"""A notebook's state as a model may read it (pure): variables listed and described, the last
error, the cells run, every text bounded and redacted, secrets withheld.

What is shared (:func:`shared`): the user's own variables, never private names
(``_x``), IPython's own (``In``, ``Out``, ``exit``, ``quit``, ``get_ipython``),
nbchat's objects, nor modules, functions and classes unless asked. A secret
(:func:`is_secret`: a name that looks like a credential, ``OPENAI_API_KEY``,
``db_password``, or a string value shaped like one, ``sk-...``) is listed by
name and type only and never described. Every text leaving here goes through
:func:`nbchat.redact.redact_text`, and the string values of the namespace's
secrets are cut out of it too (:func:`scrub`), so ``print(PASSWORD)`` in a
cell's output never carries the password.

Nothing here imports pandas or numpy: a DataFrame, a Series or an array is
told by its type's name and module, and read through its own methods. Nothing
here calls an unknown object's ``repr``: the caller passes ``bounded_repr``,
run with a time limit (:mod:`nbchat.client.kernel`).
"""

from __future__ import annotations

import html
import itertools
import re
import reprlib
import sys
import traceback
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .redact import REDACTED, is_sensitive_name, looks_like_key, redact_text
from .render.rich import rich_result

__all__ = [
    "HIDDEN_NAMES",
    "MAX_HISTORY_CELLS",
    "MAX_LISTED",
    "MAX_TEXT",
    "bounded",
    "cell_text",
    "describe",
    "error_text",
    "is_secret",
    "listing",
    "safe_repr",
    "scrub",
    "shared",
    "type_name",
]

MAX_LISTED = 100
"""Variables listed at most by one ``list_variables``; the rest are counted."""
MAX_TEXT = 8_000
"""Characters of any one result at most (a description, a traceback, the cells)."""
MAX_HISTORY_CELLS = 50
"""Cells ``cell_history`` returns at most."""
MAX_CELL_CHARS = 2_000
"""Characters of one cell's code shown at most."""
MAX_SECRET_SCAN = 10_000
"""A string value is checked for a credential's shape in its first this many characters."""

HIDDEN_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
"""IPython's own names in the user namespace (``_``, ``_oh``, ``_i1`` are private anyway)."""

_CODE_TYPES = (
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    type,
)
_SCALARS = (bool, int, float, complex, type(None))
_SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset, range)
_SECRET_ASSIGNMENT = re.compile(
    r"""(?P<target>\b[A-Za-z_][\w.]*|\[\s*(?P<q>["'])[^"'\n]{1,100}(?P=q)\s*\])"""
    r"""(?P<sep>\s*(?::[^=\n]{0,100})?=(?!=)\s*)(?P<value>[^\n]*)"""
)


class _Repr(reprlib.Repr):
    """reprlib, with bytes sliced before their repr is made (reprlib would repr them whole)."""

    def repr_bytes(self, x: bytes, level: int) -> str:
        return _cut_repr(x, self.maxstring)

    def repr_bytearray(self, x: bytearray, level: int) -> str:
        return _cut_repr(bytes(x[: self.maxstring]), self.maxstring, len(x))

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            text = repr(x)
        except Exception as exc:  # one line: the model learns it cannot be shown
            message = " ".join(str(exc).split())[:200]
            return f"(its repr raised {type(exc).__name__}: {message})"
        return text if len(text) <= self.maxother else f"{text[: self.maxother]}…"


def _cut_repr(x: bytes, limit: int, length: int | None = None) -> str:
    length = len(x) if length is None else length
    text = repr(x[:limit])
    return text if length <= limit else f"{text}… ({length:,} bytes)"


_REPR = _Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 20
_REPR.maxstring = 300
_REPR.maxother = 2_000


# Public functions


def bounded(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, saying how many more there were."""
    return (
        text if len(text) <= limit else f"{text[:limit]}\n… ({len(text) - limit:,} more characters)"
    )


def safe_repr(value: Any) -> str:
    """A bounded repr (containers read a few items deep, strings and bytes sliced first).

    Calls the value's own ``__repr__`` for anything else: run it with a time limit.
    """
    return _REPR.repr(value)


def is_secret(name: str, value: Any) -> bool:
    """Whether ``name = value`` looks like a credential: by its name, or a string's shape."""
    if is_sensitive_name(name):
        return True
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value[:MAX_SECRET_SCAN]).decode("utf-8")
        except UnicodeDecodeError:
            return False
    if not isinstance(value, str):
        return False
    head = value[:MAX_SECRET_SCAN]
    stripped = head.strip()
    return looks_like_key(stripped) or redact_text(head) != head


def shared(namespace: Mapping[str, Any], *, include_code: bool = False) -> dict[str, Any]:
    """The variables a model may see, by name, sorted (a snapshot of ``namespace``)."""
    snapshot = dict(namespace)  # one C-level copy: the kernel may change it meanwhile
    return {
        name: snapshot[name]
        for name in sorted(snapshot)
        if _is_shared(name, snapshot[name], include_code)
    }


def listing(namespace: Mapping[str, Any], *, include_code: bool = False, match: str = "") -> str:
    """One line a variable: name, type, shape or length, size; a small value; secrets withheld."""
    variables = shared(namespace, include_code=include_code)
    names = [name for name in variables if match.lower() in name.lower()]
    if not names:
        return "no variables" + (f" matching {match!r}" if match else "")
    lines = [_entry(name, variables[name]) for name in names[:MAX_LISTED]]
    if len(names) > MAX_LISTED:
        lines.append(
            f"… and {len(names) - MAX_LISTED:,} more (list_variables(match=...) narrows the list)"
        )
    return scrub(bounded("\n".join(lines)), namespace)


def describe(
    namespace: Mapping[str, Any], name: str, bounded_repr: Callable[[Any], str] = safe_repr
) -> str:
    """What ``name`` holds: a DataFrame's shape, columns, dtypes and first rows, as a tool's
    table is summarised (:func:`nbchat.render.rich.rich_result`); an array's shape and
    dtype; a dict's keys; else a bounded repr (``bounded_repr``, time-limited)."""
    snapshot = dict(namespace)
    if name not in snapshot:
        close = [n for n in shared(snapshot, include_code=True) if n.lower() == name.lower()]
        hint = (
            f" (did you mean {close[0]!r}?)" if close else " (list_variables shows what there is)"
        )
        return f"no variable named {bounded(name, 100)!r}{hint}"
    value = snapshot[name]
    if not _is_shared(name, value, include_code=True):
        return f"{name!r} is not shared (a private name, IPython's or nbchat's own)"
    if is_secret(name, value):
        return f"{name} ({type_name(value)}) looks like a credential: its value is not shared"
    text = _describe(name, value, bounded_repr)
    return scrub(bounded(text), snapshot)


def error_text(error: BaseException | None, namespace: Mapping[str, Any] | None = None) -> str:
    """The last error: its type, message and a bounded traceback (most recent frames kept)."""
    if error is None:
        return "no error has been raised in this kernel"
    lines = traceback.format_exception(type(error), error, _from_the_cell(error.__traceback__))
    text = "".join(lines)
    if len(text) > MAX_TEXT:  # the end says most: keep the head line and the last frames
        text = f"{lines[0]}…\n{text[-(MAX_TEXT - len(lines[0]) - 2) :]}"
    message = " ".join(str(error).split())
    head = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return scrub(f"{bounded(head, 500)}\n\n{text.rstrip()}", namespace or {})


def cell_text(cells: Iterable[str], namespace: Mapping[str, Any] | None = None) -> str:
    """The code of cells, oldest first, each bounded, assignments to secret names hidden."""
    shown = []
    for number, code in enumerate(cells, 1):
        shown.append(f"# cell {number}\n{bounded(_hide_assignments(code), MAX_CELL_CHARS)}")
    if not shown:
        return "no cells have been run"
    return scrub(bounded("\n\n".join(shown)), namespace or {})


def scrub(text: str, namespace: Mapping[str, Any]) -> str:
    """``text`` redacted, and every string value of a secret variable replaced by ``***``
    (in markup too, where ``&``, ``<`` or a quote in it is escaped)."""
    text = redact_text(text)
    for value in _secret_values(namespace):
        for form in {value, html.escape(value), html.escape(value, quote=False)}:
            if form in text:
                text = text.replace(form, REDACTED)
    return text


# Private helpers


def _is_shared(name: str, value: Any, include_code: bool) -> bool:
    if name.startswith("_") or name in HIDDEN_NAMES:
        return False
    module = getattr(type(value), "__module__", "") or ""
    if module == "nbchat" or module.startswith("nbchat."):
        return False
    if isinstance(value, type) and (value.__module__ or "").startswith("nbchat"):
        return False
    return include_code or not isinstance(value, _CODE_TYPES)


def _from_the_cell(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback from the cell on: IPython's frame that ran the cell is left out, as
    IPython's own display of the error leaves it out (``tb_offset=1``)."""
    if tb is None:
        return None
    code = tb.tb_frame.f_code
    ipython = code.co_filename.replace("\\", "/").endswith("IPython/core/interactiveshell.py")
    return tb.tb_next if ipython and code.co_name == "run_code" else tb


def _secret_values(namespace: Mapping[str, Any]) -> list[str]:
    """The string values (4 characters or more) of the namespace's secret-named variables."""
    values = []
    for name, value in dict(namespace).items():
        long_enough = isinstance(value, str) and 4 <= len(value) <= MAX_SECRET_SCAN
        if long_enough and not name.startswith("__") and is_sensitive_name(name):
            values.append(value)
    return sorted(values, key=len, reverse=True)  # the longest first: no half-replaced value


def _hide_assignments(code: str) -> str:
    def hide(match: re.Match[str]) -> str:
        target = match["target"]
        name = target.strip("[]\"' ")
        if is_sensitive_name(name.rpartition(".")[2]):
            return f"{target}{match['sep']}{REDACTED}"
        return match[0]

    return _SECRET_ASSIGNMENT.sub(hide, code)


def type_name(value: Any) -> str:
    """The value's type as a person reads it: ``int``, ``pandas.DataFrame``."""
    kind = type(value)
    module = kind.__module__
    return (
        kind.__qualname__
        if module == "builtins"
        else f"{module.partition('.')[0]}.{kind.__qualname__}"
    )


def _kind(value: Any) -> str:
    """ "dataframe", "series", "ndarray" or "" (told by the type's name and module only)."""
    kind = type(value)
    module = kind.__module__ or ""
    if module.startswith("pandas") and kind.__name__ in ("DataFrame", "Series"):
        return kind.__name__.lower()
    if module == "numpy" and kind.__name__ in ("ndarray", "memmap"):
        return "ndarray"
    return ""


def _shape(value: Any) -> str:
    kind = _kind(value)
    if kind:
        try:
            return "shape " + " x ".join(str(int(n)) for n in value.shape)
        except Exception:
            return ""
    if isinstance(value, _SIZED):
        return f"len {len(value):,}"
    return ""


def _size(value: Any) -> int | None:
    kind = _kind(value)
    try:
        if kind == "ndarray":
            return int(value.nbytes)
        if kind == "dataframe":
            return int(value.memory_usage(index=True, deep=False).sum())
        if kind == "series":
            return int(value.memory_usage(index=True, deep=False))
        if isinstance(value, (*_SIZED, *_SCALARS)):
            return sys.getsizeof(value)
    except Exception:
        return None
    return None


def _human(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{size} B"  # pragma: no cover


def _entry(name: str, value: Any) -> str:
    parts = [f"{name}: {type_name(value)}"]
    shape = _shape(value)
    if shape:
        parts.append(shape)
    size = _size(value)
    if size is not None:
        parts.append(_human(size))
    if is_secret(name, value):
        parts.append("value withheld: looks like a credential")
    elif isinstance(value, _SCALARS) or (isinstance(value, str) and len(value) <= 60):
        parts.append(f"= {safe_repr(value)}")
    return ", ".join(parts)


def _describe(name: str, value: Any, bounded_repr: Callable[[Any], str]) -> str:
    kind = _kind(value)
    size = _size(value)
    shown = rich_result(value) if kind in ("dataframe", "series") else None
    if shown is not None:  # what a model reads of a table, decided where a tool's result is
        return f"{name} ({_human(size)}) is {shown.text}" if size else f"{name} is {shown.text}"
    head = f"{name}: {type_name(value)}"
    shape = _shape(value)
    facts = ", ".join(p for p in (shape, _human(size) if size is not None else "") if p)
    lines = [f"{head}, {facts}" if facts else head]
    if kind == "ndarray":
        lines.append(f"dtype: {value.dtype}")
        lines.append(bounded_repr(value))
    elif isinstance(value, Mapping):
        keys = list(itertools.islice(value, 50)) if isinstance(value, dict) else []
        lines.append("keys: " + ", ".join(safe_repr(k) for k in keys))
        if isinstance(value, dict) and len(value) > 50:
            lines.append(f"… and {len(value) - 50:,} more keys")
    else:
        lines.append(bounded_repr(value))
    return "\n".join(lines)
