"""Strict nbval on notebooks that saved a conversation, with and without the plugin (pytester).

Each notebook is written as JupyterLab saves it: the marked display holds the
conversation as it ended, after updates sent by later cells; the display_id
(transient) is not in the file. nbval runs in a subprocess with the
repository's options, one kernel per notebook.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TIMEOUT
from tests.testing.test_plugin import write_transcript

pytestmark = pytest.mark.kernel

pytest_plugins = ["pytester"]

SANITIZE = Path(__file__).parents[2] / "notebooks" / "nbval_sanitize.cfg"
MCP_NOTEBOOK = SANITIZE.with_name("mcp.ipynb")
"""The example notebook that offers mcp-server-time's tools, with its recording beside it."""
OPTIONS = ("-p", "no:cacheprovider", "-v", "-rP", "--nbval-current-env")
STRICT = ("--nbval", "--nbval-sanitize-with", "nbval_sanitize.cfg")  # a copy of SANITIZE
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"

MARK = {"nbchat": {"static": True}}

SETUP = """\
from IPython.display import HTML, display
MARK = {"nbchat": {"static": True}}
def conversation(*messages):
    return HTML("<ol>" + "".join(f"<li>{m}</li>" for m in messages) + "</ol>")"""


def html(*messages: str) -> str:
    """The HTML ``conversation(*messages)`` makes in the kernel."""
    return "<ol>" + "".join(f"<li>{m}</li>" for m in messages) + "</ol>"


def static(*messages: str) -> dict[str, Any]:
    """A saved static conversation output."""
    data = {"text/html": html(*messages), "text/plain": "<IPython.core.display.HTML object>"}
    return {"output_type": "display_data", "data": data, "metadata": MARK}


def stream(text: str) -> dict[str, Any]:
    """A saved stdout output."""
    return {"output_type": "stream", "name": "stdout", "text": text}


def write(path: Path, *cells: tuple[str, list[dict[str, Any]]]) -> Path:
    """A notebook of code cells (source, saved outputs), each run in order."""
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "cells": [
            {
                "cell_type": "code",
                "id": f"cell-{number}",
                "metadata": {},
                "execution_count": number + 1,
                "source": source,
                "outputs": outputs,
            }
            for number, (source, outputs) in enumerate(cells)
        ],
    }
    path.write_text(json.dumps(notebook))
    return path


def conversation_notebook(
    path: Path, saved: dict[str, Any] | None, last_metadata: str = "MARK"
) -> Path:
    """Cell 0 shows an empty conversation; cells 1 and 2 update it (a timestamp included).

    ``saved`` is what cell 0's file holds besides its stream: the final
    conversation, a wrong one, or ``None`` for a file saved before the
    conversation was displayed at all. ``last_metadata`` is the last update's.
    """
    return write(
        path,
        (
            SETUP + "\nprint('panel')\npanel = display(conversation(), metadata=MARK, "
            "display_id=True)",
            [stream("panel\n"), *([saved] if saved else [])],
        ),
        ("panel.update(conversation('hi'), metadata=MARK)", []),
        (
            "from datetime import datetime, timezone\n"
            "sent = datetime.now(timezone.utc).isoformat()\n"
            f"panel.update(conversation('hi', 'hello, at ' + sent), metadata={last_metadata})\n"
            "print('asked')",
            [stream("asked\n")],
        ),
    )


NO_TB: dict[str, Any] = {"traceback": []}
"""An error output's traceback (nbval does not compare it)."""

FINAL = static("hi", "hello, at 2026-01-01T00:00:00.000001+00:00")
"""What JupyterLab saves for ``conversation_notebook``: the timestamp differs, sanitized."""


