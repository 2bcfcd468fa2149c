"""The bridge against servers as they really behave: reasoning, usage, limits, options, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from nbchat import ChatClient
from nbchat.exceptions import ConfigError
from nbchat.protocol import DoneMessage, ErrorMessage, ReasoningMessage, TokenMessage, Usage
from nbchat.server import ChatServer
from nbchat.server.openai.bridge import OpenAIAgent
from nbchat.server.responder import ResponderMessage
from tests.helpers import TIMEOUT, free_port
from tests.openai_upstream import Reply, Upstream, reasoning_chunks, text_chunks, tool_chunks

pytestmark = pytest.mark.loopback

AgentFactory = Callable[..., OpenAIAgent]
CALC = ("call_1", "calculator", '{"expression": "6*7"}')


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """The scripted OpenAI-compatible server, refusing null content as llama-cpp-python does."""
    async with Upstream(strict_content=True) as server:
        yield server


@pytest.fixture
async def make_agent(upstream: Upstream) -> AsyncIterator[AgentFactory]:
    """A factory of bridges to the scripted upstream; each one is closed after the test."""
    agents: list[OpenAIAgent] = []

    def make(**options: Any) -> OpenAIAgent:
        options.setdefault("base_url", upstream.base_url)
        options.setdefault("model", "scripted")
        agent = OpenAIAgent(**options)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        await agent.aclose()


async def reply_of(agent: OpenAIAgent, text: str) -> list[ResponderMessage]:
    """Every message the bridge yields for one user message."""

    async def collect() -> list[ResponderMessage]:
        return [message async for message in agent.respond("c", text)]

    return await asyncio.wait_for(collect(), TIMEOUT)


def _text(messages: list[ResponderMessage], kind: type = TokenMessage) -> str:
    if kind is ReasoningMessage:
        return "".join(m.text for m in messages if isinstance(m, ReasoningMessage))
    return "".join(m.response for m in messages if isinstance(m, TokenMessage))


# Reasoning


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_deltas_become_the_replys_reasoning(
    upstream: Upstream, make_agent: AgentFactory, field: str
) -> None:
    """``reasoning_content`` and ``reasoning`` deltas reach ``Reply.reasoning``, not its text."""
    upstream.script.append(Reply(reasoning_chunks(["Six ", "sevens."], ["42"], field=field)))
    async with ChatServer(make_agent()) as server, ChatClient(url=server.url) as client:
        reply = await asyncio.wait_for(client.ask("6*7?"), TIMEOUT)
    assert (reply.reasoning, reply.text) == ("Six sevens.", "42")


async def test_think_spans_split_across_chunks_are_reasoning(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """``<think>`` cut across chunks is reasoning; the history keeps only the answer."""
    upstream.script.append(Reply(text_chunks("<th", "ink>Hm", "m.</thi", "nk>\n\nYes.")))
    agent = make_agent()
    messages = await reply_of(agent, "ok?")
    assert (_text(messages, ReasoningMessage), _text(messages)) == ("Hmm.", "Yes.")
    assert agent.history("c")[-1] == {"role": "assistant", "content": "Yes."}


# Usage and cut replies


async def test_usage_is_asked_for_summed_over_rounds_and_carried_by_done(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """Each request asks for usage; ``done`` carries the sum of every round's counts."""
    upstream.script.append(Reply(tool_chunks(CALC), usage=_counts(10, 3)))
    upstream.script.append(Reply(text_chunks("42."), usage=_counts(20, 2)))
    async with ChatServer(make_agent()) as server, ChatClient(url=server.url) as client:
        reply = await asyncio.wait_for(client.ask("6*7?"), TIMEOUT)
    assert reply.usage == Usage(prompt_tokens=30, completion_tokens=5) and not reply.truncated
    asked = [body["stream_options"] for body in upstream.completion_requests()]
    assert asked == [{"include_usage": True}] * 2


async def test_a_server_refusing_stream_options_is_asked_without_them(
    make_agent: AgentFactory,
) -> None:
    """A 400 naming ``stream_options`` is retried without it, once, silently, and remembered."""
    async with Upstream(refuse_stream_options=True) as refusing:
        agent = make_agent(base_url=refusing.base_url)
        first = await reply_of(agent, "hi")
        second = await reply_of(agent, "again")
        assert _text(first).startswith("You said: hi") and _text(second).startswith("You said")
        assert not any(isinstance(m, ErrorMessage | DoneMessage) for m in first + second)
        sent = ["stream_options" in body for body in refusing.completion_requests()]
        assert sent == [True, False, False]


