"""Notebook functions as tools: ChatClient <-> ChatServer on loopback, through the demo agent."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import logging
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection

from nbchat import ChatClient, ConfigError, ToolCall, ToolSpecError
from nbchat.client.tools import (
    DENIED,
    MAX_KEPT_RESULTS,
    NO_APPROVER,
    RAN_BEFORE,
    ClientTool,
    ToolRunner,
)
from nbchat.protocol import (
    ServerMessage,
    ToolCallMessage,
    ToolRequest,
    ToolResponse,
    ToolResultMessage,
)
from nbchat.server import DemoServer, serve_demo
from tests.helpers import FAST, TIMEOUT, scripted_server
from tests.server.helpers import drop_connections

pytestmark = pytest.mark.loopback


@pytest.fixture
async def client(demo: DemoServer) -> AsyncIterator[ChatClient]:
    """A client of the demo server, disconnected after the test."""
    chat = ChatClient(url=demo.url, **FAST)
    yield chat
    await chat.disconnect()


def tool_messages(chat: ChatClient) -> list[ServerMessage]:
    """A list that fills with the tool_call and tool_result messages the client receives."""
    seen: list[ServerMessage] = []

    def keep(message: ServerMessage) -> None:
        if isinstance(message, ToolCallMessage | ToolResultMessage):
            seen.append(message)

    chat.on("message", keep)
    return seen


# Registration


def test_tool_registers_plain_decorated_and_configured_functions() -> None:
    """client.tool(fn), @client.tool and @client.tool(confirm=True) return fn and list it."""

    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    chat = ChatClient(url="ws://127.0.0.1:1/ws", tools=[double])

    @chat.tool
    async def later(text: str) -> str:
        return text

    @chat.tool(name="careful", confirm=True)
    def delete(path: str) -> None:
        """Remove a file."""

    assert chat.tool(double) is double and later.__name__ == "later" and delete.__name__ == "delete"
    assert sorted(chat.tools) == ["careful", "double", "later"]
    tool = chat.tools["double"]
    assert isinstance(tool, ClientTool) and tool.description == "Twice x." and not tool.confirm
    assert tool.parameters["properties"]["x"]["type"] == "integer"
    assert chat.tools["careful"].confirm and chat.tools["careful"].function is delete
    chat.remove_tool("later")
    assert "later" not in chat.tools
    with pytest.raises(ConfigError, match="no client tool named 'later'"):
        chat.remove_tool("later")


def test_a_function_without_type_hints_is_refused_in_one_line() -> None:
    """Registering an untyped function raises ToolSpecError naming the parameter."""
    chat = ChatClient(url="ws://127.0.0.1:1/ws")

    def untyped(x):  # type: ignore[no-untyped-def]
        return x

    with pytest.raises(ToolSpecError, match="parameter 'x' has no type hint") as info:
        chat.tool(untyped)
    assert "\n" not in str(info.value) and not chat.tools


# Calls through the demo agent


async def test_the_demo_agent_calls_a_client_tool_and_answers_with_its_result(
    client: ChatClient,
) -> None:
    """call NAME {args}: the function runs here, the cards say so, the reply has the result."""
    calls: list[tuple[int, int]] = []

    @client.tool
    def add(a: int, b: int = 2) -> int:
        """Add two numbers."""
        calls.append((a, b))
        return a + b

    cards = tool_messages(client)
    reply = await client.ask('call add {"a": 40}', timeout=TIMEOUT)
    assert reply.text == "add returned 42." and calls == [(40, 2)]
    (call,) = reply.tool_calls
    assert (call.status, call.result, call.runs_in, call.arguments) == (
        "done",
        42,
        "client",
        {"a": 40},
    )
    assert [m.tool_calls[0].status for m in cards] == ["running", "done"]  # type: ignore[union-attr]
    assert all(m.tool_calls[0].runs_in == "client" for m in cards)  # type: ignore[union-attr]
    assert (await client.ask("call add", timeout=TIMEOUT)).text.startswith("add failed: bad arg")


async def test_bad_arguments_never_reach_the_function(client: ChatClient) -> None:
    """Arguments that do not fit the signature are an error result; the function never runs."""
    calls: list[int] = []

    @client.tool
    async def square(x: int) -> int:
        calls.append(x)
        return x * x

    reply = await client.ask('call square {"x": "seven"}', timeout=TIMEOUT)
    (call,) = reply.tool_calls
    assert call.status == "error" and "bad arguments for square: x:" in call.result
    assert calls == [] and reply.text.startswith("square failed: bad arguments")


async def test_a_raising_function_is_an_error_result_and_the_conversation_goes_on(
    client: ChatClient,
) -> None:
    """An exception becomes the call's one-line error; the next message is answered."""

    @client.tool
    def broken(name: str) -> str:
        raise ValueError(f"no table {name}\nsecond line")

    reply = await client.ask('call broken {"name": "sales"}', timeout=TIMEOUT)
    (call,) = reply.tool_calls
    assert call.status == "error" and call.result == "ValueError: no table sales second line"
    assert (await client.ask("echo still here", timeout=TIMEOUT)).text == "still here"


