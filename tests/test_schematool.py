"""Tools described by a JSON Schema: checked at registration, arguments validated before a call."""

from __future__ import annotations

import pytest

from nbchat import ChatClient, Tool, ToolArgumentsError, ToolSpecError
from nbchat.mcpspec import confirm_default, parse_target
from nbchat.schematool import schema_spec
from nbchat.toolspec import prepare_call

pytestmark = pytest.mark.unit

SCHEMA = {
    "type": "object",
    "properties": {
        "unit": {"enum": ["C", "F"]},
        "where": {
            "type": "object",
            "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
            "required": ["lat", "lon"],
        },
        "when": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
    },
    "required": ["unit", "where"],
    "additionalProperties": False,
}


def weather(**arguments: object) -> dict[str, object]:
    """The weather somewhere."""
    return dict(arguments)


def test_valid_arguments_reach_the_function_as_keywords() -> None:
    """Arguments inside the schema are passed unchanged, as keywords."""
    spec = schema_spec(weather, SCHEMA)
    arguments = {"unit": "C", "where": {"lat": 1.5, "lon": 2}, "when": 3}
    found, validated = prepare_call({"weather": spec}, "weather", arguments)
    assert found is spec and found.call(validated) == arguments
    assert spec.parameters() == SCHEMA and spec.description == "The weather somewhere."


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"unit": "K", "where": {"lat": 1, "lon": 2}}, "unit: 'K' is not one of ['C', 'F']"),
        ({"unit": "C"}, "where: required"),
        ({}, "unit: required; where: required"),
        ({"unit": "C", "where": {"lat": 1}}, "where.lon: required"),
        ({"unit": "C", "where": {"lat": "n", "lon": 2}}, "where.lat: 'n' is not of type"),
        ({"unit": "C", "where": {"lat": 1, "lon": 2}, "city": "x"}, "city: not a parameter"),
        ({"unit": "C", "where": {"lat": 1, "lon": 2}, "when": 1.5}, "when: 1.5 is not valid"),
    ],
)
def test_arguments_outside_the_schema_are_refused_naming_the_field(
    arguments: dict[str, object], named: str
) -> None:
    """An enum value not listed, a missing or mistyped (nested) field: one line naming it."""
    spec = schema_spec(weather, SCHEMA)
    with pytest.raises(ToolArgumentsError) as info:
        prepare_call({"weather": spec}, "weather", arguments)
    assert str(info.value).startswith("bad arguments for weather: ")
    assert named in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"type": "object", "properties": {"a": {"type": "integr"}}}, "not valid JSON Schema"),
        ({"type": "object", "required": "a"}, "not valid JSON Schema"),
        ({"type": "array"}, "must describe an object"),
        (["not", "a", "mapping"], "must be a JSON object"),
    ],
)
def test_a_schema_that_is_not_json_schema_is_refused_at_registration(
    schema: object, says: str
) -> None:
    """check_schema runs when the tool is added: a bad schema never reaches a call."""
    chat = ChatClient(url="ws://127.0.0.1:1/ws")
    with pytest.raises(ToolSpecError, match=says):
        chat.tool(weather, schema=schema)  # type: ignore[arg-type]
    assert not chat.tools


def test_tool_is_offered_like_a_function() -> None:
    """nbchat.Tool(name, description, parameters, call) registers with its own schema."""
    chat = ChatClient(url="ws://127.0.0.1:1/ws")
    tool = Tool("forecast", "A forecast.", SCHEMA, weather)
    assert chat.tool(tool) is tool
    offered = chat.tools["forecast"]
    assert offered.parameters == SCHEMA and offered.description == "A forecast."
    assert offered.info().parameters["properties"]["unit"] == {"enum": ["C", "F"]}
    with pytest.raises(ToolSpecError, match="name 'bad name'"):
        chat.tool(Tool("bad name", "", SCHEMA, weather))


def test_annotations_decide_approval_unless_confirm_is_given() -> None:
    """Not read-only, or destructive, asks; confirm True/False decides for every tool."""

    class Hints:
        def __init__(self, read_only: bool | None, destructive: bool | None) -> None:
            self.read_only_hint, self.destructive_hint = read_only, destructive

    assert not confirm_default(Hints(True, None), None)
    assert confirm_default(Hints(True, True), None)
    assert confirm_default(Hints(None, None), None) and confirm_default(None, None)
    assert confirm_default(Hints(True, None), True)
    assert not confirm_default(Hints(False, True), False)


def test_commands_and_urls_become_targets() -> None:
    """A shell line is split, a list kept, a URL connected to; each gets a short label."""
    assert parse_target("mcp-server-time --local-timezone 'Europe/Paris'").argv == (
        "mcp-server-time",
        "--local-timezone",
        "Europe/Paris",
    )
    assert parse_target("mcp-server-time").label == "time"
    assert parse_target(["python", "-m", "mcp_server_time"]).label == "time"
    target = parse_target("https://example.org/mcp")
    assert (target.url, target.label) == ("https://example.org/mcp", "example.org")
