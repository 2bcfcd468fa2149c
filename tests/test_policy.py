"""The reconnect policy and backoff: pure, checked without a clock."""

from __future__ import annotations

import itertools

import pytest

from nbchat.policy import (
    MAX_STALLED_RESENDS,
    Disconnect,
    backoff,
    gives_up_resending,
    should_reconnect,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1000, False),
        (1001, True),
        (1006, True),
        (1011, True),
        (1012, True),
        (1013, True),
        (1002, False),
        (1008, False),
        (1009, False),
        (4000, False),
        (None, True),
    ],
)
def test_close_code_table(code: int | None, expected: bool) -> None:
    """Each close code in the table gets its documented action."""
    assert should_reconnect(Disconnect(code=code)) is expected


@pytest.mark.parametrize(("status", "expected"), [(401, False), (403, False), (502, True)])
def test_handshake_status(status: int, expected: bool) -> None:
    """A refused handshake is retried only when retrying can help."""
    assert should_reconnect(Disconnect(status=status)) is expected


def test_backoff_without_jitter_is_exponential_and_capped() -> None:
    """Delays double from the initial interval up to the cap."""
    delays = list(itertools.islice(backoff(1.0, 2.0, 10.0, jitter=0.0), 6))
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_full_jitter_draws_between_zero_and_the_delay() -> None:
    """Full jitter scales each delay by a draw from the random source."""
    draws = iter([0.0, 0.5, 0.999])
    delays = list(itertools.islice(backoff(2.0, 2.0, 100.0, 1.0, rng=lambda: next(draws)), 3))
    assert delays == pytest.approx([2.0, 2.0, 8.0 * 0.001])


def test_jitter_never_exceeds_the_cap() -> None:
    """Whatever the draw, no delay exceeds the cap."""
    assert all(d <= 5.0 for d in itertools.islice(backoff(1.0, 3.0, 5.0), 50))


def test_resends_without_progress_are_given_up_past_the_bound() -> None:
    """A message resent with no progress is given up at MAX_STALLED_RESENDS, not before."""
    assert not gives_up_resending(MAX_STALLED_RESENDS - 1)
    assert gives_up_resending(MAX_STALLED_RESENDS) and MAX_STALLED_RESENDS > 1
