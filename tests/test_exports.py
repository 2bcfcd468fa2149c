"""The public surface: the union of the public modules' names, sorted, and light to import."""

from __future__ import annotations

import importlib
import subprocess
import sys

import nbchat

PUBLIC_MODULES = [
    "client",
    "client_tools",
    "config",
    "exceptions",
    "policy",
    "protocol",
    "reply",
    "server",
    "toolspec",
    "transcript",
    "turn",
    "views",
    "widget",
]
"""Modules whose public names all belong to ``nbchat``'s surface (websockets checks its own so)."""


def test_all_is_the_union_of_the_public_modules() -> None:
    """``nbchat.__all__`` is exactly the public modules' ``__all__`` together, plus the version."""
    union = {"__version__"}
    for name in PUBLIC_MODULES:
        union |= set(importlib.import_module(f"nbchat.{name}").__all__)
    assert set(nbchat.__all__) == union


def test_all_is_sorted_and_every_name_resolves() -> None:
    """``nbchat.__all__`` is sorted and each name resolves to its module's object."""
    assert list(nbchat.__all__) == sorted(nbchat.__all__, key=_isort_style)
    for name in PUBLIC_MODULES:
        module = importlib.import_module(f"nbchat.{name}")
        for public in module.__all__:
            assert getattr(nbchat, public) is getattr(module, public), public


def _isort_style(name: str) -> tuple[int, str]:
    """Constants, then classes, then the rest: the order ruff keeps ``__all__`` in."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_import_does_not_pull_in_the_server_or_the_notebook_stack() -> None:
    """``import nbchat`` loads neither the server (agent, tools) nor ipywidgets or IPython."""
    code = (
        "import sys, nbchat\n"
        "heavy = [m for m in ('nbchat.server', 'nbchat.server.agent', 'nbchat.server.tools', "
        "'nbchat.widget', 'nbchat.views', 'ipywidgets', 'IPython', 'nbformat', 'openai') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_names_load_their_module_on_first_use() -> None:
    """``nbchat.ChatWidget`` and ``nbchat.DemoServer`` resolve to their modules' classes."""
    from nbchat.server import DemoServer
    from nbchat.widget import ChatWidget

    assert nbchat.ChatWidget is ChatWidget and nbchat.DemoServer is DemoServer


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A name nbchat does not have raises AttributeError, as for any module."""
    try:
        nbchat.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("no AttributeError")
