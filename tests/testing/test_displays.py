"""DisplayTracker: display messages in, what JupyterLab would save for marked displays out."""

from __future__ import annotations

from typing import Any

import pytest

from nbchat.testing.displays import STATIC_METADATA, DisplayTracker, is_static

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

MARK = {"nbchat": {"static": True}}


def message(
    kind: str, parent: str, html: str, display_id: str | None = None, metadata: Any = MARK
) -> dict[str, Any]:
    """An IOPub message as jupyter_client delivers it."""
    content: dict[str, Any] = {"data": {"text/html": html}, "metadata": metadata}
    if display_id is not None:
        content["transient"] = {"display_id": display_id}
    return {
        "msg_type": kind,
        "header": {"msg_type": kind},
        "parent_header": {"msg_id": parent},
        "content": content,
    }


def tracker(*cells: int) -> DisplayTracker:
    """A tracker following ``cells``, with request ``run-N`` executing cell N for N in 0..4."""
    result = DisplayTracker.following(cells)
    for cell in range(5):
        result.executed(f"run-{cell}", cell)
    return result


def html(tracked: DisplayTracker, cell: int) -> list[str]:
    """The final HTML of each marked display of ``cell``."""
    return [slot.output["data"]["text/html"] for slot in tracked.final(cell)]


def test_the_marker_is_exactly_nbchat_static_true() -> None:
    """Only ``{"nbchat": {"static": True}}`` marks a conversation; look-alikes do not."""
    assert is_static(STATIC_METADATA) and is_static({**MARK, "other": 1})
    for metadata in (None, {}, {"nbchat": True}, {"nbchat": {"static": 1}}, {"static": True}):
        assert not is_static(metadata), metadata


def test_updates_from_later_cells_reach_the_display_and_are_taken() -> None:
    """A marked display is followed through updates sent while later cells run."""
    tracked = tracker(0)
    assert tracked.observe(message("display_data", "run-0", "empty", "d1"))
    assert tracked.observe(message("update_display_data", "run-2", "one", "d1"))
    assert tracked.observe(message("update_display_data", "run-3", "two", "d1"))
    assert html(tracked, 0) == ["two"] and tracked.final(0)[0].updates == 2
    assert "transient" not in tracked.final(0)[0].output  # as saved: the display_id is not kept


def test_other_messages_are_left_to_nbval() -> None:
    """Unmarked displays, unfollowed cells, unknown updates and streams all go to nbval."""
    tracked = tracker(0)
    assert not tracked.observe(message("display_data", "run-0", "x", "d1", metadata={}))
    assert not tracked.observe(message("display_data", "run-1", "x", "d2"))  # cell 1 unfollowed
    assert not tracked.observe(message("display_data", "unknown-request", "x", "d3"))
    assert not tracked.observe(message("update_display_data", "run-0", "x", "d2"))
    stream = {"msg_type": "stream", "parent_header": {"msg_id": "run-0"}, "content": {}}
    assert not tracked.observe(stream)
    assert tracked.slots == []


def test_redisplay_updates_the_earlier_output_and_adds_its_own() -> None:
    """A display reusing a display_id updates every earlier output with it, as JupyterLab does."""
    tracked = tracker(0, 1)
    tracked.observe(message("display_data", "run-0", "a0", "a"))
    tracked.observe(message("display_data", "run-0", "b0", "b"))
    assert tracked.observe(message("display_data", "run-1", "a1", "a"))
    tracked.observe(message("update_display_data", "run-2", "b1", "b"))
    assert html(tracked, 0) == ["a1", "b1"] and html(tracked, 1) == ["a1"]
    tracked.observe(message("update_display_data", "run-3", "a2", "a"))
    assert html(tracked, 0) == ["a2", "b1"] and html(tracked, 1) == ["a2"]


def test_an_unfollowed_redisplay_still_updates_the_followed_one() -> None:
    """An unfollowed cell's display goes to nbval, yet changes what the followed cell saves."""
    tracked = tracker(0)
    tracked.observe(message("display_data", "run-0", "a0", "a"))
    assert not tracked.observe(message("display_data", "run-1", "a1", "a"))
    assert html(tracked, 0) == ["a1"]


def test_an_update_without_the_marker_replaces_the_metadata() -> None:
    """An update's metadata replaces the output's (JupyterLab's rule): dropping it unmarks it."""
    tracked = tracker(0)
    tracked.observe(message("display_data", "run-0", "a0", "a"))
    tracked.observe(message("update_display_data", "run-1", "a1", "a", metadata={}))
    assert tracked.final(0)[0].output["metadata"] == {}


def test_a_display_without_id_is_followed_but_never_changes() -> None:
    """A marked display with no display_id is compared as first shown."""
    tracked = tracker(0)
    assert tracked.observe(message("display_data", "run-0", "only"))
    assert not tracked.observe(message("update_display_data", "run-1", "x", "other"))
    assert html(tracked, 0) == ["only"] and tracked.final(0)[0].display_id is None