async def test_an_unknown_tool_is_an_error_result(client: ChatClient) -> None:
    """Calling a name the client never registered answers with an error naming what it offers."""
    client.tool(lambda_free)
    reply = await client.ask("call nothing_here", timeout=TIMEOUT)
    (call,) = reply.tool_calls
    assert call.status == "error"
    assert call.result == "unknown client tool 'nothing_here' (this client offers: lambda_free)"


@dataclasses.dataclass
class Row:
    """A row a tool returns."""

    day: datetime.date
    value: float


def lambda_free() -> str:
    """A tool with no parameters."""
    return "free"


async def test_a_removed_tool_is_no_longer_offered(client: ChatClient) -> None:
    """After remove_tool the server learns the new set: calling it is an unknown tool."""
    client.tool(lambda_free)
    assert (
        await client.ask("call lambda_free", timeout=TIMEOUT)
    ).text == 'lambda_free returned "free".'
    client.remove_tool("lambda_free")
    reply = await client.ask("call lambda_free", timeout=TIMEOUT)
    assert (
        reply.tool_calls[0].result == "unknown client tool 'lambda_free' (this client offers: none)"
    )


async def test_results_are_serialised_through_pydantic_and_bounded(client: ChatClient) -> None:
    """A dataclass result arrives as JSON; a huge one is cut and says so."""

    @client.tool
    def row() -> Row:
        return Row(datetime.date(2026, 1, 2), 1.5)

    @client.tool
    def huge() -> str:
        return "x" * 100_000

    assert (await client.ask("call row", timeout=TIMEOUT)).tool_calls[0].result == {
        "day": "2026-01-02",
        "value": 1.5,
    }
    cut = (await client.ask("call huge", timeout=TIMEOUT)).tool_calls[0].result
    assert isinstance(cut, str) and len(cut) < 17_000 and "[result cut: 16000 characters" in cut


# Confirmation


async def test_confirm_runs_only_what_the_approver_allows(client: ChatClient) -> None:
    """The approver sees the call; True runs it, False gives the model a refusal."""
    ran: list[str] = []
    asked: list[ToolCall] = []
    answers = iter([True, False])

    @client.tool(confirm=True)
    def wipe(table: str) -> str:
        ran.append(table)
        return "wiped"

    async def approver(call: ToolCall) -> bool:
        asked.append(call)
        return next(answers)

    client.approver = approver
    assert (
        await client.ask('call wipe {"table": "a"}', timeout=TIMEOUT)
    ).text == 'wipe returned "wiped".'
    denied = await client.ask('call wipe {"table": "b"}', timeout=TIMEOUT)
    assert ran == ["a"] and denied.tool_calls[0].result == DENIED
    assert [(c.name, c.arguments, c.runs_in) for c in asked] == [
        ("wipe", {"table": "a"}, "client"),
        ("wipe", {"table": "b"}, "client"),
    ]


async def test_confirm_without_an_approver_refuses_and_says_why(client: ChatClient) -> None:
    """With nothing to ask, a confirm=True tool does not run and the model is told why."""
    ran: list[bool] = []

    def risky() -> None:
        ran.append(True)

    client.tool(risky, confirm=True)
    reply = await client.ask("call risky", timeout=TIMEOUT)
    assert reply.tool_calls[0].status == "error" and reply.tool_calls[0].result == NO_APPROVER
    assert ran == []


