"""The delivery session, driven synchronously: every case of docs/protocol.md's delivery section."""

from __future__ import annotations

import json

import pytest

from nbchat.exceptions import ClientClosed, QueueFull, ReplyTimeout
from nbchat.parsing import parse_server_message
from nbchat.policy import MAX_STALLED_RESENDS
from nbchat.protocol import ServerMessage, UserMessage
from nbchat.session import (
    NOTICES,
    Acked,
    Completed,
    Failed,
    Outcome,
    ReplyPart,
    Restarted,
    Session,
)

pytestmark = pytest.mark.unit


def user(message_id: str, text: str = "hi", conversation: str = "c") -> UserMessage:
    """A user message with a fixed id."""
    return UserMessage(id=message_id, conversation_id=conversation, message=text)


def server(**fields: object) -> ServerMessage:
    """A server message parsed from its wire form, as the client would."""
    return parse_server_message(json.dumps(fields))


def drain(session: Session) -> list[dict[str, object]]:
    """Write every queued frame; return them decoded."""
    frames = []
    while (frame := session.next_frame()) is not None:
        frames.append(json.loads(frame))
        session.written()
    return frames


def reply(
    session: Session, message_id: str | None, conversation: str = "c", *texts: str
) -> list[Outcome]:
    """Feed an ack, tokens and done answering ``message_id`` (None: without reply_to)."""
    tag = {"reply_to": message_id} if message_id else {}
    outcomes = session.receive(
        server(type="ack", id=message_id, conversation_id=conversation, **tag)
    )
    for text in texts:
        outcomes += session.receive(
            server(type="token", response=text, conversation_id=conversation, **tag)
        )
    return outcomes + session.receive(server(type="done", conversation_id=conversation, **tag))


def completed(outcomes: list[Outcome]) -> dict[str, str]:
    """The text of each completed reply, by message id."""
    return {o.message_id: o.reply.text for o in outcomes if isinstance(o, Completed)}


def messages(outcomes: list[Outcome]) -> list[ServerMessage]:
    """The server messages handed on: bare, as a part of a reply, or acked."""
    handed: list[ServerMessage] = []
    for o in outcomes:
        if isinstance(o, ReplyPart | Acked):
            handed.append(o.message)
        elif not isinstance(o, NOTICES):
            handed.append(o)
    return handed


def answers(outcomes: list[Outcome]) -> list[str | None]:
    """The message each received server message was resolved to."""
    return [message.reply_to for message in messages(outcomes)]


def test_nothing_is_written_before_a_connection_opens() -> None:
    """Accepted messages wait in order until open, then go out with their ids."""
    session = Session()
    session.submit(user("m1"))
    session.submit(user("m2"))
    assert session.next_frame() is None and session.queued == 2
    session.opened()
    assert [frame["id"] for frame in drain(session)] == ["m1", "m2"]


