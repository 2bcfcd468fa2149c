"""The kernel tools through the demo agent: listed, described, withheld, approved, replayed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nbchat import ChatClient, ConfigError, ServerError, ToolCall
from nbchat.client.kernel import Kernel
from nbchat.client.tools import Denial
from nbchat.notebook.widget import ChatWidget
from nbchat.server import DemoServer, ReplayServer
from tests.helpers import TIMEOUT
from tests.notebook.widget_comm import RecordingComm, recording_comms

pytestmark = pytest.mark.loopback

KEY = "sk-" + "Zq9" * 14


@pytest.fixture
def comms() -> Iterator[list[RecordingComm]]:
    """Every widget made in the test records what it sends."""
    with recording_comms() as log:
        yield log


def notebook() -> dict[str, Any]:
    """A namespace as a notebook's: a DataFrame, an API key, a counter."""
    return {
        "df": pd.DataFrame({"name": ["Ada", "Grace"], "year": [1815, 1906]}),
        "OPENAI_API_KEY": KEY,
        "n": 1,
    }


def kernel(ns: dict[str, Any], error: BaseException | None = None) -> Kernel:
    """The kernel tools' view of ``ns``, with cells and a last error given by hand."""
    return Kernel(
        namespace=lambda: ns,
        history=lambda n: ['OPENAI_API_KEY = "sk-..."', "df.head()"][-n:],
        last_error=lambda: error,
    )


def result(reply: Any) -> Any:
    """The one tool call's result of a reply."""
    (call,) = reply.tool_calls
    return call.result


def questions(chat: ChatWidget) -> asyncio.Queue[ToolCall]:
    """Each call the widget's approver is asked about, once its question is on the card."""
    asked: asyncio.Queue[ToolCall] = asyncio.Queue()
    approve = chat.client.approver
    assert approve is not None

    async def spy(call: ToolCall) -> bool | Denial:
        asked.put_nowait(call)
        return await approve(call)

    chat.client.approver = spy
    return asked


def labels(node: object) -> list[str]:
    """Every button label under ``node``."""
    found = [node.description] if hasattr(node, "click") else []  # type: ignore[attr-defined]
    for child in getattr(node, "children", ()):
        found.extend(labels(child))
    return found


def markup(node: object) -> str:
    """The HTML shown under ``node``, joined."""
    value = getattr(node, "value", None)
    found = [value] if isinstance(value, str) else []
    found.extend(markup(child) for child in getattr(node, "children", ()))
    return "\n".join(found)


async def test_the_model_lists_and_describes_but_never_sees_the_key(demo: DemoServer) -> None:
    """list_variables and describe_variable through the demo agent; the key is withheld."""
    try:
        raise ValueError("bad column 'x'")
    except ValueError as exc:
        error = exc
    ns = notebook()
    async with ChatClient(url=demo.url, kernel_tools=kernel(ns, error)) as chat:
        listed = result(await chat.ask("call list_variables {}", timeout=TIMEOUT))
        described = result(await chat.ask('call describe_variable {"name": "df"}', timeout=TIMEOUT))
        key = await chat.ask('call describe_variable {"name": "OPENAI_API_KEY"}', timeout=TIMEOUT)
        last = result(await chat.ask("call last_error", timeout=TIMEOUT))
        cells = result(await chat.ask('call cell_history {"n": 2}', timeout=TIMEOUT))
    assert "df: pandas.DataFrame, shape 2 x 2" in listed and "n: int" in listed
    assert "OPENAI_API_KEY: str, len 45" in listed and "value withheld" in listed
    assert "year (int64)" in described and "Grace" in described
    assert result(key).endswith("looks like a credential: its value is not shared")
    assert last.startswith("ValueError: bad column 'x'") and "Traceback" in last
    assert "df.head()" in cells and "sk-" not in cells
    assert all(KEY not in str(r) for r in (listed, described, key.text, last, cells))