async def test_an_approver_that_fails_refuses_the_call(client: ChatClient) -> None:
    """An approver that raises is a refusal with its one-line reason; the function never runs."""
    ran: list[bool] = []

    def risky() -> None:
        ran.append(True)

    async def broken(call: ToolCall) -> bool:
        raise RuntimeError("the panel is gone")

    client.tool(risky, confirm=True)
    client.approver = broken
    assert client.approver is broken
    reply = await client.ask("call risky", timeout=TIMEOUT)
    assert reply.tool_calls[0].result == (
        "the confirmation failed (RuntimeError: the panel is gone): the call did not run"
    )
    assert ran == []


# Cancel and reconnect


async def test_cancel_stops_a_slow_async_tool(client: ChatClient) -> None:
    """Stop during a running async tool cancels it in the client and ends the reply cancelled."""
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @client.tool
    async def slow() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    ask = asyncio.ensure_future(client.ask("call slow", timeout=TIMEOUT))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    assert client.cancel()
    await asyncio.wait_for(cancelled.wait(), TIMEOUT)
    reply = await ask
    assert reply.cancelled


async def test_a_call_survives_a_dropped_connection_and_runs_once(demo: DemoServer) -> None:
    """A connection lost during a call: it runs once, its result arrives after the reconnect."""
    chat = ChatClient(url=demo.url, **FAST)
    runs: list[int] = []
    opens: list[None] = []
    chat.on("open", lambda: opens.append(None))

    @chat.tool
    async def flaky(n: int) -> int:
        runs.append(n)
        await drop_connections(demo)  # the result is made while the connection is gone
        return n + 1

    try:
        reply = await chat.ask('call flaky {"n": 1}', timeout=TIMEOUT)
        assert reply.text == "flaky returned 2." and runs == [1] and len(opens) >= 2
        assert reply.tool_calls[0].result == 2
    finally:
        await chat.disconnect()


async def test_a_result_kept_by_call_id_answers_a_repeated_request_without_running(
    demo: DemoServer,
) -> None:
    """The same call id requested again for the same message gets the kept result, not a rerun."""
    from nbchat.protocol import ToolRequest
    from nbchat.session import ToolRequested

    chat = ChatClient(url=demo.url, **FAST)
    runs: list[int] = []

    @chat.tool
    def once() -> int:
        runs.append(1)
        return len(runs)

    try:
        reply = await chat.ask("call once", timeout=TIMEOUT)
        call_id = reply.tool_calls[0].id
        request = ToolRequest(id=call_id, name="once", reply_to=reply.message_id)
        before = chat._session.unacked_results
        chat._outcomes([ToolRequested(request, (reply.message_id, call_id))])
        assert runs == [1] and chat._session.unacked_results == before + 1
    finally:
        await chat.disconnect()


async def next_response(responses: list[ToolResponse], changed: asyncio.Event) -> ToolResponse:
    """The next response a ToolRunner sent, waited for on its event."""
    while not responses:
        changed.clear()
        await asyncio.wait_for(changed.wait(), TIMEOUT)
    return responses.pop(0)


def runner() -> tuple[ToolRunner, list[ToolResponse], asyncio.Event]:
    """A ToolRunner whose responses land in a list, with an event set at each."""
    responses: list[ToolResponse] = []
    changed = asyncio.Event()

    def send(response: ToolResponse) -> None:
        responses.append(response)
        changed.set()

    return ToolRunner(send), responses, changed


async def test_an_approver_answering_a_string_refuses_the_call() -> None:
    """Only True approves: "n", "no" and even "yes" are refusals; the function never runs."""
    tools, responses, changed = runner()
    ran: list[str] = []

    def wipe() -> str:
        ran.append("wiped")
        return "wiped"

    async def approver(call: ToolCall) -> bool:
        return call.id  # type: ignore[return-value]  # a person's typed answer

    tools.add(ClientTool.of(wipe, confirm=True))
    tools.approver = approver
    for answer in ("n", "no", "yes"):
        tools.requested(ToolRequest(id=answer, name="wipe", reply_to="m1"), ("m1", answer))
        assert (await next_response(responses, changed)).result == DENIED
    assert ran == []


