"""Which responder answers: the one place that decides between the demo agent and a model.

A model (:class:`~nbchat.server.openai.OpenAIAgent`) answers when asked for:
by ``nbchat serve --openai BASE_URL --model NAME`` (:func:`agent_from_arguments`),
or, for a built-in backend (the widget's, ``nbchat chat``'s), by
``$NBCHAT_OPENAI_BASE_URL`` and ``$NBCHAT_MODEL`` (:func:`agent_from_environment`);
otherwise the demo agent does. :func:`choose_agent` applies that order,
:func:`server_for` makes the server for the choice, and :func:`builtin_server`
is the built-in backend of the widget and ``nbchat chat``;
:func:`wants_builtin_server` says whether they start one at all. Never while a
replay is active (:func:`nbchat.config.replay_instead`): the replay server
answers instead, whatever backend was given.

Light to import: the bridge (and the ``openai`` SDK) load only when an agent is
made, so ``nbchat serve --help`` and a ``ChatWidget()`` without a model stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from typing_extensions import Unpack

from ..config import API_KEY_ENV, BASE_URL_ENV, MODEL_ENV, SYSTEM_ENV, URL_ENV, replay_instead
from ..exceptions import ConfigError
from .app import DEFAULT_HOST, ChatServer, ServerOptions

if TYPE_CHECKING:
    from .openai.bridge import OpenAIAgent
    from .responder import Responder

__all__ = [
    "add_arguments",
    "agent_from_arguments",
    "agent_from_environment",
    "builtin_server",
    "choose_agent",
    "http_url",
    "json_object",
    "server_for",
    "tool_choice",
    "wants_builtin_server",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--openai``, ``--model``, ``--api-key-env``, ``--system``, ``--temperature``,
    ``--max-tokens``, ``--no-tools``, ``--vision``, ``--tool-choice``, ``--extra-body``,
    ``--mcp`` and ``--mcp-allow-writes`` to ``nbchat serve``."""
    group = parser.add_argument_group(
        "model", "answer with a model behind an OpenAI-compatible API instead of the demo agent"
    )
    group.add_argument(
        "--openai",
        metavar="BASE_URL",
        type=http_url,
        default=None,
        help="the API root, e.g. http://127.0.0.1:11434/v1 (Ollama), http://127.0.0.1:8080/v1 "
        "(llama.cpp), https://api.openai.com/v1",
    )
    group.add_argument(
        "--model",
        metavar="NAME",
        default=os.environ.get(MODEL_ENV) or None,
        help=f"the model to ask (default: ${MODEL_ENV})",
    )
    group.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=API_KEY_ENV,
        help=f"the environment variable holding the API key (default: {API_KEY_ENV}; "
        "local servers need none)",
    )
    group.add_argument("--system", metavar="TEXT", default=None, help="a system prompt")
    group.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    group.add_argument(
        "--max-tokens", type=int, default=None, help="the most tokens one completion may have"
    )
    group.add_argument(
        "--no-tools",
        action="store_true",
        help="offer the model none of the server's built-in tools (small local models answer "
        "better without); --mcp tools are still offered",
    )
    group.add_argument(
        "--vision",
        action="store_true",
        help="the model reads images: show it the figures and images client tools return "
        "(an image the user attaches is sent either way)",
    )
    group.add_argument(
        "--mcp",
        metavar="COMMAND",
        action="append",
        default=[],
        help="also offer this MCP server's tools, run on this server: a command line "
        "(e.g. mcp-server-time) or an http(s):// URL; it ends with nbchat serve (repeatable)",
    )
    group.add_argument(
        "--mcp-allow-writes",
        action="store_true",
        help="offer the --mcp tools that are not read-only too (they run without approval)",
    )
    group.add_argument(
        "--tool-choice",
        metavar="CHOICE",
        type=tool_choice,
        default=None,
        help="auto, none, required, a tool's name (that tool is called first), or JSON",
    )
    group.add_argument(
        "--extra-body",
        metavar="JSON",
        type=json_object,
        default=None,
        help="fields added to every request, e.g. '{\"top_k\": 20}' (a provider's own options)",
    )


