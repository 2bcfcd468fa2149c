"""Strict nbval for notebooks that saved their conversations: checked once, at the end.

nbval compares each cell's outputs with the saved ones as they were first
sent, right after the cell ran, and drops ``update_display_data``. A panel's
static conversation (``nbval_displays``) is saved as it was at the end, after
updates sent while later cells ran, so nbval would compare the saved final
conversation with the empty one of display time.

This plugin, registered by ``nbchat.testing`` whenever ``--nbval`` or
``--nbval-lax`` is on, changes nothing in a notebook with no saved
conversation. In one with saved conversations (in cells whose outputs nbval
checks):

* the marked outputs leave those cells' comparison, on both sides: taken out
  of the saved cell at collection, and their display messages (and the
  updates to them) kept from nbval where it reads the kernel's IOPub channel
  (``kc.get_iopub_msg``, jupyter_client's public API), which also silences
  nbval's "unhandled iopub msg: update_display_data" for them;
* one more item, ``<notebook>::nbchat saved conversations``, runs after the
  last cell: it waits until the kernel has published everything (a
  ``kernel_info`` request as a barrier), then compares each cell's marked
  outputs as they ended with the saved ones, with nbval's own comparison
  (its sanitize patterns, its skipped keys, its diff).

A notebook that names its recording in its metadata, ``{"nbchat": {"replay":
"models.jsonl"}}`` (a path relative to the notebook), runs against a replay of it
under nbval: a replay server starts before its kernel, which inherits
``$NBCHAT_REPLAY``, so every client and widget in it talks to the replay
whatever URL or backend its cells give (replay wins), and it stops after the
notebook. Run outside nbval (``jupyter nbconvert --execute``, JupyterLab) the
same cells talk to the backend they name, which is how the recording is made.

It relies on nbval 0.11's ``IPyNbFile.kernel.kc`` and ``IPyNbCell.cell``,
``.cell_num``, ``.options`` and ``.compare_outputs``; if they are missing the
notebook's check fails and says so, it never passes silently.
"""

from __future__ import annotations

import queue
import re
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbval.plugin import IPyNbCell, IPyNbFile  # type: ignore[import-untyped]

from .. import exceptions
from .displays import STATIC_METADATA, DisplayTracker, is_static
from .replay import replaying

__all__ = [
    "ITEM_NAME",
    "REPLAY_KEY",
    "SavedConversations",
    "SavedConversationsDiffer",
    "nbchat_reason",
    "pytest_make_collect_report",
    "pytest_runtest_call",
    "pytest_runtest_makereport",
]

ITEM_NAME = "nbchat saved conversations"
"""The name of the item checking a notebook's saved conversations."""

REPLAY_KEY = "replay"
"""The key of a notebook's ``nbchat`` metadata naming the transcript it replays under nbval."""

SETTLE_TIMEOUT = 30.0
"""The longest the check waits for the kernel to publish what it still holds (seconds)."""

_CELL_ATTRIBUTES = ("cell", "cell_num", "options", "compare_outputs")


class SavedConversationsDiffer(AssertionError):
    """A saved conversation is not the one the notebook's run ended with."""


@dataclass
class _Notebook:
    """What the check of one notebook needs, kept on its ``IPyNbFile``."""

    cells: dict[int, Any]
    """Every cell item of the notebook, by cell number."""
    saved: dict[int, list[Any]]
    """The saved marked outputs of the followed cells."""
    tracker: DisplayTracker
    """The marked displays of the followed cells, as the run goes."""
    ran: set[int] = field(default_factory=set)
    """The cells pytest ran (a skipped cell counts), so a partial run is known."""
    current: int = -1
    """The cell running now, to which the next execute request belongs."""
    client: Any = None
    """The kernel client whose methods are wrapped, once."""


