"""Transcript cost per 100,000 events, and whether it stays linear in the transcript's length.

Transcripts of 10k, 50k and 100k events are recorded with :class:`Recorder` (one
flushed line per event, as a live client writes them), shaped like real
sessions: per turn a user message, its ack, a tool call and its result, 15
word tokens and ``done`` (20 events). Each operation is timed, best of
``--repeat`` runs:

- record: writing every event through a Recorder (flush per line);
- load: ``Transcript.load`` (read, split, validate each line);
- turns: assembling ``transcript.turns`` (by the recorded reply_to, reply assembly);
- to_markdown, to_notebook, to_text: the exports (nbchat.render's, as the widget uses);
- save: ``transcript.save`` (atomic rewrite with fsync).

Linearity check: time(100k) / time(50k) <= 2.2 for every operation (2.0 is
perfectly linear; the margin absorbs noise). Exit status 1 if any fails.

Run: ``.venv/bin/python benchmarks/transcript_load.py`` (``--clock cpu`` on a shared machine)
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nbchat.protocol import (
    AckMessage,
    DoneMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    UserMessage,
)
from nbchat.transcript import Recorder, Transcript

SIZES = (10_000, 50_000, 100_000)
TOKENS = 15
EVENTS_PER_TURN = 5 + TOKENS
LINEARITY_LIMIT = 2.2
OPERATIONS = ("record", "load", "turns", "to_markdown", "to_notebook", "to_text", "save")


class _Clock:
    """Event times 10 ms apart, as a streaming reply would have."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


def record(path: Path, events: int) -> None:
    """Write a transcript of ``events`` events (whole turns) through a Recorder."""
    with Recorder(path, "ws://127.0.0.1:8000/ws?token=secret", clock=_Clock()) as rec:
        for n in range(events // EVENTS_PER_TURN):
            mid, head = f"m{n:06d}", {"conversation_id": "c1", "reply_to": f"m{n:06d}"}
            rec.sent(UserMessage(id=mid, conversation_id="c1", message=f"What is {n}*7?"))
            rec.received(AckMessage(id=mid, **head))
            call = ToolCall(id=f"t{n}", name="calculator", arguments={"expression": f"{n}*7"})
            rec.received(ToolCallMessage(tool_calls=[call], **head))
            done = call.model_copy(update={"status": "done", "result": n * 7})
            rec.received(ToolResultMessage(tool_calls=[done], **head))
            for word in range(TOKENS):
                rec.received(
                    TokenMessage(response=f"word{word} " if word else "**Result** ", **head)
                )
            rec.received(DoneMessage(**head))


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
"""``wall``: elapsed time. ``cpu``: this process's CPU time (user + system), which other
jobs on a shared machine do not inflate; it leaves out waiting for the disk (save's fsync)."""
clock = CLOCKS["wall"]


def timed(action: Callable[[], object]) -> float:
    """Seconds one call of ``action`` takes, started from a collected heap."""
    gc.collect()  # no garbage-collector debt carried over from the previous operation
    start = clock()
    action()
    return clock() - start


def measure_once(folder: Path, events: int) -> dict[str, float]:
    """Seconds per operation, one run, for a transcript of ``events`` events."""
    path = folder / f"t{events}.jsonl"
    path.unlink(missing_ok=True)
    results = {"record": timed(lambda: record(path, events))}
    results["load"] = timed(lambda: Transcript.load(path))
    transcript = Transcript.load(path)
    assert len(transcript.events) == events // EVENTS_PER_TURN * EVENTS_PER_TURN
    results["turns"] = timed(lambda: transcript.turns)
    results["to_markdown"] = timed(transcript.to_markdown)
    results["to_notebook"] = timed(transcript.to_notebook)
    results["to_text"] = timed(transcript.to_text)
    results["save"] = timed(lambda: transcript.save(folder / "copy.jsonl"))
    return results


def measure(folder: Path, repeat: int) -> dict[int, dict[str, float]]:
    """Best time per size and operation; sizes interleaved so that load spikes hit all alike."""
    best: dict[int, dict[str, float]] = {n: dict.fromkeys(OPERATIONS, float("inf")) for n in SIZES}
    for _ in range(repeat):
        for events in SIZES:
            for operation, seconds in measure_once(folder, events).items():
                best[events][operation] = min(best[events][operation], seconds)
    return best


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per timing (best is kept)")
    parser.add_argument(
        "--no-gc", action="store_true", help="disable the cyclic garbage collector (diagnosis)"
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: process CPU time, steady on a shared machine",
    )
    args = parser.parse_args()
    if args.no_gc:
        gc.disable()
    global clock
    clock = CLOCKS[args.clock]

    command = shlex.join([os.path.relpath(sys.executable), *sys.argv])
    print(f"command: {command}")
    print(
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}"
    )
    print(f"python:  {platform.python_implementation()} {platform.python_version()}")
    print(f"shape:   {EVENTS_PER_TURN} events per turn (message, ack, tool call, result, "
          f"{TOKENS} tokens, done); best of {args.repeat}, {args.clock} clock, "
          f"garbage collector {'off' if args.no_gc else 'on'}")  # fmt: skip
    print()

    with tempfile.TemporaryDirectory(prefix="nbchat-bench-") as tmp:
        results = measure(Path(tmp), args.repeat)

    header = f"{'operation':<12}" + "".join(f"{f'{n:,} ev':>12}" for n in SIZES)
    print(header + f"{'per 100k':>12}{'100k/50k':>10}")
    failed = []
    for operation in OPERATIONS:
        row = f"{operation:<12}" + "".join(f"{results[n][operation]:>11.3f}s" for n in SIZES)
        per_100k = results[100_000][operation]
        ratio = per_100k / results[50_000][operation]
        verdict = "ok" if ratio <= LINEARITY_LIMIT else "NOT LINEAR"
        if ratio > LINEARITY_LIMIT:
            failed.append(operation)
        print(f"{row}{per_100k:>11.3f}s{ratio:>9.2f}x {verdict}")
    total = sum(results[100_000][op] for op in OPERATIONS if op != "record")
    print()
    print(f"load + turns + exports + save of 100,000 events: {total:.2f} s")
    print(f"linearity (100k/50k <= {LINEARITY_LIMIT}x): " + ("ok" if not failed else "FAILED"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