async def test_a_call_id_repeated_after_many_other_calls_never_runs_again() -> None:
    """Past the kept results, a repeated call id is refused without running, not run twice."""
    tools, responses, changed = runner()
    runs: list[int] = []

    def once(n: int) -> int:
        runs.append(n)
        return n

    tools.add(ClientTool.of(once))
    for number in range(MAX_KEPT_RESULTS + 2):
        request = ToolRequest(id=f"t{number}", name="once", arguments={"n": number}, reply_to="m")
        tools.requested(request, ("m", request.id))
        await next_response(responses, changed)
    again = ToolRequest(id="t0", name="once", arguments={"n": 0}, reply_to="m")
    tools.requested(again, ("m", "t0"))
    assert (await next_response(responses, changed)).result == RAN_BEFORE
    assert runs.count(0) == 1


async def test_stop_reports_a_plain_function_still_running_and_later_calls_run() -> None:
    """A blocking plain function cannot be stopped: its response says so; the next call runs."""
    tools, responses, changed = runner()
    started, release = threading.Event(), threading.Event()

    def block() -> str:
        started.set()
        release.wait(TIMEOUT)
        return "late"

    def quick() -> str:
        return "quick"

    tools.add(ClientTool.of(block))
    tools.add(ClientTool.of(quick))
    try:
        tools.requested(ToolRequest(id="t1", name="block", reply_to="m1"), ("m1", "t1"))
        await asyncio.to_thread(started.wait, TIMEOUT)
        assert tools.cancel({"m1"}) == 1
        stopped = await next_response(responses, changed)
        tools.requested(ToolRequest(id="t2", name="quick", reply_to="m2"), ("m2", "t2"))
        later = await next_response(responses, changed)
    finally:
        release.set()
    assert (stopped.status, stopped.result) == (
        "error",
        "cancelled: the reply was stopped; block is still running in a thread that could not "
        "be stopped",
    )
    assert (later.status, later.result) == ("done", "quick")


async def test_a_tool_raising_system_exit_gives_an_error_card_not_a_hung_reply(
    client: ChatClient,
) -> None:
    """argparse's SystemExit on bad input is the call's error result; the reply completes."""

    @client.tool
    def parse(flag: str) -> str:
        """Parse a command line."""
        return str(argparse.ArgumentParser(exit_on_error=False).parse_args([flag]))

    reply = await client.ask('call parse {"flag": "--nope"}', timeout=TIMEOUT)
    assert reply.tool_calls[0].status == "error"
    assert reply.text == "parse failed: SystemExit: 2"


def interrupted_while_a_tool_runs() -> None:
    """A script: a tool's own KeyboardInterrupt is its result; Ctrl-C still stops ask_sync."""
    from nbchat.server import DemoServer

    server = DemoServer.start_in_thread(port=0, delay=0)
    client = ChatClient(url=server.url)
    release = threading.Event()

    @client.tool
    def interrupts() -> str:
        raise KeyboardInterrupt

    @client.tool
    def wait() -> str:
        print("blocking", flush=True)
        release.wait(TIMEOUT)
        return "released"

    print(client.ask_sync("call interrupts", timeout=TIMEOUT).text, flush=True)
    try:
        client.ask_sync("call wait", timeout=TIMEOUT)
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
    release.set()
    client.close_sync()
    server.close_sync()


def test_ctrl_c_during_a_tool_stops_ask_sync_while_a_tools_own_interrupt_does_not() -> None:
    """In a script, Ctrl-C while a tool runs raises KeyboardInterrupt from ask_sync."""
    code = "from tests.client.test_tools import interrupted_while_a_tool_runs as run; run()"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first, second = process.stdout.readline(), process.stdout.readline()
        assert second == "blocking\n", first + second + process.communicate(timeout=TIMEOUT)[1]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert [first.strip(), *out.splitlines()] == [
        "interrupts failed: KeyboardInterrupt",
        "KeyboardInterrupt",
    ], err
    assert process.returncode == 0, err


# Servers that know nothing of client tools