def test_a_frame_stays_queued_until_written() -> None:
    """A frame not confirmed written is still first in line after the connection drops."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    assert session.next_frame() is not None
    session.closed()
    assert session.next_frame() is None
    session.opened()
    assert [frame["id"] for frame in drain(session)] == ["m1"]


def test_submitting_the_same_id_twice_is_one_pending_message() -> None:
    """A message resubmitted with its id is not queued again."""
    session = Session()
    first, new = session.submit(user("m1"))
    again, new_again = session.submit(user("m1"))
    assert new and not new_again and first is again and session.queued == 1


def test_pending_messages_are_bounded() -> None:
    """One more than max_pending raises QueueFull and drops nothing."""
    session = Session(max_pending=2)
    session.submit(user("m1"))
    session.submit(user("m2"))
    with pytest.raises(QueueFull):
        session.submit(user("m3"))
    assert list(session.pending) == ["m1", "m2"]


def test_reply_to_routes_interleaved_conversations() -> None:
    """Two conversations answered interleaved each get their own reply."""
    session = Session()
    session.opened()
    session.submit(user("a", conversation="ca"))
    session.submit(user("b", conversation="cb"))
    drain(session)
    out: list[Outcome] = []
    for mid, cid, text in [("b", "cb", "B1"), ("a", "ca", "A1"), ("b", "cb", "B2")]:
        out += session.receive(
            server(type="token", response=text, reply_to=mid, conversation_id=cid)
        )
    out += session.receive(server(type="done", reply_to="a", conversation_id="ca"))
    out += session.receive(server(type="done", reply_to="b", conversation_id="cb"))
    assert answers(out) == ["b", "a", "b", "a", "b"]
    assert completed(out) == {"a": "A1", "b": "B1B2"}


def test_without_reply_to_the_oldest_pending_of_the_conversation_answers() -> None:
    """A server that leaves out reply_to (the TypeScript client's) is answered in order."""
    session = Session()
    session.opened()
    session.submit(user("m1", conversation="c"))
    session.submit(user("m2", conversation="c"))
    drain(session)
    first = reply(session, None, "c", "one")
    second = reply(session, None, "c", "two")
    assert set(answers(first)) == {"m1"} and set(answers(second)) == {"m2"}
    assert completed(first + second) == {"m1": "one", "m2": "two"}


def test_a_message_answering_nothing_is_handed_on_unrouted() -> None:
    """A server message for no pending message keeps reply_to None (an unknown id included)."""
    session = Session()
    session.opened()
    stray = session.receive(server(type="token", response="x", reply_to="nobody"))
    error = session.receive(server(type="error", error="bad"))
    assert answers(stray) == [None] and answers(error) == [None]


def test_server_error_completes_the_reply_with_the_error() -> None:
    """An error answering a message completes its reply with that error."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    out = session.receive(server(type="error", reply_to="m1", error={"code": "x", "message": "y"}))
    done = [o for o in out if isinstance(o, Completed)]
    assert done and done[0].reply.error is not None and done[0].reply.error.code == "x"
    assert not session.pending


def test_resend_after_reconnect_uses_the_same_id_and_resumes() -> None:
    """A duplicate ack replays the reply from its start; what was delivered is skipped."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    drain(session)
    before = session.receive(server(type="ack", id="m1", reply_to="m1"))
    before += session.receive(server(type="token", response="one ", reply_to="m1"))
    session.closed()
    session.opened()
    assert [frame["id"] for frame in drain(session)] == ["m1"]
    after = session.receive(server(type="ack", id="m1", reply_to="m1", duplicate=True))
    for text in ["one ", "two"]:
        after += session.receive(server(type="token", response=text, reply_to="m1"))
    after += session.receive(server(type="done", reply_to="m1"))
    tokens = [m for m in messages(after) if m.type == "token"]
    assert [t.response for t in tokens] == ["two"]  # type: ignore[attr-defined]
    assert completed(after) == {"m1": "one two"}
    assert not any(isinstance(o, Restarted) for o in after)


def test_a_server_that_lost_the_reply_restarts_it() -> None:
    """An ack without duplicate after a resend restarts the reply: nothing is skipped."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    drain(session)
    session.receive(server(type="ack", id="m1", reply_to="m1"))
    session.receive(server(type="token", response="lost", reply_to="m1"))
    session.closed()
    session.opened()
    drain(session)
    out = session.receive(server(type="ack", id="m1", reply_to="m1"))
    out += session.receive(server(type="token", response="fresh", reply_to="m1"))
    out += session.receive(server(type="done", reply_to="m1"))
    assert isinstance(out[0], Restarted) and out[0].message_id == "m1"
    assert completed(out) == {"m1": "fresh"}


def test_cancel_is_owed_again_after_a_reconnect() -> None:
    """A cancel lost with its connection is written again on the next one."""
    session = Session()
    session.opened(cancel=True)
    session.submit(user("m1"))
    drain(session)
    assert session.cancel("c")[0] is not None
    session.closed()  # the cancel was queued but never written
    session.opened(cancel=True)
    frames = drain(session)
    assert [f["type"] for f in frames] == ["message", "cancel"]
    assert frames[1]["conversation_id"] == "c"


def test_cancel_with_nothing_pending_is_refused() -> None:
    """Cancelling a conversation with no pending reply sends nothing."""
    session = Session()
    session.opened()
    assert session.cancel("c") == (None, []) and session.next_frame() is None


def test_an_abandoned_message_is_not_resent_and_its_reply_is_cancelled() -> None:
    """A caller that gave up: the message is forgotten, the server asked to stop that one reply."""
    session = Session()
    session.opened(cancel=True)
    session.submit(user("m1"))
    drain(session)
    out = session.abandon("m1", ReplyTimeout("gave up"))
    assert isinstance(out[0], Failed) and not session.pending
    cancel = drain(session)
    assert cancel == [{"type": "cancel", "conversation_id": "c", "id": "m1"}]
    session.closed()
    session.opened(cancel=True)
    assert drain(session) == []


def test_a_cancel_cut_off_by_a_drop_is_asked_of_the_next_connection() -> None:
    """A caller gave up, then the connection dropped before its cancel went out: sent on reopen."""
    session = Session()
    session.opened(cancel=True)
    session.submit(user("m1"))
    drain(session)
    session.abandon("m1", ReplyTimeout("gave up"))
    session.closed()  # the cancel never left
    session.opened(cancel=True)
    assert drain(session) == [{"type": "cancel", "conversation_id": "c", "id": "m1"}]


def test_the_rest_of_an_abandoned_reply_is_not_taken_for_the_next() -> None:
    """Without reply_to, what still arrives for an abandoned message is not the next one's."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    session.submit(user("m2"))
    drain(session)
    session.abandon("m1", ReplyTimeout("gave up"))
    late = reply(session, None, "c", "late")
    mine = reply(session, None, "c", "mine")
    assert set(answers(late)) == {"m1"} and completed(late) == {}
    assert completed(mine) == {"m2": "mine"}


def test_an_unwritten_abandoned_message_never_leaves() -> None:
    """A message abandoned before it was written is removed from the outbox, with no cancel."""
    session = Session()
    session.submit(user("m1"))
    session.abandon("m1", ClientClosed("stop"))
    session.opened()
    assert drain(session) == []


def test_fail_all_reports_every_pending_reply() -> None:
    """When the client gives up, each pending message fails with the reason."""
    session = Session()
    session.submit(user("m1"))
    session.submit(user("m2"))
    error = ClientClosed("closed")
    out = session.fail_all(error)
    assert [(o.message_id, o.error) for o in out if isinstance(o, Failed)] == [
        ("m1", error),
        ("m2", error),
    ]
    assert not session.pending and session.queued == 0


# Client tools


def tools_session() -> Session:
    """A session with a tools declaration, connected to a server that supports client tools."""
    session = Session()
    session.declare_tools('{"type":"tools","tools":[]}')
    session.opened(client_tools=True)
    return session


def test_tools_are_declared_first_on_every_open_of_a_server_that_supports_them() -> None:
    """The declaration goes before the resent messages, on each open, only where supported."""
    session = Session()
    session.declare_tools('{"type":"tools","tools":[]}')
    session.submit(user("m1"))
    session.opened(client_tools=False)
    assert [f["type"] for f in drain(session)] == ["message"]
    session.closed()
    session.opened(client_tools=True)
    assert [f["type"] for f in drain(session)] == ["tools", "message"]


def test_a_tool_result_is_resent_on_open_until_acked() -> None:
    """An unacknowledged tool_response goes out again after a reconnect; an ack ends that."""
    from nbchat.parsing import parse_server_frame

    session = tools_session()
    drain(session)
    session.tool_result("t1", '{"type":"tool_response","id":"t1","result":1}')
    assert [f["id"] for f in drain(session)] == ["t1"]
    session.closed()
    session.opened(client_tools=True)
    assert [f["type"] for f in drain(session)] == ["tools", "tool_response"]
    assert session.receive(parse_server_frame('{"type":"tool_ack","id":"t1"}')) == []
    session.closed()
    session.opened(client_tools=True)
    assert [f["type"] for f in drain(session)] == ["tools"] and session.unacked_results == 0


def test_a_tool_request_is_routed_once_and_skipped_when_a_resumed_reply_repeats_it() -> None:
    """A request names its message; replayed after a resume it is dropped like the tokens."""
    from nbchat.parsing import parse_server_frame
    from nbchat.session import ToolRequested

    session = tools_session()
    session.submit(user("m1"))
    drain(session)
    session.receive(server(type="ack", id="m1", reply_to="m1", conversation_id="c"))
    frame = '{"type":"tool_request","id":"t1","name":"f","reply_to":"m1","conversation_id":"c"}'
    (first,) = session.receive(parse_server_frame(frame))
    assert isinstance(first, ToolRequested) and first.request.reply_to == "m1"
    assert first.key == ("m1", "t1")
    session.closed()
    session.opened(client_tools=True)
    session.receive(server(type="ack", id="m1", reply_to="m1", duplicate=True))
    assert session.receive(parse_server_frame(frame)) == []
    done = session.receive(server(type="done", reply_to="m1", conversation_id="c"))
    assert completed(done) == {"m1": ""}


def test_a_tool_request_for_an_abandoned_reply_answers_no_message() -> None:
    """A request whose reply nobody awaits leaves the session with reply_to None."""
    from nbchat.parsing import parse_server_frame
    from nbchat.session import ToolRequested

    session = tools_session()
    session.submit(user("m1"))
    drain(session)
    session.abandon("m1", ClientClosed("gave up"))
    frame = '{"type":"tool_request","id":"t1","name":"f","reply_to":"m1","conversation_id":"c"}'
    (outcome,) = session.receive(parse_server_frame(frame))
    assert isinstance(outcome, ToolRequested) and outcome.request.reply_to is None


def test_an_ack_is_its_own_outcome_and_never_part_of_a_reply() -> None:
    """Acks come as Acked, routed or not; every other message of a reply as a ReplyPart."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    drain(session)
    out = reply(session, "m1", "c", "a", "b")
    assert [type(o) for o in out] == [Acked, ReplyPart, ReplyPart, ReplyPart, Completed]
    stray = session.receive(server(type="ack", id="zz", reply_to="zz"))
    assert [type(o) for o in stray] == [Acked] and messages(stray)[0].reply_to is None


def test_a_reply_part_hands_over_the_reply_so_far() -> None:
    """Each part carries the session's reply, with its own message already in it."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    drain(session)
    call = {"id": "t1", "name": "calc", "arguments": {"x": 1}}
    first = session.receive(server(type="token", response="6*7 ", reply_to="m1"))
    second = session.receive(server(type="tool_call", tool_calls=[call], reply_to="m1"))
    result = {"id": "t1", "name": "calc", "status": "done", "result": 42}
    third = session.receive(server(type="tool_result", tool_calls=[result], reply_to="m1"))
    parts = [o for o in first + second + third if isinstance(o, ReplyPart)]
    assert parts[0].reply.text == "6*7 " and not parts[0].reply.done
    merged = parts[2].reply.tool_call("t1")
    assert merged is not None and merged.arguments == {"x": 1} and merged.result == 42
    done = session.receive(server(type="done", cancelled=True, reply_to="m1"))
    assert isinstance(done[0], ReplyPart) and done[0].reply.done and done[0].reply.cancelled


# Bounds: a reply's size, an abandoned reply, resends that get no further


def token(message_id: str, text: str) -> ServerMessage:
    """A token naming ``message_id``."""
    return server(type="token", response=text, conversation_id="c", reply_to=message_id)


def test_a_reply_past_max_reply_bytes_fails_and_the_server_is_asked_to_stop_it() -> None:
    """Past the bound the reply fails in one line, a cancel names it, the rest costs nothing."""
    session = Session(max_reply_bytes=100)
    session.opened(cancel=True)
    session.submit(user("m1"))
    drain(session)
    session.receive(server(type="ack", id="m1", conversation_id="c", reply_to="m1"))
    kept = [session.receive(token("m1", "é" * 20)) for _ in range(2)]  # 40 bytes each
    (failed,) = session.receive(token("m1", "é" * 20))
    assert all(isinstance(out[0], ReplyPart) for out in kept) and isinstance(failed, Failed)
    assert "passed max_reply_bytes (100 bytes)" in str(failed.error)
    assert "\n" not in str(failed.error) and not session.pending
    assert drain(session) == [{"type": "cancel", "conversation_id": "c", "id": "m1"}]
    late = session.receive(token("m1", "late"))
    assert answers(late) == ["m1"] and not any(isinstance(o, ReplyPart) for o in late)


def test_an_abandoned_reply_is_freed_and_no_longer_assembled() -> None:
    """After abandon, what still arrives is handed on bare, answering it, until its end."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    drain(session)
    session.receive(token("m1", "kept"))
    session.abandon("m1", ReplyTimeout("gave up"))
    late = [session.receive(token("m1", "x" * 1000)) for _ in range(3)]
    end = session.receive(server(type="done", conversation_id="c", reply_to="m1"))
    assert [messages(out)[0].reply_to for out in [*late, end]] == ["m1"] * 4
    assert not any(isinstance(o, ReplyPart | Completed) for out in [*late, end] for o in out)
    assert answers(session.receive(token("m1", "after the end"))) == [None]


def test_a_reply_that_gets_no_further_across_resends_fails() -> None:
    """A message acked again on every reconnect with nothing more delivered is given up."""
    session = Session()
    session.opened(cancel=True)
    session.submit(user("m1"))
    drain(session)
    session.receive(server(type="ack", id="m1", conversation_id="c", reply_to="m1"))
    session.receive(token("m1", "a"))
    outcomes: list[Outcome] = []
    for _ in range(MAX_STALLED_RESENDS + 1):  # each connection dies at the same frame
        session.closed()
        session.opened(cancel=True)
        assert [frame["id"] for frame in drain(session)] == ["m1"]
        outcomes = session.receive(
            server(type="ack", id="m1", conversation_id="c", reply_to="m1", duplicate=True)
        )
        session.receive(token("m1", "a"))  # the one already delivered, skipped
    (failed,) = [o for o in outcomes if isinstance(o, Failed)]
    assert "got no further in 5 resends in a row" in str(failed.error)
    assert [frame["type"] for frame in drain(session)] == ["cancel"]
    session.closed()
    session.opened(cancel=True)
    assert drain(session) == [] and not session.pending


def test_a_reply_that_progresses_between_resends_is_resent_as_long_as_needed() -> None:
    """Each connection delivering more of the reply resets the count: nothing is given up."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    drain(session)
    for number in range(2 * MAX_STALLED_RESENDS):
        outcomes = session.receive(
            server(type="ack", id="m1", conversation_id="c", reply_to="m1", duplicate=number > 0)
        )
        for text in [str(n) for n in range(number + 1)]:
            outcomes += session.receive(token("m1", text))
        assert not any(isinstance(o, Failed) for o in outcomes)
        session.closed()
        session.opened()
        drain(session)
    assert "m1" in session.pending


# Peers that did not announce cancel


def test_stop_against_a_server_without_cancel_ends_the_reply_here_and_sends_nothing() -> None:
    """No cancel frame; the reply completes cancelled; its rest is its own, not the next one's."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    session.submit(user("m2"))
    drain(session)
    request, stopped = session.cancel("c")
    assert request is None and drain(session) == []
    assert {o.message_id for o in stopped if isinstance(o, Completed)} == {"m1", "m2"}
    assert all(o.reply.cancelled for o in stopped if isinstance(o, Completed))
    session.submit(user("m3"))
    drain(session)
    late = session.receive(server(type="token", response="late"))  # no reply_to, no conversation
    assert answers(late) == ["m1"] and not any(isinstance(o, ReplyPart) for o in late)


def test_a_caller_giving_up_on_a_server_without_cancel_sends_nothing_even_after_reconnect() -> None:
    """Abandoned while connected or not: no cancel is ever written to such a server."""
    session = Session()
    session.opened()
    session.submit(user("m1"))
    session.submit(user("m2"))
    drain(session)
    session.abandon("m1", ReplyTimeout("gave up"))
    assert drain(session) == []
    session.closed()
    session.abandon("m2", ReplyTimeout("gave up"))
    session.opened()
    assert drain(session) == []


def test_a_cancel_owed_goes_to_the_next_server_only_if_it_announces_cancel() -> None:
    """Abandoned while away, the cancel waits for the next open, then goes where announced."""
    session = Session()
    session.opened(cancel=True)
    session.submit(user("m1"))
    drain(session)
    session.closed()
    session.abandon("m1", ReplyTimeout("gave up"))
    session.opened(cancel=True)
    assert drain(session) == [{"type": "cancel", "conversation_id": "c", "id": "m1"}]


def with_context(message_id: str) -> UserMessage:
    """A user message mentioning ``@df``, with df's description as its context."""
    context = [{"description": "the notebook variable df", "value": "df: 2 rows", "mention": "df"}]
    return UserMessage.model_validate(
        {"id": message_id, "conversation_id": "c", "message": "about @df", "context": context}
    )


def test_context_is_written_only_to_a_server_that_announced_it() -> None:
    """Queued unconnected, a message's context goes to a server announcing it, never to others."""
    session = Session()
    session.submit(with_context("m1"))
    session.opened(context=False)
    plain = drain(session)
    expected = {"type": "message", "id": "m1", "conversation_id": "c", "message": "about @df"}
    assert plain == [expected]
    session.closed()
    session.opened(context=True)  # the resend, to a server that reads context
    (resent,) = drain(session)
    assert resent["context"][0]["value"] == "df: 2 rows"
    session.submit(with_context("m2"))  # connected: written as this server reads it
    assert drain(session)[0]["context"][0]["mention"] == "df"
    session.closed()
    session.opened()
    assert all("context" not in frame for frame in drain(session))
