"""The nbchat pytest plugin: real chat servers for tests, and offline notebooks in CI.

Registered through the ``pytest11`` entry point, so installing nbchat is enough:

* fixture ``nbchat_server``: the reference server (demo agent) on a free
  loopback port for one test; its value is the WebSocket URL.
* fixture ``nbchat_replay``: a factory, ``url = nbchat_replay("chat.jsonl",
  speed=None)``, starting a replay server for a transcript; every server it
  started is stopped when the test ends.
* option ``--nbchat-replay FILE``: one replay server for the whole session,
  whose URL is exported as ``$NBCHAT_REPLAY`` and ``$NBCHAT_WS_URL`` (restored
  at the end), so notebooks run by nbval, whose kernels inherit the
  environment, talk to it offline and deterministically.
* replay wins: while a replay is active (the option, the fixture, or a
  notebook's ``nbchat.replay`` metadata under nbval), every client and widget
  made in this process or its kernels talks to the replay server, whatever URL
  or backend it was given (``ChatWidget(backend=OpenAIAgent(...))`` too), and
  says so in one ``nbchat`` WARNING log line (:func:`nbchat.config.replay_instead`).
* under nbval (``--nbval`` or ``--nbval-lax``): a notebook whose cells saved a
  panel's static conversation gets one more item, ``<notebook>::nbchat saved
  conversations``, comparing the saved conversations with the ones the run
  ended with (``nbval.py``); other notebooks are validated as before.

Servers run on their own event loop in a thread (``start_in_thread``), so the
fixtures are plain synchronous ones that work the same in sync and async tests.
pytest loads this module in every session of an environment where nbchat is
installed, so it starts nothing unless a fixture or the option asks for it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ..config import REPLAY_ENV, URL_ENV
from .replay import replaying

if TYPE_CHECKING:
    from ..server import ChatServer, ReplayServer

__all__ = [
    "nbchat_replay",
    "nbchat_server",
    "pytest_addoption",
    "pytest_configure",
    "pytest_report_header",
]

ReplayFactory = Callable[..., str]
"""``nbchat_replay(path, speed=None, **server_options) -> url``."""

_SESSION: pytest.StashKey[ReplayServer] = pytest.StashKey()
_SESSION_NOTES: pytest.StashKey[list[str]] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--nbchat-replay FILE``."""
    group = parser.getgroup("nbchat", "nbchat chat servers")
    group.addoption(
        "--nbchat-replay",
        metavar="FILE",
        default=None,
        help="replay this nbchat transcript for the whole session: every nbchat client and "
        "widget (in notebooks under nbval too) talks to it offline, whatever URL or backend "
        f"it was given (${REPLAY_ENV}, ${URL_ENV})",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Check saved conversations under nbval; with ``--nbchat-replay``, start its server."""
    if getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        from . import nbval

        config.pluginmanager.register(nbval, "nbchat-nbval")
    path = config.getoption("nbchat_replay", None)
    if path is None:
        return
    _require_nbval_for_notebooks(config)
    from ..exceptions import TranscriptError
    from ..server import ReplayServer

    # Skipped lines (a torn last line) are reported in the header, not raised: a
    # project's filterwarnings = error must not turn a tolerated defect into a failure.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            server = ReplayServer.start_in_thread(path)
        except TranscriptError as exc:
            raise pytest.UsageError(f"--nbchat-replay: {exc}") from None
        except OSError as exc:
            raise pytest.UsageError(f"--nbchat-replay: cannot start a server: {exc}") from None
    previous = os.environ.get(URL_ENV)
    os.environ[URL_ENV] = server.url
    unreplay = replaying(server.url, first=True)
    config.stash[_SESSION] = server
    config.stash[_SESSION_NOTES] = [str(warning.message) for warning in caught]

    def stop() -> None:
        unreplay()
        if os.environ.get(URL_ENV) == server.url:
            if previous is None:
                os.environ.pop(URL_ENV, None)
            else:
                os.environ[URL_ENV] = previous
        server.close_sync()

    config.add_cleanup(stop)


def _require_nbval_for_notebooks(config: pytest.Config) -> None:
    """A notebook named without ``--nbval`` would be "not found" by pytest: say what is missing.

    Replaying for notebooks is the option's main use, and pytest alone collects
    no ``.ipynb``: its own message names the file, not the cause.
    """
    if getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        return
    notebooks = [arg for arg in config.args if arg.split("::")[0].endswith(".ipynb")]
    if notebooks:
        raise pytest.UsageError(
            f"--nbchat-replay: {notebooks[0]} is a notebook, which pytest runs only with "
            "nbval: add --nbval (or --nbval-lax)"
        )


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which transcript the session replays, where, and which lines it skipped."""
    server = config.stash.get(_SESSION, None)
    if server is None:
        return []
    count = server.replay.exchange_count
    lines = [
        f"nbchat: replaying {config.getoption('nbchat_replay')} ({count} recorded "
        f"message{'' if count == 1 else 's'}) at {server.url} (${URL_ENV})"
    ]
    lines.extend(f"nbchat: {note}" for note in config.stash.get(_SESSION_NOTES, []))
    return lines


@pytest.fixture
def nbchat_server() -> Iterator[str]:
    """The reference server (demo agent, no delay) on a free loopback port: its URL."""
    from ..server import DemoServer

    server = DemoServer.start_in_thread(port=0)
    try:
        yield server.url
    finally:
        server.close_sync()


@pytest.fixture
def nbchat_replay() -> Iterator[ReplayFactory]:
    """A factory starting replay servers for transcripts: ``url = nbchat_replay(path)``.

    From the first call to the end of the test, replay wins: every client made
    talks to the first server started, whatever URL it was given (a URL this
    factory returned is kept).
    """
    from ..server import ReplayServer

    servers: list[ChatServer] = []
    undo: list[Callable[[], None]] = []

    def start(
        transcript: str | os.PathLike[str], speed: float | None = None, **options: Any
    ) -> str:
        server = ReplayServer.start_in_thread(transcript, speed=speed, **options)
        servers.append(server)
        undo.append(replaying(server.url, first=len(servers) == 1))
        return server.url

    try:
        yield start
    finally:
        for unreplay in undo:
            unreplay()
        for server in servers:
            server.close_sync()
