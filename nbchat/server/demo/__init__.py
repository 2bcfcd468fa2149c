"""The demo backend: a deterministic agent (``agent.py``) with bounded tools (``tools.py``),
served by ``DemoServer`` (``server.py``)."""

from __future__ import annotations

from .agent import DemoAgent
from .server import DemoServer, serve_demo

__all__ = ["DemoAgent", "DemoServer", "serve_demo"]
