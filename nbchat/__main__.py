"""``python -m nbchat`` is the ``nbchat`` command."""

from .cli import main

raise SystemExit(main())
