"""``nbchat chat``: one reply streamed to the terminal, or an interactive prompt."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from ..config import (
    BASE_URL_ENV,
    DEMO_DELAY,
    MODEL_ENV,
    TOKEN_ENV,
    URL_ENV,
    ClientConfig,
    default_url,
)
from .common import EXIT_ERROR, Parser

__all__ = ["RECONNECT_ATTEMPTS", "add_chat"]

RECONNECT_ATTEMPTS = 2
"""Attempts ``nbchat chat`` makes before giving up, where ``ClientConfig`` makes 5.

On purpose: a person at a terminal waits for each attempt and wants an answer or
an error in a few seconds, then retypes the command; a notebook's client lives
as long as its kernel and rides out a server restart without anyone watching.
"""

_CONFIG_ATTEMPTS = ClientConfig.model_fields["max_reconnect_attempts"].default
"""``ClientConfig``'s own number, named in the help beside the command's."""

# nbchat chat


def add_chat(subcommands: argparse._SubParsersAction[Parser]) -> None:
    chat = subcommands.add_parser(
        "chat",
        help="chat from the terminal: one message, or an interactive prompt",
        description=(
            "Send MESSAGE and stream the reply with its tool calls, or, without MESSAGE, "
            "answer each line typed until end of input or /quit (on a terminal: line "
            "editing and history, Ctrl-C stops a reply, /new and /help). Without --url and "
            f"${URL_ENV} a built-in server is started for the session: a model if "
            f"${BASE_URL_ENV} and ${MODEL_ENV} are set, else the demo agent. A lost "
            f"connection is retried {RECONNECT_ATTEMPTS} times, then the command gives up "
            f"(a notebook's client retries {_CONFIG_ATTEMPTS}: nobody waits at its prompt)."
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
    from ..exceptions import NbchatError

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
    from ..exceptions import ReconnectExhausted

    if isinstance(exc, ReconnectExhausted):
        return (
            f"cannot reach {exc.url} (gave up after {exc.attempts} attempts): "
            "start the server (nbchat serve) or check --url"
        )
    return str(exc)


async def _chat(args: argparse.Namespace) -> None:
    from ..client.client import ChatClient
    from ..server.backend import builtin_server, wants_builtin_server
    from .prompt import chat_once, chat_repl

    server = None
    url = args.url
    if url is None and wants_builtin_server():
        server = await builtin_server(delay=DEMO_DELAY).open()
        url = server.url
    client = ChatClient(
        url=url or default_url(),
        token=args.token,
        max_reconnect_attempts=RECONNECT_ATTEMPTS,
        reconnect_interval=0.5,
    )
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
