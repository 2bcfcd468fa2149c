"""The demo agent on its own: its rules, its memory and its determinism."""

from __future__ import annotations

import asyncio
import time

import pytest

from nbchat.protocol import TokenMessage, ToolCallMessage, ToolResultMessage
from nbchat.server import ResponderMessage
from nbchat.server.demo.agent import MAX_COUNT, DemoAgent, find_arithmetic, split_tokens
from tests.helpers import best_cpu_times

pytestmark = pytest.mark.loopback


async def ask(agent: DemoAgent, text: str, conversation: str = "c") -> list[ResponderMessage]:
    """Every message of the agent's reply to ``text``."""
    return [message async for message in agent.respond(conversation, text)]


def text_of(messages: list[ResponderMessage]) -> str:
    """The reply text: the tokens joined."""
    return "".join(m.response for m in messages if isinstance(m, TokenMessage))


# Pure helpers


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("What is 6*7?", "6*7"),
        ("compute (2+3)**2 / 5", "(2+3)**2 / 5"),
        ("what's 1/0", "1/0"),
        ("Hello (is 2+2 four?)", "2+2"),
        ("what is 3 * 4.", "3 * 4"),
        ("-3 + 4", "-3 + 4"),
        ("count to 10", None),
        ("my name is R2-D2", None),
        ("on 2024-01-05 we met", None),
        ("no numbers here", None),
        ("What is 1e308*10?", "1e308*10"),
        ("what is 2.5e3 + 1", "2.5e3 + 1"),
        ("is 0x10+1 big", None),
        ("and x2+3", None),
    ],
)
def test_find_arithmetic_extracts_the_expression(text: str, expression: str | None) -> None:
    """The longest arithmetic run is found; dates, names and plain numbers are not arithmetic."""
    assert find_arithmetic(text) == expression


@pytest.mark.parametrize("text", ["", "one", "a b  c\n\nd ", "  lead", "\n", "<b>x</b> & y"])
def test_split_tokens_joins_back_exactly(text: str) -> None:
    """Tokens are words with their whitespace, so joining them gives the text back verbatim."""
    assert "".join(split_tokens(text)) == text


