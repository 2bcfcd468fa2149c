"""How a model backend is chosen: ``nbchat serve --openai ...`` and the environment.

Light to import: the bridge (and the ``openai`` SDK) load only when an agent is
made, so ``nbchat serve --help`` and a ``ChatWidget()`` without a model stay fast.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..exceptions import ConfigError

if TYPE_CHECKING:
    from .openai.bridge import OpenAIAgent

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "MODEL_ENV",
    "SYSTEM_ENV",
    "add_arguments",
    "agent_from_arguments",
    "agent_from_environment",
]

API_KEY_ENV = "OPENAI_API_KEY"
"""Where the API key is read from unless told otherwise (``--api-key-env``)."""
BASE_URL_ENV = "NBCHAT_OPENAI_BASE_URL"
"""Makes the widget's embedded backend a model: its OpenAI-compatible base URL."""
MODEL_ENV = "NBCHAT_MODEL"
"""The model name used with ``$NBCHAT_OPENAI_BASE_URL`` (and ``--model``'s default)."""
SYSTEM_ENV = "NBCHAT_SYSTEM"
"""An optional system prompt for the embedded model backend."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--openai``, ``--model``, ``--api-key-env``, ``--system``, ``--temperature``,
    ``--max-tokens`` and ``--no-tools`` to ``nbchat serve``."""
    group = parser.add_argument_group(
        "model", "answer with a model behind an OpenAI-compatible API instead of the demo agent"
    )
    group.add_argument(
        "--openai",
        metavar="BASE_URL",
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
        help="offer the model no tools (small local models answer better without)",
    )


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