async def test_a_reply_cut_at_the_token_limit_is_truncated(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """``finish_reason: length`` ends with ``done`` ``truncated``, and the reply says so."""
    upstream.script.append(Reply(text_chunks("Once upon a", finish="length")))
    async with ChatServer(make_agent()) as server, ChatClient(url=server.url) as client:
        reply = await asyncio.wait_for(client.ask("a story"), TIMEOUT)
    assert reply.truncated and reply.text == "Once upon a" and reply.usage is None


# Requests as servers take them


async def test_the_tool_call_message_sent_back_has_empty_content(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """The assistant's tool-call message carries ``content: ""``, so a strict server answers."""
    upstream.script.append(Reply(tool_chunks(CALC)))
    upstream.script.append(Reply(tool_chunks(("call_2", "calculator", '{"expression": "1"}'))))
    upstream.script.append(Reply(text_chunks("Done.")))
    messages = await reply_of(make_agent(), "compute")
    assert _text(messages) == "Done." and not any(isinstance(m, ErrorMessage) for m in messages)
    sent = upstream.completion_requests()[2]["messages"]
    assert [m["content"] for m in sent if m.get("tool_calls")] == ["", ""]


async def test_tool_choice_parallel_calls_and_extra_body_are_sent(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """A forced ``tool_choice`` holds for the first round, then ``auto``; extra fields pass."""
    forced = {"type": "function", "function": {"name": "calculator"}}
    agent = make_agent(
        tool_choice=forced, parallel_tool_calls=False, extra_body={"top_k": 5, "model": "no"}
    )
    upstream.script.extend([Reply(tool_chunks(CALC)), Reply(text_chunks("42."))])
    assert _text(await reply_of(agent, "6*7?")) == "42."
    first, second = upstream.completion_requests()
    assert (first["tool_choice"], second["tool_choice"]) == (forced, "auto")
    assert first["parallel_tool_calls"] is False and first["top_k"] == 5
    assert first["model"] == "scripted"
    plain = make_agent(tools=(), tool_choice="required")
    await reply_of(plain, "hi")
    assert "tool_choice" not in upstream.completion_requests()[-1]


# Errors named correctly


async def test_a_gateways_invalid_model_400_is_an_unknown_model(
    make_agent: AgentFactory,
) -> None:
    """LiteLLM's 400 "Invalid model name" is ``upstream_not_found`` with the models offered."""
    async with Upstream(unknown_model=400) as gateway:
        messages = await reply_of(make_agent(base_url=gateway.base_url, model="gpt-9"), "hi")
    (error,) = messages
    assert isinstance(error, ErrorMessage) and error.error.code == "upstream_not_found"
    assert "unknown model 'gpt-9'" in error.error.message
    assert "scripted, other-model" in error.error.message


async def test_a_stall_mid_stream_is_named_a_stall(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """A server that answered, then went silent, stalled: it is not said to have never answered."""
    upstream.script.append(Reply(text_chunks("a ", "b"), delay=2.0))
    messages = await reply_of(make_agent(timeout=0.3), "hi")
    error = messages[-1]
    assert isinstance(error, ErrorMessage) and error.error.code == "upstream_timeout"
    assert "stalled" in error.error.message and "did not answer" not in error.error.message


def _counts(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": 0}


# The check at start (nbchat serve --openai)


async def test_the_check_at_start_names_the_model_or_what_is_wrong(
    upstream: Upstream, make_agent: AgentFactory
) -> None:
    """``check()`` names the model bridged; an unknown model or a dead URL is one ConfigError."""
    assert await make_agent().check() == f"bridging model 'scripted' at {upstream.base_url}"
    with pytest.raises(ConfigError, match=r"unknown model 'gpt-9'.*scripted, other-model"):
        await make_agent(model="gpt-9").check()
    with pytest.raises(ConfigError, match="cannot reach"):
        await make_agent(base_url=f"http://127.0.0.1:{await free_port()}/v1").check()
