"""The OpenAI-compatible bridge against a scripted upstream over real HTTP and SSE."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from nbchat import ChatClient
from nbchat.exceptions import ConfigError, ServerError
from nbchat.parsing import parse_server_message
from nbchat.protocol import (
    CLIENT_ID_HEADER,
    ErrorMessage,
    TokenMessage,
    ToolCallMessage,
    ToolResultMessage,
    new_id,
)
from nbchat.server import ChatServer
from nbchat.server.openai.bridge import OpenAIAgent
from nbchat.server.openai.history import Histories
from nbchat.server.openai.toolcalls import ToolCallAccumulator
from nbchat.server.responder import ResponderMessage
from tests.helpers import TIMEOUT, free_port, png
from tests.openai_upstream import (
    Reply,
    Status,
    Upstream,
    ollama_tool_chunks,
    text_chunks,
    tool_chunks,
)

pytestmark = pytest.mark.loopback

AgentFactory = Callable[..., OpenAIAgent]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """The scripted OpenAI-compatible server on a free loopback port."""
    async with Upstream() as server:
        yield server


@pytest.fixture
async def make_agent(upstream: Upstream) -> AsyncIterator[AgentFactory]:
    """A factory of bridges to the scripted upstream; each one is closed after the test."""
    agents: list[OpenAIAgent] = []

    def make(**options: Any) -> OpenAIAgent:
        options.setdefault("base_url", upstream.base_url)
        options.setdefault("model", "scripted")
        options.setdefault("api_key", "sk-test-secret-123")
        agent = OpenAIAgent(**options)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        await agent.aclose()


async def reply_of(agent: OpenAIAgent, text: str, conversation: str = "c") -> list[Any]:
    """Every message the bridge yields for one user message."""

    async def collect() -> list[ResponderMessage]:
        return [message async for message in agent.respond(conversation, text)]

    return await asyncio.wait_for(collect(), TIMEOUT)


def tokens(messages: list[Any]) -> str:
    """The reply text of some responder messages."""
    return "".join(m.response for m in messages if isinstance(m, TokenMessage))


def error_of(messages: list[Any]) -> ErrorMessage:
    """The one error that ends a failed reply."""
    assert isinstance(messages[-1], ErrorMessage), messages
    return messages[-1]


# Streaming and memory


async def test_tokens_stream_as_they_arrive(upstream: Upstream, make_agent: AgentFactory) -> None:
    """The first token reaches the client while the upstream is still streaming."""
    upstream.script.append(Reply(text_chunks("one ", "two ", "three"), delay=0.1))
    async with ChatServer(make_agent()) as server, ChatClient(url=server.url) as client:
        stream = client.stream("hello")
        async for message in stream:
            if isinstance(message, TokenMessage):
                assert message.response == "one "
                assert not upstream.requests[0].finished  # nothing buffered to the end
                break
        reply = await asyncio.wait_for(client.ask("again", conversation_id="other"), TIMEOUT)
    assert reply.text.startswith("You said: again")


async def test_history_is_sent_with_the_system_prompt_first(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """Each conversation sends its own history upstream, the system prompt first."""
    agent = make_agent(system="Be brief.", temperature=0.5, max_tokens=20)
    assert tokens(await reply_of(agent, "hi", "a")).startswith("You said: hi")
    await reply_of(agent, "bye", "a")
    await reply_of(agent, "other", "b")
    second, third = upstream.completion_requests()[1:]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][0]["content"] == "Be brief."
    assert second["messages"][2]["content"] == "You said: hi "
    assert [m["content"] for m in third["messages"]] == ["Be brief.", "other"]
    assert second["temperature"] == 0.5 and second["max_tokens"] == 20
    assert second["stream"] is True
    assert {t["function"]["name"] for t in second["tools"]} == {
        "calculator",
        "current_time",
        "network_check",
    }


async def test_history_drops_the_oldest_turns_past_its_budget(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """Past the budget, whole old turns go; the system prompt and the latest turn stay."""
    agent = make_agent(system="S", max_history_chars=120)
    for number in range(6):
        await reply_of(agent, f"message number {number}")
    history = agent.history("c")
    assert sum(len(m["content"]) for m in history) <= 120
    assert history[0]["role"] == "user"
    assert history[-2]["content"] == "message number 5"
    assert "message number 0" not in json.dumps(history)
    last = upstream.completion_requests()[-1]["messages"]
    assert last[0] == {"role": "system", "content": "S"}


async def test_conversations_are_bounded(make_agent: AgentFactory) -> None:
    """The least recently used conversation is forgotten past max_conversations."""
    agent = make_agent(max_conversations=2)
    for conversation in ("a", "b", "c"):
        await reply_of(agent, "hi", conversation)
    assert agent.history("a") == [] and agent.history("c") != []


def test_one_client_cannot_evict_another_clients_history() -> None:
    """Histories are bounded per client: one client's new conversations forget only its own."""
    histories = Histories(max_conversations=20, max_chars=1000, max_per_client=5)
    histories.commit("alice:c", [{"role": "user", "content": "remember me"}])
    for number in range(100):
        histories.commit(f"mallory:{number}", [{"role": "user", "content": "hi"}])
    assert histories.copy("alice:c") == [{"role": "user", "content": "remember me"}]
    assert histories.copy("mallory:94") == [] and histories.copy("mallory:99") != []


