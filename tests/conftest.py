"""Shared fixtures: real servers on loopback, port 0, never mocks."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from nbchat.server import DemoServer, serve_demo


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    """The reference server on a free loopback port, replying without delay."""
    async with serve_demo(port=0) as server:
        yield server


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
