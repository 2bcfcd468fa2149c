"""Many concurrent streams through the reference server, next to raw websockets, in one run.

Each server runs in its own process (one core); the clients run in this one.
``--streams`` connections (1,000) each ask "count to ``--tokens``" (200) at
once; the demo agent paces tokens at ``--delay`` seconds (0.02), so the ideal
is ``tokens * delay`` (4 s). Two servers are timed, alternating, ``--runs``
times (fresh processes each run):

- nbchat: ``nbchat.server.DemoServer`` (acks, reply logs, per-client scoping,
  the demo agent's rules and pacing);
- raw: a bare ``websockets`` handler doing the same work: ack, the same token
  frames on the same fixed schedule, done (no logs, no scoping, no rules).

Reported per server: wall time from the first send to the last ``done``
(median and spread over the runs), its ratio to the ideal, how late each
token arrived after its due time ``k * delay`` (p50, p99), the CPU seconds the
server process spent (the measure a shared machine disturbs least), and the
machine's load average. Target: nbchat within 1.5x the
ideal. Clients use raw websockets, offering permessage-deflate as every
websockets client (ChatClient included) does by default (both servers here
decline it), and count frames without parsing them, so that they cost both
servers the same.

Run: ``.venv/bin/python benchmarks/server_concurrency.py`` (add ``--profile
FILE`` to write a cProfile of one nbchat server process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

__all__ = ["main"]


# Servers, each in its own process


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _serve_raw(port_queue: Any, delay: float, profile: str | None) -> None:
    async def handler(ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        async for frame in ws:
            request = json.loads(frame)
            head = {"conversation_id": request["conversation_id"], "reply_to": request["id"]}
            count = int(request["message"].rsplit(" ", 1)[-1])
            await ws.send(_dumps({"type": "ack", "id": request["id"], **head}))
            due = loop.time()
            for number in range(1, count + 1):
                due += delay
                await asyncio.sleep(max(0.0, due - loop.time()))
                token = str(number) if number == 1 else f" {number}"
                await ws.send(_dumps({"type": "token", "response": token, **head}))
            await ws.send(_dumps({"type": "done", **head}))

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None, max_size=2**20) as server:
            port_queue.put(server.sockets[0].getsockname()[1])
            await asyncio.get_running_loop().create_future()

    asyncio.run(main())


def _serve_nbchat(port_queue: Any, delay: float, profile: str | None) -> None:
    from nbchat.server import DemoServer

    async def main() -> None:
        async with DemoServer(delay=delay, port=0) as server:
            port_queue.put(server.port)
            await asyncio.get_running_loop().create_future()

    if profile is None:
        asyncio.run(main())
        return
    import cProfile
    import signal

    profiler = cProfile.Profile()

    def dump(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(profile)
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    profiler.enable()
    asyncio.run(main())


_SERVERS = {"nbchat": _serve_nbchat, "raw": _serve_raw}
_RUN_TIMEOUT = 120.0
"""No run may take longer: the benchmark is bounded in time."""


# Clients, in this process


async def _stream(
    ws: ClientConnection, number: int, tokens: int, delay: float, lateness: list[float]
) -> int:
    """Ask one count and read to its done; return how many token frames came.

    Appends to ``lateness`` how long after its due time (``k * delay`` after
    the ask) each token *k* arrived.
    """
    message = {"id": f"m{number}", "conversation_id": f"c{number}", "message": f"count to {tokens}"}
    asked = time.perf_counter()
    await ws.send(json.dumps(message))
    count = 0
    while True:
        frame = await ws.recv()
        assert isinstance(frame, str)
        if '"type":"token"' in frame:
            count += 1
            lateness.append(time.perf_counter() - asked - count * delay)
        elif '"type":"done"' in frame:
            return count
        elif '"type":"error"' in frame:
            raise RuntimeError(frame)


async def _measure(
    url: str, streams: int, tokens: int, delay: float, compression: str | None
) -> tuple[float, list[float]]:
    opening = asyncio.Semaphore(100)

    async def opened() -> ClientConnection:
        async with opening:
            return await connect(url, compression=compression, open_timeout=60, ping_interval=None)

    connections = await asyncio.gather(*(opened() for _ in range(streams)))
    lateness: list[float] = []
    try:
        started = time.perf_counter()
        streams_done = asyncio.gather(
            *(_stream(ws, number, tokens, delay, lateness) for number, ws in enumerate(connections))
        )
        counts = await asyncio.wait_for(streams_done, _RUN_TIMEOUT)
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(ws.close() for ws in connections))
    assert counts == [tokens] * streams, "a stream lost or gained tokens"
    return elapsed, lateness


def _run(
    kind: str, args: argparse.Namespace, profile: str | None = None
) -> tuple[float, list[float]]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_SERVERS[kind], args=(queue, args.delay, profile))
    process.start()
    try:
        port = queue.get(timeout=60)
        url = f"ws://127.0.0.1:{port}/ws"
        assert process.pid is not None
        before = _cpu_seconds(process.pid)
        compression = None if args.compression == "none" else args.compression
        elapsed, lateness = asyncio.run(
            _measure(url, args.streams, args.tokens, args.delay, compression)
        )
        _CPU[kind].append(_cpu_seconds(process.pid) - before)
        return elapsed, lateness
    finally:
        process.terminate()
        process.join(30)


_CPU: dict[str, list[float]] = {kind: [] for kind in _SERVERS}
"""CPU seconds each server process spent per run (its share of a busy machine varies; this not)."""


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, from /proc (Linux; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    """The 1-minute load average: the machine is shared, so every figure comes with it."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "n/a"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    """Time both servers, alternating, and print medians with their spread."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=sorted(_SERVERS), help="time one server only")
    parser.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="what the clients offer (default: deflate, as websockets and ChatClient do; "
        "a server may refuse it)",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile one nbchat server into FILE")
    args = parser.parse_args()
    ideal = args.tokens * args.delay
    print(
        f"{args.streams} streams x {args.tokens} tokens every {args.delay}s, ideal {ideal:.2f}s; "
        f"{platform.python_version()} on {os.cpu_count()} cores ({platform.machine()})"
    )
    if args.profile:
        elapsed, _ = _run("nbchat", args, args.profile)
        print(f"profiled nbchat run: {elapsed:.2f}s -> {args.profile}")
        return
    kinds = [args.only] if args.only else ["nbchat", "raw"]
    results: dict[str, list[tuple[float, list[float]]]] = {kind: [] for kind in kinds}
    for run in range(args.runs):
        for kind in kinds if run % 2 == 0 else kinds[::-1]:
            elapsed, lateness = _run(kind, args)
            results[kind].append((elapsed, lateness))
            print(
                f"run {run + 1} {kind:>6}: {elapsed:6.2f}s ({elapsed / ideal:.2f}x ideal), "
                f"token lateness p50 {_percentile(lateness, 0.5) * 1000:.0f} ms "
                f"p99 {_percentile(lateness, 0.99) * 1000:.0f} ms; "
                f"server CPU {_CPU[kind][-1]:.2f}s; load {_load()}",
                flush=True,
            )
    print()
    for kind, runs in results.items():
        times = [elapsed for elapsed, _ in runs]
        p50s = [_percentile(lateness, 0.5) * 1000 for _, lateness in runs]
        p99s = [_percentile(lateness, 0.99) * 1000 for _, lateness in runs]
        median = statistics.median(times)
        print(
            f"{kind:>6}: median {median:.2f}s = {median / ideal:.2f}x ideal "
            f"(spread {min(times):.2f}-{max(times):.2f}s over {len(times)} runs); "
            f"token lateness p50 {statistics.median(p50s):.0f} ms "
            f"(spread {min(p50s):.0f}-{max(p50s):.0f}), "
            f"p99 {statistics.median(p99s):.0f} ms (spread {min(p99s):.0f}-{max(p99s):.0f}); "
            f"server CPU {statistics.median(_CPU[kind]):.2f}s "
            f"(spread {min(_CPU[kind]):.2f}-{max(_CPU[kind]):.2f})"
        )


if __name__ == "__main__":
    main()
