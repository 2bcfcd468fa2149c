"""Wire protocol v1: strict and lenient parsing, serialisation."""

from __future__ import annotations

import pytest

from nbchat.exceptions import ProtocolError
from nbchat.parsing import (
    LoneSurrogateError,
    as_user_message,
    parse_client_message,
    parse_server_message,
)
from nbchat.protocol import (
    AckMessage,
    CancelRequest,
    DoneMessage,
    ErrorMessage,
    ReasoningMessage,
    TokenMessage,
    ToolCallMessage,
    ToolResultMessage,
    UnknownMessage,
    Usage,
    UserMessage,
    dump,
    encode_frame,
    utf8,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ('{"type":"ack","id":"m1","conversation_id":"c"}', AckMessage),
        ('{"type":"token","response":"Hel","reply_to":"m1"}', TokenMessage),
        ('{"type":"done","reply_to":"m1"}', DoneMessage),
        ('{"type":"error","error":{"code":"x","message":"y"}}', ErrorMessage),
        ('{"type":"tool_call","tool_calls":[{"id":"t","name":"calc"}]}', ToolCallMessage),
        (
            '{"type":"tool_result","tool_calls":[{"id":"t","name":"c","status":"done","result":4}]}',
            ToolResultMessage,
        ),
    ],
)
def test_typed_server_messages_parse_to_their_model(frame: str, kind: type) -> None:
    """Each protocol v1 server message parses to its own model."""
    assert isinstance(parse_server_message(frame), kind)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ('{"response":"hi"}', TokenMessage),
        ('{"tool_calls":[{"id":"t","name":"calc"}]}', ToolCallMessage),
        ('{"tool_calls":[{"id":"t","name":"calc","status":"done","result":1}]}', ToolResultMessage),
        ('{"done":true}', DoneMessage),
        ('{"error":"boom"}', ErrorMessage),
    ],
)
def test_typeless_server_messages_are_typed_by_their_fields(frame: str, kind: type) -> None:
    """A message without ``type`` is typed by the fields it carries."""
    assert isinstance(parse_server_message(frame), kind)


def test_unknown_type_becomes_unknown_message_with_fields_kept() -> None:
    """An unknown ``type`` is delivered as a generic message, its fields intact."""
    message = parse_server_message('{"type":"progress","percent":40,"conversation_id":"c"}')
    assert isinstance(message, UnknownMessage)
    assert message.type == "progress"
    assert message.model_extra == {"percent": 40}
    assert message.conversation_id == "c"


def test_unknown_fields_are_kept_on_known_messages() -> None:
    """Extra fields from a newer server survive parsing."""
    message = parse_server_message('{"type":"done","reply_to":"m","cost":{"tokens":3}}')
    assert (message.model_extra or {})["cost"] == {"tokens": 3}


