"""Shared fixtures: real servers on loopback, port 0, never mocks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nbchat.server import DemoServer, serve_demo


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    """The reference server on a free loopback port, replying without delay."""
    async with serve_demo(port=0) as server:
        yield server
