"""Typed Python functions as tools a model can call: schema, argument validation, results.

Pure code, no I/O: the same module serves the server's tools (offered to a
model by the OpenAI-compatible bridge) and functions defined in a notebook.

* Schema. A function's signature becomes a pydantic model (``inspect.signature``
  -> ``pydantic.create_model``), whose ``model_json_schema()`` is the tool's
  JSON Schema; the docstring is its description. Schemas are generated, never
  hand-written, so they cannot drift from the code. A function whose
  parameters lack type hints is refused with a one-line reason: the model
  would be guessing, and nothing could check its arguments.
* Arguments. What a model sends (a JSON string, possibly broken) is decoded
  and validated with that same model before the function runs: bad arguments
  never reach the function; they raise :class:`ToolArgumentsError`, whose
  one-line message is the error result given back to the model.
* Results. A return value is turned into bounded JSON by
  :mod:`nbchat.toolresult` (re-exported here): read within a budget (an
  endless iterator is cut), encoded through pydantic, and cut to ``max_chars``
  (:data:`MAX_RESULT_CHARS` by default) saying so, so one call can never flood
  the model's context, the wire or the memory of the process.

* Outcomes. :func:`prepare_call` decides, for a call by name, which tool runs
  and with which validated arguments (an unknown name is worded once, by
  :func:`unknown_tool`); :class:`ToolOutcome` is what a call ended as, for the
  card and for the model.

Running the function is the shell's business: :mod:`nbchat.tools` runs it (a
thread for a plain function, awaited for an ``async def``) for the server's
bridge and the client alike. :meth:`ToolSpec.call` only binds validated
arguments and calls, returning whatever the function returns (a coroutine for
an ``async def``).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .attachments import Attachment
from .exceptions import NbchatError, ToolArgumentsError, ToolSpecError
from .toolresult import MAX_RESULT_CHARS, ToolResult, serialize_result

__all__ = [
    "MAX_ARGUMENT_CHARS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_RESULT_CHARS",
    "NAME_PATTERN",
    "Described",
    "Spec",
    "ToolOutcome",
    "ToolResult",
    "ToolSpec",
    "error_text",
    "parse_arguments",
    "prepare_call",
    "serialize_result",
    "tool_spec",
    "unknown_tool",
]

MAX_ARGUMENT_CHARS = 100_000
"""Argument JSON longer than this is refused before it is decoded."""

MAX_DESCRIPTION_CHARS = 1_000
"""Docstrings are cut to this length: a description is for choosing a tool, not a manual."""

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Tool names OpenAI-compatible APIs accept."""
_NAME = NAME_PATTERN
_MAX_ERROR_CHARS = 300


class Spec(Protocol):
    """What the executor needs of a tool: a typed function's :class:`ToolSpec`, or a
    :class:`~nbchat.schematool.SchemaSpec` (arguments described by a JSON Schema)."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def function(self) -> Callable[..., Any]: ...

    @property
    def is_async(self) -> bool: ...

    def parameters(self) -> dict[str, Any]: ...

    def openai_tool(self) -> dict[str, Any]: ...

    def parse(self, raw: str | Mapping[str, Any] | None) -> dict[str, Any]: ...

    def validate(self, arguments: Mapping[str, Any]) -> Any: ...

    def call(self, validated: Any) -> Any: ...


class Described:
    """What every kind of spec derives from its name, description and schema, written once."""

    name: str
    description: str

    def parameters(self) -> dict[str, Any]:
        """The JSON Schema of the arguments."""
        raise NotImplementedError

    def openai_tool(self) -> dict[str, Any]:
        """The tool as the Chat Completions API takes it in ``tools``."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters(),
            },
        }

    def parse(self, raw: str | Mapping[str, Any] | None) -> dict[str, Any]:
        """Decode a model's arguments (JSON text or a mapping) into a dict, unvalidated."""
        return parse_arguments(raw, self.name)


