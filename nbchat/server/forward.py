"""Writing reply logs to connections: the frames available at once go out in one write.

Under load the server's largest cost was the socket: one ``send()`` system
call per token per connection (``benchmarks/server_concurrency.py``). Here a
connection follows a :class:`~nbchat.server.replylog.ReplyLog` in batches, and
a batch is framed by websockets and written with one call.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .replylog import ReplyLog

__all__ = ["BatchingConnection", "capped", "forward"]


class BatchingConnection(ServerConnection):
    """A connection that writes everything framed so far in one socket write.

    websockets writes each frame with its own ``transport.write``, i.e. its own
    ``send()`` system call when the socket buffer is empty: under load that was
    the server's largest cost (one call per token per connection). Frames
    framed together (a batch in :func:`forward`) now go out in one call.
    """

    max_open: int | None = None
    """Sockets the server may have open; one more is aborted as it is accepted (see
    :func:`capped`), so idle sockets never use up the file descriptors new clients need."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.max_open is not None and len(self.server.handler_tasks) > self.max_open:
            self.transport.abort()  # its handshake task ends at once, with the socket

    def send_data(self) -> None:
        """Write the pending frames at once; an end-of-stream marker keeps its meaning."""
        chunks = self.protocol.data_to_send()
        if all(chunks):
            if chunks:
                self.transport.writelines(chunks)
            return
        for chunk in chunks:  # b"" asks to half-close: keep websockets' handling of it
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()
            else:
                self.transport.close()


def capped(max_open: int) -> type[BatchingConnection]:
    """A :class:`BatchingConnection` class for a server that keeps at most ``max_open`` sockets."""

    class CappedConnection(BatchingConnection):
        pass

    CappedConnection.max_open = max_open
    return CappedConnection


async def forward(connection: ServerConnection, log: ReplyLog) -> None:
    """Send a log's frames to one connection, each batch of available frames in one write."""
    try:
        async for batch in log.follow():
            if len(batch) == 1:
                await connection.send(batch[0], text=True)
                continue
            async with connection.send_context():  # checks the state, writes, drains
                for frame in batch:
                    connection.protocol.send_text(frame)
    except ConnectionClosed:
        pass  # the log lives on: the client can resend the id to get it all
