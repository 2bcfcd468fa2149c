"""The ``nbchat`` command: one argparse subcommand per task.

Each subcommand registers itself with an ``_add_<name>`` function that sets
``handler`` (a function taking the parsed arguments, returning the exit code), so
adding ``chat``, ``demo`` or ``transcript`` touches nothing else. ``main`` never
raises: usage errors and runtime failures are one line on stderr and exit 2.

``nbchat serve --replay FILE`` answers from a recorded transcript instead of the
demo agent, ``nbchat serve --openai BASE_URL --model NAME`` with a model behind
an OpenAI-compatible API (``nbchat.server.bridge``). ``nbchat transcript show
FILE`` prints a transcript as plain text (:meth:`Transcript.to_text`: replies in
their Markdown source, terminal control characters removed) and ``nbchat
transcript export`` converts it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

from ._version import __version__
from .config import DEFAULT_URL, DEMO_DELAY, TOKEN_ENV, URL_ENV

if TYPE_CHECKING:
    from .server import Responder
    from .transcript import Transcript

__all__ = ["EXIT_ERROR", "build_parser", "main"]

EXIT_ERROR = 2
"""The exit code of every failure: bad usage, a port in use, a server that stopped."""

Handler = Callable[[argparse.Namespace], int]

_DEFAULT_PORT = urlsplit(DEFAULT_URL).port or 8000
"""``nbchat serve`` listens where clients look by default (the port of ``DEFAULT_URL``)."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line: what is wrong, and where the usage is.

    argparse prints the whole usage first; the README promises one line on
    stderr and exit 2 for every error. Subcommand parsers inherit the class.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: MESSAGE: see PROG --help`` on stderr and exit 2."""
        print(f"{self.prog}: {message}: see {self.prog} --help", file=sys.stderr)
        raise SystemExit(EXIT_ERROR)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(prog="nbchat", description="Chat with a backend from inside Jupyter.")
    parser.add_argument("--version", action="version", version=f"nbchat {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_serve(subcommands)
    _add_chat(subcommands)
    _add_demo(subcommands)
    _add_transcript(subcommands)
    parser.set_defaults(handler=lambda _: _usage(parser.prog, subcommands.choices))
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


# nbchat serve


def _add_serve(subcommands: argparse._SubParsersAction[_Parser]) -> None:
    serve = subcommands.add_parser(
        "serve",
        help="run the demo backend, or replay a transcript (protocol v1 over WebSocket)",
        description=(
            "Run the demo backend until interrupted (Ctrl-C or SIGTERM); with --replay, "
            "answer each message with the reply recorded for it in a transcript."
        ),
    )
    from .server.app import DEFAULT_HOST, DEFAULT_OPTIONS  # light: no agent, no tools

    serve.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=_DEFAULT_PORT, help="port to bind (default: %(default)s)"
    )
    serve.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or DEFAULT_OPTIONS["token"],
        help=f"require 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV})",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept browser pages from ORIGIN, e.g. https://example.org (repeatable)",
    )
    serve.add_argument(
        "--delay",
        type=float,
        default=DEMO_DELAY,
        help="seconds between streamed words of the demo agent (default: %(default)s)",
    )
    serve.add_argument(
        "--replay",
        metavar="FILE",
        help="answer from this transcript (JSON Lines) instead of the demo agent",
    )
    serve.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="with --replay: 1 replays at the recorded pace, 2 twice as fast "
        "(default: as fast as possible)",
    )
    serve.add_argument(
        "--max-size",
        type=int,
        default=DEFAULT_OPTIONS["max_size"],
        metavar="BYTES",
        help="largest incoming frame; larger ones close the connection (default: %(default)s)",
    )
    serve.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="logging level on stderr (default: %(default)s)",
    )
    from .server.model_options import add_arguments as add_model_arguments  # light: openai is lazy

    add_model_arguments(serve)
    serve.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from .exceptions import ConfigError
    from .server.model_options import agent_from_arguments

    transcript = None
    if args.replay is not None and args.openai:
        print("nbchat serve: give --replay FILE or --openai BASE_URL, not both", file=sys.stderr)
        return EXIT_ERROR
    try:
        model = agent_from_arguments(args)
    except ConfigError as exc:
        print(f"nbchat serve: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.replay is None:
        if args.speed is not None:
            print("nbchat serve: --speed needs --replay FILE", file=sys.stderr)
            return EXIT_ERROR
    else:
        if args.speed is not None and not args.speed >= 0:
            print(f"nbchat serve: --speed must be 0 or more, got {args.speed}", file=sys.stderr)
            return EXIT_ERROR
        transcript = _load_transcript(args.replay, "nbchat serve")
        if transcript is None:
            return EXIT_ERROR
    logging.basicConfig(level=args.log_level.upper(), format="%(name)s: %(message)s")
    try:
        asyncio.run(_serve(args, transcript, model))
    except KeyboardInterrupt:
        pass  # where signal handlers are unavailable (Windows), Ctrl-C lands here
    except OSError as exc:
        print(
            f"nbchat serve: cannot listen on {args.host}:{args.port}: {_reason(exc)}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except Exception as exc:
        print(f"nbchat serve: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


async def _serve(
    args: argparse.Namespace, transcript: Transcript | None, model: Responder | None
) -> None:
    from .server import ChatServer, DemoServer, ReplayServer, ServerOptions

    options: ServerOptions = {
        "token": args.token,
        "allowed_origins": args.allow_origin,
        "max_size": args.max_size,
    }
    server: ChatServer
    if model is not None:
        server = ChatServer(model, host=args.host, port=args.port, **options)
    elif transcript is None:
        server = DemoServer(delay=args.delay, host=args.host, port=args.port, **options)
    else:
        server = ReplayServer(
            transcript, speed=args.speed, host=args.host, port=args.port, **options
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    await server.open()
    try:
        print(f"nbchat serve: listening on {server.url}", flush=True)
        await stop.wait()
    finally:
        await server.close(grace=2.0)  # a client that does not answer the close must not hang us


def _load_transcript(path: str, command: str) -> Transcript | None:
    """The transcript at ``path``; None after one stderr line saying why it cannot be read.

    Skipped lines (torn or corrupt) are reported one stderr line each, not as
    Python warnings with their source line.
    """
    from .exceptions import TranscriptError
    from .transcript import Transcript

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


def _reason(exc: OSError) -> str:
    """The short cause: ``address already in use``, not asyncio's long bind message."""
    if exc.errno is not None and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        text = os.strerror(exc.errno)
    else:
        text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