async def test_no_kernel_tools_unless_asked(demo: DemoServer, comms: list[RecordingComm]) -> None:
    """A plain client and a plain panel offer none; outside a kernel True is a one-line error."""
    async with ChatClient(url=demo.url) as chat:
        assert dict(chat.tools) == {}
    panel = ChatWidget(url=demo.url)
    assert dict(panel.tools) == {}
    await panel.aclose()
    with pytest.raises(ConfigError, match=r"^kernel_tools=True needs an IPython kernel"):
        ChatClient(url=demo.url, kernel_tools=True)
    with pytest.raises(ConfigError, match=r"^run_code=True needs kernel_tools=True$"):
        ChatClient(url=demo.url, run_code=True)


async def test_run_code_runs_only_after_approval_and_never_always(
    demo: DemoServer, comms: list[RecordingComm]
) -> None:
    """run_code waits on a card showing the code as code, without Always allow, then runs."""
    ns = notebook()
    chat = ChatWidget(url=demo.url, kernel_tools=kernel(ns), run_code=True)
    asked = questions(chat)
    code = "n += 41\\nprint(OPENAI_API_KEY)\\nn"
    ask = asyncio.ensure_future(chat.ask(f'call run_code {{"code": "{code}"}}', timeout=TIMEOUT))
    await asyncio.wait_for(asked.get(), TIMEOUT)
    assert ns["n"] == 1 and [p.tool for p in chat.pending] == ["run_code"]
    buttons = labels(chat)
    assert "Run" in buttons and "Deny" in buttons and not any("Always" in b for b in buttons)
    shown = markup(chat)
    assert "code, as it will run" in shown and "n += 41\nprint(OPENAI_API_KEY)\nn</code>" in shown
    with pytest.raises(ConfigError, match="run_code asks before every call"):
        chat.approve(always=True)
    chat.approve()
    reply = await asyncio.wait_for(ask, TIMEOUT)
    assert result(reply) == "stdout:\n***\nvalue: 42" and ns["n"] == 42
    assert chat._approvals.always == set()
    await chat.aclose()


async def test_stop_interrupts_code_that_never_ends(
    demo: DemoServer, comms: list[RecordingComm]
) -> None:
    """Stop while run_code loops: the code is interrupted, the reply stops, the panel goes on."""
    ns = notebook()
    started = threading.Event()
    ns["started"] = started
    chat = ChatWidget(url=demo.url, kernel_tools=kernel(ns), run_code=True)
    asked = questions(chat)
    code = "started.set()\\nwhile True:\\n    n += 1"
    ask = asyncio.ensure_future(chat.ask(f'call run_code {{"code": "{code}"}}', timeout=TIMEOUT))
    await asyncio.wait_for(asked.get(), TIMEOUT)
    chat.approve()
    assert await asyncio.wait_for(asyncio.to_thread(started.wait, TIMEOUT), TIMEOUT)
    chat.cancel()
    await asyncio.wait_for(ask, TIMEOUT)
    before = ns["n"]
    done = await chat.ask('call describe_variable {"name": "n"}', timeout=TIMEOUT)
    assert result(done).startswith("n: int") and ns["n"] == before  # the loop has ended
    await chat.aclose()


async def test_kernel_tools_run_again_under_replay(demo: DemoServer, tmp_path: Path) -> None:
    """Replayed, the tools read the live namespace: the same state passes, a changed one differs."""
    path = tmp_path / "kernel.jsonl"
    ns = notebook()
    async with ChatClient(url=demo.url, kernel_tools=kernel(ns), record=path) as chat:
        recorded = await chat.ask("call list_variables {}", timeout=TIMEOUT)
    assert KEY not in path.read_text(encoding="utf-8")
    async with (
        ReplayServer(path) as server,
        ChatClient(url=server.url, kernel_tools=kernel(notebook())) as chat,
    ):
        again = await chat.ask("call list_variables {}", timeout=TIMEOUT)
    assert again.error is None and result(again) == result(recorded)
    changed = notebook()
    changed["df"] = changed["df"].head(1)
    async with (
        ReplayServer(path) as server,
        ChatClient(url=server.url, kernel_tools=kernel(changed)) as chat,
    ):
        with pytest.raises(ServerError, match="tool_result_differs: client tool list_variables"):
            await chat.ask("call list_variables {}", timeout=TIMEOUT)