# Tool calls


async def test_tool_call_with_arguments_split_mid_string(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """Split argument JSON is reassembled, the tool runs, and the result goes back upstream."""
    upstream.script.append(Reply(tool_chunks(("call_1", "calculator", '{"expression": "6*7"}'))))
    upstream.script.append(Reply(text_chunks("6*7 = ", "42.")))
    async with ChatServer(make_agent()) as server, ChatClient(url=server.url) as client:
        reply = await asyncio.wait_for(client.ask("What is 6*7?"), TIMEOUT)
    assert reply.text == "6*7 = 42."
    (call,) = reply.tool_calls
    assert (call.id, call.name, call.arguments) == ("call_1", "calculator", {"expression": "6*7"})
    assert (call.status, call.result) == ("done", 42)
    messages = upstream.completion_requests()[1]["messages"]
    assistant, tool = messages[-2:]
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"expression": "6*7"}
    assert tool == {"role": "tool", "tool_call_id": "call_1", "content": "42"}


@pytest.mark.parametrize("shape", ["parallel", "ollama"])
async def test_several_calls_in_one_round(
    upstream: Upstream, make_agent: AgentFactory, shape: str
) -> None:
    """Interleaved parallel calls and Ollama's reused index each give two calls and results."""
    calls = (
        ("id_a", "calculator", '{"expression": "1+1"}'),
        ("id_b", "calculator", '{"expression": "2*3"}'),
    )
    chunks = (
        tool_chunks(*calls, parallel=True) if shape == "parallel" else ollama_tool_chunks(*calls)
    )
    upstream.script.extend([Reply(chunks), Reply(text_chunks("2 and 6"))])
    messages = await reply_of(make_agent(), "two sums")
    announced = next(m for m in messages if isinstance(m, ToolCallMessage))
    assert [c.id for c in announced.tool_calls] == ["id_a", "id_b"]
    results = {
        c.id: c.result for m in messages if isinstance(m, ToolResultMessage) for c in m.tool_calls
    }
    assert results == {"id_a": 2, "id_b": 6}
    sent = upstream.completion_requests()[1]["messages"]
    assert [m.get("tool_call_id") for m in sent[-2:]] == ["id_a", "id_b"]
    assert [m["content"] for m in sent[-2:]] == ["2", "6"]


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("calculator", '{"expression": "6*', "not valid JSON"),
        ("calculator", '{"expression": 42}', "expression: Input should be a valid string"),
        ("calculator", '{"expression": "1/0"}', "division by zero"),
        ("rm_rf", "{}", "unknown server tool 'rm_rf' (this server offers: calculator"),
    ],
)
async def test_bad_calls_become_error_results_for_the_model_and_the_card(
    upstream: Upstream, make_agent: AgentFactory, name: str, arguments: str, expected: str
) -> None:
    """Broken JSON, wrong types, a raising tool and unknown tools are error results, no crash."""
    upstream.script.extend(
        [Reply(tool_chunks(("call_x", name, arguments))), Reply(text_chunks("Sorry."))]
    )
    messages = await reply_of(make_agent(), "do it")
    result = next(m for m in messages if isinstance(m, ToolResultMessage)).tool_calls[0]
    assert result.status == "error" and expected in result.result
    tool_message = upstream.completion_requests()[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"].startswith("error: ")
    assert expected in tool_message["content"]
    assert tokens(messages) == "Sorry."


async def test_broken_arguments_are_shown_raw_on_the_card(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """Arguments that are not a JSON object are shown as received, and sent back as received."""
    upstream.script.extend(
        [Reply(tool_chunks(("c1", "calculator", "6*7"))), Reply(text_chunks("ok"))]
    )
    messages = await reply_of(make_agent(), "go")
    announced = next(m for m in messages if isinstance(m, ToolCallMessage)).tool_calls[0]
    assert announced.arguments == {"_raw": "6*7"}
    assistant = upstream.completion_requests()[1]["messages"][-2]
    assert assistant["tool_calls"][0]["function"]["arguments"] == "6*7"


async def test_tool_rounds_are_bounded_and_say_so(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """A model that keeps calling tools is stopped after max_rounds, with an error saying so."""
    for number in range(5):
        upstream.script.append(
            Reply(tool_chunks((f"c{number}", "calculator", '{"expression": "1+1"}')))
        )
    messages = await reply_of(make_agent(max_rounds=2), "loop")
    error = error_of(messages)
    assert error.error.code == "tool_rounds" and "2 rounds" in error.error.message
    assert len(upstream.requests) == 3


async def test_async_and_slow_tools(upstream: Upstream, make_agent: AgentFactory) -> None:
    """An async tool is awaited; a tool past its time limit is an error result."""

    async def shout(text: str) -> str:
        """Upper case."""
        return text.upper()

    async def stall() -> None:
        """Never finishes in time."""
        await asyncio.Event().wait()

    upstream.script.extend(
        [
            Reply(tool_chunks(("a", "shout", '{"text": "hi"}'), ("b", "stall", "{}"))),
            Reply(text_chunks("done")),
        ]
    )
    messages = await reply_of(make_agent(tools=[shout, stall], tool_timeout=0.05), "go")
    results = {
        c.id: (c.status, c.result)
        for m in messages
        if isinstance(m, ToolResultMessage)
        for c in m.tool_calls
    }
    assert results["a"] == ("done", "HI")
    assert results["b"][0] == "error" and "did not finish within 0.05s" in results["b"][1]


# Cancel and delivery


async def test_cancel_closes_the_upstream_stream(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """Stop ends the reply done/cancelled and the upstream sees its request end."""
    upstream.script.append(Reply(endless=True, delay=0.02))
    agent = make_agent()
    async with ChatServer(agent) as server, ChatClient(url=server.url) as client:
        seen: list[Any] = []
        async for message in client.stream("talk forever"):
            seen.append(message)
            if len(seen) == 2:
                assert client.cancel()
        assert seen[-1].type == "done" and seen[-1].cancelled
        await asyncio.wait_for(upstream.disconnected.wait(), TIMEOUT)
        assert not upstream.requests[0].finished
        await asyncio.wait_for(client.ask("and now?"), TIMEOUT)
    # The cancelled turn stays in the history with the text the user saw.
    user, assistant = upstream.completion_requests()[1]["messages"][:2]
    assert user["content"] == "talk forever"
    assert assistant["role"] == "assistant" and assistant["content"].startswith("tick1 ")


async def test_an_abandoned_reply_closes_the_upstream_stream(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """A reply whose generator is closed between two tokens ends the upstream request at once."""
    upstream.script.append(Reply(endless=True, delay=0.02))
    reply = make_agent().respond("c", "talk")
    first = await asyncio.wait_for(anext(reply), TIMEOUT)
    assert isinstance(first, TokenMessage)
    await reply.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(upstream.disconnected.wait(), TIMEOUT)


async def test_a_resent_message_never_asks_upstream_twice(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """A message resent with the same id after a reconnect replays its reply, no new request."""
    upstream.script.append(Reply(text_chunks("a ", "b ", "c"), delay=0.05))
    async with ChatServer(make_agent()) as server:
        frame = json.dumps({"type": "message", "id": "m1", "conversation_id": "k", "message": "hi"})
        identity = {CLIENT_ID_HEADER: new_id()}  # the same client on both connections
        async with connect(server.url, additional_headers=identity) as ws:
            await ws.send(frame)
            assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "ack"
        async with connect(server.url, additional_headers=identity) as ws:
            await ws.send(frame)
            ack = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert ack["duplicate"] is True
            received = []
            while not received or received[-1].type != "done":
                received.append(parse_server_message(await asyncio.wait_for(ws.recv(), TIMEOUT)))
    assert "".join(m.response for m in received if m.type == "token") == "a b c"
    assert len(upstream.requests) == 1


# Errors


async def test_wrong_key_names_the_fix_and_never_the_key(
    make_agent: AgentFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 says to set the key, without showing it, in the error and in the logs."""
    caplog.set_level(logging.DEBUG)
    async with Upstream(api_key="sk-right") as guarded:
        agent = make_agent(base_url=guarded.base_url, api_key="sk-wrong-secret-987")
        error = error_of(await reply_of(agent, "hi"))
        assert guarded.requests[0].headers["Authorization"] == "Bearer sk-wrong-secret-987"
    assert error.error.code == "upstream_auth"
    assert "HTTP 401" in error.error.message and "OPENAI_API_KEY" in error.error.message
    assert "sk-wrong-secret-987" not in error.error.message
    assert "sk-wrong-secret-987" not in caplog.text and "sk-wrong" not in repr(agent)


async def test_a_missing_key_names_the_variable_configured(
    make_agent: AgentFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With api_key_env naming an unset variable, the 401 says to set that one, not another."""
    monkeypatch.delenv("MY_MODEL_KEY", raising=False)
    async with Upstream(api_key="sk-right") as guarded:
        agent = make_agent(base_url=guarded.base_url, api_key=None, api_key_env="MY_MODEL_KEY")
        error = error_of(await reply_of(agent, "hi"))
    assert error.error.code == "upstream_auth"
    assert "needs an API key and got none" in error.error.message
    assert "$MY_MODEL_KEY" in error.error.message and "OPENAI_API_KEY" not in error.error.message


async def test_unknown_model_lists_the_models_offered(make_agent: AgentFactory) -> None:
    """A 404 for the model names the models the endpoint offers."""
    error = error_of(await reply_of(make_agent(model="gpt-9"), "hi"))
    assert error.error.code == "upstream_not_found"
    assert "unknown model 'gpt-9'" in error.error.message
    assert "scripted, other-model" in error.error.message


async def test_rate_limits_are_retried_then_reported(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """429s are retried with backoff; past max_retries the error says so."""
    upstream.script.extend([Status(429), Status(429, headers={"Retry-After": "0"})])
    agent = make_agent(max_retries=2, retry_delay=0.01)
    assert tokens(await reply_of(agent, "hi")).startswith("You said")
    assert len(upstream.requests) == 3
    upstream.script.extend([Status(429)] * 3)
    error = error_of(await reply_of(agent, "again"))
    assert error.error.code == "upstream_rate_limited" and "2 retries" in error.error.message


async def test_server_errors_carry_the_upstream_words(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """A 5xx and a 400 are one line each, with the server's own (redacted, bounded) message."""
    upstream.script.append(Status(503, "overloaded; see https://h/x?token=abc " + "z" * 500))
    error = error_of(await reply_of(make_agent(), "hi"))
    assert error.error.code == "upstream_failed" and "HTTP 503: overloaded" in error.error.message
    assert "abc" not in error.error.message and len(error.error.message) < 400
    upstream.script.append(Status(400, "context too long"))
    error = error_of(await reply_of(make_agent(), "hi"))
    assert error.error.code == "upstream_refused" and "context too long" in error.error.message


async def test_unreachable_upstream_names_the_url_without_secrets(
    make_agent: AgentFactory,
) -> None:
    """A refused connection names the URL, its credentials redacted."""
    port = await free_port()
    agent = make_agent(base_url=f"http://ada:pw-secret@127.0.0.1:{port}/v1?api_key=k-secret")
    error = error_of(await reply_of(agent, "hi"))
    assert error.error.code == "upstream_unreachable"
    assert f"127.0.0.1:{port}" in error.error.message
    assert "pw-secret" not in error.error.message and "k-secret" not in error.error.message


async def test_a_stream_cut_mid_reply_is_one_error_after_the_tokens(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """An upstream that dies mid-stream ends the reply with an error; tokens sent stay sent."""
    upstream.script.append(Reply(text_chunks("half ", "a ")[:-1], abort=True))
    messages = await reply_of(make_agent(), "hi")
    assert tokens(messages) == "half a "
    error = error_of(messages)
    assert error.error.code == "upstream_unreachable" and "mid-reply" in error.error.message


async def test_endless_text_and_endless_calls_are_bounded(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """A reply past max_reply_chars is stopped with an error; calls past the bound are refused."""
    upstream.script.append(Reply(endless=True))
    error = error_of(await reply_of(make_agent(max_reply_chars=500), "talk"))
    assert error.error.code == "reply_too_long" and "500 characters" in error.error.message
    await asyncio.wait_for(upstream.disconnected.wait(), TIMEOUT)
    calls = ToolCallAccumulator()
    for index in range(100):
        calls.add(index, f"id{index}", "calculator", "{}")
    assert len(calls.calls) == 33


async def test_a_silent_upstream_times_out(upstream: Upstream, make_agent: AgentFactory) -> None:
    """No chunk within the timeout ends the reply with an error saying so."""
    upstream.script.append(Reply(text_chunks("late"), delay=2.0))
    error = error_of(await reply_of(make_agent(timeout=0.2), "hi"))
    assert error.error.code == "upstream_timeout" and "0.2s" in error.error.message


@pytest.mark.parametrize("piece", ["", "x"], ids=["empty-deltas", "a-byte-at-a-time"])
async def test_a_reply_has_an_overall_time_limit(
    upstream: Upstream, make_agent: AgentFactory, piece: str
) -> None:
    """An upstream that never stops sending tiny deltas is cut at reply_timeout, in one line."""
    upstream.script.append(Reply(text_chunks(*[piece] * 10_000), delay=0.02))
    error = error_of(await reply_of(make_agent(reply_timeout=0.5), "hi"))
    assert error.error.code == "upstream_timeout" and "0.5s" in error.error.message
    assert "\n" not in error.error.message and "reply_timeout" in error.error.message
    await asyncio.wait_for(upstream.disconnected.wait(), TIMEOUT)


async def test_one_failing_conversation_leaves_the_others_served(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """After an upstream error in one conversation the server answers the next message."""
    upstream.script.append(Status(500))
    async with ChatServer(make_agent()) as server, ChatClient(url=server.url) as client:
        with pytest.raises(ServerError) as caught:
            await asyncio.wait_for(client.ask("first", conversation_id="a"), TIMEOUT)
        assert caught.value.code == "upstream_failed"
        reply = await asyncio.wait_for(client.ask("second", conversation_id="b"), TIMEOUT)
    assert reply.text.startswith("You said: second")


async def test_a_failed_turn_is_forgotten(upstream: Upstream, make_agent: AgentFactory) -> None:
    """A turn the model never answered is not kept in the history."""
    agent = make_agent()
    upstream.script.append(Status(500))
    await reply_of(agent, "lost")
    await reply_of(agent, "kept")
    assert agent.history("c")[0]["content"] == "kept"


# Recording and configuration


async def test_a_recorded_reply_holds_no_key(
    upstream: Upstream, make_agent: AgentFactory, tmp_path: Path
) -> None:
    """A transcript of a bridged conversation has the reply and tool calls, never the key."""
    upstream.script.extend(
        [Reply(tool_chunks(("c1", "current_time", "{}"))), Reply(text_chunks("It is now."))]
    )
    path = tmp_path / "chat.jsonl"
    async with (
        ChatServer(make_agent()) as server,
        ChatClient(url=server.url, record=path) as client,
    ):
        reply = await asyncio.wait_for(client.ask("time?"), TIMEOUT)
    assert reply.tool_calls[0].status == "done"
    text = path.read_text()
    assert "It is now." in text and "current_time" in text
    assert "sk-test-secret-123" not in text


def test_without_the_sdk_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """With openai not importable, making an agent is one line naming the extra."""
    monkeypatch.setitem(sys.modules, "openai", None)
    with pytest.raises(ConfigError) as caught:
        OpenAIAgent(base_url="http://127.0.0.1:9/v1", model="m")
    assert "pip install 'jupyter-nbchat[openai]'" in str(caught.value)


# Attachments


async def test_attachments_reach_the_model_as_content_parts(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """An image becomes an image_url part with a data URL, a table CSV text; in later turns too."""
    import pandas as pd

    image = png()
    upstream.script.append(Reply(text_chunks("A blank image.")))
    frame = pd.DataFrame({"x": [1, 2]})
    async with ChatServer(make_agent()) as server, ChatClient(url=server.url) as client:
        reply = await client.ask("what is this?", attach=[image, frame], timeout=TIMEOUT)
        assert reply.text == "A blank image."
        await client.ask("and now?", timeout=TIMEOUT)
    first, second = upstream.completion_requests()
    text, image, table = first["messages"][-1]["content"]
    assert text == {"type": "text", "text": "what is this?"}
    assert image["type"] == "image_url"
    assert image["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert table["type"] == "text"
    assert table["text"].startswith("Attached table.txt (text/plain, ")
    assert table["text"].endswith("first 2 rows, as CSV:\n,x\n0,1\n1,2")
    assert second["messages"][0]["content"] == first["messages"][-1]["content"]  # remembered
    assert second["messages"][-1]["content"] == "and now?"
