"""The notebook layer: the only part of nbchat that imports ipywidgets, anywidget or IPython.

``widget.py`` is ``ChatWidget``; ``views.py`` the turns on screen; ``input.py``
the input anywidget (``static/input.js``); ``static_view.py`` the conversation
a saved notebook keeps; ``magics.py`` ``%chat``.
"""

from __future__ import annotations

from .widget import ChatWidget, current_widget

__all__ = ["ChatWidget", "current_widget"]
