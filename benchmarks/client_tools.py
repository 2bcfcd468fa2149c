"""What running a tool in the client costs: a client tool call against the same tool in the server.

A ChatServer runs in its own process (as ``nbchat serve`` does) with a
responder that, asked ``bench N``, times ``N`` calls of each kind, interleaved,
from the server's side, and answers with the timings:

- server: the tool ``noop`` run as the bridge runs server tools (arguments
  validated, the function in a worker thread, the result serialised);
- client (sync): ``await current_client_tools().call("noop", ...)``: the request
  travels in the reply to the client (this process, a ``ChatClient`` over
  loopback), which validates, runs the plain function in a worker thread,
  serialises and answers; the server resumes when the answer is in;
- client (async): the same with an ``async def`` tool, run on the client's loop;
- client (MCP): the same function as a tool of an MCP stdio server the client
  started (``tests/client/mcp_server.py``'s ``noop``): the client validates the
  arguments against the server's JSON Schema and makes the ``tools/call``.

Reported: p50 and p99 of each, in microseconds, and what the client adds at the
median over the server-side tool. Target: <= 1 ms added at the median; an MCP
tool <= 5 ms over the same function as a plain client tool.

Run from the repository root: ``.venv/bin/python benchmarks/client_tools.py``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).absolute().parent.parent
sys.path.insert(0, str(ROOT))

from nbchat import ChatClient  # noqa: E402
from nbchat.protocol import TokenMessage  # noqa: E402
from nbchat.server import ChatServer, current_client_tools  # noqa: E402
from nbchat.server.responder import ResponderMessage  # noqa: E402
from nbchat.toolspec import serialize_result, tool_spec  # noqa: E402

KINDS = ("server", "client_sync", "client_async", "client_mcp")
MCP_SERVER = [sys.executable, str(ROOT / "tests" / "client" / "mcp_server.py")]


def noop(x: int) -> int:
    """Return x."""
    return x


async def anoop(x: int) -> int:
    """Return x."""
    return x


class Bench:
    """A responder timing tool calls from the server's side: ``bench N`` -> JSON timings."""

    def __init__(self) -> None:
        self.spec = tool_spec(noop)

    async def respond(self, conversation_id: str, text: str) -> AsyncIterator[ResponderMessage]:
        """Time ``N`` calls of each kind, interleaved; answer with the microseconds, by kind."""
        count = int(text.split()[1])
        tools = current_client_tools()
        times: dict[str, list[float]] = {kind: [] for kind in KINDS}
        clock = time.perf_counter
        for number in range(count):
            start = clock()
            validated = self.spec.validate({"x": number})
            serialize_result(await asyncio.to_thread(self.spec.call, validated))
            times["server"].append(clock() - start)
            start = clock()
            call = await tools.call("noop", {"x": number})
            times["client_sync"].append(clock() - start)
            assert call.status == "done" and call.result == number, call
            start = clock()
            call = await tools.call("anoop", {"x": number})
            times["client_async"].append(clock() - start)
            assert call.status == "done" and call.result == number, call
            start = clock()
            call = await tools.call("mcp_noop", {"x": number})
            times["client_mcp"].append(clock() - start)
            assert call.status == "done" and call.result == {"result": number}, call
        yield TokenMessage(response=json.dumps(times))


async def serve() -> None:
    """The server process: print the URL, serve until killed."""
    async with ChatServer(Bench(), max_tool_calls=4) as server:
        print(server.url, flush=True)
        await asyncio.Event().wait()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def measure(url: str, calls: int, warmup: int) -> dict[str, list[float]]:
    """Ask the server to time ``calls`` calls of each kind; drop the first ``warmup``."""
    async with ChatClient(url=url, tools=[noop, anoop]) as client:
        await client.mcp(MCP_SERVER, prefix="mcp_", confirm=False)
        reply = await client.ask(f"bench {calls + warmup}", timeout=600)
    times: dict[str, list[float]] = json.loads(reply.text)
    return {kind: values[warmup:] for kind, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    """Start the server process, measure, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls of each kind (2000)")
    parser.add_argument("--warmup", type=int, default=200, help="first calls not counted (200)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve())
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        times = asyncio.run(measure(url, args.calls, args.warmup))
    finally:
        server.terminate()
        server.wait()
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.calls} calls of each kind (after {args.warmup} not counted), interleaved")
    print(f"{'tool':<14}{'p50 (us)':>10}{'p99 (us)':>10}{'mean (us)':>11}")
    for kind in KINDS:
        values = [t * 1e6 for t in times[kind]]
        print(
            f"{kind:<14}{percentile(values, 50):>10.0f}{percentile(values, 99):>10.0f}"
            f"{statistics.fmean(values):>11.0f}"
        )
    base = percentile(times["server"], 50)
    for kind in KINDS[1:]:
        added = (percentile(times[kind], 50) - base) * 1e3
        print(f"{kind} adds {added:.3f} ms at the median over the server-side tool")
    mcp = (percentile(times["client_mcp"], 50) - percentile(times["client_sync"], 50)) * 1e3
    print(f"client_mcp adds {mcp:.3f} ms at the median over the plain client tool")


if __name__ == "__main__":
    main()
