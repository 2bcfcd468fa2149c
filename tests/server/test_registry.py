"""The server's sans-I/O registry on its own: each decision checked synchronously."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from nbchat.protocol import ClientToolInfo
from nbchat.server.registry import (
    MAX_CLIENT_TOOLS,
    TOO_MANY_REPLIES,
    Accepted,
    Client,
    Limits,
    Refused,
    Registry,
)

pytestmark = pytest.mark.unit

ALICE = "alice-" + "a" * 26
BOB = "bob-" + "b" * 28


@dataclass(eq=False)
class Log:
    """A stand-in reply log: the registry reads only its ids and its size in bytes."""

    message_id: str
    conversation_id: str | None
    size: int = 0


def limits(**changes: float) -> Limits:
    """Roomy limits, with some changed."""
    values: dict[str, float] = {
        "max_logs": 100,
        "max_log_bytes": 100_000,
        "max_client_bytes": 10_000,
        "max_generations": 8,
        "max_queued": 8,
        "grace": 10.0,
        "max_tool_calls": 2,
    }
    values.update(changes)
    return Limits(**values)  # type: ignore[arg-type]


def accept(registry: Registry[Log], client: Client[Log], mid: str | None, cid: str = "c") -> Log:
    """Accept a new message and return its log."""
    decision = registry.accept(client, mid, cid, Log)
    assert isinstance(decision, Accepted) and not decision.duplicate
    return decision.log


def finish(registry: Registry[Log], client: Client[Log], log: Log, size: int = 10) -> None:
    """Give a log its bytes and end it."""
    log.size += size
    registry.ended(client, log)


# Clients


def test_an_identity_is_one_client_across_connections() -> None:
    """Two attaches with one identity give one client with the same responder key."""
    registry: Registry[Log] = Registry(limits())
    first, second = registry.attach(ALICE), registry.attach(ALICE)
    assert first is second and first.connections == 2 and registry.client_count == 1
    assert ALICE not in first.responder_key("c") and first.responder_key("c").endswith(":c")


def test_connections_without_identity_are_separate_clients() -> None:
    """Each anonymous connection is its own client, with its own responder keys."""
    registry: Registry[Log] = Registry(limits())
    first, second = registry.attach(None), registry.attach(None)
    assert first is not second and first.responder_key("c") != second.responder_key("c")


# Messages


def test_a_resent_id_gets_its_log_back_as_a_duplicate() -> None:
    """The same message id from the same client is the known log, marked duplicate."""
    registry: Registry[Log] = Registry(limits())
    client = registry.attach(ALICE)
    log = accept(registry, client, "m1")
    assert registry.accept(client, "m1", "c", Log) == Accepted(log, duplicate=True)


def test_a_message_without_id_gets_one_and_cannot_be_resent() -> None:
    """A server-assigned id is not remembered: the same message is accepted again as new."""
    registry: Registry[Log] = Registry(limits())
    client = registry.attach(ALICE)
    log = accept(registry, client, None)
    assert log.message_id and log.message_id not in client.logs


def test_beyond_generations_and_queue_a_message_is_refused() -> None:
    """max_generations + max_queued unfinished replies: the next is too_many_replies."""
    registry: Registry[Log] = Registry(limits(max_generations=1, max_queued=1))
    client = registry.attach(None)
    accept(registry, client, "a", "x")
    accept(registry, client, "b", "y")
    refused = registry.accept(client, "c", "z", Log)
    assert isinstance(refused, Refused) and refused.code == TOO_MANY_REPLIES
    assert "wait for them to finish" in refused.text


def test_at_most_max_generations_start_and_the_next_starts_when_one_ends() -> None:
    """Two conversations with one slot: the second starts once the first has ended."""
    registry: Registry[Log] = Registry(limits(max_generations=1))
    client = registry.attach(None)
    first, second = accept(registry, client, "a", "x"), accept(registry, client, "b", "y")
    assert registry.next_turn(client).start == [first]
    assert registry.next_turn(client).start == []
    finish(registry, client, first)
    assert registry.next_turn(client).start == [second]


def test_a_conversations_messages_start_in_order() -> None:
    """The second message of a conversation waits for the first, however many slots are free."""
    registry: Registry[Log] = Registry(limits())
    client = registry.attach(None)
    first, second = accept(registry, client, "a"), accept(registry, client, "b")
    assert registry.next_turn(client).start == [first]
    finish(registry, client, first)
    assert registry.next_turn(client).start == [second]


def test_a_cancel_stops_the_running_reply_and_ends_the_waiting_one_in_its_turn() -> None:
    """Cancelling a conversation returns both logs; the waiting one ends after the running one."""
    registry: Registry[Log] = Registry(limits())
    client = registry.attach(None)
    first, second = accept(registry, client, "a"), accept(registry, client, "b")
    registry.next_turn(client)
    assert registry.cancel(client, "c", None) == [first, second]
    assert registry.next_turn(client).stop == []
    finish(registry, client, first)
    turn = registry.next_turn(client)
    assert turn.stop == [second] and turn.start == []


def test_a_cancel_naming_an_id_stops_that_log_whatever_conversation_it_names() -> None:
    """A cancel with a message id finds the log by id; a finished one is not stopped again."""
    registry: Registry[Log] = Registry(limits())
    client = registry.attach(None)
    log = accept(registry, client, "a", "x")
    registry.next_turn(client)
    assert registry.cancel(client, "other", "a") == [log]
    finish(registry, client, log)
    assert registry.cancel(client, "x", "a") == []


def test_another_client_cannot_cancel_or_resend_anothers_message() -> None:
    """Bob's cancel and resend of Alice's ids touch nothing of Alice's."""
    registry: Registry[Log] = Registry(limits())
    alice, bob = registry.attach(ALICE), registry.attach("bob-" + "b" * 28)
    accept(registry, alice, "m1")
    assert registry.cancel(bob, "c", "m1") == [] and registry.cancel(bob, "c", None) == []
    assert accept(registry, bob, "m1") is not alice.logs["m1"]


