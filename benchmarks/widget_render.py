"""What streaming a reply into the widget costs: comm messages, bytes, microseconds per token.

Tokens are fed to a TurnView (what ChatWidget does for each ``token`` message)
whose widgets use a recording comm: the bytes are what the kernel would send
the frontend. Arrival is simulated at ``--rate`` tokens per second with a
virtual clock, so the coalescing sees a realistic stream while the CPU cost is
measured for real (wall time of the feeding loop, no sleeps).

Two texts: prose (a paragraph break every 60 words) and a single paragraph
(the worst case: one Markdown block that grows to the end). Next to them, the
naive widget: render the whole Markdown and set ``HTML.value`` on every token.

A third text mixes the new surface in: inline math every 20 words, a display
formula and an 8-line Python block every 60 (highlighted by Pygments, math as
MathML), measured with highlighting and MathML and again with the plain
renderer (CommonMark only) on the same tokens; and "one code block", a single
fence left open to the end (the streaming worst case for highlighting).

Then a long conversation: the bytes one more turn costs at turn 90 and turn 490,
in the panel's paged log (TurnLog) and in one flat box of turns (what the panel
did before: every new turn re-sent the whole list of children).

Targets: <= 5 us per token amortized; cost linear in tokens (20k <= 2.2 x 10k);
math and code within 1.5x of plain Markdown per token, and 20k <= 11x 2k;
a turn costs the same bytes at turn 490 as at turn 90.
Run: ``.venv/bin/python benchmarks/widget_render.py``
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ipywidgets as widgets

from nbchat import render
from nbchat.notebook.static_view import StaticConversation, static_bundle
from nbchat.notebook.turnlog import TurnLog
from nbchat.notebook.views import Throttle, TurnView
from nbchat.protocol import DoneMessage, TokenMessage
from nbchat.render import highlight as highlight_module
from nbchat.render import markdown as markdown_module
from nbchat.render import math as math_module
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


CODE = [
    "def mean(values: list[float]) -> float:",
    '    """The arithmetic mean."""',
    "    total = 0.0",
    "    for value in values:",
    "        total += value  # running sum",
    "    if not values:",
    '        raise ValueError("empty")',
    "    return total / len(values)",
]


def rich(tokens: int, block: bool = False) -> list[TokenMessage]:
    """Prose with math and code (or, with ``block``, one fence open to the end), as tokens."""
    pieces: list[str] = ["```python\n"] if block else []
    i = 0
    while len(pieces) < tokens:
        if block:
            line = CODE[i % len(CODE)].replace("total", f"total{i}").split(" ")
            pieces.extend(f"{word} " for word in line[:-1])
            pieces.append(line[-1] + "\n")
        elif i % 60 == 59:
            pieces.append(
                f"\n\n$$\n\\sum_{{k=1}}^{{{i}}} \\frac{{x_k^2}}{{n}}\\,\\mathrm{{d}}t\n$$\n\n"
            )
            pieces.append("```python\n")
            for line in CODE:
                words_ = line.replace("total", f"total{i}").split(" ")  # no two blocks alike
                pieces.extend(f"{word} " for word in words_[:-1])
                pieces.append(words_[-1] + "\n")
            pieces.append("```\n\n")
        elif i % 20 == 19:
            pieces.append(f"$x_{{{i}}}^2 + \\alpha$ ")
        else:
            pieces.append(f"word{i} ")
        i += 1
    return [TokenMessage(response=piece) for piece in pieces[:tokens]]


def cold(run: Callable[[], Result]) -> Result:
    """``run`` with the highlighting and MathML caches emptied, as for a new reply."""
    highlight_module._highlighted.cache_clear()
    math_module.latex_to_mathml.cache_clear()
    markdown_module._clean_piece.cache_clear()
    return run()


def plain_markdown(run: Callable[[], Result]) -> Result:
    """``run`` with the renderer of plain CommonMark (no highlighting, no math).

    The open fence of a stream is highlighted by ``OpenFence``, not by the
    renderer, so no lexer is found for it either (before, the plain baseline
    highlighted a code block while it streamed in).
    """
    saved, lexer = markdown_module._md, highlight_module._lexer
    markdown_module._md = markdown_module._markdown_it(rich=False)
    highlight_module._lexer = lambda language: None  # type: ignore[assignment]
    try:
        return run()
    finally:
        markdown_module._md, highlight_module._lexer = saved, lexer


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


def saved_copy_costs(at: list[int], repeat: int) -> dict[int, tuple[float, float, float, int, int]]:
    """The kernel's cost of the saved copy's update after reply ``n`` (for each n in ``at``).

    Seconds as the panel does it now (the copy split over outputs, only the changed
    ones sent: ``StaticConversation.changed``), seconds as one output holding the
    whole copy with finished turns kept (the design before), seconds re-rendering
    every turn (the design before that), then the bytes sent now and as one output.
    An update is the bundles plus their JSON, as the kernel sends them.
    """
    views: list[TurnView] = []
    throttle = Throttle(30.0)
    static = StaticConversation()
    static.changed([], everything=True)  # the panel displayed: every output made
    costs = {}
    with recording_comms():
        for i in range(max(at) + 1):
            view = TurnView(f"question {i}", throttle)
            reply = ReplyBuilder()
            answer = f"Answer {i}: use `x = {i}` and then\n\n```python\nprint(x * {i})\n```\n"
            for message in (TokenMessage(response=answer), DoneMessage()):
                reply.feed(message)
                view.feed(message, reply)
            views.append(view)
            if i not in at:
                static.changed(views)  # the update after this reply
                continue
            before = (
                dict(static._finished),
                [list(s) for s in static._slots],
                static._sent[:],
                static._placed[:],
            )

            def restore(kept: Any = before) -> None:
                """The copy as it was after the previous reply's update."""
                static._finished, static._sent = dict(kept[0]), list(kept[2])
                static._slots = [list(slot) for slot in kept[1]]
                static._placed = list(kept[3])

            def split() -> float:
                restore()
                started = time.perf_counter()
                sent = [json.dumps(bundle) for _, bundle in static.changed(views)]
                elapsed = time.perf_counter() - started
                assert sent
                return elapsed

            def whole() -> float:
                restore()  # turn i is rendered anew each run
                started = time.perf_counter()
                json.dumps(static.bundle(views))
                return time.perf_counter() - started

            def uncached() -> float:
                started = time.perf_counter()
                json.dumps(static_bundle(view.turn for view in views))
                return time.perf_counter() - started

            split_seconds = min(split() for _ in range(repeat))
            whole_seconds = min(whole() for _ in range(repeat))
            uncached_seconds = min(uncached() for _ in range(repeat))
            restore()
            sent_now = sum(len(json.dumps(b).encode()) for _, b in static.changed(views))
            sent_whole = len(json.dumps(static.bundle(views)).encode())
            costs[i] = (split_seconds, whole_seconds, uncached_seconds, sent_now, sent_whole)
    return costs