_STATE = pytest.StashKey[_Notebook]()
_PROBLEM = pytest.StashKey[str]()


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Add the check to a notebook with saved conversations, and take them out of its cells."""
    report = yield
    if isinstance(collector, IPyNbFile) and report.passed:
        report.result = _prepare(collector, list(report.result))
        _replay_declared(collector)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Before a followed notebook's cell runs: watch its kernel, note which cell sends what."""
    cell: Any = item  # nbval is untyped
    state = cell.parent.stash.get(_STATE, None) if isinstance(item, IPyNbCell) else None
    if state is not None:
        state.ran.add(cell.cell_num)
        state.current = cell.cell_num
        _watch(state, cell.parent.kernel.kc)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A cell that failed with one of nbchat's errors says so first, in its one line.

    nbval's report opens with "Cell execution caused an exception" and the
    cell's traceback; the reason (``not_in_transcript: ... expected ...``) is
    its last line. Put first, it is also what pytest's short summary shows.
    """
    report = yield
    if report.failed and isinstance(item, IPyNbCell) and isinstance(report.longrepr, str):
        reason = nbchat_reason(report.longrepr)
        if reason is not None:
            report.longrepr = f"{reason}\n\n{report.longrepr}"
    return report


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_NBCHAT_ERRORS = frozenset(name for name in exceptions.__all__ if name[0].isupper())


def nbchat_reason(text: str) -> str | None:
    """The last ``SomeNbchatError: reason`` line of a cell's traceback, without colours."""
    for line in reversed(_ANSI.sub("", text).splitlines()):
        name, colon, reason = line.partition(": ")
        if colon and name.strip() in _NBCHAT_ERRORS:
            return f"{name.strip()}: {reason.strip()}"
    return None


class SavedConversations(pytest.Item):
    """``<notebook>::nbchat saved conversations``: the saved conversations are the final ones."""

    def runtest(self) -> None:
        """Let the kernel settle, then compare every followed cell's conversations."""
        notebook: Any = self.parent  # an nbval IPyNbFile, untyped
        problem = notebook.stash.get(_PROBLEM, None)
        if problem is not None:
            raise SavedConversationsDiffer(problem)
        state = notebook.stash[_STATE]
        unrun = sorted(set(state.cells) - state.ran)
        if unrun:
            pytest.skip(f"cells {unrun} did not run, so the final conversations are unknown")
        if getattr(notebook, "timed_out", False):
            pytest.xfail("a cell timed out, so the final conversations are unknown")
        _settle(notebook.kernel, state)
        failures = [
            failure
            for cell, saved in state.saved.items()
            for failure in _compare(state.cells[cell], saved, state.tracker)
        ]
        if failures:
            raise SavedConversationsDiffer("\n\n".join(failures))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The differences alone: this item's own traceback says nothing."""
        if isinstance(excinfo.value, SavedConversationsDiffer):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """Named after the notebook, like nbval's cells."""
        notebook: Any = self.parent
        return self.path, None, f"{notebook.name}::{ITEM_NAME}"


# Private functions


def _prepare(notebook: pytest.Collector, items: list[Any]) -> list[Any]:
    """The notebook's items, plus the check if a checked cell saved a conversation."""
    cells = [item for item in items if isinstance(item, IPyNbCell)]
    missing = sorted({a for item in cells for a in _CELL_ATTRIBUTES if not hasattr(item, a)})
    if missing or not hasattr(notebook, "kernel"):
        if not _saves_conversations(notebook.path):
            return items
        notebook.stash[_PROBLEM] = (
            f"nbval {_nbval_version()}: its cells lack {missing or ['kernel']}, which nbchat "
            "needs to check saved conversations (nbchat was written for nbval 0.11)"
        )
        return [*items, SavedConversations.from_parent(notebook, name=ITEM_NAME)]
    saved: dict[int, list[Any]] = {}
    for item in cells:
        cell, options = item.cell, item.options
        marked = [output for output in cell.get("outputs", []) if is_static(output.get("metadata"))]
        unrun = cell.get("execution_count") is None  # nbval fails such a cell if it has outputs
        if not marked or unrun or options.get("skip") or not options.get("check"):
            continue
        saved[item.cell_num] = marked
        item.cell = nbformat.NotebookNode(cell)  # type: ignore[no-untyped-call]
        item.cell["outputs"] = [o for o in cell["outputs"] if not is_static(o.get("metadata"))]
    if not saved:
        return items
    notebook.stash[_STATE] = _Notebook(
        cells={item.cell_num: item for item in cells},
        saved=saved,
        tracker=DisplayTracker.following(saved),
    )
    return [*items, SavedConversations.from_parent(notebook, name=ITEM_NAME)]


