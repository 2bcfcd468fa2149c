"""Chaos soak: the server SIGKILLed and restarted at random while a client asks and streams.

``nbchat serve`` runs in its own process; a killer kills it (SIGKILL: no
close frame, no goodbye) after a random uptime, waits a random downtime and
starts it again on the same port, ``--kills`` times (at least 50). Meanwhile
one :class:`~nbchat.ChatClient` with the DEFAULT settings (only the URL is
given) works through a numbered series, alternating:

- ``ask("echo soak <n> w1 ... w20")``: the reply must be exactly the payload;
- ``stream("count to 30")``: the streamed tokens must be exactly ``1 ... 30``
  (a :class:`~nbchat.ReplyRestarted` item voids what came before it).

Each reply is classified: correct; lost (the client gave up, or no reply in
``--reply-timeout``); duplicated (text repeated, e.g. a resumed reply shown
twice); corrupted (any other difference). A lost message is not retried by
the soak; after ``ReconnectExhausted`` it calls ``connect()`` again, as a
person would. Recovery time is from the server listening again to the
client's next ``open`` (p50, p90). The server restarts without memory, so
every reply interrupted by a kill is generated afresh (``reply_restart``).

Run: ``.venv/bin/python benchmarks/chaos_soak.py`` (about 2 minutes). Traffic
stays on loopback; the run is bounded by ``--kills`` and the timeouts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field

from nbchat import ChatClient, NbchatError, ReconnectExhausted
from nbchat.protocol import DoneMessage, ServerEvent, TokenMessage

__all__ = ["main"]

_START_TIMEOUT = 30.0
"""Seconds a restarted server may take to listen again."""


@dataclass
class _Tally:
    """What happened to each numbered reply, and when the server came back."""

    outcomes: dict[str, int] = field(
        default_factory=lambda: {"correct": 0, "lost": 0, "duplicated": 0, "corrupted": 0}
    )
    failures: list[str] = field(default_factory=list)
    back_up: list[float] = field(default_factory=list)
    opened: list[float] = field(default_factory=list)
    kills: int = 0

    def record(self, number: int, kind: str, expected: str, got: str | None) -> None:
        if got is None:
            outcome = "lost"
        elif got == expected:
            outcome = "correct"
        elif len(got) > len(expected) and expected.split()[0] in got[len(expected) :]:
            outcome = "duplicated"
        else:
            outcome = "corrupted"
        self.outcomes[outcome] += 1
        if outcome != "correct" and len(self.failures) < 10:
            self.failures.append(f"#{number} {kind} {outcome}: {got!r:.120}")


class _Server:
    """``nbchat serve`` in its own process, on a fixed port, killed and started again."""

    def __init__(self, port: int, delay: float) -> None:
        self.port = port
        self.delay = delay
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        command = [sys.executable, "-m", "nbchat", "serve", "--port", str(self.port)]
        command += ["--delay", str(self.delay)]
        self.process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), _START_TIMEOUT)
        if b"listening" not in line:
            raise RuntimeError(f"nbchat serve did not start: {line!r}")

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _killer(server: _Server, tally: _Tally, args: argparse.Namespace) -> None:
    chance = random.Random(args.seed)
    loop = asyncio.get_running_loop()
    for _ in range(args.kills):
        await asyncio.sleep(chance.uniform(args.min_up, args.max_up))
        await server.kill()
        tally.kills += 1
        await asyncio.sleep(chance.uniform(0.0, args.max_down))
        await server.start()
        tally.back_up.append(loop.time())


async def _ask(client: ChatClient, number: int, tally: _Tally, timeout: float) -> None:
    payload = f"soak {number} " + " ".join(f"w{word}" for word in range(20))
    try:
        reply = await client.ask(f"echo {payload}", timeout=timeout)
    except NbchatError as exc:
        tally.record(number, "ask", payload, None)
        if isinstance(exc, ReconnectExhausted):
            await client.connect()
        return
    tally.record(number, "ask", payload, reply.text)


async def _stream(client: ChatClient, number: int, tally: _Tally, timeout: float) -> None:
    expected = " ".join(str(n) for n in range(1, 31))
    text: list[str] = []

    async def read() -> None:
        async for item in client.stream("count to 30"):
            if isinstance(item, TokenMessage):
                text.append(item.response)
            elif isinstance(item, DoneMessage):
                return
            elif not isinstance(item, ServerEvent):  # ReplyRestarted: start over
                text.clear()

    try:
        await asyncio.wait_for(read(), timeout)
    except (NbchatError, asyncio.TimeoutError) as exc:
        tally.record(number, "stream", expected, None)
        if isinstance(exc, ReconnectExhausted):
            await client.connect()
        return
    tally.record(number, "stream", expected, "".join(text))


async def _soak(args: argparse.Namespace) -> _Tally:
    tally = _Tally()
    server = _Server(_free_port(), args.delay)
    await server.start()
    loop = asyncio.get_running_loop()
    client = ChatClient(url=f"ws://127.0.0.1:{server.port}/ws")  # every other setting default
    client.on("open", lambda *_: tally.opened.append(loop.time()))
    killer = asyncio.create_task(_killer(server, tally, args))
    number = 0
    try:
        await client.connect()
        while not killer.done() or number < args.min_replies:
            number += 1
            work = _ask if number % 2 else _stream
            await work(client, number, tally, args.reply_timeout)
        await killer  # raises if the server could not be restarted
    finally:
        killer.cancel()
        await client.disconnect()
        await server.kill()
    return tally


def _recoveries(tally: _Tally) -> list[float]:
    """For each restart, the time until the client's next open (none if it never reopened)."""
    result = []
    for up in tally.back_up:
        later = [opened - up for opened in tally.opened if opened >= up]
        if later:
            result.append(min(later))
    return result


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def main() -> None:
    """Run the soak and print the tally."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--min-up", type=float, default=0.3, help="seconds up, at least")
    parser.add_argument("--max-up", type=float, default=2.0, help="seconds up, at most")
    parser.add_argument("--max-down", type=float, default=0.5, help="seconds down, at most")
    parser.add_argument("--delay", type=float, default=0.005, help="the demo agent's pace")
    parser.add_argument("--min-replies", type=int, default=300)
    parser.add_argument("--reply-timeout", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    started = time.monotonic()
    tally = asyncio.run(_soak(args))
    recoveries = _recoveries(tally)
    total = sum(tally.outcomes.values())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{tally.kills} SIGKILLs in {time.monotonic() - started:.0f} s, {total} replies; "
        f"{platform.python_version()} on {os.cpu_count()} cores, load {load:.1f}"
    )
    print(", ".join(f"{name} {count}" for name, count in tally.outcomes.items()))
    if recoveries:
        print(
            f"recovery after a restart: p50 {_percentile(recoveries, 0.5):.2f} s, "
            f"p90 {_percentile(recoveries, 0.9):.2f} s, max {max(recoveries):.2f} s "
            f"({len(recoveries)} of {len(tally.back_up)} restarts; median "
            f"{statistics.median(recoveries):.2f} s)"
        )
    for failure in tally.failures:
        print("  " + failure)


if __name__ == "__main__":
    main()
