"""Transcript: a recorded session loaded back, saved, and exported.

The exports are :mod:`nbchat.render`'s, the one exporter the widget and
``%chat`` use too, over the turns :func:`~nbchat.transcript.turns.build_turns`
rebuilds from the lines: a transcript shown in a notebook looks like the panel
it was recorded from and is exactly as safe.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from ..exceptions import TranscriptError
from ..redact import redact_pieces, redact_text, redact_url
from ..turn import Turn
from .format import (
    TRANSCRIPT_VERSION,
    TranscriptLine,
    gc_paused,
    header_line,
    line_list,
    parse_header_data,
    parse_lines,
)
from .turns import build_turns

if TYPE_CHECKING:
    from collections.abc import Iterator

    from nbformat import NotebookNode

__all__ = ["Transcript"]


@dataclass(repr=False)
class Transcript:
    """A recorded session: its lines in order, and views built from them.

    ``turns`` and the exports are computed from ``events`` on each call (one
    linear pass), so editing ``events`` is always reflected.
    """

    events: list[TranscriptLine] = field(default_factory=list)
    """Every line after the header, in the order recorded."""
    url: str | None = None
    """The server address, as redacted when it was recorded."""
    created: str | None = None
    """When recording started, ISO 8601."""

    # Reading

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Transcript:
        """Read a transcript file, skipping torn or corrupt lines with a warning."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise TranscriptError(f"transcript {path} does not exist: check the path") from None
        except OSError as exc:
            raise TranscriptError(
                f"cannot read transcript {path} ({exc.strerror or exc}): check its permissions"
            ) from exc
        header, events = parse_lines(data, str(path))
        return cls(events, url=header.url, created=header.created)

    @classmethod
    def loads(cls, text: str | bytes) -> Transcript:
        """Read a transcript from its text, like :meth:`load`."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        header, events = parse_lines(data, "<string>")
        return cls(events, url=header.url, created=header.created)

    @classmethod
    def from_json(cls, text: str | bytes) -> Transcript:
        """Read the document :meth:`to_json` writes; any defect is a :class:`TranscriptError`."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TranscriptError(f"transcript JSON is not valid JSON ({exc})") from exc
        header = parse_header_data(data, "this JSON document")
        try:
            events = line_list.validate_python(data.get("events", []))
        except ValidationError as exc:
            raise TranscriptError(
                f"transcript JSON has malformed events ({exc.error_count()} errors): "
                "export it again with Transcript.to_json()"
            ) from exc
        return cls(events, url=header.url, created=header.created)

    # Writing

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the transcript as JSON Lines, atomically: readers see the old file or the new."""
        path = Path(path)
        folder = path.parent
        if not folder.is_dir():
            raise TranscriptError(
                f"cannot save to {path}: the folder {folder} does not exist; create it first"
            )
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as exc:
            raise TranscriptError(
                f"cannot save to {path} ({exc.strerror or exc}): choose a writable folder"
            ) from exc
        try:
            with os.fdopen(fd, "wb") as file:
                file.writelines(line.encode("utf-8") for line in self._lines())
                file.flush()
                os.fsync(file.fileno())
            # A new file keeps mkstemp's owner-only mode: a conversation is private.
            with contextlib.suppress(FileNotFoundError):
                os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise TranscriptError(
                f"cannot save to {path} ({exc.strerror or exc}): check free space and permissions"
            ) from exc

    def to_json(self) -> str:
        """One JSON document: the header's fields and ``events``, a list of line objects."""
        head = header_line(self.created, self.url).rstrip("\n")[:-1]
        events = ",".join(
            redact_text(event.model_dump_json()) for event in _replies_redacted(self.events)
        )
        return f'{head},"events":[{events}]}}'

    # Views

    @property
    def turns(self) -> list[Turn]:
        """Each user message with its answer, in the order they were sent."""
        return build_turns(self.events)

    def to_markdown(self) -> str:
        """A readable conversation; no text from the session can become raw HTML."""
        # markdown-it and nh3: loaded only when a transcript is shown
        from ..render.export import conversation_markdown, markdown_literal

        with gc_paused():
            parts = ["# nbchat transcript"]
            about = self._about()
            if about:
                about = about[:1].upper() + about[1:]
                parts.append(f"*{markdown_literal(about, one_line=True)}*")
            body = conversation_markdown(self.turns)
            return "\n\n".join(parts) + "\n\n" + (body or "*(no messages)*\n")

    def to_html(self) -> str:
        """A standalone HTML page: the conversation as the panel shows it, sanitized and styled."""
        import html

        from .. import render

        about = self._about()
        title = f"nbchat transcript, {about}" if about else "nbchat transcript"
        with gc_paused():
            body = render.conversation_html(self.turns, title=title)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(redact_text(title))}</title>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n"
        )

    def to_notebook(self) -> NotebookNode:
        """An nbformat v4 notebook: one Markdown cell per turn, as the widget's fallback."""
        import nbformat  # a dependency, imported only when a notebook is wanted (it is slow)

        from .. import render

        with gc_paused():
            turns = self.turns
            # Built as plain data and converted once: nbformat.v4.new_markdown_cell validates
            # each cell on its own, several times slower for a long session.
            cells = [
                {
                    "cell_type": "markdown",
                    "id": f"turn-{number}",  # stable ids: exporting twice gives the same file
                    "metadata": {},
                    "source": render.turn_markdown(turn),
                }
                for number, turn in enumerate(turns, 1)
            ]
            metadata = {
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python"},
                "nbchat": {
                    "transcript_version": TRANSCRIPT_VERSION,
                    "created": self.created,
                    "url": self.url,
                    "turns": len(turns),
                },
            }
            notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": metadata, "cells": cells}
            node: NotebookNode = nbformat.from_dict(notebook)  # type: ignore[no-untyped-call]
            return node

    def to_text(self) -> str:
        """The conversation as plain text, as ``nbchat transcript show`` prints it.

        Replies stay in their Markdown source (a terminal renders no Markdown);
        control characters are removed, so printing a transcript cannot drive the
        terminal (recolour, hide or rewrite lines).
        """
        from .. import render

        about = self._about()
        title = f"nbchat transcript, {about}" if about else "nbchat transcript"
        head = "".join(ch for ch in title if ch.isprintable())
        with gc_paused():
            body = render.conversation_text(self.turns)
        return f"{head}\n\n" + (body or "(no messages)\n")

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:
        from .. import render

        about = self._about()
        with gc_paused():
            turns = self.turns
            return render.conversation_html(turns, title=f"Transcript, {about}" if about else "")

    def __repr__(self) -> str:
        # Cheap: a transcript may hold 100,000 events.
        return f"Transcript({len(self.events)} events, url={self.url!r}, created={self.created!r})"

    # Private methods

    def _about(self) -> str:
        """``"recorded <when> from <url>"`` as far as known, else ``""``."""
        about = f" {self.created}" if self.created else ""
        if self.url:
            about += f" from {redact_url(self.url)}"
        return f"recorded{about}" if about else ""

    def _lines(self) -> Iterator[str]:
        yield header_line(self.created, self.url)
        for event in _replies_redacted(self.events):
            # Redacted again: a transcript written before redaction covered every line
            # (or edited by hand) loses its secrets when saved.
            yield redact_text(event.model_dump_json()) + "\n"


