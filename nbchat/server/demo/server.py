"""The demo server: a :class:`~nbchat.server.ChatServer` answering with the :class:`DemoAgent`.

It lives with the agent, as ``ReplayServer`` lives with the replay, so the
generic server in ``app.py`` knows nothing of either.
"""

from __future__ import annotations

from typing_extensions import Unpack

from ..app import DEFAULT_HOST, ChatServer, ServerOptions
from .agent import DemoAgent

__all__ = ["DemoServer", "serve_demo"]


class DemoServer(ChatServer):
    """A :class:`ChatServer` answering with the deterministic :class:`DemoAgent`.

    ``delay`` is the demo agent's pace, in seconds per token: 0 (tests,
    benchmarks of the server itself) or :data:`nbchat.config.DEMO_DELAY` when a
    person watches.
    """

    def __init__(
        self,
        *,
        delay: float = 0.0,
        host: str = DEFAULT_HOST,
        port: int = 0,
        **options: Unpack[ServerOptions],
    ) -> None:
        self.agent = DemoAgent(delay)
        """The responder, exposed so tests and notebooks can inspect its memory."""
        super().__init__(self.agent, host=host, port=port, **options)


def serve_demo(
    port: int = 0,
    host: str = DEFAULT_HOST,
    *,
    delay: float = 0.0,
    **options: Unpack[ServerOptions],
) -> DemoServer:
    """A demo server, started by ``async with serve_demo() as server`` or ``await serve_demo()``."""
    return DemoServer(delay=delay, host=host, port=port, **options)
