"""Typed functions as tools: generated schemas, validated arguments, bounded results."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
import itertools
import json
import time
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from nbchat.exceptions import NbchatError, ToolArgumentsError, ToolSpecError
from nbchat.server.demo.tools import calculator, current_time
from nbchat.toolspec import (
    MAX_ARGUMENT_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_RESULT_CHARS,
    ToolOutcome,
    error_text,
    prepare_call,
    serialize_result,
    tool_spec,
    unknown_tool,
)

pytestmark = pytest.mark.loopback


def top_rows(table: str, n: int = 5, *, columns: list[str] | None = None) -> list[str]:
    """The first n rows of one of the notebook's tables."""
    return [table] * n + (columns or [])


class Opaque:
    """A plain class pydantic has no schema for."""


class Colour(enum.Enum):
    """A closed set of values, as an enum schema."""

    RED = "red"
    BLUE = "blue"


# Schemas


def test_schema_comes_from_the_signature_and_the_docstring() -> None:
    """Names, types, defaults and required parameters come from the signature; the docstring
    is the description."""
    tool = tool_spec(top_rows).openai_tool()
    assert tool["type"] == "function"
    function = tool["function"]
    assert function["name"] == "top_rows"
    assert function["description"] == "The first n rows of one of the notebook's tables."
    schema = function["parameters"]
    assert schema["type"] == "object"
    assert schema["required"] == ["table"]
    assert schema["properties"]["table"]["type"] == "string"
    assert schema["properties"]["n"] == {"default": 5, "title": "N", "type": "integer"}
    assert schema["additionalProperties"] is False


def test_server_tools_have_generated_schemas() -> None:
    """The demo tools are described from their own type hints, not by hand."""
    assert tool_spec(calculator).parameters()["properties"]["expression"]["type"] == "string"
    assert tool_spec(current_time).parameters()["properties"] == {}


def test_annotated_fields_and_enums_reach_the_schema() -> None:
    """Field descriptions and enums written in type hints appear in the schema."""

    def paint(colour: Colour, width: Annotated[int, Field(ge=1, description="pixels")] = 1) -> str:
        """Paint something."""
        return f"{colour.value}:{width}"

    spec = tool_spec(paint)
    schema = spec.parameters()
    assert schema["properties"]["width"]["description"] == "pixels"
    assert "Colour" in json.dumps(schema)
    assert spec.call(spec.validate({"colour": "red", "width": 3})) == "red:3"
    with pytest.raises(ToolArgumentsError, match="width"):
        spec.validate({"colour": "red", "width": 0})


def test_name_and_description_can_be_given() -> None:
    """An explicit name and description replace the function's own."""
    spec = tool_spec(top_rows, name="rows", description="Rows.")
    assert (spec.name, spec.description) == ("rows", "Rows.")


def test_long_docstrings_are_cut() -> None:
    """A description never exceeds its bound."""

    def chatty() -> None:
        pass

    chatty.__doc__ = "word " * 1000
    assert len(tool_spec(chatty).description) == MAX_DESCRIPTION_CHARS


def test_parameters_named_like_model_attributes_work() -> None:
    """Parameters called json, schema or model_* keep their names in schema and call."""

    def odd(json: str, schema: int, model_name: str) -> str:
        """Odd names."""
        return f"{json}{schema}{model_name}"

    spec = tool_spec(odd)
    assert set(spec.parameters()["properties"]) == {"json", "schema", "model_name"}
    validated = spec.validate({"json": "a", "schema": 1, "model_name": "b"})
    assert spec.call(validated) == "a1b"


def test_positional_only_parameters_are_passed_by_position() -> None:
    """A positional-only parameter is described by name and passed by position."""

    def square(x: int, /) -> int:
        """Square."""
        return x * x

    spec = tool_spec(square)
    assert spec.call(spec.validate({"x": 7})) == 49


# Refusals


def test_a_parameter_without_type_hint_is_refused_in_one_line() -> None:
    """A function without type hints is refused, naming the parameter and the fix."""

    def untyped(x, y: int) -> int:  # type: ignore[no-untyped-def]
        return y

    with pytest.raises(ToolSpecError) as caught:
        tool_spec(untyped)
    message = str(caught.value)
    assert "'x' has no type hint" in message and "\n" not in message
    assert isinstance(caught.value, NbchatError)


