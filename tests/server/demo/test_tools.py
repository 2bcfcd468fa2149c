"""The demo agent's tools, called synchronously: calculator safety, clock, network check."""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path

import pytest

from nbchat.exceptions import ToolError
from nbchat.server.demo.tools import MAX_EXPRESSION_LENGTH, calculator, current_time, network_check

pytestmark = pytest.mark.loopback

# Calculator


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("6*7", 42),
        ("(2+3)**2 / 5", 5),
        ("10 / 4", 2.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("-(3 - 5)", 2),
        ("+4", 4),
        ("2 ** -1", 0.5),
        ("0.1 + 0.2", 0.1 + 0.2),
        ("1.5e3 * 2", 3000),
        ("((1))", 1),
    ],
)
def test_calculator_evaluates_arithmetic(expression: str, expected: float) -> None:
    """Numbers with + - * / // % ** and parentheses evaluate like Python arithmetic."""
    assert calculator(expression) == expected


def test_calculator_returns_whole_floats_as_ints() -> None:
    """A whole result is an int, so replies read 5 rather than 5.0."""
    result = calculator("10 / 2")
    assert result == 5 and isinstance(result, int)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('true')", "function call"),
        ("x + 1", "name"),
        ("(1).real", "attribute"),
        ("abs(-1)", "function call"),
        ("[1][0]", "subscripting|List"),
        ("1 < 2", "comparison"),
        ("True + 1", "only numbers"),
        ("'a' * 3", "only numbers"),
        ("1j * 1j", "only numbers"),
        ("lambda: 1", "lambda"),
        ("1 << 100", "LShift"),
        ("2 ^ 3", r"use \*\*"),
        ("1 +", "not a valid"),
        ("", "expected an arithmetic"),
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression: str, reason: str) -> None:
    """Names, attributes, calls, other types and operators raise ToolError saying why."""
    with pytest.raises(ToolError, match=reason):
        calculator(expression)


@pytest.mark.parametrize(
    "expression",
    ["9**9**9", "2**100000", "10**5000", "(2**4000)*(2**4000)", "99**99**99", "2.5**1e10"],
)
def test_calculator_refuses_huge_results_quickly(expression: str) -> None:
    """Powers and products beyond 2**4096 are refused before they cost time or memory."""
    with pytest.raises(ToolError, match=r"exceed|too large"):
        calculator(expression)


def test_calculator_refuses_long_expressions() -> None:
    """An expression above the length limit is refused without being parsed."""
    with pytest.raises(ToolError, match="longer than"):
        calculator("1+" * MAX_EXPRESSION_LENGTH + "1")


@pytest.mark.parametrize("expression", ["1/0", "1//0", "5 % 0", "0 ** -1", "1.0 / 0.0"])
def test_calculator_reports_division_by_zero(expression: str) -> None:
    """Division by zero in any form is a ToolError, not a ZeroDivisionError."""
    with pytest.raises(ToolError, match="division by zero"):
        calculator(expression)


def test_calculator_refuses_complex_results() -> None:
    """A fractional power of a negative number is refused rather than returning a complex."""
    with pytest.raises(ToolError, match="not a real number"):
        calculator("(-8) ** 0.5")


# Clock


def test_current_time_is_an_iso_timestamp_with_its_timezone() -> None:
    """current_time returns a parseable ISO timestamp, the zone name and its UTC offset."""
    now = current_time()
    parsed = datetime.fromisoformat(now["iso"])
    assert parsed.tzinfo is not None
    assert now["timezone"]
    assert now["utc_offset"].startswith(("+", "-"))


# Network


def test_network_check_reads_interfaces_and_dns_from_files(tmp_path: Path) -> None:
    """Interface states come from sysfs and DNS settings from resolv.conf, comments ignored."""
    sys_net = tmp_path / "net"
    for name, state in [("eth0", "up"), ("wlan0", "down"), ("lo", "unknown")]:
        (sys_net / name).mkdir(parents=True)
        (sys_net / name / "operstate").write_text(state + "\n")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(
        "# generated\nnameserver 10.0.0.53\nnameserver 9.9.9.9 # second\nsearch a.b c.d\n"
    )

    report = network_check(sys_net=sys_net, resolv_conf=resolv)

    states = {i["name"]: i["state"] for i in report["interfaces"]}
    assert states["eth0"] == "up" and states["wlan0"] == "down" and states["lo"] == "up"
    assert report["interfaces_up"] == ["eth0"]
    assert report["dns"]["nameservers"] == ["10.0.0.53", "9.9.9.9"]
    assert report["dns"]["search"] == ["a.b", "c.d"]
    assert report["hostname"] == socket.gethostname()


def test_network_check_reports_problems(tmp_path: Path) -> None:
    """No interface up and no nameserver are both listed as problems."""
    sys_net = tmp_path / "net"
    (sys_net / "eth9").mkdir(parents=True)
    (sys_net / "eth9" / "operstate").write_text("down\n")
    report = network_check(sys_net=sys_net, resolv_conf=tmp_path / "missing.conf")
    assert report["dns"]["readable"] is False
    problems = " ".join(report["problems"])
    assert "no network interface" in problems and "no DNS nameserver" in problems


def test_network_check_resolves_localhost_on_this_machine() -> None:
    """The real check on this machine resolves localhost to a loopback address."""
    report = network_check()
    assert any(address in ("127.0.0.1", "::1") for address in report["localhost"])
