"""The one backend chooser: nbchat serve's model options, and the environment for built-in ones."""

from __future__ import annotations

import argparse
import asyncio
import logging

import pytest

from nbchat.cli import main
from nbchat.exceptions import ConfigError
from nbchat.server import DemoServer, OpenAIAgent
from nbchat.server.backend import (
    add_arguments,
    agent_from_arguments,
    agent_from_environment,
    builtin_server,
    choose_agent,
    wants_builtin_server,
)
from tests.helpers import free_port

pytestmark = pytest.mark.loopback


def test_command_line_arguments_make_an_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """nbchat serve's model options build the agent; --openai without a model is refused."""
    monkeypatch.setenv("MY_KEY", "sk-from-env")
    monkeypatch.delenv("NBCHAT_MODEL", raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert agent_from_arguments(parser.parse_args([])) is None
    args = parser.parse_args(
        [
            *("--openai", "http://127.0.0.1:9/v1", "--model", "m", "--api-key-env", "MY_KEY"),
            *("--system", "S", "--temperature", "0.1", "--max-tokens", "5"),
        ]
    )
    agent = agent_from_arguments(args)
    assert agent is not None
    assert (agent.model, agent.system, agent.temperature, agent.max_tokens) == ("m", "S", 0.1, 5)
    with pytest.raises(ConfigError, match="--model"):
        agent_from_arguments(parser.parse_args(["--openai", "http://127.0.0.1:9/v1"]))


def test_environment_makes_the_embedded_default_a_model() -> None:
    """NBCHAT_OPENAI_BASE_URL and NBCHAT_MODEL choose a model; neither means the demo agent."""
    assert agent_from_environment({}) is None
    agent = agent_from_environment(
        {"NBCHAT_OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "NBCHAT_MODEL": "m"}
    )
    assert agent is not None and agent.model == "m"
    with pytest.raises(ConfigError, match="NBCHAT_MODEL"):
        agent_from_environment({"NBCHAT_OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})


def test_no_tools_offers_the_model_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """--no-tools makes an agent that offers no tools; by default it offers the server's."""
    monkeypatch.delenv("NBCHAT_MODEL", raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--openai", "http://127.0.0.1:9/v1", "--model", "m"]
    bare = agent_from_arguments(parser.parse_args([*base, "--no-tools"]))
    full = agent_from_arguments(parser.parse_args(base))
    assert bare is not None and full is not None
    assert bare.tools == {} and "calculator" in full.tools


def test_vision_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """--vision makes an agent that shows the model tools' images; without it, it does not."""
    monkeypatch.delenv("NBCHAT_MODEL", raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--openai", "http://127.0.0.1:9/v1", "--model", "m"]
    seeing = agent_from_arguments(parser.parse_args([*base, "--vision"]))
    plain = agent_from_arguments(parser.parse_args(base))
    assert seeing is not None and plain is not None
    assert seeing.vision and not plain.vision


MODEL_ENVIRON = {"NBCHAT_OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "NBCHAT_MODEL": "env-model"}


def test_arguments_win_over_the_environment_and_empty_means_the_demo() -> None:
    """--openai decides first, then the environment; neither means the demo agent (None)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    given = parser.parse_args(["--openai", "http://127.0.0.1:9/v1", "--model", "arg-model"])
    chosen = choose_agent(given, MODEL_ENVIRON)
    assert chosen is not None and chosen.model == "arg-model"
    from_env = choose_agent(parser.parse_args(["--model", "m"]), MODEL_ENVIRON)
    assert from_env is not None and from_env.model == "env-model"
    assert choose_agent(parser.parse_args([]), {}) is None
    assert choose_agent(environ={}) is None


def test_the_builtin_server_answers_with_the_backend_the_environment_or_the_demo() -> None:
    """A given backend wins; else the environment's model; else the demo agent at the pace given."""
    demo = builtin_server(delay=0.5, environ={})
    assert isinstance(demo, DemoServer) and demo.agent.delay == 0.5
    model = builtin_server(environ=MODEL_ENVIRON)
    assert isinstance(model.responder, OpenAIAgent) and model.responder.model == "env-model"
    given = OpenAIAgent(base_url="http://127.0.0.1:9/v1", model="given")
    assert builtin_server(given, environ=MODEL_ENVIRON).responder is given


def test_the_key_variable_is_read_by_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """--api-key-env names where the key comes from; the default is $OPENAI_API_KEY."""
    monkeypatch.setenv("MY_KEY", "sk-mine")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-default")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--openai", "http://127.0.0.1:9/v1", "--model", "m"]
    mine = agent_from_arguments(parser.parse_args([*base, "--api-key-env", "MY_KEY"]))
    default = agent_from_arguments(parser.parse_args(base))
    assert mine is not None and default is not None
    assert (mine._key, default._key) == ("sk-mine", "sk-default")


def test_no_builtin_backend_runs_under_replay(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Under $NBCHAT_REPLAY a given backend starts nothing, and one log line names it."""
    given = OpenAIAgent(base_url="http://127.0.0.1:9/v1", model="given")
    monkeypatch.delenv("NBCHAT_WS_URL", raising=False)
    monkeypatch.delenv("NBCHAT_REPLAY", raising=False)
    assert wants_builtin_server(given) and wants_builtin_server()
    monkeypatch.setenv("NBCHAT_REPLAY", "ws://127.0.0.1:7/ws")
    with caplog.at_level(logging.WARNING, logger="nbchat"):
        assert not wants_builtin_server(given)
        assert not wants_builtin_server()
    [record] = caplog.records
    assert "<OpenAIAgent 'given' at http://127.0.0.1:9/v1>" in record.getMessage()
    assert "ws://127.0.0.1:7/ws" in record.getMessage()


def test_tool_choice_and_extra_body_reach_the_agent(capsys: pytest.CaptureFixture[str]) -> None:
    """--tool-choice takes a keyword, a tool's name or JSON; --extra-body a JSON object only."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--openai", "http://127.0.0.1:9/v1", "--model", "m"]
    args = parser.parse_args([*base, "--tool-choice", "calculator", "--extra-body", '{"top_k": 2}'])
    agent = agent_from_arguments(args)
    assert agent is not None and agent.extra_body == {"top_k": 2}
    assert agent.tool_choice == {"type": "function", "function": {"name": "calculator"}}
    assert parser.parse_args([*base, "--tool-choice", "required"]).tool_choice == "required"
    for bad in (["--extra-body", "[1]"], ["--extra-body", "{"], ["--tool-choice", "a b"]):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, *bad])
    assert "not a JSON object" in capsys.readouterr().err


async def test_serve_openai_refuses_a_model_server_it_cannot_reach(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``nbchat serve --openai`` checks the URL at start: unreachable is one line, exit 2."""
    port = await free_port()
    url = f"http://127.0.0.1:{port}/v1"
    code = await asyncio.to_thread(main, ["serve", "--port", "0", "--openai", url, "--model", "m"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach" in err and err.count("\n") == 1, err
