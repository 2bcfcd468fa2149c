"""What the model bridge adds: the openai SDK directly versus through nbchat, in one run.

A scripted OpenAI-compatible upstream (``tests/openai_upstream.py``, tornado,
real HTTP and SSE) runs in its own process; every token it streams is the
``time.monotonic()`` at which it was written (one clock for all processes of a
machine), so a reader knows how long each token took to reach it.

1. Overhead. The same prompt, alternating, ``--rounds`` times each:
   - direct: ``AsyncOpenAI.chat.completions.create(stream=True)`` against the upstream;
   - nbchat: ``ChatClient.stream()`` -> a ChatServer with the bridge (its own
     process, as ``nbchat serve --openai`` runs) -> the same upstream.
   Reported: time to first token (median) and tokens per second (median), for
   each path. Target: nbchat adds <= 2 ms to the median time to first token and
   keeps >= 0.9x the direct token rate.
2. Load. ``--conversations`` (200) concurrent conversations through one bridge,
   the upstream pacing each at ``--rate`` (50) tokens/s: all must complete;
   reported: how late each token arrives (client receive time minus upstream
   write time), p50 and p99, through nbchat and, in the same run, directly.

Run from the repository root: ``.venv/bin/python benchmarks/bridge_overhead.py``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from openai import AsyncOpenAI

from nbchat import ChatClient
from nbchat.protocol import TokenMessage

ROOT = Path(__file__).absolute().parent.parent

_BRIDGE = """
import asyncio, sys
from nbchat.server import ChatServer
from nbchat.server.openai.bridge import OpenAIAgent