@pytest.fixture
def notebooks(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory with the repository's ini options and sanitize file."""
    pytester.makeini(INI)
    # Copied, not named by its path: pytest would take the repository for the rootdir.
    (pytester.path / "nbval_sanitize.cfg").write_text(SANITIZE.read_text())
    return pytester


@pytest.mark.timeout(6 * TIMEOUT)
def test_plain_nbval_fails_on_a_saved_conversation(notebooks: pytest.Pytester) -> None:
    """Without the plugin, strict nbval compares the saved final conversation with the empty one."""
    conversation_notebook(notebooks.path / "final.ipynb", FINAL)
    result = notebooks.runpytest_subprocess(*OPTIONS, *STRICT, "-p", "no:nbchat")
    result.assert_outcomes(failed=1, passed=2)
    result.stdout.fnmatch_lines(["*final*ipynb::Cell 0 FAILED*", "*mismatch 'text/html'*"])
    result.stdout.fnmatch_lines(["unhandled iopub msg: update_display_data"])
    assert "nbchat saved conversations" not in result.stdout.str()


@pytest.mark.timeout(12 * TIMEOUT)
def test_the_plugin_checks_saved_conversations_at_the_end(notebooks: pytest.Pytester) -> None:
    """The final conversation passes; a wrong or unmarked one fails, saying why; others as ever."""
    conversation_notebook(notebooks.path / "final.ipynb", FINAL)
    conversation_notebook(notebooks.path / "wrong.ipynb", static("hi", "bye"))
    conversation_notebook(notebooks.path / "stale.ipynb", None)
    write(notebooks.path / "plain.ipynb", ("print(6 * 7)", [stream("42\n")]))
    conversation_notebook(notebooks.path / "unmarked.ipynb", FINAL, last_metadata="{}")
    result = notebooks.runpytest_subprocess(*OPTIONS, *STRICT)
    result.stdout.fnmatch_lines(
        [
            "*final*ipynb::Cell 0 PASSED*",
            "*final*ipynb::nbchat saved conversations PASSED*",
            "*plain*ipynb::Cell 0 PASSED*",
            "*stale*ipynb::Cell 0 FAILED*",
            "*unmarked*ipynb::nbchat saved conversations FAILED*",
            "*wrong*ipynb::Cell 0 PASSED*",
            "*wrong*ipynb::Cell 2 PASSED*",
            "*wrong*ipynb::nbchat saved conversations FAILED*",
        ],
        consecutive=False,
    )
    result.assert_outcomes(failed=3, passed=13)
    result.stdout.fnmatch_lines(
        ["Cell 0: conversation 1 of 1 lost its metadata {'nbchat': {'static': True}} in an *"]
    )
    result.stdout.fnmatch_lines(
        [
            "Cell 0: saved conversation 1 of 1 differs from the final one (first displayed by "
            "this cell, then updated 2 time(s) during the run)",
            "*mismatch 'text/html'*",
            "*<li>bye</li>*",
        ]
    )
    # Not a new failure mode: a file saved without its conversation fails as under plain nbval.
    result.stdout.fnmatch_lines(["*Unexpected output fields from running code*"])
    # The followed notebooks' updates are accounted for, not printed (stale's are, as before).
    before_stale = result.stdout.str().split("stale.ipynb")[0]
    assert "unhandled iopub msg: update_display_data" not in before_stale


@pytest.mark.timeout(6 * TIMEOUT)
def test_several_panels_a_redisplay_and_an_error(notebooks: pytest.Pytester) -> None:
    """Two panels, one shown again by a later cell, updated by a cell that then raises."""
    write(
        notebooks.path / "many.ipynb",
        (
            SETUP + "\na = display(conversation(), metadata=MARK, display_id=True)\n"
            "b = display(conversation(), metadata=MARK, display_id=True)",
            [static("a1", "a2"), static("b1")],
        ),
        (
            "_ = display(conversation('a1'), metadata=MARK, display_id=a.display_id)",
            [static("a1", "a2")],
        ),
        (
            "# NBVAL_RAISES_EXCEPTION\nb.update(conversation('b1'), metadata=MARK)\n"
            "a.update(conversation('a1', 'a2'), metadata=MARK)\nraise ValueError('after them')",
            [{"output_type": "error", "ename": "ValueError", "evalue": "after them", **NO_TB}],
        ),
    )
    result = notebooks.runpytest_subprocess(*OPTIONS, *STRICT)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*many*ipynb::nbchat saved conversations PASSED*"])


@pytest.mark.timeout(6 * TIMEOUT)
def test_lax_checks_only_cells_marked_for_checking(notebooks: pytest.Pytester) -> None:
    """Under --nbval-lax a saved conversation is checked only where its cell's output is."""
    conversation_notebook(notebooks.path / "unmarked.ipynb", static("not", "checked"))
    checked = conversation_notebook(notebooks.path / "checked.ipynb", static("hi", "bye"))
    source = json.loads(checked.read_text())
    source["cells"][0]["metadata"]["tags"] = ["nbval-check-output"]
    checked.write_text(json.dumps(source))
    result = notebooks.runpytest_subprocess(*OPTIONS, "--nbval-lax")
    result.assert_outcomes(failed=1, passed=6)
    result.stdout.fnmatch_lines(["*checked*ipynb::nbchat saved conversations FAILED*"])
    assert "unmarked.ipynb::nbchat saved conversations" not in result.stdout.str()


def late_notebook(path: Path, schedule: str) -> Path:
    """Cell 1 schedules the last update with ``schedule`` (``call_soon(`` or ``call_later(1, ``)."""
    return write(
        path,
        (
            SETUP + "\npanel = display(conversation(), metadata=MARK, display_id=True)",
            [static("late")],
        ),
        (
            "import asyncio\nloop = asyncio.get_running_loop()\n"
            f"_ = loop.{schedule}lambda: panel.update(conversation('late'), metadata=MARK))",
            [],
        ),
    )


@pytest.mark.timeout(6 * TIMEOUT)
def test_the_check_waits_for_what_the_kernel_already_published(
    notebooks: pytest.Pytester,
) -> None:
    """An update queued by the last cell is seen; one sent a while after it is not, and says so."""
    late_notebook(notebooks.path / "soon.ipynb", "call_soon(")
    late_notebook(notebooks.path / "later.ipynb", "call_later(1, ")
    result = notebooks.runpytest_subprocess(*OPTIONS, *STRICT)
    result.stdout.fnmatch_lines(
        [
            "*later*ipynb::nbchat saved conversations FAILED*",
            "*soon*ipynb::nbchat saved conversations PASSED*",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(["*then updated 0 time(s) during the run*"])
    result.assert_outcomes(failed=1, passed=5)


@pytest.mark.timeout(6 * TIMEOUT)
def test_a_partial_run_skips_the_check(notebooks: pytest.Pytester) -> None:
    """When some cells of the notebook did not run, the final conversation is unknown: skipped."""
    conversation_notebook(notebooks.path / "final.ipynb", FINAL)
    unrun = ("--deselect", "final.ipynb::Cell 1", "--deselect", "final.ipynb::Cell 2")
    result = notebooks.runpytest_subprocess(*OPTIONS, *STRICT, *unrun, "-rs")
    result.assert_outcomes(passed=1, skipped=1, deselected=2)
    result.stdout.fnmatch_lines(["SKIPPED *cells [[]1, 2[]] did not run*"])


@pytest.mark.timeout(6 * TIMEOUT)
def test_an_nbval_without_what_the_plugin_needs_fails_loudly(notebooks: pytest.Pytester) -> None:
    """If nbval's cells lose an attribute the plugin relies on, the check fails and names it."""
    notebooks.makeconftest(
        """
        from nbval.plugin import IPyNbCell

        init = IPyNbCell.__init__

        def renamed(self, *args, **kwargs):  # as if a new nbval renamed .cell
            init(self, *args, **kwargs)
            self.notebook_cell = self.__dict__.pop("cell")

        IPyNbCell.__init__ = renamed
        """
    )
    conversation_notebook(notebooks.path / "final.ipynb", FINAL)
    write(notebooks.path / "plain.ipynb", ("print(6 * 7)", [stream("42\n")]))
    result = notebooks.runpytest_subprocess(*OPTIONS, *STRICT)
    result.stdout.fnmatch_lines(
        ["nbval 0.11*: its cells lack [[]'cell'[]], which nbchat needs to check saved *"]
    )
    assert "plain.ipynb::nbchat saved conversations" not in result.stdout.str()
    result.assert_outcomes(failed=5)  # 3 + 1 cells (nbval's own AttributeError) + the check


@pytest.mark.timeout(6 * TIMEOUT)
def test_a_conversation_replayed_under_nbchat_replay(notebooks: pytest.Pytester) -> None:
    """With --nbchat-replay, a reply a later cell asks for reaches the saved conversation."""
    transcript = write_transcript(notebooks.path / "chat.jsonl", "hello?", "recorded hi")
    write(
        notebooks.path / "replayed.ipynb",
        (
            SETUP + "\npanel = display(conversation(), metadata=MARK, display_id=True)",
            [static("hello?", "recorded hi")],
        ),
        (
            "from nbchat import ChatClient\nclient = ChatClient()\n"
            f"reply = client.ask_sync('hello?', timeout={TIMEOUT})\n"
            "panel.update(conversation('hello?', reply.text), metadata=MARK)\n"
            "client.close_sync()",
            [],
        ),
    )
    result = notebooks.runpytest_subprocess(*OPTIONS, *STRICT, "--nbchat-replay", transcript)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*replayed*ipynb::nbchat saved conversations PASSED*"])


WIDGET_WITH_A_MODEL = (
    "import nbchat\n"
    "agent = nbchat.OpenAIAgent(base_url='http://127.0.0.1:9/v1', model='x')\n"
    "chat = nbchat.ChatWidget(backend=agent)\n"
    f"print(chat.ask_sync('hello?', timeout={TIMEOUT}).text)\n"
    "chat.close()"
)
"""A cell whose widget names a model no machine here serves (port 9, discard)."""


@pytest.mark.timeout(6 * TIMEOUT)
def test_a_widget_given_a_model_is_replayed_under_nbchat_replay(
    notebooks: pytest.Pytester,
) -> None:
    """ChatWidget(backend=OpenAIAgent(...)) passes strict nbval under --nbchat-replay, no model."""
    transcript = write_transcript(notebooks.path / "chat.jsonl", "hello?", "recorded hi")
    write(notebooks.path / "model.ipynb", (WIDGET_WITH_A_MODEL, [stream("recorded hi\n")]))
    result = notebooks.runpytest_subprocess(*OPTIONS, *STRICT, "--nbchat-replay", transcript)
    result.assert_outcomes(passed=1)


@pytest.mark.timeout(6 * TIMEOUT)
def test_a_notebook_naming_its_recording_is_replayed_under_nbval(
    notebooks: pytest.Pytester,
) -> None:
    """Metadata nbchat.replay makes nbval run that notebook against its recording, no option."""
    write_transcript(notebooks.path / "chat.jsonl", "hello?", "recorded hi")
    path = write(notebooks.path / "model.ipynb", (WIDGET_WITH_A_MODEL, [stream("recorded hi\n")]))
    notebook = json.loads(path.read_text())
    notebook["metadata"]["nbchat"] = {"replay": "chat.jsonl"}
    path.write_text(json.dumps(notebook))
    result = notebooks.runpytest_subprocess(*OPTIONS, *STRICT)
    result.assert_outcomes(passed=1)


@pytest.mark.timeout(6 * TIMEOUT)
def test_a_changed_question_fails_with_its_reason_first(notebooks: pytest.Pytester) -> None:
    """A cell asking what the recording never heard fails with nbchat's one line, first."""
    transcript = write_transcript(notebooks.path / "chat.jsonl", "What is 2+2?", "4")
    changed = (
        "import nbchat\nclient = nbchat.ChatClient()\n"
        f"client.ask_sync('What is 3+3?', timeout={TIMEOUT}).text"
    )
    write(notebooks.path / "changed.ipynb", (changed, []))
    result = notebooks.runpytest_subprocess(*OPTIONS, *STRICT, "-ra", "--nbchat-replay", transcript)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*changed.ipynb::Cell 0*",
            "ServerError: server error not_in_transcript: the transcript holds no reply to "
            "'What is 3+3?'; expected 'What is 2+2?'",
        ]
    )
    result.stdout.fnmatch_lines(
        ["FAILED *changed.ipynb::Cell 0 - ServerError: *not_in_transcript*"]
    )
    shown = result.stdout.str()
    assert "asyncio/" not in shown and "nbchat/client/client.py" not in shown


@pytest.mark.timeout(12 * TIMEOUT)
def test_a_notebook_that_used_an_mcp_server_validates_where_it_is_not_installed(
    notebooks: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """notebooks/mcp.ipynb passes strict nbval with mcp-server-time off PATH (replayed, unstarted);
    without the plugin's replay the same run fails to start it."""
    for name in (MCP_NOTEBOOK.name, MCP_NOTEBOOK.with_suffix(".jsonl").name):
        shutil.copy(MCP_NOTEBOOK.with_name(name), notebooks.path / name)
    here = os.path.dirname(sys.executable)
    path = os.pathsep.join(
        folder
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and folder != here and not (Path(folder) / "mcp-server-time").exists()
    )
    monkeypatch.setenv("PATH", path)
    assert shutil.which("mcp-server-time", path=path) is None
    replayed = notebooks.runpytest_subprocess(*OPTIONS, *STRICT, "mcp.ipynb")
    replayed.assert_outcomes(passed=7)
    replayed.stdout.fnmatch_lines(["*mcp*ipynb::nbchat saved conversations PASSED*"])
    live = notebooks.runpytest_subprocess(*OPTIONS, *STRICT, "-p", "no:nbchat", "mcp.ipynb")
    live.stdout.fnmatch_lines(["*the MCP server 'mcp-server-time' did not start (no such command*"])
