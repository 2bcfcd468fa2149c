"""The demo agent's tools: plain synchronous functions returning JSON-able results.

Each tool raises :class:`~nbchat.exceptions.ToolError` on bad input, with a one-line message the
agent shows as the tool's result. The tools are safe to expose to anyone who can
reach the server: the calculator walks the syntax tree itself (``eval`` is never
called) under size limits, and ``network_check`` only reads this machine's own
state; it sends nothing off the machine.
"""

from __future__ import annotations

import ast
import contextlib
import math
import operator
import socket
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ...exceptions import ToolError

__all__ = [
    "MAX_EXPRESSION_LENGTH",
    "MAX_RESULT_BITS",
    "calculator",
    "current_time",
    "network_check",
]

MAX_EXPRESSION_LENGTH = 200
"""Longer expressions are refused: parsing and walking stay cheap."""

MAX_RESULT_BITS = 4096
"""Integer results (and intermediate values) above 2**4096 are refused, so no
expression can make the server spend seconds or gigabytes on one big number."""


# Calculator

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def calculator(expression: str) -> Number:
    """Evaluate arithmetic: numbers, ``+ - * / // % **``, unary signs and parentheses."""
    if not isinstance(expression, str) or not expression.strip():
        raise ToolError("expected an arithmetic expression such as 6*7")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ToolError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    if "^" in expression:
        raise ToolError("'^' is not supported: use ** for powers")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"not a valid arithmetic expression: {exc.msg}") from None
    result = _evaluate(tree.body)
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        return int(result)  # 10/2 reads better as 5 than 5.0
    return result


def _evaluate(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ToolError(f"only numbers are allowed, not {value!r}")
        return _checked(value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _evaluate(node.left)
        right = _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        try:
            result = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("the result is too large") from None
        return _checked(result)
    raise ToolError(f"{_describe(node)} is not allowed: only numbers and + - * / // % **")


def _check_power(base: Number, exponent: Number) -> None:
    """Refuse a power before computing it if its result would exceed the size limit."""
    if base == 0 and exponent < 0:
        raise ToolError("division by zero (zero to a negative power)")
    magnitude = abs(base)
    if magnitude <= 1 or exponent <= 0:
        return  # the result is at most 1 in size, or a fraction
    # Compare exponents, not results: exponent may be too big for a float.
    if exponent > MAX_RESULT_BITS**2 or exponent * math.log2(magnitude) > MAX_RESULT_BITS:
        raise ToolError(f"the result would exceed 2**{MAX_RESULT_BITS}")


def _checked(value: Any) -> Number:
    if isinstance(value, complex):
        raise ToolError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_RESULT_BITS:
        raise ToolError(f"the result would exceed 2**{MAX_RESULT_BITS}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("the result is too large")
    assert isinstance(value, int | float)
    return value


def _describe(node: ast.AST) -> str:
    names = {
        ast.Name: "a name",
        ast.Attribute: "attribute access",
        ast.Call: "a function call",
        ast.Subscript: "subscripting",
        ast.Compare: "a comparison",
        ast.BoolOp: "a boolean operator",
        ast.Lambda: "a lambda",
    }
    for kind, text in names.items():
        if isinstance(node, kind):
            return text
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        return f"the operator {type(node.op).__name__}"
    return f"a {type(node).__name__}"


# Clock


def current_time() -> dict[str, str]:
    """This machine's local time as an ISO 8601 timestamp, with its timezone."""
    now = datetime.now().astimezone()
    return {
        "iso": now.isoformat(timespec="seconds"),
        "timezone": now.tzname() or "local",
        "utc_offset": now.strftime("%z"),
    }


# Network


def network_check(
    sys_net: Path = Path("/sys/class/net"),
    resolv_conf: Path = Path("/etc/resolv.conf"),
) -> dict[str, Any]:
    """Read this machine's interfaces, DNS configuration and local name resolution.

    Nothing is sent anywhere: it reads the kernel's interface list and files, and
    resolves ``localhost`` (answered by the hosts file). The paths are parameters
    so tests can point them at fixtures.
    """
    interfaces = _interfaces(sys_net)
    dns = _resolv_conf(resolv_conf)
    localhost = _resolve_localhost()
    up = [i["name"] for i in interfaces if i["state"] == "up" and not _is_loopback(i["name"])]
    problems: list[str] = []
    if not up:
        problems.append("no network interface other than loopback is up")
    if not dns["nameservers"]:
        problems.append("no DNS nameserver is configured")
    if not localhost:
        problems.append("localhost does not resolve")
    return {
        "hostname": socket.gethostname(),
        "interfaces": interfaces,
        "interfaces_up": up,
        "dns": dns,
        "localhost": localhost,
        "problems": problems,
    }


def _is_loopback(name: str) -> bool:
    return name == "lo" or name.startswith("lo0") or name.lower().startswith("loopback")


def _interfaces(sys_net: Path) -> list[dict[str, Any]]:
    try:
        pairs = socket.if_nameindex()
    except (OSError, AttributeError):
        pairs = []
    names = {name: index for index, name in pairs}
    if sys_net.is_dir():
        for entry in sys_net.iterdir():
            names.setdefault(entry.name, 0)
    result = []
    for name in sorted(names):
        state = "unknown"
        with contextlib.suppress(OSError):
            state = (sys_net / name / "operstate").read_text().strip() or "unknown"
        if state == "unknown" and _is_loopback(name):
            state = "up"  # Linux reports loopback as "unknown" although it works
        result.append({"name": name, "index": names[name], "state": state})
    return result


def _resolv_conf(path: Path) -> dict[str, Any]:
    nameservers: list[str] = []
    search: list[str] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {"file": str(path), "readable": False, "nameservers": [], "search": []}
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            nameservers.append(fields[1])
        elif fields and fields[0] in ("search", "domain"):
            search = fields[1:]
    return {"file": str(path), "readable": True, "nameservers": nameservers, "search": search}


def _resolve_localhost() -> list[str]:
    try:
        infos = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})