@dataclass(frozen=True)
class ToolSpec(Described):
    """One function as a tool: its name, description, argument model and JSON Schema."""

    name: str
    description: str
    function: Callable[..., Any]
    arguments: type[BaseModel]
    """The pydantic model of the function's parameters; validates a call's arguments."""
    positional: tuple[str, ...] = ()
    """Positional-only parameters, passed by position in this order."""

    # Public methods

    @property
    def is_async(self) -> bool:
        """Whether calling the function returns a coroutine to await."""
        return inspect.iscoroutinefunction(self.function)

    def parameters(self) -> dict[str, Any]:
        """The JSON Schema of the arguments (an ``object`` schema)."""
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        schema.setdefault("properties", {})
        return schema

    def validate(self, arguments: Mapping[str, Any]) -> BaseModel:
        """Check arguments against the signature; the one-line error says what to change."""
        try:
            return self.arguments.model_validate(dict(arguments))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'arguments'}: {error['msg']}"
                for error in exc.errors(include_url=False)[:5]
            )
            raise ToolArgumentsError(
                _cut(f"bad arguments for {self.name}: {problems}", _MAX_ERROR_CHARS)
            ) from None

    def call(self, validated: BaseModel) -> Any:
        """Call the function with validated arguments (a coroutine if it is ``async``)."""
        values = {
            field.alias or name: getattr(validated, name)
            for name, field in type(validated).model_fields.items()
        }
        args = [values.pop(name) for name in self.positional]
        return self.function(*args, **values)


