"""Another client's latency while one client attacks the reference server.

The demo server runs in its own process (``delay`` 0, so a reply's time is the
server's own), and so does the attacker. For each attack, a victim connection
asks "echo ping" again and again, one at a time, while an attacker connection
runs the attack; the victim's round trips (send to ``done``) are collected for the attack's
duration plus a short tail. Attacks (issue 13):

- ``echo-spaces``: ``"echo " + " " * 40000`` (quadratic tokenising once);
- ``arithmetic-spaces``: ``"What is 1+" + " " * 40000 + "+?"`` (quadratic regex once);
- ``parentheses``: ``"(" * 200000 + "1+1"`` (quadratic balancing once);
- ``nested-json``: ``"[" * 500000`` (a parser's recursion);
- ``surrogates``: 1,000 frames with a lone surrogate in each field;
- ``flood``: up to 100,000 messages on one connection for 5 s, none read (the
  per-client limits refuse the excess; backpressure stops the sender);
- ``long-replies``: 2,000 "count to 100000" then a disconnect (generations
  must stop: the server's resident memory is reported after it);
- ``huge-ids`` (issue 20): 20 messages with a 1 MB id, 20 with a 1 MB
  conversation id (each once answered with megabytes per token; now one
  short ``bad_request``: the bytes that come back are printed);
- ``grace-exhaustion``: 1,000 fresh client identities, each sending
  "count to 100000" and vanishing (the grace bounds per source and in total
  forget the oldest early);
- ``idle-sockets``: under ``RLIMIT_NOFILE`` 1024 in the server (set with
  ``resource.setrlimit`` in its process) and ``idle_timeout`` 2 s, 1,016
  WebSocket connections that say nothing for 6 s; meanwhile a newcomer
  connects afresh for every ask: refused with 503 while the server is full,
  served again once the idle ones are closed (its refusals and longest
  lockout are printed).

Each attack runs ``--runs`` times (5); printed per attack: the victim's p50 and
max latency (medians over the runs, with their spread) and the server's peak
resident memory. Targets: max < 250 ms; peak RSS < 250 MB (the byte bounds
are 128 MiB of reply logs over all clients).

Run: ``.venv/bin/python benchmarks/server_attack.py``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

__all__ = ["main"]

_TAIL = 0.5
"""Seconds the victim keeps measuring after an attack ended (its aftermath counts)."""
_FLOOD_TIME = 5.0
"""Seconds the flood tries to send its 100,000 messages."""
_ATTACK_TIMEOUT = 60.0
"""No attack may last longer: the benchmark is bounded in time."""
_IDLE_SOCKETS = 1016
_IDLE_HOLD = 6.0
"""Seconds the idle sockets are held (the server's idle_timeout is 2 s)."""
_SERVER_OPTIONS: dict[str, dict[str, Any]] = {"idle-sockets": {"idle_timeout": 2.0}}
_SERVER_NOFILE: dict[str, int] = {"idle-sockets": 1024}
"""The server's file descriptor limit for an attack (else inherited)."""


def _serve(port_queue: Any, options: dict[str, Any], nofile: int | None) -> None:
    from nbchat.server import DemoServer

    if nofile is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    async def main() -> None:
        async with DemoServer(delay=0.0, port=0, **options) as server:
            port_queue.put(server.port)
            await asyncio.get_running_loop().create_future()

    asyncio.run(main())


def _peak_rss_mb(pid: int) -> float:
    """The peak resident memory of a process, in MB (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _rss_mb(pid: int) -> float:
    """The resident memory of a process, in MB (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _frame(number: int, text: str, conversation: str = "x") -> str:
    return json.dumps({"id": f"a{number}", "conversation_id": conversation, "message": text})


async def _drain(ws: ClientConnection, replies: int) -> None:
    """Read until ``replies`` replies (``done`` or ``error``) have ended."""
    ended = 0
    while ended < replies:
        frame = await ws.recv()
        assert isinstance(frame, str)
        if '"type":"done"' in frame or '"type":"error"' in frame:
            ended += 1


async def _one(url: str, text: str) -> None:
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(_frame(0, text))
        await _drain(ws, 1)


async def _nested(url: str) -> None:
    async with connect(url, compression=None) as ws:
        await ws.send("[" * 500_000)
        await _drain(ws, 1)


async def _surrogates(url: str) -> None:
    async with connect(url, compression=None) as ws:
        for number in range(1000):
            field = ("id", "conversation_id", "message")[number % 3]
            frame = {"id": f"s{number}", "conversation_id": "s", "message": "hi"}
            raw = json.dumps(frame).replace(f'"{frame[field]}"', '"\\ud800"', 1)
            await ws.send(raw)
        await _drain(ws, 1000)


async def _flood(url: str) -> None:
    async with connect(url, compression=None) as ws:
        # Never read: the server must bound what it holds for this client, and others
        # must not notice. Once its writes to us back up, the server stops reading us
        # (TCP flow control) and our sends block: the flood lasts at most _FLOOD_TIME.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_send_flood(ws), _FLOOD_TIME)
        ws.transport.abort()  # no closing handshake, like a crashed client


async def _send_flood(ws: ClientConnection) -> None:
    for number in range(100_000):
        await ws.send(_frame(number, "count to 100", conversation=f"f{number}"))


async def _long_replies(url: str) -> None:
    async with connect(url, compression=None) as ws:
        for number in range(2000):
            await ws.send(_frame(number, "count to 100000", conversation=f"l{number}"))
        ws.transport.abort()


async def _huge_ids(url: str) -> None:
    async with connect(url, max_size=None, compression=None) as ws:
        huge = "x" * 1_000_000
        for number in range(40):
            fields = (
                {"id": huge, "conversation_id": "h"}
                if number % 2
                else {"id": f"h{number}", "conversation_id": huge}
            )
            await ws.send(json.dumps({**fields, "message": "count to 100"}))
        received = 0
        for _ in range(40):
            frame = await ws.recv()
            received += len(frame)
        print(f"    huge-ids: 40 messages with a 1 MB id answered with {received} bytes")


async def _grace_exhaustion(url: str) -> None:
    for number in range(1000):
        identity = {"Nbchat-Client": f"fresh-{number:026d}"}
        async with connect(url, additional_headers=identity, compression=None) as ws:
            await ws.send(_frame(number, "count to 100000", conversation=f"g{number}"))
            ws.transport.abort()  # vanish: the server keeps the reply going for a grace period


async def _idle_sockets(url: str) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    held: list[ClientConnection] = []
    refused = 0

    async def open_one() -> None:
        nonlocal refused
        try:
            held.append(await connect(url, compression=None, ping_interval=None))
        except (InvalidHandshake, OSError, asyncio.TimeoutError):
            refused += 1

    for _ in range(0, _IDLE_SOCKETS, 8):  # in small batches: the listen backlog is short
        await asyncio.gather(*(open_one() for _ in range(8)))
    print(f"    idle-sockets: {len(held)} held, {refused} refused or dropped")
    await asyncio.sleep(_IDLE_HOLD)  # say nothing: the server closes them at its idle_timeout
    for ws in held:
        ws.transport.abort()


_ATTACKS: dict[str, Callable[[str], Awaitable[None]]] = {
    "none": lambda url: asyncio.sleep(1.0),
    "echo-spaces": lambda url: _one(url, "echo " + " " * 40_000),
    "arithmetic-spaces": lambda url: _one(url, "What is 1+" + " " * 40_000 + "+?"),
    "parentheses": lambda url: _one(url, "(" * 200_000 + "1+1"),
    "nested-json": _nested,
    "surrogates": _surrogates,
    "flood": _flood,
    "long-replies": _long_replies,
    "huge-ids": _huge_ids,
    "grace-exhaustion": _grace_exhaustion,
    "idle-sockets": _idle_sockets,
}


async def _victim(url: str, stop: asyncio.Event, latencies: list[float]) -> None:
    async with connect(url, compression=None) as ws:
        number = 0
        while not stop.is_set():
            number += 1
            started = time.perf_counter()
            await ws.send(_frame(number, "echo ping", conversation="victim"))
            await _drain(ws, 1)
            latencies.append(time.perf_counter() - started)


async def _newcomer(url: str, stop: asyncio.Event, lockouts: list[float]) -> None:
    """A client connecting afresh for every ask: how long the server was full to it at worst."""
    refused_since: float | None = None
    number = 0
    while not stop.is_set():
        number += 1
        try:
            async with connect(url, compression=None, open_timeout=5) as ws:
                await ws.send(_frame(number, "echo ping", conversation="newcomer"))
                await _drain(ws, 1)
        except (InvalidHandshake, OSError, asyncio.TimeoutError):
            refused_since = refused_since or time.perf_counter()
            lockouts.append(0.0)
            await asyncio.sleep(0.05)
            continue
        if refused_since is not None:
            lockouts.append(time.perf_counter() - refused_since)
            refused_since = None
        await asyncio.sleep(0.05)


def _run_attack(url: str, name: str) -> None:
    """The attacker, in its own process: sharing the victim's loop would measure the attacker."""

    async def attack() -> None:
        with contextlib.suppress(ConnectionClosed):  # the attacker was thrown out: fine
            await asyncio.wait_for(_ATTACKS[name](url), _ATTACK_TIMEOUT)

    asyncio.run(attack())


async def _attack(url: str, name: str, lockouts: list[float]) -> list[float]:
    latencies: list[float] = []
    stop = asyncio.Event()
    victim = asyncio.create_task(_victim(url, stop, latencies))
    newcomer = asyncio.create_task(_newcomer(url, stop, lockouts))
    await asyncio.sleep(0.2)  # both connected before the attack starts
    attacker = multiprocessing.get_context("spawn").Process(target=_run_attack, args=(url, name))
    attacker.start()
    await asyncio.to_thread(attacker.join, _ATTACK_TIMEOUT + 30)
    if attacker.is_alive():
        attacker.kill()
    await asyncio.sleep(_TAIL)  # the attack's aftermath (e.g. cancelling) counts too
    stop.set()
    await asyncio.wait_for(asyncio.gather(victim, newcomer), _ATTACK_TIMEOUT)
    return latencies


def main() -> None:
    """Run each attack ``--runs`` times against a fresh server and print the victim's latency."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=sorted(_ATTACKS), action="append")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"victim latency while attacking; {platform.python_version()} on {os.cpu_count()} "
        f"cores, load {load:.1f}"
    )
    context = multiprocessing.get_context("spawn")
    for name in args.only or list(_ATTACKS):
        p50s: list[float] = []
        maxima: list[float] = []
        memory: list[float] = []
        peaks: list[float] = []
        lockouts: list[float] = []
        for _ in range(args.runs):
            queue = context.Queue()
            options = (_SERVER_OPTIONS.get(name, {}), _SERVER_NOFILE.get(name))
            process = context.Process(target=_serve, args=(queue, *options))
            process.start()
            try:
                url = f"ws://127.0.0.1:{queue.get(timeout=60)}/ws"
                latencies = asyncio.run(_attack(url, name, lockouts))
                assert process.pid is not None
                memory.append(_rss_mb(process.pid))
                peaks.append(_peak_rss_mb(process.pid))
            finally:
                process.terminate()
                process.join(30)
            p50s.append(statistics.median(latencies) * 1000)
            maxima.append(max(latencies) * 1000)
        print(
            f"{name:>18}: p50 {statistics.median(p50s):6.1f} ms "
            f"(spread {min(p50s):.1f}-{max(p50s):.1f}), "
            f"max {statistics.median(maxima):6.1f} ms "
            f"(spread {min(maxima):.1f}-{max(maxima):.1f}), "
            f"server RSS after {statistics.median(memory):.0f} MB, "
            f"peak {max(peaks):.0f} MB; newcomer refused {lockouts.count(0.0)} times, "
            f"locked out {max(lockouts, default=0.0):.1f} s at worst",
            flush=True,
        )


if __name__ == "__main__":
    main()