def best(run: Callable[[], Result], repeat: int) -> Result:
    return min((run() for _ in range(repeat)), key=lambda r: r.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 2_000, 10_000, 20_000])
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
    for label, block in [("math and code", False), ("one code block", True)]:
        costs = {}
        for n in args.sizes:
            tokens = rich(n, block)
            result = best(lambda t=tokens: cold(lambda: coalesced(t, args.rate)), args.repeat)
            plain = best(
                lambda t=tokens: plain_markdown(lambda: coalesced(t, args.rate)), args.repeat
            )
            costs[n] = result.seconds
            print(
                f"{label:<14}{n:>8}{result.per_token_us(n):>10.2f}"
                f"{result.messages:>11}{result.bytes:>12,}"
                f"   plain {plain.per_token_us(n):.2f} us/token, "
                f"{result.seconds / plain.seconds:.2f}x"
            )
        small = min((n for n in args.sizes if n >= 2_000), default=min(args.sizes))
        large = max(args.sizes)
        if large > small:
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

    print("the saved copy's update after one more reply (kernel time, best of 5):")
    copies = saved_copy_costs([10, 300], 5)
    for n, (split, whole, uncached, sent, sent_whole) in copies.items():
        print(
            f"turn {n:<5}{split * 1e3:>7.2f} ms {sent:>9,} B sent   (one output: "
            f"{whole * 1e3:.2f} ms, {sent_whole:,} B; every turn re-rendered: "
            f"{uncached * 1e3:.2f} ms)"
        )
    print(
        f"update cost at turn 300 / turn 10: {copies[300][0] / copies[10][0]:.2f}x "
        f"(one output: {copies[300][1] / copies[10][1]:.2f}x; every turn re-rendered: "
        f"{copies[300][2] / copies[10][2]:.2f}x)"
    )


if __name__ == "__main__":
    main()
