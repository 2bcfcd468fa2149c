"""What streaming a reply into the widget costs: comm messages, bytes, microseconds per token.

Tokens are fed to a TurnView (what ChatWidget does for each ``token`` message)
whose widgets use a recording comm: the bytes are what the kernel would send
the frontend. Arrival is simulated at ``--rate`` tokens per second with a
virtual clock, so the coalescing sees a realistic stream while the CPU cost is
measured for real (wall time of the feeding loop, no sleeps).

Two texts: prose (a paragraph break every 60 words) and a single paragraph
(the worst case: one Markdown block that grows to the end). Next to them, the
naive widget: render the whole Markdown and set ``HTML.value`` on every token.

Then a long conversation: the bytes one more turn costs at turn 90 and turn 490,
in the panel's paged log (TurnLog) and in one flat box of turns (what the panel
did before: every new turn re-sent the whole list of children).

Targets: <= 5 us per token amortized; cost linear in tokens (20k <= 2.2 x 10k);
a turn costs the same bytes at turn 490 as at turn 90.
Run: ``.venv/bin/python benchmarks/widget_render.py``
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ipywidgets as widgets

from nbchat import render
from nbchat.notebook.views import Throttle, TurnLog, TurnView
from nbchat.protocol import DoneMessage, TokenMessage
from nbchat.reply import ReplyBuilder
from tests.notebook.widget_comm import RecordingComm, recording_comms


@dataclass
class Result:
    seconds: float
    messages: int
    bytes: int

    def per_token_us(self, tokens: int) -> float:
        return self.seconds / tokens * 1e6


def words(tokens: int, paragraph: int | None) -> list[TokenMessage]:
    """The token messages of a reply: numbered words, a blank line every ``paragraph`` words."""
    out = []
    for i in range(tokens):
        sep = "\n\n" if paragraph and (i + 1) % paragraph == 0 else " "
        out.append(TokenMessage(response=f"word{i}{sep}"))
    return out


def sent(log: list[RecordingComm]) -> tuple[int, int]:
    return sum(len(c.messages) for c in log), sum(c.bytes_sent for c in log)


def coalesced(tokens: list[TokenMessage], rate: float) -> Result:
    """nbchat: TurnView with a 30 fps Throttle on a virtual clock advancing 1/rate a token."""
    now = [0.0]
    with recording_comms() as log:
        view = TurnView("question", Throttle(30.0, clock=lambda: now[0]))
        reply = ReplyBuilder()
        before = sent(log)
        step = 1.0 / rate
        gc.collect()
        start = time.perf_counter()
        for message in tokens:
            now[0] += step
            reply.feed(message)  # the session's assembly, as the client hands it over
            view.feed(message, reply)
        reply.feed(done := DoneMessage())
        view.feed(done, reply)
        elapsed = time.perf_counter() - start
        after = sent(log)
    return Result(elapsed, after[0] - before[0], after[1] - before[1])


def naive(tokens: list[TokenMessage]) -> Result:
    """A widget that re-renders the whole message and sends it on every token."""
    with recording_comms() as log:
        html = widgets.HTML()
        before = sent(log)
        parts: list[str] = []
        gc.collect()
        start = time.perf_counter()
        for message in tokens:
            parts.append(message.response)
            html.value = render.assistant_message_html("".join(parts))
        elapsed = time.perf_counter() - start
        after = sent(log)
    return Result(elapsed, after[0] - before[0], after[1] - before[1])


def turn_costs(turns: int, paged: bool) -> list[int]:
    """Bytes sent for each turn added to a conversation (user text, a short reply, done)."""
    costs = []
    with recording_comms() as log:
        flat = widgets.VBox()
        paged_log = TurnLog()
        throttle = Throttle(30.0)
        for i in range(turns):
            before = sent(log)[1]
            view = TurnView(f"question {i}", throttle)
            if paged:
                paged_log.append(view.box)
            else:
                flat.children += (view.box,)
            reply = ReplyBuilder()
            for message in (TokenMessage(response=f"answer {i}"), DoneMessage()):
                reply.feed(message)
                view.feed(message, reply)
            costs.append(sent(log)[1] - before)
    return costs


def best(run: Callable[[], Result], repeat: int) -> Result:
    return min((run() for _ in range(repeat)), key=lambda r: r.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 20_000])
    parser.add_argument("--rate", type=float, default=20_000.0, help="tokens per second")
    parser.add_argument("--naive-max", type=int, default=10_000, help="largest naive run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    print(f"arrival rate {args.rate:,.0f} tokens/s (virtual clock), best of {args.repeat}")
    header = f"{'text':<14}{'tokens':>8}{'us/token':>10}{'comm msgs':>11}{'bytes':>12}"
    print(header)
    for label, paragraph in [("prose", 60), ("one paragraph", None)]:
        costs = {}
        for n in args.sizes:
            tokens = words(n, paragraph)
            result = best(lambda t=tokens: coalesced(t, args.rate), args.repeat)
            costs[n] = result.seconds
            print(
                f"{label:<14}{n:>8}{result.per_token_us(n):>10.2f}"
                f"{result.messages:>11}{result.bytes:>12,}"
            )
        if len(args.sizes) >= 2:
            small, large = sorted(args.sizes)[-2:]
            print(f"{label:<14}cost {large} / {small} tokens: {costs[large] / costs[small]:.2f}x")
    for n in args.sizes:
        if n > args.naive_max:
            continue
        tokens = words(n, 60)
        result = best(lambda t=tokens: naive(t), 1)
        print(
            f"{'naive prose':<14}{n:>8}{result.per_token_us(n):>10.2f}"
            f"{result.messages:>11}{result.bytes:>12,}"
        )

    print("bytes for one more turn, at turn 90 and at turn 490 of a conversation:")
    for label, paged in [("paged log", True), ("flat box", False)]:
        costs = turn_costs(491, paged)
        print(f"{label:<14}{costs[90]:>10,} B{costs[490]:>10,} B  ({costs[490] / costs[90]:.2f}x)")


if __name__ == "__main__":
    main()
