"""The public surface: the names users call, sorted, resolvable, light to import, nothing else."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import nbchat

pytestmark = pytest.mark.unit

PUBLIC = {
    "nbchat.client": [
        "ChatClient",
        "ClientEvent",
        "ClientTool",
        "ConnectionState",
        "ReplyRestarted",
        "ToolApprover",
        "destroy_client",
        "get_client",
    ],
    "nbchat.config": ["RECORD_ENV", "TOKEN_ENV", "URL_ENV", "ClientConfig"],
    "nbchat.exceptions": [
        "AttachmentError",
        "ClientClosed",
        "ConfigError",
        "ConnectionFailed",
        "HandshakeRejected",
        "NbchatError",
        "ProtocolError",
        "QueueFull",
        "ReconnectExhausted",
        "ReplyTimeout",
        "ServerError",
        "ToolArgumentsError",
        "ToolError",
        "ToolSpecError",
        "TranscriptError",
    ],
    "nbchat.jsonprotocol": ["JsonProtocol"],
    "nbchat.notebook": ["ChatWidget", "current_widget"],
    "nbchat.policy": ["Disconnect", "ReconnectPolicy"],
    "nbchat.protocol": [
        "PROTOCOL_VERSION",
        "AckMessage",
        "CancelRequest",
        "DoneMessage",
        "ErrorInfo",
        "ErrorMessage",
        "ServerMessage",
        "TokenMessage",
        "ToolCall",
        "ToolCallMessage",
        "ToolResultMessage",
        "UnknownMessage",
        "UserMessage",
    ],
    "nbchat.reply": ["Reply"],
    "nbchat.schematool": ["Tool"],
    "nbchat.server": [
        "NOT_IN_TRANSCRIPT",
        "TOOL_RESULT_DIFFERS",
        "TOO_MANY_REPLIES",
        "ChatServer",
        "ClientTools",
        "DemoAgent",
        "DemoServer",
        "OpenAIAgent",
        "ReplayServer",
        "Responder",
        "ResponderMessage",
        "ServerOptions",
        "current_client_tools",
        "serve_demo",
        "serve_replay",
    ],
    "nbchat.transcript": ["TRANSCRIPT_VERSION", "Recorder", "Transcript", "TranscriptWarning"],
    "nbchat.turn": ["Turn"],
}
"""Every public name, by the module users may also import it from (as websockets lists its own).

A name added here is a promise: it stays. Internals (``Throttle``, ``ReplyBuilder``,
``parse_server_frame``, ``backoff``...) live in their layer's modules and are not listed.
"""


def _isort_style(name: str) -> tuple[int, str]:
    """Constants, then classes, then the rest: the order ruff keeps ``__all__`` in."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_exactly_the_public_names() -> None:
    """``nbchat.__all__`` holds the listed names and the version, and no internal."""
    expected = {name for names in PUBLIC.values() for name in names} | {"__version__"}
    assert set(nbchat.__all__) == expected


def test_all_is_sorted_and_each_name_is_its_modules_object() -> None:
    """``nbchat.__all__`` is sorted and each name is the object its module exports under it."""
    assert list(nbchat.__all__) == sorted(nbchat.__all__, key=_isort_style)
    for module_name, names in PUBLIC.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert name in module.__all__, (module_name, name)
            assert getattr(nbchat, name) is getattr(module, name), name


def test_every_module_declares_all() -> None:
    """Each module of the package says what it exports, so a reader sees its surface at the top."""
    import pkgutil

    missing = []
    for info in pkgutil.walk_packages(nbchat.__path__, "nbchat."):
        if info.name in {"nbchat.__main__", "nbchat._version", "nbchat.testing.nbval"}:
            continue
        module = importlib.import_module(info.name)
        if not hasattr(module, "__all__"):
            missing.append(info.name)
    assert missing == []


def test_import_does_not_pull_in_the_server_or_the_notebook_stack() -> None:
    """``import nbchat`` loads neither the server (agent, tools) nor ipywidgets or IPython."""
    code = (
        "import sys, nbchat\n"
        "heavy = [m for m in sys.modules if m.startswith(('nbchat.server', 'nbchat.notebook', "
        "'ipywidgets', 'IPython', 'nbformat', 'openai'))]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_names_load_their_module_on_first_use() -> None:
    """``nbchat.ChatWidget`` and ``nbchat.DemoServer`` resolve to their modules' classes."""
    from nbchat.notebook import ChatWidget
    from nbchat.server import DemoServer

    assert nbchat.ChatWidget is ChatWidget and nbchat.DemoServer is DemoServer


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A name nbchat does not have raises AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="NoSuchThing"):
        nbchat.NoSuchThing  # noqa: B018