@pytest.mark.parametrize(
    "unit",
    [" ", "What is 1+{}+?", "({}1+1", "1+ ", "stream {}"],
    ids=["spaces", "operator-spaces", "parentheses", "many-operators", "stream-spaces"],
)
def test_text_paths_are_linear(unit: str) -> None:
    """Four times the text costs about four times the CPU time (quadratic would be sixteen)."""

    def text(n: int) -> str:
        filler = ("(" if unit.startswith("(") else " ") * n
        return unit.format(filler) if "{}" in unit else unit * (n // len(unit))

    def parse(sample: str) -> None:
        assert "".join(split_tokens(sample)) == sample
        find_arithmetic(sample)

    small, large = text(800_000), text(3_200_000)  # well past the CPU caches, whose edge bends
    parse(text(100_000))  # warm up
    small_cost, large_cost = best_cpu_times(lambda: parse(small), lambda: parse(large))
    # Linear gives 4, quadratic 16: room for a machine twice as disturbed as it ever was.
    assert large_cost < 8.0 * max(small_cost, 1e-3), (small_cost, large_cost)


async def test_an_expression_is_taken_whole_or_refused() -> None:
    """1e308*10 is computed whole (too large), never answered as 308*10 = 3080."""
    messages = await ask(DemoAgent(), "What is 1e308*10?")
    assert text_of(messages) == "I could not compute 1e308*10: the result is too large."
    assert "3080" not in text_of(await ask(DemoAgent(), "What is 0x10*10?"))


async def test_a_long_message_is_not_searched_for_arithmetic() -> None:
    """Past a few thousand characters a message is not arithmetic: the search stays bounded."""
    messages = await ask(DemoAgent(), "(" * 200_000 + "1+1")
    assert not any(isinstance(m, ToolCallMessage) for m in messages)


# Rules


async def test_arithmetic_calls_the_calculator_then_says_the_result() -> None:
    """ "What is 6*7?" announces a running calculator call, resolves it to 42, then says 42."""
    messages = await ask(DemoAgent(), "What is 6*7?")
    call, result = messages[0], messages[1]
    assert isinstance(call, ToolCallMessage) and isinstance(result, ToolResultMessage)
    (running,) = call.tool_calls
    (done,) = result.tool_calls
    assert (running.name, running.arguments, running.status) == (
        "calculator",
        {"expression": "6*7"},
        "running",
    )
    assert (done.id, done.status, done.result) == (running.id, "done", 42)
    assert text_of(messages) == "6*7 = 42."


async def test_division_by_zero_is_a_tool_error_and_a_polite_reply() -> None:
    """A failing calculation marks the tool call as error and the reply says it could not."""
    messages = await ask(DemoAgent(), "what is 1/0")
    result = messages[1]
    assert isinstance(result, ToolResultMessage)
    assert result.tool_calls[0].status == "error"
    assert result.tool_calls[0].result == "division by zero"
    assert text_of(messages) == "I could not compute 1/0: division by zero."


async def test_time_question_uses_the_clock_tool() -> None:
    """A question about the time calls current_time and repeats its timestamp."""
    messages = await ask(DemoAgent(), "What time is it?")
    result = messages[1]
    assert isinstance(result, ToolResultMessage)
    assert result.tool_calls[0].name == "current_time"
    assert result.tool_calls[0].result["iso"] in text_of(messages)


async def test_network_question_checks_this_machine_and_gives_steps() -> None:
    """The canonical network question runs network_check and answers with numbered steps."""
    messages = await ask(DemoAgent(), "Hello, how can I fix my network?")
    result = messages[1]
    assert isinstance(result, ToolResultMessage)
    (call,) = result.tool_calls
    assert call.name == "network_check" and call.status == "done"
    assert "interfaces" in call.result and "dns" in call.result
    text = text_of(messages)
    assert "To fix it:" in text and "\n1. " in text


async def test_echo_is_verbatim() -> None:
    """echo replies with exactly the rest of the message, markup and spacing included."""
    payload = "<script>alert(1)</script>  **bold**\n\n`6*7`"
    assert text_of(await ask(DemoAgent(), "echo " + payload)) == payload


@pytest.mark.parametrize("text", ["count to 5", "please stream 5 tokens"])
async def test_count_streams_n_numbered_tokens(text: str) -> None:
    """count to N and stream N tokens stream exactly N tokens, 1 to N."""
    messages = await ask(DemoAgent(), text)
    assert len(messages) == 5
    assert text_of(messages) == "1 2 3 4 5"


async def test_count_is_capped() -> None:
    """Counting beyond the cap is refused with a sentence, not a flood."""
    assert str(MAX_COUNT) in text_of(await ask(DemoAgent(), f"count to {MAX_COUNT + 1}"))


async def test_a_count_with_thousands_of_digits_is_capped_not_a_failure() -> None:
    """int() is never called on thousands of digits (Python refuses it): the cap answers."""
    for digits in ["9" * 5000, "0" * 5000 + "5"]:
        reply = text_of(await ask(DemoAgent(), f"count to {digits}"))
        assert reply in (f"I can count to at most {MAX_COUNT}.", "1 2 3 4 5")


async def test_echo_of_many_words_is_bounded_in_tokens() -> None:
    """A long echo is streamed word by word up to MAX_COUNT tokens, the rest as one."""
    payload = "a " * (MAX_COUNT + 10)
    messages = await ask(DemoAgent(), "echo " + payload)
    assert len(messages) == MAX_COUNT and text_of(messages) == payload


async def test_a_late_reply_catches_up_instead_of_drifting() -> None:
    """Tokens are due on a fixed schedule: a loop blocked mid-reply does not lengthen it."""
    delay, count, blocked = 0.02, 20, 0.5  # blocked past the whole schedule: all are due
    replies = DemoAgent(delay).respond("c", f"count to {count}")
    started = asyncio.get_running_loop().time()
    await anext(replies)
    time.sleep(blocked)  # the loop is busy elsewhere: every later token is now due or late
    rest = [message async for message in replies]
    elapsed = asyncio.get_running_loop().time() - started
    assert len(rest) == count - 1
    # Drifting would take delay * count + blocked = 0.9 s; catching up takes about 0.5 s,
    # plus the time to hand over 19 tokens at once (a loaded machine's margin: 0.2 s).
    assert elapsed < blocked + delay * count / 2, elapsed


async def test_what_is_remembered_of_a_message_is_bounded() -> None:
    """A huge message is remembered truncated: memory per conversation is bounded."""
    agent = DemoAgent()
    await ask(agent, "x" * 100_000)
    await ask(agent, "hello")
    assert len(agent.memory_of("c")["previous"]) < 3000


async def test_names_are_remembered_per_conversation() -> None:
    """A name told in one conversation is recalled there and unknown in another."""
    agent = DemoAgent()
    await ask(agent, "Hi, my name is Ada Lovelace and I like maths", "one")
    assert text_of(await ask(agent, "What is my name?", "one")) == "Your name is Ada Lovelace."
    assert "don't know your name" in text_of(await ask(agent, "what is my name", "two"))


async def test_what_did_i_say_recalls_the_previous_message() -> None:
    """The previous message of the same conversation is recalled, not another's."""
    agent = DemoAgent()
    assert "first message" in text_of(await ask(agent, "what did I say?", "a"))
    await ask(agent, "the sky is green", "a")
    await ask(agent, "something else", "b")
    assert text_of(await ask(agent, "What did I say?", "a")) == "You said: the sky is green"


async def test_fallback_is_friendly_and_counts_turns() -> None:
    """Other messages get a reply quoting them, with the turn number and the agent's skills."""
    agent = DemoAgent()
    await ask(agent, "hello")
    text = text_of(await ask(agent, "how are you"))
    assert "how are you" in text and "message 2" in text and "6*7" in text


async def test_replies_are_deterministic() -> None:
    """Two agents give identical replies, tool call ids included, to the same conversation."""
    script = ["hello", "What is 6*7?", "my name is Bob", "what is my name", "count to 3"]
    first, second = DemoAgent(), DemoAgent()
    for text in script:
        assert await ask(first, text) == await ask(second, text)


async def test_memory_is_bounded() -> None:
    """Only the most recent conversations are remembered."""
    agent = DemoAgent(max_conversations=2)
    for conversation in ["a", "b", "c"]:
        await ask(agent, f"my name is {conversation.upper()}", conversation)
    assert agent.memory_of("a") == {}
    assert agent.memory_of("c")["name"] == "C"


async def test_one_client_cannot_evict_another_clients_memory() -> None:
    """A client making conversations without end forgets its own, never another client's."""
    agent = DemoAgent(max_conversations=50, max_per_client=10)
    await ask(agent, "my name is Alice", "alice:c")
    for number in range(200):
        await ask(agent, "hi", f"mallory:{number}")
    assert agent.memory_of("alice:c")["name"] == "Alice"
    assert agent.memory_of("mallory:189") == {} and agent.memory_of("mallory:199") != {}
