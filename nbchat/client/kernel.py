"""The kernel tools: the notebook's own state offered to the model, opt-in.

``ChatClient(kernel_tools=True)`` (and ``ChatWidget(kernel_tools=True)``) adds
client tools that run in this kernel and read it through a :class:`Kernel`:

- ``list_variables``: the user's variables, type, shape or length, size;
- ``describe_variable(name)``: a DataFrame's columns, dtypes, shape and first
  rows, an array's shape and dtype, a dict's keys, else a bounded repr (made
  on nbchat's threads within :data:`REPR_SECONDS`: one that raises or hangs is
  one line);
- ``last_error()``: the last exception, type, message, bounded traceback;
- ``cell_history(n=5)``: the code of the last cells run;
- with ``run_code=True``, ``run_code(code)`` (:mod:`nbchat.client.runcode`):
  it always waits for approval, and a panel never offers "Always allow" for it
  (:func:`asks_each_time`); re-offer it with ``confirm=False`` to run unasked.

What is shared and what is withheld is :mod:`nbchat.namespace`'s, pure. A
:class:`Kernel` reads IPython (``get_ipython().user_ns``, its
``history_manager``, ``sys.last_value``); tests and scripts pass their own
(``Kernel(namespace=lambda: ns)``). Under a replay these tools run again, as
every client tool does, and a changed result is reported
(``tool_result_differs``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import ConfigError
from ..mentions import context_for
from ..namespace import (
    MAX_HISTORY_CELLS,
    bounded,
    cell_text,
    describe,
    error_text,
    listing,
    safe_repr,
    scrub,
)
from ..protocol import UserMessage
from ..render.richtypes import Output
from ..tools import THREADS
from .runcode import RUN_SECONDS
from .runcode import run_code as _run_code
from .tools import ClientTool

__all__ = [
    "KERNEL_TOOLS",
    "REPR_SECONDS",
    "Kernel",
    "asks_each_time",
    "kernel_tools",
    "offer_kernel_tools",
    "with_mentions",
]

REPR_SECONDS = 2.0
"""The longest one value's repr may take in ``describe_variable``."""
KERNEL_TOOLS = ("list_variables", "describe_variable", "last_error", "cell_history")
_ASK_EACH_TIME = "__nbchat_ask_each_time__"


def _no_history(n: int) -> list[str]:
    return []


def _sys_last_error() -> BaseException | None:
    error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return error if isinstance(error, BaseException) else None


@dataclass(frozen=True)
class Kernel:
    """Where the kernel tools read: the namespace, the cells run, the last error."""

    namespace: Callable[[], dict[str, Any]]
    """The user's namespace (IPython's ``user_ns``): read by the tools, run in by run_code."""
    history: Callable[[int], list[str]] = field(default=_no_history)
    """The code of the last ``n`` cells, oldest first."""
    last_error: Callable[[], BaseException | None] = field(default=_sys_last_error)
    """The last exception raised in a cell (``sys.last_value``), if any."""

    @classmethod
    def ipython(cls) -> Kernel:
        """This IPython kernel; :class:`ConfigError` (one line) outside IPython."""
        try:
            from IPython import get_ipython
        except ImportError:
            shell = None
        else:
            shell = get_ipython()
        if shell is None:
            raise ConfigError(
                "kernel_tools=True needs an IPython kernel "
                "(pass kernel_tools=Kernel(...) elsewhere)"
            )

        def history(n: int) -> list[str]:
            cells = list(getattr(shell.history_manager, "input_hist_raw", []) or [])
            return [cell for cell in cells[-n:] if cell.strip()]

        return cls(namespace=lambda: shell.user_ns, history=history)


def asks_each_time(tool: ClientTool | None) -> bool:
    """Whether a panel must ask before every call of ``tool`` (no "Always allow": run_code)."""
    return tool is not None and tool.confirm and getattr(tool.function, _ASK_EACH_TIME, False)


