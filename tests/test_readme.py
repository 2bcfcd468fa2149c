"""The README reads the same on PyPI as in the repository: no relative link or image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_starts_with_the_two_commands() -> None:
    """The first code block holds exactly ``make demo`` and ``make test``."""
    block = README.read_text(encoding="utf-8").split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    assert commands == ["make demo", "make test"]


def test_no_relative_link_or_image() -> None:
    """PyPI resolves no relative path: every Markdown link or image target is absolute."""
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)", README.read_text(encoding="utf-8"))
    assert [t for t in targets if not t.startswith(("https://", "http://", "#"))] == []
