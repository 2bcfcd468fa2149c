"""``nbchat demo``: JupyterLab on a copy of the quickstart notebook, with the built-in backend.

The wheel ships the notebook as ``nbchat/data/quickstart.ipynb`` (hatchling copies
it from ``notebooks/quickstart.ipynb``, its one source, at build time); a checkout
or an editable install reads that source directly. The demo copies it into a
working directory it names, which is JupyterLab's root, and opens the copy there:
what the person saves stays beside it, never in the package or the repository's
``notebooks/``, which the test suite validates.

JupyterLab runs with ``nbchat/data/jupyter`` added to ``JUPYTER_CONFIG_PATH`` for
its process alone: its ``labconfig/default_setting_overrides.json`` turns off the
"Would you like to get notified about official Jupyter news?" question, which
covers the panel's Send and Stop buttons. It is a default, so a person's own
setting still wins, and nothing in their Jupyter configuration changes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path

from .common import EXIT_ERROR, Parser, port_number

__all__ = ["DEFAULT_DIRECTORY", "NOTEBOOK", "add_demo", "lab_command", "lab_environment"]

DEFAULT_DIRECTORY = "nbchat-demo"
"""Where the copy goes when no directory is given: a folder of the current directory."""

NOTEBOOK = "quickstart.ipynb"
"""The notebook the demo opens, by its file name in the working directory."""

_DATA = Path(__file__).resolve().parents[1] / "data"
"""``nbchat/data``: the shipped notebook and the demo's Jupyter settings (real files:
JupyterLab reads its settings from a directory)."""

_CHECKOUT_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / NOTEBOOK
"""The notebook's source, where a checkout (or an editable install of one) has it."""

# nbchat demo


def add_demo(subcommands: argparse._SubParsersAction[Parser]) -> None:
    demo = subcommands.add_parser(
        "demo",
        help="open JupyterLab on a copy of the quickstart notebook (built-in backend)",
        description=(
            f"Copy the quickstart notebook into DIRECTORY (created if missing; an existing "
            f"copy is kept) and start JupyterLab on loopback there, with {NOTEBOOK} open. "
            "The notebook's ChatWidget starts nbchat's built-in backend, so nothing else "
            "needs to run."
        ),
    )
    demo.add_argument(
        "directory",
        nargs="?",
        default=DEFAULT_DIRECTORY,
        metavar="DIRECTORY",
        help="working directory and JupyterLab's root (default: ./%(default)s)",
    )
    demo.add_argument(
        "--port",
        type=port_number,
        default=8888,
        help="port to try first, 0 for any (default: 8888)",
    )
    demo.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    demo.add_argument(
        "--reset",
        action="store_true",
        help=f"replace an existing {NOTEBOOK} in DIRECTORY with the original",
    )
    demo.set_defaults(handler=_run_demo)


def lab_command(jupyter: str, port: int, *, browser: bool = True) -> list[str]:
    """The ``jupyter-lab`` command line of the demo, run in its working directory.

    Its default URL is the notebook's own (``/lab/tree/quickstart.ipynb``): the
    URL JupyterLab prints, the browser it opens and ``/`` all land on the notebook,
    not on the Launcher.
    """
    command = [
        jupyter,
        "--ServerApp.root_dir=.",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--LabApp.default_url=/lab/tree/{NOTEBOOK}",
    ]
    if not browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI machines run as root
    return command


def lab_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) with the demo's Jupyter settings added.

    ``nbchat/data/jupyter`` goes after any ``JUPYTER_CONFIG_PATH`` already set,
    whose entries keep their priority.
    """
    env = dict(os.environ if environ is None else environ)
    config = str(_DATA / "jupyter")
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        filter(None, [env.get("JUPYTER_CONFIG_PATH"), config])
    )
    return env


def _original() -> Path | None:
    """The quickstart notebook as shipped: package data, else the checkout's source."""
    shipped = _DATA / NOTEBOOK
    if shipped.is_file():
        return shipped
    return _CHECKOUT_NOTEBOOK if _CHECKOUT_NOTEBOOK.is_file() else None


def _copy(original: Path, directory: Path, *, reset: bool) -> str:
    """Put the notebook in ``directory``; say what became of an existing copy (or "")."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / NOTEBOOK
    content = original.read_bytes()
    if not target.exists():
        target.write_bytes(content)
        return ""
    if target.read_bytes() == content:
        return ""
    if reset:
        target.write_bytes(content)
        return f"replaced {target}, which differed, with the original"
    return f"keeping your {target}, which differs from the original (--reset replaces it)"


def _run_demo(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    original = _original()
    if original is None:
        print(
            f"nbchat demo: {NOTEBOOK} is missing from this installation: "
            "reinstall it with pip install --force-reinstall 'jupyter-nbchat[lab]'",
            file=sys.stderr,
        )
        return EXIT_ERROR
    jupyter = shutil.which("jupyter-lab", path=os.path.dirname(sys.executable)) or shutil.which(
        "jupyter-lab"
    )
    if jupyter is None:
        print(
            "nbchat demo: JupyterLab is not installed: pip install 'jupyter-nbchat[lab]'",
            file=sys.stderr,
        )
        return EXIT_ERROR
    directory = Path(args.directory).expanduser().resolve()
    if directory.suffix == ".ipynb" or (directory.exists() and not directory.is_dir()):
        print(
            f"nbchat demo: {args.directory} is not a directory: name the folder to work in "
            f"(the demo copies {NOTEBOOK} there)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        note = _copy(original, directory, reset=args.reset)
    except OSError as exc:
        print(f"nbchat demo: cannot copy {NOTEBOOK} to {directory}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if note:
        print(f"nbchat demo: {note}", flush=True)
    print(
        f"nbchat demo: starting JupyterLab in {directory} on {NOTEBOOK} (Ctrl-C to stop)",
        flush=True,
    )
    command = lab_command(jupyter, args.port, browser=not args.no_browser)
    lab = subprocess.Popen(command, cwd=directory, env=lab_environment())
    # Stopped by SIGTERM (a process manager, kill), the demo stops JupyterLab as for Ctrl-C
    # rather than leave it running without a parent.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return lab.wait()
    except KeyboardInterrupt:
        # Ctrl-C: JupyterLab would ask "Shutdown this Jupyter server?" (if the terminal
        # sent it the signal too). SIGTERM stops it at once, kernels included.
        lab.terminate()
        with contextlib.suppress(KeyboardInterrupt):
            lab.wait()
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    """The demo's SIGTERM handler: stop as Ctrl-C does."""
    raise KeyboardInterrupt