async def main():
    agent = OpenAIAgent(base_url=sys.argv[1], model="scripted", tools=(), timeout=120)
    async with ChatServer(agent, max_logs=100_000) as server:
        print(server.url, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


_PIDS: dict[str, int] = {}
"""Helper processes by URL, to read how much CPU each used."""


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) a process has used so far; Linux only, else 0."""
    try:
        fields = Path(f"/proc/{pid or 'self'}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def process(*command: str) -> Iterator[str]:
    """Start a helper process that prints its URL on its first line; stop it afterwards."""
    child = subprocess.Popen(
        [sys.executable, *command], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        url = child.stdout.readline().strip()
        _PIDS[url] = child.pid
        yield url
    finally:
        child.terminate()
        child.wait(10)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# 1. Overhead


async def direct_once(
    sdk: AsyncOpenAI, lags: list[float] | None = None
) -> tuple[float, float, int]:
    """Time to first token, tokens/s and token count of one direct streamed completion."""
    start = time.perf_counter()
    first = last = 0.0
    count = 0
    stream = await sdk.chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "go"}], stream=True
    )
    async for chunk in stream:
        content = chunk.choices[0].delta.content if chunk.choices else None
        if content:
            last = time.perf_counter()
            if lags is not None:
                lags.append(time.monotonic() - float(content))
            if not count:
                first = last
            count += 1
    return first - start, (count - 1) / (last - first), count


async def nbchat_once(
    client: ChatClient, conversation: str, lags: list[float] | None = None
) -> tuple[float, float, int]:
    """Time to first token, tokens/s and token count of one reply through the bridge."""
    start = time.perf_counter()
    first = last = 0.0
    count = 0
    async for message in client.stream("go", conversation_id=conversation):
        if isinstance(message, TokenMessage):
            last = time.perf_counter()
            if lags is not None:
                lags.append(time.monotonic() - float(message.response))
            if not count:
                first = last
            count += 1
    return first - start, (count - 1) / (last - first), count


async def overhead(upstream: str, bridge: str, rounds: int, tokens: int) -> None:
    sdk = AsyncOpenAI(base_url=upstream, api_key="unused", max_retries=0)
    direct: list[tuple[float, float, int]] = []
    through: list[tuple[float, float, int]] = []
    async with ChatClient(url=bridge) as client:
        for warmup in range(3):
            await direct_once(sdk)
            await nbchat_once(client, f"warmup{warmup}")
        for number in range(rounds):
            direct.append(await direct_once(sdk))
            # A fresh conversation each round: the same request upstream as the direct one.
            through.append(await nbchat_once(client, f"round{number}"))
    await sdk.close()
    assert all(count == tokens for _, _, count in direct + through)
    ttft_d = statistics.median(t for t, _, _ in direct) * 1000
    ttft_n = statistics.median(t for t, _, _ in through) * 1000
    rate_d = statistics.median(r for _, r, _ in direct)
    rate_n = statistics.median(r for _, r, _ in through)
    print(f"1. {rounds} alternating rounds of {tokens} tokens, median")
    print(f"   time to first token: direct {ttft_d:6.2f} ms, nbchat {ttft_n:6.2f} ms,")
    print(f"   added {ttft_n - ttft_d:+.2f} ms (target <= 2 ms)")
    print(f"   tokens per second: direct {rate_d:8,.0f}, nbchat {rate_n:8,.0f},")
    print(f"   ratio {rate_n / rate_d:.2f} (target >= 0.90)")


# 2. Load


async def load(upstream: str, bridge: str, conversations: int, tokens: int) -> None:
    nb_lags: list[float] = []
    direct_lags: list[float] = []
    # One client per conversation, as 200 people would be: the server bounds the replies
    # generated at once for one client (max_generations).
    clients = [ChatClient(url=bridge) for _ in range(conversations)]
    await asyncio.gather(*(client.connect() for client in clients))
    pids = {"upstream": _PIDS[upstream], "bridge": _PIDS[bridge], "clients": None}
    cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.perf_counter()
    results = await asyncio.gather(
        *(nbchat_once(client, "load", nb_lags) for client in clients),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - start
    cpu = {name: cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
    await asyncio.gather(*(client.disconnect() for client in clients))
    complete = sum(1 for r in results if not isinstance(r, BaseException) and r[2] == tokens)
    failures = {f"{type(r).__name__}: {r}"[:200] for r in results if isinstance(r, BaseException)}
    for failure in sorted(failures)[:5]:
        print(f"   failed: {failure}")
    sdk = AsyncOpenAI(base_url=upstream, api_key="unused", max_retries=0)
    direct = await asyncio.gather(
        *(direct_once(sdk, direct_lags) for _ in range(conversations)), return_exceptions=True
    )
    await sdk.close()
    direct_complete = sum(1 for r in direct if not isinstance(r, BaseException) and r[2] == tokens)
    ms = {
        name: (_percentile(lags, 0.5) * 1000, _percentile(lags, 0.99) * 1000)
        for name, lags in (("nbchat", nb_lags), ("direct", direct_lags))
    }
    print(f"2. {conversations} concurrent conversations of {tokens} tokens, paced upstream")
    print(f"   nbchat: {complete}/{conversations} complete in {elapsed:.1f} s")
    print("   CPU used: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in cpu.items()))
    print("   token lateness (client receive time - upstream write time):")
    print(f"   through nbchat        p50 {ms['nbchat'][0]:9.2f} ms, p99 {ms['nbchat'][1]:9.2f} ms")
    print(
        f"   SDK direct, same load p50 {ms['direct'][0]:9.2f} ms, p99 {ms['direct'][1]:9.2f} ms"
        f" ({direct_complete}/{conversations} complete)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--load-tokens", type=int, default=100)
    parser.add_argument("--part", choices=("1", "2", "all"), default="all")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}"
    )
    upstream_fast = ("-m", "tests.openai_upstream", "--tokens", str(args.tokens))
    if args.part in ("1", "all"):
        with process(*upstream_fast) as upstream, process("-c", _BRIDGE, upstream) as bridge:
            asyncio.run(overhead(upstream, bridge, args.rounds, args.tokens))
    if args.part == "1":
        return
    upstream_paced = (
        *("-m", "tests.openai_upstream", "--tokens", str(args.load_tokens)),
        *("--rate", str(args.rate)),
    )
    with process(*upstream_paced) as upstream, process("-c", _BRIDGE, upstream) as bridge:
        asyncio.run(load(upstream, bridge, args.conversations, args.load_tokens))


if __name__ == "__main__":
    main()
