"""The panel's conversation area, paged: a new turn costs the same bytes at turn 500 as at 5."""

from __future__ import annotations

import ipywidgets as widgets

from .views import close_tree

__all__ = ["TurnLog"]


class TurnLog:
    """The conversation area: appending a turn costs the same however many came before.

    A box's children travel whole on every change, so one flat box of turns
    makes each new turn re-send every earlier one (quadratic traffic over a
    long conversation). Turns go instead into pages of at most ``page_size``;
    a full page gets the next page as its last child. Each append changes one
    page: at most ``page_size + 1`` ids on the wire, whatever the length.
    """

    def __init__(self, page_size: int = 16) -> None:
        self.page_size = page_size
        self.box = widgets.VBox()
        self.box.add_class("nbchat-log")
        self._pages: list[widgets.Box] = [self.box]
        """Every page, first to last: each one after the first is its predecessor's last child."""
        self._count = 0
        """Turns on the last page."""

    def clear(self) -> None:
        """Remove every turn and banner shown, closing their widgets."""
        children, self.box.children = self.box.children, ()
        for child in children:
            close_tree(child)
        self._pages = [self.box]
        self._count = 0

    def remove(self, child: widgets.Widget) -> None:
        """Take ``child`` (a banner that no longer holds) out of whichever page holds it."""
        for page in self._pages:
            if child in page.children:
                page.children = tuple(c for c in page.children if c is not child)
                if page is self._pages[-1]:
                    self._count -= 1
                close_tree(child)
                return

    def append(self, child: widgets.Widget) -> None:
        """Add ``child`` (a turn or a banner) after everything shown."""
        if self._count == self.page_size:
            page = widgets.VBox([child])
            page.add_class("nbchat-page")
            self._pages[-1].children += (page,)
            self._pages.append(page)
            self._count = 1
            return
        self._pages[-1].children += (child,)
        self._count += 1