# nbchat chat


def _add_chat(subcommands: argparse._SubParsersAction[_Parser]) -> None:
    chat = subcommands.add_parser(
        "chat",
        help="chat from the terminal: one message, or an interactive prompt",
        description=(
            "Send MESSAGE and stream the reply with its tool calls, or, without MESSAGE, "
            "answer each line typed until end of input or /quit (on a terminal: line "
            "editing and history, Ctrl-C stops a reply, /new and /help). Without --url and "
            "$NBCHAT_WS_URL a built-in server is started for the session."
        ),
    )
    chat.add_argument("message", nargs="*", help="the message to send (default: interactive)")
    chat.add_argument("--url", default=os.environ.get(URL_ENV) or None)
    chat.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"send 'Authorization: Bearer TOKEN' (default: ${TOKEN_ENV})",
    )
    chat.add_argument(
        "--timeout",
        type=_positive,
        default=120.0,
        help="seconds to wait for the connection and for each reply (default: %(default)s)",
    )
    chat.set_defaults(handler=_run_chat)


def _positive(text: str) -> float:
    """A number of seconds above 0 (argparse type): ``nan``, ``0`` and ``-1`` are usage errors."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


class _ChatFailed(Exception):
    """A failure of ``nbchat chat``, already phrased as its one stderr line."""


def _run_chat(args: argparse.Namespace) -> int:
    from .exceptions import NbchatError

    try:
        asyncio.run(_chat(args))
    except KeyboardInterrupt:
        return 130
    except _ChatFailed as exc:
        print(f"nbchat chat: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except NbchatError as exc:
        print(f"nbchat chat: {_chat_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _chat_error(exc: BaseException) -> str:
    """The one line for ``exc``, with advice a terminal user can follow."""
    from .exceptions import ReconnectExhausted

    if isinstance(exc, ReconnectExhausted):
        return (
            f"cannot reach {exc.url} (gave up after {exc.attempts} attempts): "
            "start the server (nbchat serve) or check --url"
        )
    return str(exc)


async def _chat(args: argparse.Namespace) -> None:
    from .client import ChatClient
    from .terminal import chat_once, chat_repl

    server = None
    url = args.url
    if url is None:
        from .server import DemoServer

        server = await DemoServer.start(port=0, delay=DEMO_DELAY)
        url = server.url
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    # A terminal user wants an answer or an error, not five silent retries.
    client = ChatClient(url=url, headers=headers, max_reconnect_attempts=2, reconnect_interval=0.5)
    try:
        try:
            await asyncio.wait_for(client.connect(), args.timeout)
        except asyncio.TimeoutError:
            raise _ChatFailed(
                f"could not connect to {client.safe_url} within {args.timeout:g} s: "
                "check the server or raise --timeout"
            ) from None
        if args.message:
            try:
                await asyncio.wait_for(chat_once(client, " ".join(args.message)), args.timeout)
            except asyncio.TimeoutError:
                raise _ChatFailed(
                    f"no complete reply within {args.timeout:g} s: raise --timeout "
                    "or check the server"
                ) from None
        else:
            await chat_repl(client, timeout=args.timeout)
    finally:
        await client.disconnect()
        if server is not None:
            await server.close(grace=1.0)


# nbchat demo


def _add_demo(subcommands: argparse._SubParsersAction[_Parser]) -> None:
    demo = subcommands.add_parser(
        "demo",
        help="open JupyterLab on the quickstart notebook (built-in backend)",
        description=(
            "Start JupyterLab on loopback with NOTEBOOK open; the notebook's ChatWidget "
            "starts nbchat's built-in backend, so nothing else needs to run."
        ),
    )
    demo.add_argument("notebook", nargs="?", default="notebooks/quickstart.ipynb")
    demo.add_argument("--port", type=int, default=8888)
    demo.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    demo.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    if not os.path.exists(args.notebook):
        print(
            f"nbchat demo: no notebook at {args.notebook}: run it from the repository",
            file=sys.stderr,
        )
        return EXIT_ERROR
    jupyter = shutil.which("jupyter-lab", path=os.path.dirname(sys.executable)) or shutil.which(
        "jupyter-lab"
    )
    if jupyter is None:
        print(
            "nbchat demo: JupyterLab is not installed: pip install 'nbchat[lab]'", file=sys.stderr
        )
        return EXIT_ERROR
    command = [jupyter, args.notebook, "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={args.port}"]
    if args.no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI machines run as root
    print(f"nbchat demo: starting JupyterLab on {args.notebook} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


# nbchat transcript

_FORMATS = {".md": "md", ".markdown": "md", ".ipynb": "ipynb", ".json": "json"}


def _add_transcript(subcommands: argparse._SubParsersAction[_Parser]) -> None:
    transcript = subcommands.add_parser(
        "transcript",
        help="show or export a recorded transcript",
        description="Read a transcript recorded by ChatClient(record=...) or chat.record().",
    )
    actions = transcript.add_subparsers(dest="action", metavar="ACTION")
    transcript.set_defaults(handler=lambda _: _usage(transcript.prog, actions.choices))

    show = actions.add_parser(
        "show",
        help="print the conversation as plain text",
        description=(
            "Print each turn: the user's message, tool calls with their arguments and "
            "results, and the reply in its Markdown source."
        ),
    )
    show.add_argument("file", metavar="FILE")
    show.set_defaults(handler=_run_transcript_show)

    export = actions.add_parser(
        "export",
        help="convert to Markdown, a notebook or one JSON document",
        description=(
            "Write the conversation as Markdown (md), an nbformat v4 notebook (ipynb) or "
            "one JSON document with every event (json)."
        ),
    )
    export.add_argument("file", metavar="FILE")
    export.add_argument(
        "--format",
        choices=["md", "ipynb", "json"],
        help="output format (default: from the extension of OUT; md on standard output)",
    )
    export.add_argument(
        "-o", "--output", metavar="OUT", default="-", help="output file, - for stdout (default)"
    )
    export.set_defaults(handler=_run_transcript_export)


def _usage(prog: str, commands: Iterable[str]) -> int:
    """One stderr line naming the commands ``prog`` expects; exit 2."""
    choices = list(commands)
    listed = ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
    print(f"{prog}: give one of {listed}: see {prog} --help", file=sys.stderr)
    return EXIT_ERROR


def _run_transcript_show(args: argparse.Namespace) -> int:
    transcript = _load_transcript(args.file, "nbchat transcript show")
    if transcript is None:
        return EXIT_ERROR
    sys.stdout.write(transcript.to_text())
    sys.stdout.flush()  # a closed pipe fails here, inside main, not at exit
    return 0


def _run_transcript_export(args: argparse.Namespace) -> int:
    command = "nbchat transcript export"
    output: str = args.output
    kind: str | None = args.format or (
        "md" if output == "-" else _FORMATS.get(Path(output).suffix.lower())
    )
    if kind is None:
        print(
            f"{command}: cannot tell the format of {output!r}: give --format md, ipynb or json",
            file=sys.stderr,
        )
        return EXIT_ERROR
    transcript = _load_transcript(args.file, command)
    if transcript is None:
        return EXIT_ERROR
    if kind == "md":
        text = transcript.to_markdown()
    elif kind == "json":
        text = transcript.to_json() + "\n"
    else:
        try:
            import nbformat
        except ImportError:
            print(f"{command}: ipynb needs nbformat: pip install nbformat", file=sys.stderr)
            return EXIT_ERROR
        text = nbformat.writes(transcript.to_notebook())  # type: ignore[no-untyped-call]
    if output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()  # a closed pipe fails here, inside main, not at exit
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"{command}: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0