# Grace and forgetting


def test_a_departed_client_is_forgotten_once_its_grace_has_passed() -> None:
    """detach arms a deadline; expire before it does nothing, at it returns the running logs."""
    registry: Registry[Log] = Registry(limits(grace=5.0))
    client = registry.attach(ALICE)
    log = accept(registry, client, "m1")
    registry.next_turn(client)
    assert registry.detach(client, now=100.0) == [] and registry.next_deadline == 105.0
    assert registry.expire(now=104.9) == [] and registry.client_count == 1
    assert registry.expire(now=105.0) == [(client, [log])]
    assert registry.client_count == 0 and registry.next_deadline is None


def test_a_client_back_within_its_grace_keeps_its_replies() -> None:
    """Attaching again clears the deadline: expire later forgets nothing."""
    registry: Registry[Log] = Registry(limits(grace=5.0))
    client = registry.attach(ALICE)
    registry.detach(client, now=0.0)
    assert registry.attach(ALICE) is client and registry.next_deadline is None
    assert registry.expire(now=100.0) == [] and registry.client_count == 1


def test_an_anonymous_client_is_forgotten_when_its_connection_closes() -> None:
    """Nobody can come back for an anonymous connection: its replies stop at once."""
    registry: Registry[Log] = Registry(limits(grace=5.0))
    client = registry.attach(None)
    running, waiting = accept(registry, client, "a"), accept(registry, client, "b")
    registry.next_turn(client)
    assert registry.detach(client, now=0.0) == [(client, [running])]
    finish(registry, client, running)
    assert registry.next_turn(client).stop == [waiting]
    finish(registry, client, waiting)
    assert registry.generation_count == 0


# Finished logs


def test_finished_logs_are_evicted_least_recently_used_first() -> None:
    """Beyond max_logs, the log used longest ago is forgotten; a resend counts as a use."""
    registry: Registry[Log] = Registry(limits(max_logs=2))
    client = registry.attach(ALICE)
    for mid in ("a", "b"):
        log = accept(registry, client, mid)
        registry.next_turn(client)
        finish(registry, client, log)
    registry.accept(client, "a", "c", Log)  # "a" is now the most recently used
    log = accept(registry, client, "d")
    registry.next_turn(client)
    finish(registry, client, log)
    assert registry.log_count == 2 and set(client.logs) == {"a", "d"}


def test_finished_logs_are_evicted_by_bytes_over_all_clients() -> None:
    """Finished logs holding more than max_log_bytes in all are forgotten, oldest first."""
    registry: Registry[Log] = Registry(limits(max_log_bytes=2500))
    alice, bob = registry.attach(ALICE), registry.attach(BOB)
    for client, mid in ((alice, "a"), (bob, "b"), (alice, "c")):
        log = accept(registry, client, mid)
        registry.next_turn(client)
        finish(registry, client, log, size=1200)
    assert set(alice.logs) == {"c"} and set(bob.logs) == {"b"}
    assert registry.held_bytes == 2400 and registry.log_count == 2


def test_one_clients_bytes_evict_its_own_logs_first() -> None:
    """Past max_client_bytes a client's own oldest finished logs go; another's stay."""
    registry: Registry[Log] = Registry(limits(max_client_bytes=2500))
    alice, bob = registry.attach(ALICE), registry.attach(BOB)
    kept = accept(registry, bob, "b")
    registry.next_turn(bob)
    finish(registry, bob, kept, size=2000)
    for mid in ("a1", "a2", "a3"):
        log = accept(registry, alice, mid)
        registry.next_turn(alice)
        finish(registry, alice, log, size=1200)
    assert set(alice.logs) == {"a2", "a3"} and set(bob.logs) == {"b"}
    assert alice.held == 2400 and registry.held_bytes == 4400


