"""``nbchat demo``: JupyterLab on the quickstart notebook, with the built-in backend."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from .common import EXIT_ERROR, Parser

__all__ = ["add_demo"]

# nbchat demo


def add_demo(subcommands: argparse._SubParsersAction[Parser]) -> None:
    demo = subcommands.add_parser(
        "demo",
        help="open JupyterLab on the quickstart notebook (built-in backend)",
        description=(
            "Start JupyterLab on loopback with NOTEBOOK open; the notebook's ChatWidget "
            "starts nbchat's built-in backend, so nothing else needs to run."
        ),
    )
    demo.add_argument("notebook", nargs="?", default="notebooks/quickstart.ipynb")
    demo.add_argument("--port", type=int, default=8888)
    demo.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    demo.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    if not os.path.exists(args.notebook):
        print(
            f"nbchat demo: no notebook at {args.notebook}: run it from the repository",
            file=sys.stderr,
        )
        return EXIT_ERROR
    jupyter = shutil.which("jupyter-lab", path=os.path.dirname(sys.executable)) or shutil.which(
        "jupyter-lab"
    )
    if jupyter is None:
        print(
            "nbchat demo: JupyterLab is not installed: pip install 'nbchat[lab]'", file=sys.stderr
        )
        return EXIT_ERROR
    command = [jupyter, args.notebook, "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={args.port}"]
    if args.no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI machines run as root
    print(f"nbchat demo: starting JupyterLab on {args.notebook} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0