def test_string_arguments_are_decoded_as_json() -> None:
    """OpenAI-style JSON-string arguments become a dict."""
    message = parse_server_message(
        '{"type":"tool_call","tool_calls":[{"id":"t","name":"c","arguments":"{\\"a\\": 1}"}]}'
    )
    assert isinstance(message, ToolCallMessage)
    assert message.tool_calls[0].arguments == {"a": 1}


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "not an object"),
        ('"text"', "not an object"),
        ('{"type":"token"}', "response"),
        ('{"type":"tool_call","tool_calls":"x"}', "tool_calls"),
        (b"\xff\xfe", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_bad_frames_raise_protocol_error_with_raw(frame: str | bytes, words: str) -> None:
    """A frame that cannot be understood raises ProtocolError naming why, with the raw frame."""
    with pytest.raises(ProtocolError, match=words) as info:
        parse_server_message(frame)
    assert info.value.raw == frame
    assert "\n" not in str(info.value)


def test_typescript_shaped_client_message_is_a_user_message() -> None:
    """``{message, conversation_id}`` without type or id parses as a message with no id."""
    message = parse_client_message('{"message":"hi","conversation_id":"abc"}')
    assert isinstance(message, UserMessage)
    assert (message.message, message.conversation_id, message.id) == ("hi", "abc", None)


def test_cancel_request_parses() -> None:
    """A cancel names its conversation."""
    message = parse_client_message('{"type":"cancel","conversation_id":"c"}')
    assert isinstance(message, CancelRequest)
    assert message.conversation_id == "c"


def test_dump_round_trips_and_omits_unset_fields() -> None:
    """A dumped message parses back to an equal model and carries no nulls."""
    message = UserMessage(message="hello", conversation_id="c")
    text = dump(message)
    assert "null" not in text
    assert parse_client_message(text) == message


def test_user_messages_get_distinct_ids() -> None:
    """Every new message has its own id."""
    assert UserMessage(message="a").id != UserMessage(message="a").id


@pytest.mark.parametrize(
    ("arguments", "decoded"),
    [
        ('""', {}),
        ('"   "', {}),
        ('"{not json"', {"_raw": "{not json"}),
        ('"[1, 2]"', {"_value": [1, 2]}),
        ("null", {}),
    ],
)
def test_odd_string_arguments_are_kept_not_rejected(arguments: str, decoded: object) -> None:
    """Arguments that are empty, broken JSON or not an object still parse, their content kept."""
    frame = f'{{"type":"tool_call","tool_calls":[{{"id":"t","name":"c","arguments":{arguments}}}]}}'
    message = parse_server_message(frame)
    assert isinstance(message, ToolCallMessage)
    assert message.tool_calls[0].arguments == decoded


def test_typeless_message_without_known_fields_is_unknown() -> None:
    """A message with no ``type`` and none of the telling fields is delivered as unknown."""
    message = parse_server_message('{"percent": 40, "conversation_id": "c"}')
    assert isinstance(message, UnknownMessage)
    assert message.model_extra == {"percent": 40}


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        ('{"conversation_id": "c"}', "message.message: Field required"),
        ('{"type": "message", "message": 5}', "message.message: Input should be a valid string"),
        ('{"type": "launch"}', "tag 'launch'"),
        ("[]", "not an object"),
    ],
)
def test_bad_client_messages_raise_protocol_error(frame: str, words: str) -> None:
    """A client frame that is not a message or a cancel is a one-line ProtocolError, raw kept."""
    with pytest.raises(ProtocolError, match=words) as info:
        parse_client_message(frame)
    assert info.value.raw == frame
    assert "\n" not in str(info.value)


def test_text_becomes_a_message_of_the_given_conversation() -> None:
    """Plain text gets a fresh id and the conversation it is sent in."""
    message = as_user_message("hi", "c")
    assert (message.message, message.conversation_id) == ("hi", "c")
    assert message.id and message.id != as_user_message("hi", "c").id


def test_a_mapping_keeps_its_own_id_and_conversation() -> None:
    """The TypeScript client's shape is accepted; what it names wins over the defaults."""
    named = as_user_message({"message": "hi", "conversation_id": "mine", "id": "m1"}, "c")
    assert (named.id, named.conversation_id) == ("m1", "mine")
    bare = as_user_message({"message": "hi"}, "c")
    assert bare.conversation_id == "c" and bare.id


def test_a_user_message_is_completed_not_changed() -> None:
    """A UserMessage missing its id or conversation gets them in a copy; a complete one is kept."""
    complete = UserMessage(id="m1", conversation_id="x", message="hi")
    assert as_user_message(complete, "c") is complete
    partial = UserMessage(id=None, message="hi")
    filled = as_user_message(partial, "c")
    assert filled.id and filled.conversation_id == "c"
    assert (partial.id, partial.conversation_id) == (None, None)


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"type": "cancel"}, "client.cancel"),
        ({"message": "hi", "when": object()}, "not JSON-serialisable"),
        (42, "cannot send a int"),
        ({"type": "message"}, "message.message: Field required"),
    ],
)
def test_what_is_not_a_user_message_cannot_be_sent(message: object, words: str) -> None:
    """A cancel, an unserialisable mapping, a number or a mapping without text is refused."""
    with pytest.raises(ProtocolError, match=words):
        as_user_message(message, "c")  # type: ignore[arg-type]


# Client tools


