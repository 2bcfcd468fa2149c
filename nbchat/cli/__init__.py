"""The ``nbchat`` command: one argparse subcommand per task.

Each subcommand is a module of this package with an ``add_<name>`` function
that sets ``handler`` (a function taking the parsed arguments, returning the
exit code), so adding one touches nothing else. ``main`` never
raises: usage errors and runtime failures are one line on stderr and exit 2.

``nbchat serve --replay FILE`` answers from a recorded transcript instead of the
demo agent, ``nbchat serve --openai BASE_URL --model NAME`` with a model behind
an OpenAI-compatible API (``nbchat.server.openai``). ``nbchat transcript show
FILE`` prints a transcript as plain text (:meth:`Transcript.to_text`: replies in
their Markdown source, terminal control characters removed) and ``nbchat
transcript export`` converts it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._version import __version__
from .chat import add_chat
from .common import EXIT_ERROR, Handler, Parser, usage
from .demo import add_demo
from .serve import add_serve
from .transcript import add_transcript

__all__ = ["EXIT_ERROR", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = Parser(prog="nbchat", description="Chat with a backend from inside Jupyter.")
    parser.add_argument("--version", action="version", version=f"nbchat {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_serve(subcommands)
    add_chat(subcommands)
    add_demo(subcommands)
    add_transcript(subcommands)
    parser.set_defaults(handler=lambda _: usage(parser.prog, subcommands.choices))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nbchat`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        return EXIT_ERROR
    handler: Handler = args.handler
    command = " ".join(filter(None, ["nbchat", args.command, getattr(args, "action", None)]))
    try:
        return handler(args)
    except BrokenPipeError:  # e.g. nbchat transcript show FILE | head: the reader left
        # Nothing more can reach the reader; point stdout at /dev/null so that the
        # interpreter's own flush at exit does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        print(f"{command}: standard output was closed before all was written", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a failure no handler foresaw is still one line, not a traceback
        print(f"{command}: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
