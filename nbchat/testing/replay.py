"""Which replay servers clients go to: ``$NBCHAT_REPLAY``, edited so that nesting undoes cleanly.

Apart from the plugin (which imports pytest) so that the nbval hooks and the
plugin share it without importing each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ..config import REPLAY_ENV

__all__ = ["replaying"]


def replaying(url: str, *, first: bool) -> Callable[[], None]:
    """Add ``url`` to ``$NBCHAT_REPLAY`` (``first``: the one clients now go to); return the undo.

    The undo takes out this URL alone, so replays started and ended in any order
    leave the variable as they found it.
    """
    urls = os.environ.get(REPLAY_ENV, "").split()
    os.environ[REPLAY_ENV] = " ".join([url, *urls] if first else [*urls, url])

    def undo() -> None:
        left = [other for other in os.environ.get(REPLAY_ENV, "").split() if other != url]
        if left:
            os.environ[REPLAY_ENV] = " ".join(left)
        else:
            os.environ.pop(REPLAY_ENV, None)

    return undo