def test_client_tool_messages_parse_in_both_directions() -> None:
    """tools and tool_response parse as client messages; tool_request and tool_ack as frames."""
    from nbchat.parsing import parse_server_frame
    from nbchat.protocol import ToolAck, ToolRequest, ToolResponse, ToolsDeclaration

    declared = parse_client_message(
        '{"type":"tools","tools":[{"name":"f","description":"d","parameters":{"type":"object"}}]}'
    )
    assert isinstance(declared, ToolsDeclaration) and declared.tools[0].name == "f"
    answered = parse_client_message('{"type":"tool_response","id":"t1","result":[1]}')
    assert isinstance(answered, ToolResponse) and answered.status == "done"
    request = parse_server_frame(
        '{"type":"tool_request","id":"t1","name":"f","arguments":{"x":1},"reply_to":"m"}'
    )
    assert isinstance(request, ToolRequest) and request.arguments == {"x": 1}
    assert request.call().runs_in == "client" and request.call().status == "running"
    assert isinstance(parse_server_frame('{"type":"tool_ack","id":"t1"}'), ToolAck)


def test_listeners_see_client_tool_control_messages_as_unknown() -> None:
    """parse_server_message keeps its types: a tool_request is an UnknownMessage there."""
    message = parse_server_message('{"type":"tool_request","id":"t1","name":"f"}')
    assert isinstance(message, UnknownMessage) and message.type == "tool_request"


def test_runs_in_is_left_out_of_the_wire_when_unset() -> None:
    """A server tool's call serialises as before the field existed; a client tool's names it."""
    from nbchat.protocol import ToolCall, ToolCallMessage

    server_side = dump(ToolCallMessage(tool_calls=[ToolCall(id="t", name="f")]))
    client_side = dump(ToolCallMessage(tool_calls=[ToolCall(id="t", name="f", runs_in="client")]))
    assert "runs_in" not in server_side and '"runs_in":"client"' in client_side


# Lone surrogates


@pytest.mark.parametrize(
    ("frame", "field", "message_id", "conversation_id"),
    [
        ('{"id":"m1","conversation_id":"\\ud800","message":"hi"}', "conversation_id", "m1", None),
        ('{"id":"m1","conversation_id":"c","message":"a \\udfff"}', "message", "m1", "c"),
        ('{"id":"\\ud83d","conversation_id":"c","message":"hi"}', "id", None, "c"),
        ('{"type":"cancel","conversation_id":"\\ud800"}', "conversation_id", None, None),
        ('{"type":"tool_response","id":"t1","result":{"k":["\\ud800"]}}', "result", None, None),
        ('{"type":"tools","tools":[{"name":"t","description":"\\udc00"}]}', "tools", None, None),
    ],
)
def test_a_client_frame_with_a_lone_surrogate_is_refused_at_parse_time(
    frame: str, field: str, message_id: str | None, conversation_id: str | None
) -> None:
    """Half a surrogate pair in a field the server reads is a one-line LoneSurrogateError."""
    with pytest.raises(LoneSurrogateError) as caught:
        parse_client_message(frame)
    error = caught.value
    assert isinstance(error, ProtocolError) and error.raw == frame
    assert f"field {field!r}" in str(error) and "surrogate" in str(error)
    assert "\n" not in str(error)
    assert (error.message_id, error.conversation_id) == (message_id, conversation_id)


def test_a_lone_surrogate_in_an_unknown_field_is_not_refused() -> None:
    """Fields nobody reads may hold anything: the message parses."""
    message = parse_client_message('{"id":"m1","message":"hi","x":"\\ud800"}')
    assert isinstance(message, UserMessage) and message.message == "hi"


def test_a_lone_surrogate_written_becomes_a_question_mark() -> None:
    """encode_frame and utf8 make any text UTF-8: each lone surrogate is written as "?"."""
    frame = encode_frame(TokenMessage(response="half \ud800 pair", extra="\udfff"))
    parsed = parse_server_message(frame)
    assert isinstance(parsed, TokenMessage) and parsed.response == "half ? pair"
    assert utf8("a\ud800b") == b"a?b" and utf8("é") == "é".encode()


def test_reasoning_and_the_fields_of_done_parse_as_v1() -> None:
    """A ``reasoning`` frame is a ReasoningMessage; ``done`` reads its usage and its cut."""
    reasoning = parse_server_message('{"type":"reasoning","text":"hmm","reply_to":"m"}')
    assert isinstance(reasoning, ReasoningMessage) and reasoning.text == "hmm"
    done = parse_server_message(
        '{"type":"done","usage":{"prompt_tokens":7,"completion_tokens":2},"truncated":true}'
    )
    assert isinstance(done, DoneMessage) and done.truncated
    assert done.usage == Usage(prompt_tokens=7, completion_tokens=2)
