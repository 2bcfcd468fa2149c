"""Tools whose arguments a JSON Schema describes: ``nbchat.Tool`` and the spec made from it.

Pure code, no I/O. A typed function gets its schema from its signature
(:mod:`nbchat.toolspec`); a tool given as a schema (an MCP server's, or
``chat.tool(fn, schema={...})``) keeps that schema exactly as written (enums,
nested objects, formats, ``anyOf``: nothing squashed into a signature) and is
validated by ``jsonschema``:

* at registration, the schema itself (``check_schema`` of its dialect, draft
  2020-12 unless ``$schema`` names another): one that is not valid JSON Schema,
  or does not describe an object, is a :class:`~nbchat.ToolSpecError`;
* before each call, the arguments: those outside the schema never reach the
  function (or the server) and become a :class:`~nbchat.ToolArgumentsError`
  naming the field, worded like a typed function's.

:class:`SchemaSpec` has the shape of :class:`~nbchat.toolspec.ToolSpec`
(:class:`~nbchat.toolspec.Spec`), so :func:`~nbchat.toolspec.prepare_call` and
the one executor (:mod:`nbchat.tools`) run both alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import ToolArgumentsError, ToolSpecError
from .toolspec import MAX_DESCRIPTION_CHARS, NAME_PATTERN, Described

__all__ = ["SchemaSpec", "Tool", "schema_spec"]

_MAX_ERROR_CHARS = 300
_MAX_PROBLEMS = 5


@dataclass(frozen=True)
class Tool:
    """A tool described by a JSON Schema: ``call(**arguments)`` runs it (sync or ``async``).

    ``parameters`` is the JSON Schema of the arguments (an ``object`` schema);
    the arguments are validated against it before ``call`` is called with them
    as keywords. Offer it with ``chat.tool(Tool(...))`` or ``client.tool(...)``.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    call: Callable[..., Any] = field(repr=False)

    def spec(self) -> SchemaSpec:
        """The checked spec the executor runs; :class:`ToolSpecError` if the schema is unusable."""
        return schema_spec(self.call, self.parameters, name=self.name, description=self.description)


@dataclass(frozen=True)
class SchemaSpec(Described):
    """A tool whose arguments a JSON Schema describes, validated by ``jsonschema``."""

    name: str
    description: str
    function: Callable[..., Any]
    schema: dict[str, Any] = field(repr=False)
    validator: Any = field(repr=False, compare=False)
    """The compiled ``jsonschema`` validator of ``schema``."""

    # Public methods

    @property
    def is_async(self) -> bool:
        """Whether calling the function returns a coroutine to await."""
        function = self.function
        return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            getattr(function, "__call__", None)  # noqa: B004 - an async callable object
        )

    def parameters(self) -> dict[str, Any]:
        """The JSON Schema of the arguments, as given."""
        return dict(self.schema)

    def validate(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Check arguments against the schema; the one-line error names each field at fault."""
        values = dict(arguments)
        errors = sorted(self.validator.iter_errors(values), key=lambda e: list(e.absolute_path))
        if errors:
            problems = "; ".join(_problem(error) for error in errors[:_MAX_PROBLEMS])
            raise ToolArgumentsError(_cut(f"bad arguments for {self.name}: {problems}"))
        return values

    def call(self, validated: Mapping[str, Any]) -> Any:
        """Call the function with the validated arguments as keywords."""
        return self.function(**validated)


def schema_spec(
    function: Callable[..., Any],
    schema: Mapping[str, Any],
    *,
    name: str | None = None,
    description: str | None = None,
) -> SchemaSpec:
    """A tool of ``function`` whose arguments ``schema`` describes; checked here, once."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    label = getattr(function, "__qualname__", None) or repr(function)
    name = name if name is not None else getattr(function, "__name__", "")
    if not NAME_PATTERN.fullmatch(name):
        raise ToolSpecError(
            f"cannot use {label} as a tool: its name {name!r} must be 1-64 letters, digits, "
            "'_' or '-' (pass name=...)"
        )
    if not callable(function):
        raise ToolSpecError(f"cannot use {label} as a tool {name!r}: it is not callable")
    if not isinstance(schema, Mapping):
        raise ToolSpecError(
            f"the schema of tool {name!r} must be a JSON object, not {type(schema).__name__}"
        )
    schema = dict(schema)
    kind = schema.get("type", "object")
    if kind != "object":
        raise ToolSpecError(
            f"the schema of tool {name!r} must describe an object (its arguments), not {kind!r}"
        )
    schema.setdefault("type", "object")
    cls = validator_for(schema)  # draft 2020-12 unless $schema names another
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "the top"
        raise ToolSpecError(
            _cut(
                f"the schema of tool {name!r} is not valid JSON Schema (at {where}): "
                f"{_one_line(exc.message)}"
            )
        ) from None
    if description is None:
        description = inspect.getdoc(function) or ""
    description = description.strip()
    if len(description) > MAX_DESCRIPTION_CHARS:
        description = description[: MAX_DESCRIPTION_CHARS - 3] + "..."
    return SchemaSpec(
        name=name,
        description=description,
        function=function,
        schema=schema,
        validator=cls(schema, format_checker=cls.FORMAT_CHECKER),
    )


# Private helpers


def _problem(error: Any) -> str:
    """One validation error as ``field: what is wrong`` (a missing field named as the field)."""
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        if missing:  # one error per missing field, each naming its own
            named = next((k for k in missing if error.message.startswith(repr(k))), missing[0])
            field_path = ".".join(filter(None, [path, str(named)]))
            return f"{field_path}: required"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set((error.schema or {}).get("properties", {}))
        extra = [key for key in error.instance if key not in allowed]
        if extra:
            field_path = ".".join(filter(None, [path, str(extra[0])]))
            return f"{field_path}: not a parameter of this tool"
    return f"{path or 'arguments'}: {_one_line(error.message)}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."
