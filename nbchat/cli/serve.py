"""``nbchat serve``: the reference backend (demo agent, a replay, or a model) until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from ..config import DEMO_DELAY, TOKEN_ENV

if TYPE_CHECKING:
    from ..server.openai import OpenAIAgent
    from ..transcript import Transcript

from .common import (
    DEFAULT_PORT,
    EXIT_ERROR,
    Parser,
    load_transcript,
    non_negative_seconds,
    port_number,
    reason,
)

__all__ = ["add_serve"]

# nbchat serve


def add_serve(subcommands: argparse._SubParsersAction[Parser]) -> None:
    serve = subcommands.add_parser(
        "serve",
        help="run the demo backend, or replay a transcript (protocol v1 over WebSocket)",
        description=(
            "Run the demo backend until interrupted (Ctrl-C or SIGTERM); with --replay, "
            "answer each message with the reply recorded for it in a transcript."
        ),
    )
    from ..server.app import DEFAULT_HOST, DEFAULT_OPTIONS  # light: no agent, no tools

    serve.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    serve.add_argument(
        "--port",
        type=port_number,
        default=DEFAULT_PORT,
        help="port to bind, 0 for any free one (default: %(default)s)",
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
        type=non_negative_seconds,
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
        "--max-connections",
        type=int,
        default=DEFAULT_OPTIONS["max_connections"],
        metavar="N",
        help="open connections at most; one more gets HTTP 503 (default: %(default)s)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_OPTIONS["idle_timeout"],
        metavar="SECONDS",
        help="close a connection silent this long with no reply going to it (default: %(default)s)",
    )
    serve.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="logging level on stderr (default: %(default)s)",
    )
    from ..server.backend import add_arguments as add_model_arguments  # light: openai is lazy

    add_model_arguments(serve)
    serve.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from ..exceptions import ConfigError, ToolError
    from ..server.backend import choose_agent

    transcript = None
    if args.replay is not None and args.openai:
        print("nbchat serve: give --replay FILE or --openai BASE_URL, not both", file=sys.stderr)
        return EXIT_ERROR
    try:
        model = choose_agent(args, environ={})  # a model only when --openai asks for one
    except ConfigError as exc:
        print(f"nbchat serve: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.mcp_allow_writes and not args.mcp:
        print("nbchat serve: --mcp-allow-writes needs --mcp COMMAND", file=sys.stderr)
        return EXIT_ERROR
    if args.mcp and model is None:
        print(
            "nbchat serve: --mcp needs --openai BASE_URL: the MCP server's tools are a model's",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if args.replay is None:
        if args.speed is not None:
            print("nbchat serve: --speed needs --replay FILE", file=sys.stderr)
            return EXIT_ERROR
    else:
        if args.speed is not None and not args.speed >= 0:
            print(f"nbchat serve: --speed must be 0 or more, got {args.speed}", file=sys.stderr)
            return EXIT_ERROR
        transcript = load_transcript(args.replay, "nbchat serve")
        if transcript is None:
            return EXIT_ERROR
    logging.basicConfig(level=args.log_level.upper(), format="%(name)s: %(message)s")
    try:
        asyncio.run(_serve(args, transcript, model))
    except KeyboardInterrupt:
        pass  # where signal handlers are unavailable (Windows), Ctrl-C lands here
    except (ConfigError, ToolError) as exc:  # the model server, an MCP server, at start
        print(f"nbchat serve: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(
            f"nbchat serve: cannot listen on {args.host}:{args.port}: {reason(exc)}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except Exception as exc:
        print(f"nbchat serve: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


async def _serve(
    args: argparse.Namespace, transcript: Transcript | None, model: OpenAIAgent | None
) -> None:
    from ..server import ChatServer, ReplayServer, ServerOptions
    from ..server.backend import server_for

    options: ServerOptions = {
        "token": args.token,
        "allowed_origins": args.allow_origin,
        "max_size": args.max_size,
        "max_connections": args.max_connections,
        "idle_timeout": args.idle_timeout,
    }
    server: ChatServer
    said: list[str] = []
    if model is not None:  # is its server there, does it know the model; its MCP servers
        try:
            said.append(await model.check())
            for command in args.mcp:  # started before anyone connects
                offer = await model.mcp(command, allow_writes=args.mcp_allow_writes)
                said.append(offer.line)
        except BaseException:
            await model.aclose()  # ends the MCP servers started so far too
            raise
    if transcript is None:
        server = server_for(model, delay=args.delay, host=args.host, port=args.port, **options)
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
        for line in said:
            print(f"nbchat serve: {line}", flush=True)
        await stop.wait()
    finally:
        await server.close(grace=2.0)  # a client that does not answer the close must not hang us