async def test_a_server_without_client_tools_never_receives_a_tools_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that does not announce the feature gets only messages; a warning says why."""
    received: list[dict[str, object]] = []

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            data = json.loads(frame)
            received.append(data)
            tag = {"conversation_id": data["conversation_id"], "reply_to": data["id"]}
            await ws.send(json.dumps({"type": "ack", "id": data["id"], **tag}))
            await ws.send(json.dumps({"type": "done", **tag}))

    async with scripted_server(handler) as url:
        chat = ChatClient(url=url, tools=[lambda_free])
        with caplog.at_level(logging.WARNING, logger="nbchat.client"):
            await chat.ask("hello", timeout=TIMEOUT)
        await chat.disconnect()
    assert [frame["type"] for frame in received] == ["message"]
    assert any("does not support client tools" in r.getMessage() for r in caplog.records)


async def test_a_client_without_tools_sends_what_it_always_sent() -> None:
    """No tools registered: no tools frame, even to a server that supports them."""
    async with serve_demo(port=0) as server:
        chat = ChatClient(url=server.url)
        sent: list[object] = []
        chat.on("send", sent.append)
        assert (await chat.ask("echo hi", timeout=TIMEOUT)).text == "hi"
        assert chat._session.tools_frame is None
        await chat.disconnect()


# The OpenAI-compatible bridge


async def test_the_bridge_offers_client_tools_and_routes_each_call_where_it_lives() -> None:
    """A server and a client tool in one round: each runs where it lives, both reach the model."""
    from nbchat.server import ChatServer, OpenAIAgent
    from tests.openai_upstream import Reply, Upstream, text_chunks, tool_chunks

    ran: list[int] = []

    def top_rows(n: int) -> list[dict[str, int]]:
        """The first n rows of the notebook's table."""
        ran.append(n)
        return [{"row": i} for i in range(n)]

    async with Upstream() as upstream:
        calls = (
            ("call_a", "calculator", '{"expression": "6*7"}'),
            ("call_b", "top_rows", '{"n": 2}'),
        )
        upstream.script.extend(
            [Reply(tool_chunks(*calls, parallel=True)), Reply(text_chunks("ok"))]
        )
        agent = OpenAIAgent(base_url=upstream.base_url, model="scripted", api_key="sk-test")
        async with (
            ChatServer(agent) as server,
            ChatClient(url=server.url, tools=[top_rows]) as chat,
        ):
            reply = await chat.ask("rows and a sum", timeout=TIMEOUT)
        first, second = upstream.completion_requests()
    assert reply.text == "ok" and ran == [2]
    offered = [tool["function"]["name"] for tool in first["tools"]]
    assert offered[-1] == "top_rows" and "calculator" in offered
    assert (
        first["tools"][-1]["function"]["description"] == "The first n rows of the notebook's table."
    )
    where = {call.name: (call.runs_in, call.status, call.result) for call in reply.tool_calls}
    assert where == {
        "calculator": (None, "done", 42),
        "top_rows": ("client", "done", [{"row": 0}, {"row": 1}]),
    }
    tool_messages = {
        m["tool_call_id"]: m["content"] for m in second["messages"] if m["role"] == "tool"
    }
    assert tool_messages == {"call_a": "42", "call_b": '[{"row":0},{"row":1}]'}


async def test_the_bridge_gives_a_client_tool_error_back_to_the_model() -> None:
    """A client tool's bad arguments reach the model as an error, and the card shows it."""
    from nbchat.server import ChatServer, OpenAIAgent
    from tests.openai_upstream import Reply, Upstream, text_chunks, tool_chunks

    def top_rows(n: int) -> list[int]:
        return list(range(n))

    async with Upstream() as upstream:
        upstream.script.extend(
            [
                Reply(tool_chunks(("call_1", "top_rows", '{"n": "many"}'))),
                Reply(text_chunks("sorry")),
            ]
        )
        agent = OpenAIAgent(base_url=upstream.base_url, model="scripted", api_key="sk-test")
        async with (
            ChatServer(agent) as server,
            ChatClient(url=server.url, tools=[top_rows]) as chat,
        ):
            reply = await chat.ask("rows", timeout=TIMEOUT)
        second = upstream.completion_requests()[1]
    (call,) = reply.tool_calls
    assert call.status == "error" and call.runs_in == "client" and "bad arguments" in call.result
    assert second["messages"][-1]["content"].startswith("error: bad arguments for top_rows")


# Replay


async def record_a_call(path: str) -> None:
    """Record a conversation where the demo agent calls the client tool ``scale``."""

    def scale(x: int) -> int:
        return 10 * x

    async with serve_demo(port=0) as server:
        chat = ChatClient(url=server.url, tools=[scale], record=path)
        assert (await chat.ask('call scale {"x": 4}', timeout=TIMEOUT)).text == "scale returned 40."
        await chat.disconnect()


