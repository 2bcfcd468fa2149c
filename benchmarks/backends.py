"""Time to first token and token rate through protocol="ag-ui", versus a plain httpx SSE loop.

A child process serves pydantic-ai's ``AGUIAdapter`` in front of the scripted
OpenAI-compatible upstream (tests/client/agents.py), whose unscripted replies
stream N tokens as fast as it can write them. Two readers are timed against it,
alternating, several rounds, in this process:

- plain: ``httpx`` + ``httpx_sse`` POSTing a ``RunAgentInput`` and ``json.loads``-ing
  each event (the least any AG-UI client must do);
- nbchat: ``ChatClient(url, protocol="ag-ui").stream(...)``: events decoded into
  ``ag_ui.core`` models, translated to v1, routed and assembled by the session,
  handed to the stream.

First token: from the POST (the send) to the first text delta read. Rate: text
deltas per second from the first to the last. Targets: overhead <= 2 ms to the
first token, rate >= 0.9x plain. Run: ``.venv/bin/python benchmarks/backends.py``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nbchat import ChatClient


async def _serve(tokens: int) -> None:
    from tests.client.agents import serving

    async with serving() as agents:
        agents.upstream.tokens = tokens
        print(agents.agui, flush=True)
        await asyncio.Event().wait()


async def plain(http: httpx.AsyncClient, url: str, n: int) -> tuple[float, float]:
    """First-token seconds and tokens per second, read with a bare SSE loop."""
    body = {
        "threadId": "t",
        "runId": "r",
        "state": None,
        "messages": [{"id": "m", "role": "user", "content": "go"}],
        "tools": [],
        "context": [],
        "forwardedProps": {},
    }
    start = time.perf_counter()
    first = last = 0.0
    count = 0
    async with aconnect_sse(http, "POST", url, json=body) as source:
        async for event in source.aiter_sse():
            data = json.loads(event.data)
            if data["type"] == "TEXT_MESSAGE_CONTENT":
                last = time.perf_counter()
                first = first or last
                count += 1
            elif data["type"] == "RUN_FINISHED":
                break
    assert count >= n, count
    return first - start, (count - 1) / (last - first)


async def nbchat(client: ChatClient, n: int) -> tuple[float, float]:
    """The same through ChatClient(protocol="ag-ui").stream()."""
    start = time.perf_counter()
    first = last = 0.0
    count = 0
    async for item in client.stream("go", conversation_id=f"b{time.perf_counter_ns()}"):
        if getattr(item, "type", None) == "token":
            last = time.perf_counter()
            first = first or last
            count += 1
    assert count >= n, count
    return first - start, (count - 1) / (last - first)


async def bench(url: str, n: int, rounds: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "nbchat": []}
    async with (
        ChatClient(url=url, protocol="ag-ui") as client,
        httpx.AsyncClient(timeout=60, trust_env=False) as http,
    ):
        await plain(http, url, n)  # warm both paths (each keeps its connection)
        await nbchat(client, n)
        for _ in range(rounds):
            results["plain"].append(await plain(http, url, n))
            results["nbchat"].append(await nbchat(client, n))
    median = {
        name: (
            statistics.median(r[0] for r in runs) * 1000,
            statistics.median(r[1] for r in runs),
        )
        for name, runs in results.items()
    }
    for name, (ttft, rate) in median.items():
        print(f"{name:7s} first token {ttft:7.2f} ms   rate {rate:9.0f} tokens/s")
    overhead = median["nbchat"][0] - median["plain"][0]
    ratio = median["nbchat"][1] / median["plain"][1]
    print(f"overhead to first token {overhead:+.2f} ms (target <= 2 ms)")
    print(f"rate ratio {ratio:.2f}x plain (target >= 0.9x)")
    print(f"{rounds} rounds of {n} tokens; {platform.processor() or platform.machine()},")
    print(f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.tokens))
        return
    root = Path(__file__).resolve().parents[1]
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--tokens", str(args.tokens)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        asyncio.run(bench(url, args.tokens, args.rounds))
    finally:
        child.terminate()
        child.wait(10)


if __name__ == "__main__":
    main()
