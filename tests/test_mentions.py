"""@-mentions, pure: found only for names the namespace shares, described within bytes."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from nbchat.mentions import completions, context_for, mentioned, segments
from nbchat.namespace import describe

pytestmark = pytest.mark.unit

KEY = "sk-" + "a1B2" * 10


def namespace() -> dict[str, Any]:
    """A notebook's namespace: a DataFrame, a number, a secret, a private name, IPython's own."""
    return {
        "df": pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3.5, 19.0]}),
        "df2": [1, 2],
        "n": 3,
        "OPENAI_API_KEY": KEY,
        "_hidden": 1,
        "In": [""],
    }


def test_a_mention_is_an_at_sign_then_a_name_the_namespace_holds() -> None:
    """``@df`` and ``@n`` are mentions, each once and in order; unknown names are text."""
    text = "what columns does @df have, and @n? also @nope and @df again"
    assert mentioned(text, namespace()) == ["df", "n"]


def test_email_addresses_and_doubled_at_signs_are_not_mentions() -> None:
    """``ada@df`` (an address), ``x.y@df``, ``@@df`` and ``@_hidden``-like names stay text."""
    names = {"df", "example"}
    assert mentioned("write to ada@example.org or x.y@df, not @@df", names) == []
    assert mentioned("(@df)", names) == ["df"]
    assert mentioned("@df.columns", names) == ["df"]
    assert mentioned("@df2 is not @df", {"df"}) == ["df"]


def test_segments_mark_the_mentions_and_join_back_to_the_text() -> None:
    """A bubble's pieces: the mention of a known name marked, everything else plain."""
    text = "is @df like @nope? mail a@df.org"
    pieces = segments(text, {"df"})
    assert "".join(piece for piece, _ in pieces) == text
    assert [piece for piece, mention in pieces if mention] == ["@df"]
    assert segments("", {"df"}) == [("", False)]


def test_the_context_is_describe_variables_text_and_never_a_secret() -> None:
    """Each mention carries describe()'s text; a credential is named, its value never sent."""
    ns = namespace()
    items = context_for("compare @df with @OPENAI_API_KEY and @_hidden", ns)
    assert [item.mention for item in items] == ["df", "OPENAI_API_KEY"]
    assert items[0].value == describe(ns, "df")
    assert "city" in items[0].value and items[0].description == "the notebook variable df"
    assert KEY not in items[1].value and "credential" in items[1].value


def test_the_context_of_one_message_is_bounded_in_bytes() -> None:
    """Many large mentions together stay within the byte budget, cut on a character boundary."""
    ns = {f"v{i}": "é" * 5_000 for i in range(8)}
    text = " ".join(f"@v{i}" for i in range(8))
    items = context_for(text, ns, max_bytes=3_000)
    total = sum(len(item.value.encode()) for item in items)
    assert 0 < total <= 3_000 and items[-1].value.endswith("context is full)")
    assert len(items) < 8


def test_completions_offer_shared_names_by_prefix_with_their_types() -> None:
    """Typing ``@d`` offers df and df2 with types; private names and IPython's own never."""
    ns = namespace()
    assert completions(ns, "d") == [
        {"name": "df", "type": "pandas.DataFrame"},
        {"name": "df2", "type": "list"},
    ]
    assert [c["name"] for c in completions(ns, "")] == ["df", "df2", "n", "OPENAI_API_KEY"]
    assert completions(ns, "_") == [] and completions(ns, "I") == []