def test_varargs_and_bad_names_are_refused() -> None:
    """*args, **kwargs and names a model API refuses are refused at registration."""

    def star(*values: int) -> int:
        return sum(values)

    with pytest.raises(ToolSpecError, match=r"\*values"):
        tool_spec(star)
    with pytest.raises(ToolSpecError, match="name"):
        tool_spec(lambda: None)


def test_unresolvable_and_undescribable_hints_are_refused() -> None:
    """A hint naming an unknown type, or one pydantic cannot describe, is refused."""

    def ghost(x: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ToolSpecError, match="does not resolve"):
        tool_spec(ghost)

    def opaque(x: Opaque) -> None:
        pass

    with pytest.raises(ToolSpecError, match="pydantic cannot describe"):
        tool_spec(opaque)


def test_a_return_hint_that_does_not_resolve_is_ignored() -> None:
    """A function returning a class local to its scope is a tool: its parameters make the schema."""

    @dataclasses.dataclass
    class Local:
        x: int

    def make(x: int) -> Local:
        return Local(x)

    spec = tool_spec(make)
    assert spec.parameters()["properties"]["x"]["type"] == "integer"
    assert serialize_result(spec.call(spec.validate({"x": 3}))).value == {"x": 3}


# Arguments


def test_arguments_are_decoded_and_validated() -> None:
    """JSON text from a model is decoded, validated (lax numbers) and bound to the call."""
    spec = tool_spec(top_rows)
    validated = spec.validate(spec.parse('{"table": "sales", "n": "2"}'))
    assert spec.call(validated) == ["sales", "sales"]
    assert spec.parse(None) == {} and spec.parse("  ") == {}
    assert spec.parse({"table": "x"}) == {"table": "x"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"table": "sal', "not valid JSON"),
        ("[1, 2]", "must be a JSON object, not list"),
        ('{"table": 7}', "table: Input should be a valid string"),
        ('{"n": 2}', "table: Field required"),
        ('{"table": "t", "limit": 3}', "limit: Extra inputs are not permitted"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_bad_arguments_become_one_line_errors(raw: str, expected: str) -> None:
    """Broken JSON, wrong types, missing and unknown fields each say what is wrong, on one
    line."""
    spec = tool_spec(top_rows)
    with pytest.raises(ToolArgumentsError) as caught:
        spec.validate(spec.parse(raw))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_oversized_arguments_are_refused_before_decoding() -> None:
    """Argument text over the bound is refused without being parsed."""
    spec = tool_spec(top_rows)
    with pytest.raises(ToolArgumentsError, match="more than"):
        spec.parse('{"table": "' + "x" * MAX_ARGUMENT_CHARS + '"}')


async def test_async_functions_are_called_and_awaited_by_the_caller() -> None:
    """An async tool is marked so, and call() returns its coroutine."""

    async def later(x: int) -> int:
        """Later."""
        await asyncio.sleep(0)
        return x + 1

    spec = tool_spec(later)
    assert spec.is_async and not tool_spec(top_rows).is_async
    assert await spec.call(spec.validate({"x": 1})) == 2


# Results


def test_results_are_serialised_through_pydantic() -> None:
    """Dataclasses, models, dates, enums and sets become JSON."""

    @dataclasses.dataclass
    class Point:
        x: int
        when: datetime.date

    class Row(BaseModel):
        name: str

    value: Any = [Point(1, datetime.date(2026, 1, 2)), Row(name="a"), Colour.RED, {3}]
    result = serialize_result(value)
    assert result.value == [{"x": 1, "when": "2026-01-02"}, {"name": "a"}, "red", [3]]
    assert json.loads(result.text) == result.value and not result.truncated


def test_numpy_like_values_and_unknown_objects_fall_back() -> None:
    """Objects with item()/tolist() become numbers and lists; anything else a bounded repr."""

    class Scalar:
        shape = ()

        def item(self) -> float:
            return 1.5

    class Array:
        shape = (2,)

        def tolist(self) -> list[int]:
            return [1, 2]

    class Huge:
        def __repr__(self) -> str:
            return "h" * 10_000

    value = serialize_result([Scalar(), Array(), Huge()]).value
    assert value[:2] == [1.5, [1, 2]]
    assert len(value[2]) < 300


def test_circular_results_fall_back_to_a_bounded_repr() -> None:
    """A self-referencing structure is not a crash."""
    loop: list[Any] = []
    loop.append(loop)
    assert "..." in serialize_result(loop).value


def test_large_results_are_cut_and_say_so() -> None:
    """A result longer than the bound is cut to it, with a note naming both sizes."""
    result = serialize_result(["x" * 50_000])
    assert result.truncated
    assert isinstance(result.value, str)
    assert f"{MAX_RESULT_CHARS} of 50004 characters shown" in result.value
    assert len(result.value) < MAX_RESULT_CHARS + 100
    assert serialize_result("abc", max_chars=2).truncated


def test_an_endless_iterator_is_read_only_up_to_the_budget_and_says_so() -> None:
    """itertools.count() (and a generator) is cut while read, not encoded whole: it ends."""
    counted = serialize_result(itertools.count())
    generated = serialize_result({"rows": ({"n": n} for n in itertools.count())})
    for result in (counted, generated):
        assert result.truncated and "was not read to its end" in result.value
        assert len(result.value) < MAX_RESULT_CHARS + 200


def test_a_huge_string_is_sliced_before_it_is_encoded() -> None:
    """A 64 MB string (and bytes) costs its first characters only: cut, and it says so."""
    huge, raw = "é" * 2**26, b"x" * 2**26
    started = time.perf_counter()
    result = serialize_result({"text": huge, "nested": [raw]})
    assert time.perf_counter() - started < 0.5
    assert result.truncated and "was not read to its end" in result.value


def test_a_short_iterator_and_a_model_are_read_whole() -> None:
    """An iterator that ends and a model within the budget are not marked cut."""

    class Row(BaseModel):
        names: list[str]

    result = serialize_result({"squares": (n * n for n in range(4)), "row": Row(names=["a"])})
    assert result.value == {"squares": [0, 1, 4, 9], "row": {"names": ["a"]}}
    assert not result.truncated


def test_error_text_is_one_bounded_line() -> None:
    """A raised exception becomes its type and first line, bounded."""
    assert error_text(ValueError("bad\nvalue")) == "ValueError: bad value"
    assert len(error_text(RuntimeError("x" * 5000))) <= 300
    assert error_text(ToolArgumentsError("bad arguments for f: x")) == "bad arguments for f: x"


def test_an_unknown_tool_is_worded_once_naming_what_is_offered() -> None:
    """Client and server refuse an unknown name in the same words, listing the tools sorted."""
    assert unknown_tool("x", ["b", "a"]) == "unknown client tool 'x' (this client offers: a, b)"
    assert unknown_tool("x", [], "server") == "unknown server tool 'x' (this server offers: none)"


def test_prepare_call_finds_the_tool_and_validates_its_arguments() -> None:
    """A known name gives its spec and validated arguments; an unknown one the one wording."""

    def area(width: float, height: float) -> float:
        """Area of a rectangle."""
        return width * height

    tools = {"area": tool_spec(area)}
    spec, validated = prepare_call(tools, "area", '{"width": 2, "height": 3}')
    assert spec.call(validated) == 6
    with pytest.raises(ToolArgumentsError, match=r"^unknown client tool 'volume'"):
        prepare_call(tools, "volume", "{}")
    with pytest.raises(ToolArgumentsError, match="bad arguments for area"):
        prepare_call(tools, "area", {"width": 2})


def test_an_outcome_carries_the_card_result_and_the_models_text() -> None:
    """Done: bounded JSON and its text; failed: the reason, given to the model as ``error: ...``."""
    done = ToolOutcome.done({"n": 1})
    assert (done.status, done.result, done.text) == ("done", {"n": 1}, '{"n":1}')
    assert ToolOutcome.failed("no") == ToolOutcome("error", "no", "error: no")