def test_a_reply_growing_past_the_bytes_is_to_be_cut() -> None:
    """grew makes room from finished logs, then says False: a reply's memory is bounded."""
    registry: Registry[Log] = Registry(limits(max_client_bytes=3000))
    client = registry.attach(ALICE)
    old = accept(registry, client, "old")
    registry.next_turn(client)
    finish(registry, client, old, size=1000)
    log = accept(registry, client, "big")
    registry.next_turn(client)
    log.size = 2500
    assert registry.grew(client, log) and "old" not in client.logs
    log.size = 3001
    assert not registry.grew(client, log)
    assert "3000 bytes" in registry.full_text(client)
    registry.ended(client, log)  # too big to keep: forgotten as it ends
    assert registry.held_bytes == 0 and client.logs == {}


def test_waiting_texts_count_and_a_message_that_does_not_fit_is_refused() -> None:
    """A waiting message's text counts until it starts; one that cannot fit is refused."""
    registry: Registry[Log] = Registry(limits(max_generations=1, max_client_bytes=5000))
    client = registry.attach(ALICE)
    running = registry.accept(client, "r", "c", Log, 100)
    waiting = registry.accept(client, "w", "c", Log, 4000)
    assert isinstance(running, Accepted) and isinstance(waiting, Accepted)
    registry.next_turn(client)
    assert client.held == 4000
    refused = registry.accept(client, "x", "c", Log, 1500)
    assert isinstance(refused, Refused) and refused.code == TOO_MANY_REPLIES
    assert "5000 bytes" in refused.text and "x" not in client.logs and client.held == 4000
    finish(registry, client, running.log)
    registry.next_turn(client)
    assert client.held == 10 and registry.held_bytes == 10


def test_a_forgotten_clients_bytes_are_released() -> None:
    """A client forgotten releases its finished logs at once, its running ones as they end."""
    registry: Registry[Log] = Registry(limits())
    client = registry.attach(None)
    done, running = accept(registry, client, "d"), accept(registry, client, "r", "other")
    registry.next_turn(client)
    finish(registry, client, done, size=500)
    running.size = 700
    registry.grew(client, running)
    assert registry.held_bytes == 1200
    assert registry.detach(client, now=0.0) == [(client, [running])]
    assert registry.held_bytes == 700
    registry.ended(client, running)
    assert registry.held_bytes == 0


# Grace bounds


def test_departed_clients_are_bounded_per_source() -> None:
    """Beyond max_departed_per_source of one address, the one gone longest is forgotten."""
    registry: Registry[Log] = Registry(limits(max_departed_per_source=2))
    other = registry.attach(BOB, "10.0.0.2")
    assert registry.detach(other, now=0.0) == []
    clients = [registry.attach(f"fresh-{n:026d}", "10.0.0.1") for n in range(3)]
    logs = [accept(registry, client, "m") for client in clients]
    for client in clients:
        registry.next_turn(client)
    assert registry.detach(clients[0], now=1.0) == []
    assert registry.detach(clients[1], now=2.0) == []
    assert registry.detach(clients[2], now=3.0) == [(clients[0], [logs[0]])]
    assert clients[0].forgotten and not other.forgotten and registry.departed_count == 3


def test_departed_clients_are_bounded_in_total() -> None:
    """Beyond max_departed over all sources, the one gone longest is forgotten; a return counts."""
    registry: Registry[Log] = Registry(limits(max_departed=2))
    first, second, third = (registry.attach(f"id-{n:026d}", f"h{n}") for n in range(3))
    registry.detach(first, now=0.0)
    registry.detach(second, now=1.0)
    registry.attach(f"id-{0:026d}", "h0")  # first is back: no longer departed
    assert registry.detach(third, now=2.0) == []
    assert registry.detach(first, now=3.0) == [(second, [])]
    assert registry.departed_count == 2 and registry.next_deadline == 12.0


# Client tools


def test_client_tool_calls_are_refused_when_unknown_repeated_or_too_many() -> None:
    """begin_call says why in one line; end_call frees the place."""
    registry: Registry[Log] = Registry(limits(max_tool_calls=2))
    client = registry.attach(None)
    registry.declare_tools(client, [ClientToolInfo(name="scale")])
    assert "unknown client tool 'other'" in (registry.begin_call(client, "other", "1") or "")
    assert registry.begin_call(client, "scale", "1") is None
    assert "already in progress" in (registry.begin_call(client, "scale", "1") or "")
    assert registry.begin_call(client, "scale", "2") is None
    assert "2 tool calls" in (registry.begin_call(client, "scale", "3") or "")
    registry.end_call(client, "1")
    assert registry.begin_call(client, "scale", "3") is None


def test_a_declaration_keeps_the_first_max_client_tools() -> None:
    """Tools beyond MAX_CLIENT_TOOLS are ignored."""
    registry: Registry[Log] = Registry(limits())
    client = registry.attach(None)
    tools = [ClientToolInfo(name=f"t{i}") for i in range(MAX_CLIENT_TOOLS + 5)]
    registry.declare_tools(client, tools)
    assert len(client.tools) == MAX_CLIENT_TOOLS


def test_the_registry_imports_no_asyncio() -> None:
    """The registry is pure: its source imports nothing of asyncio."""
    import nbchat.server.registry as module

    source = Path(module.__file__).read_text(encoding="utf-8")
    assert "import asyncio" not in source and "from asyncio" not in source