def kernel_tools(
    kernel: Kernel, *, run_code: bool = False, timeout: float = RUN_SECONDS
) -> list[ClientTool]:
    """The kernel tools reading ``kernel`` (and ``run_code``, confirmed, when asked)."""

    def list_variables(include_code: bool = False, match: str = "") -> str:
        """List the notebook's variables: name, type, shape or length, size, small values.

        include_code: also list modules, functions and classes.
        match: only names containing this text.
        """
        return listing(kernel.namespace(), include_code=include_code, match=match)

    def describe_variable(name: str) -> str:
        """Describe one variable of the notebook: a DataFrame's columns, dtypes, shape and
        first rows; an array's shape and dtype; a dict's keys; else its value, bounded."""
        return describe(kernel.namespace(), name, timed_repr)

    def last_error() -> str:
        """The last error raised in the notebook: its type, message and traceback."""
        return error_text(kernel.last_error(), kernel.namespace())

    def cell_history(n: int = 5) -> str:
        """The code of the last n cells run in the notebook, oldest first."""
        count = max(1, min(n, MAX_HISTORY_CELLS))
        return cell_text(kernel.history(count), kernel.namespace())

    async def run(code: str) -> Output:
        """Run Python code in the notebook's namespace, as a cell would (after the person
        approves it); returns its stdout, stderr, the value of a last expression, or its error."""
        namespace = kernel.namespace()
        output = await _run_code(code, namespace, timeout=timeout)
        return Output(
            scrub(output.text, namespace),
            output.shown,
            lambda text: scrub(text, namespace),
        )

    functions: Sequence[Callable[..., Any]] = (
        list_variables,
        describe_variable,
        last_error,
        cell_history,
    )
    tools = [ClientTool.of(function) for function in functions]
    if run_code:
        setattr(run, _ASK_EACH_TIME, True)
        tools.append(ClientTool.of(run, name="run_code", confirm=True))
    return tools


def offer_kernel_tools(
    tool: Callable[..., Any], kernel: bool | Kernel, *, run_code: bool = False
) -> Kernel:
    """Offer a client's ``kernel_tools=``/``run_code=`` through its ``tool`` method; the kernel
    they read (for ``@``-mentions too).

    True reads this IPython kernel (:class:`ConfigError` outside one).
    """
    if kernel is False:
        raise ConfigError("run_code=True needs kernel_tools=True")
    reading = Kernel.ipython() if kernel is True else kernel
    for offered in kernel_tools(reading, run_code=run_code):
        tool(offered.function, name=offered.name, confirm=offered.confirm)
    return reading


def with_mentions(message: UserMessage, kernel: Kernel | None) -> UserMessage:
    """``message`` with the description of each variable it mentions (``@df``) as its context.

    Only for a client with kernel tools (sharing the namespace is a choice), and
    only when the caller gave no context of its own; described as
    ``describe_variable`` does (bounded, redacted, secrets withheld), within
    :data:`~nbchat.mentions.MAX_CONTEXT_BYTES`; the reprs of all its mentions together
    take at most :data:`REPR_SECONDS`, so sending is never held longer.
    """
    if kernel is None or message.context is not None or "@" not in message.message:
        return message
    deadline = time.monotonic() + REPR_SECONDS  # all the mentions' reprs together, not each

    def within(value: Any) -> str:
        return timed_repr(value, max(0.05, deadline - time.monotonic()))

    context = context_for(message.message, kernel.namespace(), within)
    return message.model_copy(update={"context": context}) if context else message


def timed_repr(value: Any, seconds: float = REPR_SECONDS) -> str:
    """``safe_repr(value)`` on nbchat's threads within ``seconds``; one line if it fails."""
    job = THREADS.submit(lambda: safe_repr(value))
    try:
        text: str = job.future.result(timeout=seconds)
        return text
    except TimeoutError:
        THREADS.abandon(job)
        return f"(its repr did not finish within {seconds:g}s)"
    except BaseException as exc:  # the repr's own error, SystemExit included
        message = " ".join(str(exc).split())
        return bounded(f"(its repr raised {type(exc).__name__}: {message})", 300)