def http_url(text: str) -> str:
    """An OpenAI-compatible API root (argparse type): an http(s) URL with a host, else refused."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a usable URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"not an http(s) URL: {text!r} (e.g. http://127.0.0.1:11434/v1)"
        )
    return text


def tool_choice(text: str) -> str | dict[str, Any]:
    """``--tool-choice`` (argparse type): a keyword, a tool's name, or a JSON object."""
    text = text.strip()
    if text in ("auto", "none", "required"):
        return text
    if text.startswith("{"):
        return json_object(text)
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not auto, none, required, a tool's name or a JSON object"
        )
    return {"type": "function", "function": {"name": text}}


def json_object(text: str) -> dict[str, Any]:
    """A JSON object given on the command line (argparse type), else refused in one line."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}): {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text[:80]!r}")
    return value


def agent_from_arguments(args: argparse.Namespace) -> OpenAIAgent | None:
    """The agent ``nbchat serve --openai ...`` asks for, or None without ``--openai``."""
    if not getattr(args, "openai", None):
        return None
    if not args.model:
        raise ConfigError(f"--openai needs --model NAME (or ${MODEL_ENV}): the model to ask")
    from .openai.bridge import SERVER_TOOLS, OpenAIAgent

    return OpenAIAgent(
        base_url=args.openai,
        model=args.model,
        system=args.system,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        api_key_env=args.api_key_env,
        tools=() if getattr(args, "no_tools", False) else SERVER_TOOLS,
        tool_choice=getattr(args, "tool_choice", None),
        extra_body=getattr(args, "extra_body", None),
        vision=getattr(args, "vision", False),
    )


def agent_from_environment(environ: Mapping[str, str] | None = None) -> OpenAIAgent | None:
    """The embedded backend's model from ``$NBCHAT_OPENAI_BASE_URL`` and ``$NBCHAT_MODEL``.

    None when no base URL is set (the demo agent answers). The key comes from
    ``$OPENAI_API_KEY``; ``$NBCHAT_SYSTEM`` is an optional system prompt.
    """
    environ = os.environ if environ is None else environ
    base_url = environ.get(BASE_URL_ENV)
    if not base_url:
        return None
    model = environ.get(MODEL_ENV)
    if not model:
        raise ConfigError(f"${BASE_URL_ENV} is set but ${MODEL_ENV} is not: name the model")
    from .openai.bridge import OpenAIAgent

    return OpenAIAgent(
        base_url=base_url,
        model=model,
        api_key=environ.get(API_KEY_ENV) or None,
        system=environ.get(SYSTEM_ENV) or None,
    )


def choose_agent(
    args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
) -> OpenAIAgent | None:
    """The model to answer with, or None for the demo agent.

    ``--openai`` in ``args`` first, then the environment (``environ``, default
    ``os.environ``; pass ``{}`` to consult arguments only, as ``nbchat serve`` does).
    """
    agent = agent_from_arguments(args) if args is not None else None
    return agent if agent is not None else agent_from_environment(environ)


def server_for(
    responder: Responder | None,
    *,
    delay: float = 0.0,
    host: str = DEFAULT_HOST,
    port: int = 0,
    **options: Unpack[ServerOptions],
) -> ChatServer:
    """A server (not yet listening) answering with ``responder``, or the demo agent at ``delay``."""
    if responder is None:
        from .demo.server import DemoServer

        return DemoServer(delay=delay, host=host, port=port, **options)
    return ChatServer(responder, host=host, port=port, **options)


def wants_builtin_server(
    backend: Responder | None = None, environ: Mapping[str, str] | None = None
) -> bool:
    """Whether a client given no URL runs a built-in backend (the widget's, ``nbchat chat``'s).

    Never while a replay is active: the replay server answers, and a ``backend``
    given is named in the one log line that says so. Otherwise when a backend is
    given, or when ``$NBCHAT_WS_URL`` (in ``environ``, default ``os.environ``)
    names no server to talk to.
    """
    if replay_instead(backend) is not None:
        return False
    environ = os.environ if environ is None else environ
    return backend is not None or not environ.get(URL_ENV)


def builtin_server(
    backend: Responder | None = None,
    *,
    delay: float = 0.0,
    environ: Mapping[str, str] | None = None,
) -> ChatServer:
    """The built-in backend on a free loopback port: ``backend``, else a model from the
    environment, else the demo agent. Not yet listening: ``await`` its ``open()``, or
    ``serve_in_thread()``. Callers ask :func:`wants_builtin_server` first."""
    responder = backend if backend is not None else choose_agent(environ=environ)
    return server_for(responder, delay=delay)