async def test_replay_runs_the_recorded_request_in_the_live_client(tmp_path: object) -> None:
    """A replayed reply sends the recorded call to the live function and continues as recorded."""
    from pathlib import Path

    from nbchat.server import ReplayServer

    path = str(Path(str(tmp_path)) / "tools.jsonl")
    await record_a_call(path)
    seen: list[int] = []

    def scale(x: int) -> int:
        seen.append(x)
        return 10 * x

    async with ReplayServer(path) as server, ChatClient(url=server.url, tools=[scale]) as chat:
        reply = await chat.ask('call scale {"x": 4}', timeout=TIMEOUT)
    assert reply.text == "scale returned 40." and seen == [4]
    (call,) = reply.tool_calls
    assert (call.status, call.result, call.runs_in) == ("done", 40, "client")


async def test_replay_reports_a_result_that_differs_from_the_recording(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A function that now answers otherwise ends the replayed reply with tool_result_differs."""
    from pathlib import Path

    from nbchat import ServerError
    from nbchat.server import TOOL_RESULT_DIFFERS, ReplayServer

    path = str(Path(str(tmp_path)) / "tools.jsonl")
    await record_a_call(path)

    def scale(x: int) -> int:
        return 11 * x

    async with ReplayServer(path) as server, ChatClient(url=server.url, tools=[scale]) as chat:
        with (
            caplog.at_level(logging.WARNING, logger="nbchat.server"),
            pytest.raises(ServerError) as info,
        ):
            await chat.ask('call scale {"x": 4}', timeout=TIMEOUT)
    assert info.value.code == TOOL_RESULT_DIFFERS
    assert (
        "client tool scale" in info.value.message
        and "gave done 44, recorded done 40" in info.value.message
    )
    assert any("replay: client tool scale" in r.getMessage() for r in caplog.records)


async def test_replay_with_warn_goes_on_as_recorded_after_a_difference(tmp_path: object) -> None:
    """on_difference="warn": the live outcome is shown and the recorded text follows."""
    from pathlib import Path

    from nbchat.server import ReplayServer

    path = str(Path(str(tmp_path)) / "tools.jsonl")
    await record_a_call(path)

    def scale(x: int) -> int:
        return 11 * x

    server = ReplayServer(path, on_difference="warn")
    async with server, ChatClient(url=server.url, tools=[scale]) as chat:
        reply = await chat.ask('call scale {"x": 4}', timeout=TIMEOUT)
    assert reply.text == "scale returned 40." and reply.tool_calls[0].result == 44


async def test_a_rich_result_reaches_the_model_as_text_and_its_view_stays_here(
    client: ChatClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DataFrame's result on the wire is its summary; the table is kept by (message, call)
    for the card, the oldest forgotten past the bound in characters."""
    import pandas as pd

    from nbchat.client import tools

    @client.tool
    def table(n: int) -> object:
        """A table of n rows."""
        return pd.DataFrame({"x": range(n)})

    first = await client.ask('call table {"n": 3}', timeout=TIMEOUT)
    (call,) = first.tool_calls
    assert isinstance(call.result, str) and call.result.startswith("a pandas DataFrame: 3 rows")
    assert "<" not in first.text
    view = client.tool_result_html(first.message_id, call.id)
    assert view is not None and view.count("<tr>") == 4 and "nbchat-table" in view
    assert client.tool_result_html("another message", call.id) is None

    monkeypatch.setattr(tools, "MAX_SHOWN_CHARS", len(view) + 10)
    second = await client.ask('call table {"n": 3}', timeout=TIMEOUT)
    assert client.tool_result_html(second.message_id, second.tool_calls[0].id) is not None
    assert client.tool_result_html(first.message_id, call.id) is None  # forgotten: over the bound


async def test_a_transcript_records_what_the_model_read_of_a_rich_result(
    client: ChatClient, tmp_path: Path
) -> None:
    """A recorded DataFrame result is its summary text: no table markup, no image, in the file."""
    import pandas as pd

    @client.tool
    def table() -> object:
        """A table."""
        return pd.DataFrame({"x": [1, 2]})

    path = tmp_path / "rich.jsonl"
    client.record(path)
    await client.ask("call table", timeout=TIMEOUT)
    client.stop_recording()
    recorded = path.read_text(encoding="utf-8")
    assert "a pandas DataFrame: 2 rows" in recorded
    assert "nbchat-table" not in recorded and "<td" not in recorded and "data:image" not in recorded


async def test_a_result_of_several_lines_is_quoted_as_a_block(client: ChatClient) -> None:
    """The demo agent quotes a multi-line result (a table's summary) as a block, not as JSON."""

    def summary() -> str:
        """A table's summary."""
        return "shape: 2 x 1\n,x\n0,1"

    client.tool(summary)
    reply = await client.ask("call summary", timeout=TIMEOUT)
    assert reply.text == "summary returned:\n\n```\nshape: 2 x 1\n,x\n0,1\n```\n"


# A tool's images, for a model that reads them


@pytest.mark.parametrize("vision", [True, False])
async def test_a_vision_bridge_shows_the_model_the_image_a_client_tool_returned(
    vision: bool,
) -> None:
    """With vision, a tool's PNG follows its tool message as an image part, for that reply
    only; without, the model reads the description alone."""
    import base64

    from nbchat.server import ChatServer, OpenAIAgent
    from tests.helpers import png
    from tests.openai_upstream import Reply, Upstream, text_chunks, tool_chunks

    image = png(3, 2)

    def plot() -> bytes:
        """Draw the notebook's plot."""
        return image

    async with Upstream() as upstream:
        upstream.script.extend(
            [
                Reply(tool_chunks(("call_p", "plot", "{}"))),
                Reply(text_chunks("A gray image.")),
                Reply(text_chunks("Still gray.")),
            ]
        )
        agent = OpenAIAgent(
            base_url=upstream.base_url, model="scripted", api_key="sk-test", vision=vision
        )
        async with ChatServer(agent) as server, ChatClient(url=server.url, tools=[plot]) as chat:
            reply = await chat.ask("what does the plot show?", timeout=TIMEOUT)
            await chat.ask("and now?", timeout=TIMEOUT)
        _, second, third = upstream.completion_requests()
    assert reply.text == "A gray image."
    tool_message = next(m for m in second["messages"] if m["role"] == "tool")
    assert "a PNG image, 3\u00d72" in tool_message["content"]
    after = second["messages"][second["messages"].index(tool_message) + 1 :]
    url = f"data:image/png;base64,{base64.b64encode(image).decode()}"
    if vision:
        (shown,) = after
        assert shown["role"] == "user"
        line, part = shown["content"]
        assert line == {"type": "text", "text": "plot.png, shown by plot (call call_p):"}
        assert part == {"type": "image_url", "image_url": {"url": url}}
    else:
        assert after == []
    assert url not in json.dumps(third["messages"])  # the history keeps the description


async def test_a_tools_image_goes_only_to_a_server_that_announced_attachments() -> None:
    """A server announcing client tools but not attachments gets the tool's result text alone."""
    from websockets.asyncio.server import serve
    from websockets.http11 import Request, Response

    from tests.helpers import png

    responses: list[dict[str, object]] = []

    def announce(ws: ServerConnection, request: Request, response: Response) -> Response:
        response.headers["Nbchat-Features"] = "client-tools"
        return response

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            data = json.loads(frame)
            if data["type"] == "message":
                tag = {"conversation_id": data["conversation_id"], "reply_to": data["id"]}
                await ws.send(json.dumps({"type": "ack", "id": data["id"], **tag}))
                request = {"type": "tool_request", "id": "t1", "name": "plot", **tag}
                await ws.send(json.dumps(request))
            elif data["type"] == "tool_response":
                responses.append(data)
                await ws.send(json.dumps({"type": "tool_ack", "id": "t1"}))
                await ws.send(json.dumps({"type": "done", **tag}))

    def plot() -> bytes:
        """Draw the plot."""
        return png()

    async with serve(handler, "127.0.0.1", 0, process_response=announce) as server:
        port = server.sockets[0].getsockname()[1]
        chat = ChatClient(url=f"ws://127.0.0.1:{port}/ws", tools=[plot])
        await chat.ask("plot", timeout=TIMEOUT)
        await chat.disconnect()
    (response,) = responses
    assert "attachments" not in response
    assert str(response["result"]).startswith("a PNG image, 2\u00d72")
