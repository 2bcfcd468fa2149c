"""Shared fixtures: real servers on loopback, port 0, never mocks."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from nbchat.server import DemoServer, serve_demo


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    """The reference server on a free loopback port, replying without delay."""
    async with serve_demo(port=0) as server:
        yield server


TIERS = ("unit", "loopback", "kernel", "browser", "model", "soak")
"""The markers of pyproject.toml's tiers: each test carries exactly one."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give nbval's notebook cells the ``kernel`` tier, and refuse a test in no tier or in two.

    A test module says its tier with ``pytestmark``; a notebook cannot, and every
    cell of one runs in a real kernel.
    """
    wrong = []
    for item in items:
        if item.nodeid.split("::")[0].endswith(".ipynb"):
            item.add_marker(pytest.mark.kernel)
        tiers = {mark.name for mark in item.iter_markers() if mark.name in TIERS}
        if len(tiers) != 1:
            wrong.append(f"{item.nodeid}: {sorted(tiers) or 'no tier'}")
    if wrong:
        tiers = ", ".join(TIERS)
        raise pytest.UsageError(f"each test needs exactly one tier ({tiers}): " + "; ".join(wrong))


@pytest.fixture(autouse=True)
def _unit_tests_open_no_socket(request: pytest.FixtureRequest) -> Iterator[None]:
    """A ``unit`` test that binds or connects a socket fails: the tier's promise, checked.

    An event loop's own self-pipe is a ``socketpair``, which neither binds nor
    connects, so pure asyncio code still runs.
    """
    if request.node.get_closest_marker("unit") is None:
        yield
        return

    def refuse(self: socket.socket, *args: object) -> None:
        raise AssertionError(f"a unit test opened a network socket ({args!r}): mark it loopback")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "bind", refuse)
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        yield


def pytest_configure(config: pytest.Config) -> None:
    """Under ``coverage run``, let nbval's notebook kernels exit so they save what they measured.

    nbval kills its kernels (``shutdown_kernel(now=True)``, SIGKILL): a killed
    process never writes its coverage data, so nbchat's code run by the
    notebooks would count as unrun. A graceful shutdown (a shutdown request,
    then a kill only if the kernel hangs) lets coverage's exit handler run.
    ``COVERAGE_PROCESS_CONFIG`` is how coverage (``patch = subprocess``) tells
    child processes to measure; without it nothing changes.
    """
    if "COVERAGE_PROCESS_CONFIG" not in os.environ:
        return
    try:
        from nbval.kernel import RunningKernel  # type: ignore[import-untyped]
    except ImportError:  # nbval not installed: no notebook kernels to stop
        return

    def stop(self: Any) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)
        del self.km

    patch = pytest.MonkeyPatch()
    patch.setattr(RunningKernel, "stop", stop)
    config.add_cleanup(patch.undo)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Close the widgets the tests left open, while ipywidgets can still do so.

    Left to the interpreter's exit, each one's ``__del__`` runs after ipywidgets'
    class state is gone and prints a traceback: thousands of lines of noise
    after the summary.
    """
    widgets = sys.modules.get("ipywidgets")
    if widgets is not None:
        widgets.Widget.close_all()
