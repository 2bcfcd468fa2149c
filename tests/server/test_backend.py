"""nbchat serve's model options and the environment that make the embedded backend a model."""

from __future__ import annotations

import argparse

import pytest

from nbchat.exceptions import ConfigError
from nbchat.server.backend import add_arguments, agent_from_arguments, agent_from_environment

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
