"""The tool calls a round ended with: announced, run concurrently, each result sent as it lands.

A call of a server tool runs through :func:`nbchat.tools.execute` (the executor
the client uses too): validated against the tool's signature, a plain function
on nbchat's bounded tool threads, each within ``tool_timeout`` (one that
overruns is reported still running in a thread that could not be stopped). A
call of a client tool (a name the server's tools do not use) is sent to the
client, which validates and runs it, and its card says ``runs_in: "client"``;
it has no time limit here: the person sees it run and can stop it. Every
failure (bad JSON, wrong types, an unknown tool, a raising tool, too many
calls) is an error result for the card and for the model, which can try again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

from ...attachments import Attachment
from ...exceptions import ToolArgumentsError
from ...protocol import ToolCall, ToolCallMessage, ToolResultMessage
from ...tools import execute
from ...toolspec import Spec, ToolOutcome, parse_arguments
from ..responder import ClientTools
from .toolcalls import MAX_CALLS_PER_ROUND, StreamedCall, ToolCallAccumulator, shown_arguments

__all__ = ["Finished", "run_calls"]

_TOO_MANY = f"too many tool calls at once (at most {MAX_CALLS_PER_ROUND})"


@dataclass(frozen=True)
class Finished:
    """One finished tool call: for the card, and what the model is given."""

    call: ToolCall
    content: str
    """The ``role: "tool"`` message content given back to the model."""
    images: tuple[Attachment, ...] = ()
    """The images its result showed (a client tool's figure), for a model that reads images."""


async def run_calls(
    calls: ToolCallAccumulator,
    round_number: int,
    finished: list[Finished],
    *,
    tools: Mapping[str, Spec],
    client: ClientTools,
    used_ids: set[str],
    tool_timeout: float,
) -> AsyncGenerator[ToolCallMessage | ToolResultMessage, None]:
    """Announce the round's calls, run them concurrently, yield each result as it lands.

    ``finished`` receives every call that finished, in the order the model made them.
    """
    announced: list[tuple[ToolCall, StreamedCall]] = []
    for number, streamed in enumerate(calls.calls):
        call_id = streamed.id or f"call_{round_number}_{number}"
        if call_id in used_ids:  # a model reusing an id: each call keeps its own card
            call_id = f"{call_id}_{round_number}_{number}"
        used_ids.add(call_id)
        streamed.id = call_id
        in_client = streamed.name not in tools and streamed.name in client.available
        card = ToolCall(
            id=call_id,
            name=streamed.name or "?",
            arguments=shown_arguments(streamed),
            runs_in="client" if in_client else None,
        )
        announced.append((card, streamed))
    yield ToolCallMessage(tool_calls=[call for call, _ in announced])

    async def one(number: int, call: ToolCall, streamed: StreamedCall) -> tuple[int, Finished]:
        if number >= MAX_CALLS_PER_ROUND:
            return number, _ended(call, ToolOutcome.failed(_TOO_MANY))
        if call.runs_in == "client":
            return number, await _in_client(call, streamed, client)
        outcome = await execute(
            tools, streamed.name, streamed.arguments, side="server", timeout=tool_timeout
        )
        return number, _ended(call, outcome)

    tasks = [
        asyncio.ensure_future(one(number, call, streamed))
        for number, (call, streamed) in enumerate(announced)
    ]
    done: dict[int, Finished] = {}
    try:
        for next_done in asyncio.as_completed(tasks):
            number, result = await next_done
            done[number] = result
            yield ToolResultMessage(tool_calls=[result.call])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finished.extend(done[number] for number in sorted(done))


async def _in_client(call: ToolCall, streamed: StreamedCall, client: ClientTools) -> Finished:
    """Send the call to the client, which validates and runs it; wait for the outcome."""
    try:
        arguments = parse_arguments(streamed.arguments, call.name)
    except ToolArgumentsError as exc:
        return _ended(call, ToolOutcome.failed(str(exc)))
    answered = await client.call(call.name, arguments, call_id=call.id)
    answered = answered.model_copy(update={"arguments": call.arguments})
    if answered.status == "done":
        text = ToolOutcome.done(answered.result).text
        return Finished(answered, text, client.images(call.id))
    return Finished(answered, ToolOutcome.failed(str(answered.result)).text)


def _ended(call: ToolCall, outcome: ToolOutcome) -> Finished:
    card = call.model_copy(update={"status": outcome.status, "result": outcome.result})
    return Finished(card, outcome.text, outcome.images)
