"""The public surface: complete, sorted, and light to import."""

from __future__ import annotations

import subprocess
import sys

import nbchat


def test_all_is_sorted_and_every_name_resolves() -> None:
    """``nbchat.__all__`` is sorted and each name in it can be imported."""
    assert list(nbchat.__all__) == sorted(nbchat.__all__)
    for name in nbchat.__all__:
        assert getattr(nbchat, name) is not None


def test_every_public_class_and_function_is_exported() -> None:
    """Whatever public classes and functions nbchat defines at the top level are in __all__."""
    public = {
        name
        for name, value in vars(nbchat).items()
        if not name.startswith("_")
        and callable(value)
        and getattr(value, "__module__", "").startswith("nbchat")
    }
    assert public - {"load_ipython_extension"} <= set(nbchat.__all__)


def test_import_does_not_pull_in_the_notebook_stack() -> None:
    """``import nbchat`` loads neither ipywidgets nor IPython, so plain scripts stay light."""
    code = (
        "import sys, nbchat\n"
        "heavy = [m for m in ('ipywidgets', 'IPython', 'nbformat', 'markdown_it', 'nh3') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_chat_widget_is_imported_lazily() -> None:
    """``nbchat.ChatWidget`` resolves on first use."""
    from nbchat.widget import ChatWidget

    assert nbchat.ChatWidget is ChatWidget
