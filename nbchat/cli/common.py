"""What every ``nbchat`` subcommand shares: one-line errors, the exit code, loading files."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

from ..config import DEFAULT_URL

if TYPE_CHECKING:
    from ..transcript import Transcript

__all__ = [
    "DEFAULT_PORT",
    "EXIT_ERROR",
    "Handler",
    "Parser",
    "load_transcript",
    "non_negative_seconds",
    "port_number",
    "reason",
    "usage",
]

EXIT_ERROR = 2
"""The exit code of every failure: bad usage, a port in use, a server that stopped."""

Handler = Callable[[argparse.Namespace], int]

DEFAULT_PORT = urlsplit(DEFAULT_URL).port or 8000
"""``nbchat serve`` listens where clients look by default (the port of ``DEFAULT_URL``)."""


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line: what is wrong, and where the usage is.

    argparse prints the whole usage first; the README promises one line on
    stderr and exit 2 for every error. Subcommand parsers inherit the class.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: MESSAGE: see PROG --help`` on stderr and exit 2."""
        print(f"{self.prog}: {message}: see {self.prog} --help", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def port_number(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535 (argparse type): ``99999`` is a usage error."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {port}")
    return port


def non_negative_seconds(text: str) -> float:
    """A number of seconds, 0 or more (argparse type): ``-1`` and ``nan`` are usage errors."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 seconds or more, got {text!r}")
    return value


def usage(prog: str, commands: Iterable[str]) -> int:
    """One stderr line naming the commands ``prog`` expects; exit 2."""
    choices = list(commands)
    listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
    print(f"{prog}: give one of {listed}: see {prog} --help", file=sys.stderr)
    return EXIT_ERROR


def load_transcript(path: str, command: str) -> Transcript | None:
    """The transcript at ``path``; None after one stderr line saying why it cannot be read.

    Skipped lines (torn or corrupt) are reported one stderr line each, not as
    Python warnings with their source line.
    """
    from ..exceptions import TranscriptError
    from ..transcript import Transcript

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            transcript = Transcript.load(path)
        except TranscriptError as exc:
            print(f"{command}: {exc}", file=sys.stderr)
            return None
    for warning in caught:
        print(f"{command}: warning: {warning.message}", file=sys.stderr)
    return transcript


def reason(exc: OSError) -> str:
    """The short cause: ``address already in use``, not asyncio's long bind message."""
    if exc.errno is not None and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        text = os.strerror(exc.errno)
    else:
        text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]
