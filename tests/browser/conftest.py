"""Fixtures for the browser tests: one JupyterLab, one Chromium, a fresh page per test.

Without Chromium or Playwright these tests skip, saying why; with ``CI=true``
they fail instead, so CI can never pass by skipping them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .lab import CHROMIUM_ARGS, JupyterLab, find_chromium
from .page import RESULTS, TIMEOUT_MS, Watch

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

VIEWPORT: ViewportSize = {"width": 1100, "height": 1400}
"""Tall enough that the quickstart's whole panel is on screen for its screenshot."""


def _require_browser() -> str:
    """The Chromium to drive; skip (or fail under CI=true) when it or Playwright is missing."""
    if importlib.util.find_spec("playwright") is None:
        reason = "playwright is not installed (pip install -e '.[test]')"
    elif (chromium := find_chromium()) is None:
        reason = "no Chromium found (Debian: apt-get install chromium)"
    else:
        return chromium
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run: {reason}; CI=true requires them", pytrace=False)
    pytest.skip(f"browser tests need a browser: {reason}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium executable."""
    return _require_browser()


@pytest.fixture(scope="session")
def lab(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """JupyterLab on loopback with a random token, stopped with its kernels at the end."""
    server = JupyterLab(tmp_path_factory.mktemp("jupyterlab"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    """Headless Chromium through Playwright, for this module's tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item, so the page fixture knows a test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Browser, lab: JupyterLab, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context and page; its kernels are shut down afterwards.

    When the test fails, the page is saved to test-results/ for a look at what went wrong.
    """
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, reduced_motion="reduce")
    page = context.new_page()
    page.set_default_timeout(3 * TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)  # its own default, 5 s, would not scale
    yield page
    report = getattr(request.node, "report_call", None)
    if report is None or report.failed:
        RESULTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):  # a diagnostic: never the reason a test fails
            page.screenshot(path=RESULTS / f"{request.node.name}.png")
    context.close()
    lab.shutdown_kernels()


@pytest.fixture
def watch(page: Page) -> Watch:
    """Records the dialogs, requests and uncaught errors of ``page`` from now on."""
    recorded = Watch()
    page.on("dialog", recorded.on_dialog)
    page.on("request", recorded.on_request)
    page.on("pageerror", lambda error: recorded.page_errors.append(str(error)))
    return recorded


@pytest.fixture(scope="session")
def quickstart() -> Path:
    """notebooks/quickstart.ipynb, the notebook a new user runs first."""
    path = Path(__file__).parents[2] / "notebooks" / "quickstart.ipynb"
    if not path.exists():
        pytest.fail(f"{path} is missing", pytrace=False)
    return path