def _replay_declared(notebook: Any) -> None:
    """Run a notebook naming a transcript in its metadata against a replay of it (see above).

    nbval starts the kernel in the notebook's ``setup``, so the replay starts
    just before it and stops after its ``teardown`` (both read by pytest from the
    notebook when it sets it up).
    """
    metadata = getattr(getattr(notebook, "nb", None), "metadata", None) or {}
    name = (metadata.get("nbchat") or {}).get(REPLAY_KEY)
    if not name:
        return
    transcript = Path(notebook.path).parent / str(name)
    setup: Callable[[], None] = notebook.setup
    teardown: Callable[[], None] = notebook.teardown
    stops: list[Callable[[], None]] = []

    def replayed_setup() -> None:
        from ..server import ReplayServer

        server = ReplayServer.start_in_thread(transcript)
        stops.append(server.close_sync)
        stops.append(replaying(server.url, first=True))
        setup()

    def replayed_teardown() -> None:
        try:
            teardown()
        finally:
            while stops:
                stops.pop()()

    notebook.setup = replayed_setup
    notebook.teardown = replayed_teardown


def _watch(state: _Notebook, client: Any) -> None:
    """Wrap the kernel client nbval reads from: execute requests noted, followed displays kept."""
    if state.client is client:
        return
    get_iopub_msg: Callable[..., dict[str, Any]] = client.get_iopub_msg
    execute: Callable[..., str] = client.execute

    def watched_get_iopub_msg(timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            msg = get_iopub_msg(timeout=left)
            if not state.tracker.observe(msg):
                return msg

    def watched_execute(*args: Any, **kwargs: Any) -> str:
        msg_id = execute(*args, **kwargs)
        state.tracker.executed(msg_id, state.current)
        return msg_id

    client.get_iopub_msg = watched_get_iopub_msg
    client.execute = watched_execute
    state.client = client


def _settle(kernel: Any, state: _Notebook) -> None:
    """Read IOPub up to the reply to a ``kernel_info`` request: all the kernel published before."""
    if kernel is None or not kernel.is_alive():
        return  # nothing more will come; compare what was seen
    client = kernel.kc
    _watch(state, client)
    msg_id = client.kernel_info()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        try:
            msg = client.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise SavedConversationsDiffer(
                f"the kernel published nothing for {SETTLE_TIMEOUT:g} s after the last cell: "
                "the final conversations are unknown"
            ) from None
        if (
            msg.get("parent_header", {}).get("msg_id") == msg_id
            and msg["msg_type"] == "status"
            and msg["content"].get("execution_state") == "idle"
        ):
            return


def _compare(cell: Any, saved: list[Any], tracker: DisplayTracker) -> list[str]:
    """The differences between one cell's saved conversations and its final ones, nbval's way."""
    final = tracker.final(cell.cell_num)
    where = f"Cell {cell.cell_num}"
    if len(final) != len(saved):
        return [
            f"{where}: {len(saved)} saved conversation output(s), but the run displayed "
            f"{len(final)}\n\nInput:\n{cell.cell.get('source', '')}"
        ]
    failures: list[str] = []
    for index, (reference, slot) in enumerate(zip(saved, final, strict=True), start=1):
        if not is_static(slot.output["metadata"]):  # nbval compares no metadata: checked here
            failures.append(
                f"{where}: conversation {index} of {len(saved)} lost its metadata "
                f"{STATIC_METADATA} in an update, so a saved file would not mark it"
            )
            continue
        test = nbformat.from_dict(slot.output)  # type: ignore[no-untyped-call]
        if cell.compare_outputs([test], [reference]):
            continue
        failures.append(
            f"{where}: saved conversation {index} of {len(saved)} differs from the final one "
            f"(first displayed by this cell, then updated {slot.updates} time(s) during the run)"
            + "\n"
            + "\n".join(getattr(cell, "comparison_traceback", []))
        )
    return failures


def _saves_conversations(path: Path) -> bool:
    """Whether a notebook file holds a marked output (read only when nbval changed shape)."""
    try:
        notebook = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    except Exception:  # nbval reports unreadable notebooks itself
        return False
    return any(
        is_static(output.get("metadata"))
        for cell in notebook.cells
        for output in cell.get("outputs", [])
    )


def _nbval_version() -> str:
    """The installed nbval's version, for messages."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nbval")
    except PackageNotFoundError:  # pragma: no cover - nbval is imported above
        return "?"
