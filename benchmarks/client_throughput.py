"""Messages per second through ChatClient versus a bare websockets loop, in the same run.

A server in a separate process answers each message ("N") with N identical
token frames and a ``done`` as fast as the socket takes them. Two clients are
timed against it, alternating, several rounds:

- raw: ``websockets.asyncio.client`` receiving frames and ``json.loads``-ing each
  (the least any client must do);
- ChatClient: ``ask()``, i.e. parsing into models, routing, reply assembly,
  event dispatch to one listener.

Target: ChatClient at >= 0.9 of raw. Run: ``.venv/bin/python benchmarks/client_throughput.py``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import statistics
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from nbchat import ChatClient


def _server_main(port_queue: Any) -> None:
    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            request = json.loads(frame)
            rid, cid = request["id"], request["conversation_id"]
            tokens = int(request["message"])
            head = {"conversation_id": cid, "reply_to": rid}
            token = json.dumps({"type": "token", "response": "word ", **head}).encode()
            # Frame the whole reply with websockets' sans-I/O protocol and write it in
            # one go: the server must outrun both clients, or it is the server that
            # gets measured.
            protocol = ws.protocol
            protocol.send_text(json.dumps({"type": "ack", "id": rid, **head}).encode())
            for _ in range(tokens):
                protocol.send_text(token)
            protocol.send_text(json.dumps({"type": "done", **head}).encode())
            ws.send_data()
            await ws.drain() if hasattr(ws, "drain") else None

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port_queue.put(server.sockets[0].getsockname()[1])
            await asyncio.get_running_loop().create_future()

    asyncio.run(main())


async def run_raw(url: str, tokens: int) -> float:
    async with connect(url, compression=None) as ws:
        start = time.perf_counter()
        await ws.send(
            json.dumps(
                {"type": "message", "id": "r", "conversation_id": "c", "message": str(tokens)}
            )
        )
        count = 0
        while True:
            data = json.loads(await ws.recv())
            if data["type"] == "token":
                count += 1
            elif data["type"] == "done":
                break
        elapsed = time.perf_counter() - start
    assert count == tokens
    return tokens / elapsed


async def run_client(url: str, tokens: int) -> float:
    client = ChatClient(url=url)
    seen = 0

    def on_message(message: object) -> None:
        nonlocal seen
        seen += 1

    client.on("message", on_message)
    await client.connect()
    start = time.perf_counter()
    reply = await client.ask(str(tokens))
    elapsed = time.perf_counter() - start
    await client.disconnect()
    assert len(reply.messages) == tokens + 1 and seen == tokens + 2
    return tokens / elapsed


async def measure(url: str, tokens: int, rounds: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"raw": [], "client": []}
    await run_raw(url, tokens // 10)  # warm up both paths
    await run_client(url, tokens // 10)
    for _ in range(rounds):
        results["raw"].append(await run_raw(url, tokens))
        results["client"].append(await run_client(url, tokens))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=_server_main, args=(ports,), daemon=True)
    server.start()
    try:
        url = f"ws://127.0.0.1:{ports.get(timeout=30)}/ws"
        results = asyncio.run(measure(url, args.tokens, args.rounds))
    finally:
        server.terminate()
        server.join(5)
    raw = statistics.median(results["raw"])
    client = statistics.median(results["client"])
    cores = multiprocessing.cpu_count()
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}")
    print(f"{args.tokens} token messages, median of {args.rounds} alternating rounds")
    print(f"raw websockets + json.loads : {raw:12,.0f} msg/s")
    print(f"ChatClient.ask              : {client:12,.0f} msg/s")
    print(f"ratio ChatClient / raw      : {client / raw:.2f} (target >= 0.90)")


if __name__ == "__main__":
    main()
