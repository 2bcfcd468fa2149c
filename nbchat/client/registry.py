"""The app-wide client (the seed's singleton pattern): one shared ChatClient per process.

Kept apart from :class:`~nbchat.client.ChatClient` because it is a policy of
the application around the client, not part of what a client is: code that
makes its own clients never touches it.
"""

from __future__ import annotations

from typing import Any

from ..config import ClientConfig
from .client import ChatClient

__all__ = ["destroy_client", "get_client"]

_instance: ChatClient | None = None


def get_client(config: ClientConfig | None = None, **overrides: Any) -> ChatClient:
    """The app-wide client, created on first call from ``config``; later configs are ignored."""
    global _instance
    if _instance is None:
        _instance = ChatClient(config, **overrides)
    return _instance


async def destroy_client() -> None:
    """Disconnect and forget the app-wide client."""
    global _instance
    instance, _instance = _instance, None
    if instance is not None:
        await instance.disconnect()
