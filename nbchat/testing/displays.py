"""A panel's static conversation, followed through a notebook's run as JupyterLab saves it.

A ``ChatWidget`` cell carries, besides the live view, a ``display_data`` marked
``{"nbchat": {"static": true}}``: the conversation as sanitized HTML and text,
for where no kernel runs. The widget keeps it current with
``update_display_data`` (same ``display_id``), also while later cells run, and
JupyterLab saves each display after its updates. nbval compares a cell's
outputs as first sent and drops updates, so it can never see what was saved.

`DisplayTracker` replays what JupyterLab does with display messages, for the
marked displays only: a message in, whether it belongs to a marked display
out, and at the end each display's final output. Pure: no pytest, no nbval, no
kernel (``nbval_hooks`` wires it to nbval).

What JupyterLab 4 does, and this models (``@jupyterlab/outputarea``,
``@jupyterlab/services`` ``_handleDisplayId``): an ``update_display_data``
replaces ``data`` *and* ``metadata`` of every output shown with its
``display_id``, whichever cell's execution sent it; a ``display_data`` reusing
a ``display_id`` updates the earlier outputs too, then adds its own; the saved
output drops ``transient`` (so ``display_id`` is not in the file).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "STATIC_KEY",
    "STATIC_METADATA",
    "DisplayTracker",
    "Slot",
    "is_static",
]

STATIC_KEY: Final = "nbchat"
"""The output-metadata key of nbchat's outputs; ``{"static": true}`` under it marks one."""

STATIC_METADATA: Final[Mapping[str, Mapping[str, bool]]] = {STATIC_KEY: {"static": True}}
"""The metadata of the static conversation output, in its first display and in every update."""


def is_static(metadata: object) -> bool:
    """Whether output metadata marks a static conversation: ``{"nbchat": {"static": true}}``."""
    if not isinstance(metadata, Mapping):
        return False
    mark = metadata.get(STATIC_KEY)
    return isinstance(mark, Mapping) and mark.get("static") is True


@dataclass
class Slot:
    """One marked output in the notebook: which cell shows it, and its output now."""

    cell: int
    """The code cell (nbval's number, from 0) whose execution displayed it."""
    display_id: str | None
    """The ``transient.display_id`` it was displayed with; ``None`` if it can never change."""
    output: dict[str, Any]
    """``{"output_type": "display_data", "data": ..., "metadata": ...}``, as it would be saved."""
    updates: int = 0
    """How many messages changed it after its first display."""


@dataclass
class DisplayTracker:
    """Which marked displays a notebook's run made, and what each shows at the end.

    Only cells listed in ``cells`` are followed: the cells whose saved outputs
    hold a marked conversation. A marked display of any other cell is left to
    nbval, which compares it as any other output (so a notebook saved without
    conversations fails as before).
    """

    cells: frozenset[int]
    """The cells whose marked displays are taken out of nbval's per-cell comparison."""
    slots: list[Slot] = field(default_factory=list)
    """Every marked display of those cells, in the order it was first shown."""
    _requests: dict[str, int] = field(default_factory=dict)
    _by_id: dict[str, list[Slot]] = field(default_factory=dict)

    # Public methods

    def executed(self, msg_id: str, cell: int) -> None:
        """Record that the execute request ``msg_id`` runs code cell ``cell``."""
        self._requests[msg_id] = cell

    def observe(self, msg: Mapping[str, Any]) -> bool:
        """Apply one IOPub message; true if it belongs to a followed display (keep it from nbval).

        A ``display_data`` that is marked and was sent by a followed cell's
        execution starts a slot; an ``update_display_data`` for a followed
        ``display_id`` changes its slots. Everything else is left alone and
        returned false, even a display that updates a slot as a side effect.
        """
        msg_type = msg.get("msg_type") or msg.get("header", {}).get("msg_type")
        if msg_type not in ("display_data", "update_display_data"):
            return False
        content = msg.get("content") or {}
        transient = content.get("transient") or {}
        display_id = transient.get("display_id") if isinstance(transient, Mapping) else None
        for slot in self._by_id.get(display_id, ()) if isinstance(display_id, str) else ():
            slot.output = _output(content)
            slot.updates += 1
        if msg_type == "update_display_data":
            return display_id in self._by_id
        cell = self._requests.get((msg.get("parent_header") or {}).get("msg_id", ""))
        if cell not in self.cells or not is_static(content.get("metadata")):
            return False
        slot = Slot(cell, display_id if isinstance(display_id, str) else None, _output(content))
        self.slots.append(slot)
        if slot.display_id is not None:
            self._by_id.setdefault(slot.display_id, []).append(slot)
        return True

    def final(self, cell: int) -> list[Slot]:
        """The marked displays ``cell`` made, in display order, as they are now."""
        return [slot for slot in self.slots if slot.cell == cell]

    @classmethod
    def following(cls, cells: Iterable[int]) -> DisplayTracker:
        """A tracker following the marked displays of ``cells``."""
        return cls(frozenset(cells))


def _output(content: Mapping[str, Any]) -> dict[str, Any]:
    """The saved form of a display message: ``transient`` dropped, as JupyterLab saves it."""
    return {
        "output_type": "display_data",
        "data": dict(content.get("data") or {}),
        "metadata": dict(content.get("metadata") or {}),
    }