def _replies_redacted(events: list[TranscriptLine]) -> list[TranscriptLine]:
    """``events`` with each reply's run of token lines redacted as the text they make.

    What the recorder does as it writes (see :mod:`~nbchat.transcript.recorder`),
    done again for a transcript recorded before it did, or edited: a secret split
    across two token lines is caught. A run of a reply ends at its next line
    other than a token or an ack (and at a ``client`` line naming it). Lines keep
    their place and times; only token texts change. Linear.
    """
    out = list(events)
    runs: dict[str, list[int]] = {}

    def close(reply_to: object) -> None:
        run = runs.pop(reply_to, None) if isinstance(reply_to, str) else None
        if not run:
            return
        texts = [out[index].data["response"] for index in run]
        for index, old, new in zip(run, texts, redact_pieces(texts), strict=True):
            if new != old:
                line = out[index]
                out[index] = line.model_copy(update={"data": {**line.data, "response": new}})

    for index, line in enumerate(events):
        reply_to = line.data.get("reply_to")
        if line.dir == "in":
            kind = line.data.get("type")
            if kind == "token" and isinstance(line.data.get("response"), str):
                if isinstance(reply_to, str):
                    runs.setdefault(reply_to, []).append(index)
            elif kind != "ack":
                close(reply_to)
        elif line.dir == "client":
            close(reply_to)
    for reply_to in list(runs):
        close(reply_to)
    return out
