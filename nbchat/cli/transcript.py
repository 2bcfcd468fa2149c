"""``nbchat transcript show|export``: read a recorded transcript, print or convert it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from .common import EXIT_ERROR, Parser, load_transcript, usage

__all__ = ["add_transcript"]

# nbchat transcript

_FORMATS = {
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".ipynb": "ipynb",
    ".json": "json",
}


def add_transcript(subcommands: argparse._SubParsersAction[Parser]) -> None:
    transcript = subcommands.add_parser(
        "transcript",
        help="show or export a recorded transcript",
        description="Read a transcript recorded by ChatClient(record=...) or chat.record().",
    )
    actions = transcript.add_subparsers(dest="action", metavar="ACTION")
    transcript.set_defaults(handler=lambda _: usage(transcript.prog, actions.choices))

    show = actions.add_parser(
        "show",
        help="print the conversation as plain text",
        description=(
            "Print each turn: the user's message, tool calls with their arguments and "
            "results, and the reply in its Markdown source."
        ),
    )
    show.add_argument("file", metavar="FILE")
    show.set_defaults(handler=_run_transcript_show)

    export = actions.add_parser(
        "export",
        help="convert to Markdown, HTML, a notebook or one JSON document",
        description=(
            "Write the conversation as Markdown (md: fenced code, tables, math, tool calls "
            "as JSON blocks), a sanitized HTML page (html), an nbformat v4 notebook of "
            "Markdown cells (ipynb) or one JSON document with every event (json)."
        ),
    )
    export.add_argument("file", metavar="FILE")
    export.add_argument(
        "--format",
        choices=["md", "html", "ipynb", "json"],
        help="output format (default: from the extension of OUT; md on standard output)",
    )
    export.add_argument(
        "-o", "--output", metavar="OUT", default="-", help="output file, - for stdout (default)"
    )
    export.set_defaults(handler=_run_transcript_export)


def _run_transcript_show(args: argparse.Namespace) -> int:
    transcript = load_transcript(args.file, "nbchat transcript show")
    if transcript is None:
        return EXIT_ERROR
    sys.stdout.write(transcript.to_text())
    sys.stdout.flush()  # a closed pipe fails here, inside main, not at exit
    return 0


def _run_transcript_export(args: argparse.Namespace) -> int:
    command = "nbchat transcript export"
    output: str = args.output
    kind: str | None = args.format or (
        "md" if output == "-" else _FORMATS.get(Path(output).suffix.lower())
    )
    if kind is None:
        print(
            f"{command}: cannot tell the format of {output!r}: "
            "give --format md, html, ipynb or json",
            file=sys.stderr,
        )
        return EXIT_ERROR
    transcript = load_transcript(args.file, command)
    if transcript is None:
        return EXIT_ERROR
    if kind == "md":
        text = transcript.to_markdown()
    elif kind == "html":
        text = transcript.to_html()
    elif kind == "json":
        text = transcript.to_json() + "\n"
    else:
        import nbformat  # a dependency: only this export needs it, so import it late

        text = nbformat.writes(transcript.to_notebook())  # type: ignore[no-untyped-call]
    if output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()  # a closed pipe fails here, inside main, not at exit
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"{command}: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0