def tool_spec(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
) -> ToolSpec:
    """Describe a typed function as a tool; :class:`ToolSpecError` says why one cannot be."""
    label = getattr(function, "__qualname__", None) or repr(function)
    name = name if name is not None else getattr(function, "__name__", "")
    if not _NAME.fullmatch(name):
        raise ToolSpecError(
            f"cannot use {label} as a tool: its name {name!r} must be 1-64 letters, digits, "
            "'_' or '-' (pass name=...)"
        )
    try:
        signature = inspect.signature(function, eval_str=True)
    except (NameError, SyntaxError):
        # Only the parameters make the schema: a return hint naming a class local to
        # a function (or a cell) need not resolve.
        signature = _parameters_resolved(function, label)
    except (TypeError, ValueError) as exc:
        raise ToolSpecError(
            f"cannot use {label} as a tool: no signature ({_one_line(exc)})"
        ) from None
    fields: dict[str, Any] = {}
    positional: list[str] = []
    for index, parameter in enumerate(signature.parameters.values()):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolSpecError(
                f"cannot use {label} as a tool: *{parameter.name} has no schema; "
                "name each parameter"
            )
        if parameter.annotation is parameter.empty:
            raise ToolSpecError(
                f"cannot use {label} as a tool: parameter {parameter.name!r} has no type hint; "
                "annotate every parameter (e.g. x: int)"
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            positional.append(parameter.name)
        default = ... if parameter.default is parameter.empty else parameter.default
        # Parameters may be named like BaseModel's own attributes (json, schema, copy):
        # such fields get a private name and keep the parameter's as their alias.
        field_name = parameter.name
        if hasattr(BaseModel, field_name) or field_name.startswith(("model_", "_")):
            field_name = f"field_{index}"
        fields[field_name] = (
            parameter.annotation,
            Field(default, alias=parameter.name, title=_title(parameter.name)),
        )
    try:
        model = create_model(
            f"{name}_arguments",
            __config__=ConfigDict(
                extra="forbid", protected_namespaces=(), arbitrary_types_allowed=False
            ),
            **fields,
        )
        model.model_json_schema()  # a type pydantic cannot describe fails here, not at call time
    except Exception as exc:  # pydantic raises several kinds for unusable annotations
        raise ToolSpecError(
            f"cannot use {label} as a tool: pydantic cannot describe its parameters "
            f"({_one_line(exc)})"
        ) from None
    if description is None:
        description = inspect.getdoc(function) or ""
    return ToolSpec(
        name=name,
        description=_cut(description.strip(), MAX_DESCRIPTION_CHARS),
        function=function,
        arguments=model,
        positional=tuple(positional),
    )


def parse_arguments(raw: str | Mapping[str, Any] | None, tool: str = "the tool") -> dict[str, Any]:
    """Decode arguments as a model sends them (JSON text, bounded) into a dict, unvalidated."""
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    if len(raw) > MAX_ARGUMENT_CHARS:
        raise ToolArgumentsError(
            f"arguments for {tool} are {len(raw)} characters, "
            f"more than {MAX_ARGUMENT_CHARS}: send smaller arguments"
        )
    if not raw.strip():
        return {}
    try:
        decoded = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ToolArgumentsError(
            f"arguments for {tool} are not valid JSON ({_one_line(exc)}): send a JSON object"
        ) from None
    if not isinstance(decoded, dict):
        raise ToolArgumentsError(
            f"arguments for {tool} must be a JSON object, not {type(decoded).__name__}"
        )
    return decoded


@dataclass(frozen=True)
class ToolOutcome:
    """How one call ended: its status and result for the card, and what the model is given."""

    status: Literal["done", "error"]
    result: Any
    """The JSON result when done (bounded), else the one-line reason."""
    text: str
    """What a model is given: the result's JSON text, or ``error: <reason>``."""
    html: str | None = None
    """How the card shows a rich result (a table, an image: :mod:`nbchat.render.rich`'s
    sanitized fragment), when it has one; ``result`` is then the text the model reads."""
    images: tuple[Attachment, ...] = ()
    """The images the result showed (a figure, what code displayed), bounded as a message's
    attachments are: for a model that reads images, beside the text that describes them."""

    @classmethod
    def done(cls, value: Any) -> ToolOutcome:
        """A return value, serialized and bounded (:func:`serialize_result`)."""
        result = serialize_result(value)
        return cls("done", result.value, result.text)

    @classmethod
    def failed(cls, reason: str) -> ToolOutcome:
        """A call that did not run, or raised: ``reason`` is one line."""
        return cls("error", reason, f"error: {reason}")


def unknown_tool(name: str | None, offered: Iterable[str], side: str = "client") -> str:
    """The one wording of a call to a tool not offered, naming those that are."""
    known = ", ".join(sorted(offered)) or "none"
    return f"unknown {side} tool {name!r} (this {side} offers: {known})"


def prepare_call(
    tools: Mapping[str, Spec],
    name: str | None,
    arguments: str | Mapping[str, Any] | None,
    *,
    side: str = "client",
) -> tuple[Spec, Any]:
    """The tool a call names and its validated arguments; :class:`ToolArgumentsError` if none.

    One path for every tool: a typed function's arguments are validated by its
    pydantic model, a schema tool's (an MCP server's) by ``jsonschema``.
    ``side`` ("client", "server") names who offers ``tools`` in the refusal of
    an unknown name.
    """
    spec = tools.get(name) if name is not None else None
    if spec is None:
        raise ToolArgumentsError(unknown_tool(name, tools, side))
    return spec, spec.validate(spec.parse(arguments))


def error_text(exc: BaseException) -> str:
    """The one-line result a model (and the card) gets when a tool raised ``exc``."""
    if isinstance(exc, NbchatError):
        return _cut(_one_line(exc), _MAX_ERROR_CHARS)
    message = " ".join(str(exc).split())  # SystemExit(2) says "2"; KeyboardInterrupt() nothing
    named = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return _cut(named, _MAX_ERROR_CHARS)


# Private helpers


def _parameters_resolved(function: Callable[..., Any], label: str) -> inspect.Signature:
    """The signature with its parameters' string hints evaluated and no return hint."""
    signature = inspect.signature(function)
    namespace = getattr(inspect.unwrap(function), "__globals__", {})
    parameters = []
    for parameter in signature.parameters.values():
        annotation = parameter.annotation
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace)  # what eval_str=True does
            except Exception as exc:
                raise ToolSpecError(
                    f"cannot use {label} as a tool: the type hint of {parameter.name!r} does "
                    f"not resolve ({_one_line(exc)})"
                ) from None
        parameters.append(parameter.replace(annotation=annotation))
    return signature.replace(parameters=parameters, return_annotation=signature.empty)


def _title(name: str) -> str:
    return name.replace("_", " ").strip().capitalize() or name


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
