"""``nbchat demo [NAME]``: JupyterLab on a copy of an example notebook (default: the quickstart).

The wheel ships every example notebook in ``nbchat/data/notebooks/`` (hatchling
copies ``notebooks/``, their one source, at build time); a checkout or an
editable install reads that source directly. ``nbchat demo --list`` names them,
each with its title. The demo copies the one asked for into a
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

__all__ = [
    "DEFAULT_DIRECTORY",
    "NOTEBOOK",
    "add_demo",
    "lab_command",
    "lab_environment",
    "notebooks",
]

DEFAULT_DIRECTORY = "nbchat-demo"
"""Where the copy goes when no directory is given: a folder of the current directory."""

NOTEBOOK = "quickstart.ipynb"
"""The notebook the demo opens when none is named, by its file name."""

_DATA = Path(__file__).resolve().parents[1] / "data"
"""``nbchat/data``: the shipped notebooks (``notebooks/``) and the demo's Jupyter settings
(real files: JupyterLab reads its settings from a directory)."""

_CHECKOUT_NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
"""The notebooks' source, where a checkout (or an editable install of one) has it."""

# nbchat demo


def add_demo(subcommands: argparse._SubParsersAction[Parser]) -> None:
    demo = subcommands.add_parser(
        "demo",
        help="open JupyterLab on a copy of an example notebook (built-in backend)",
        description=(
            f"Copy the example notebook NAME (default: {NOTEBOOK}; --list names them all) "
            "into DIRECTORY (created if missing; an existing copy is kept) and start "
            "JupyterLab on loopback there, with it open. The notebook's ChatWidget starts "
            "nbchat's built-in backend, so nothing else needs to run."
        ),
    )
    demo.add_argument(
        "name",
        nargs="?",
        default=None,
        metavar="NAME",
        help=f"the example notebook, e.g. models or models.ipynb (default: {NOTEBOOK}); "
        "a single argument that names none is taken as DIRECTORY",
    )
    demo.add_argument(
        "directory",
        nargs="?",
        default=None,
        metavar="DIRECTORY",
        help=f"working directory and JupyterLab's root (default: ./{DEFAULT_DIRECTORY})",
    )
    demo.add_argument(
        "--list", action="store_true", help="list the example notebooks, one a line, and exit"
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


def notebooks() -> dict[str, Path]:
    """The example notebooks by file name: the wheel's package data, else the checkout's."""
    shipped = _DATA / "notebooks"
    folder = shipped if shipped.is_dir() else _CHECKOUT_NOTEBOOKS
    return {path.name: path for path in sorted(folder.glob("*.ipynb"))}


def describe(path: Path) -> str:
    """A notebook's title: its first Markdown heading, without the ``#`` (or "")."""
    import json

    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return ""
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        for line in text.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return ""


def lab_command(
    jupyter: str, port: int, *, browser: bool = True, notebook: str = NOTEBOOK
) -> list[str]:
    """The ``jupyter-lab`` command line of the demo, run in its working directory.

    Its default URL is the notebook's own (e.g. ``/lab/tree/quickstart.ipynb``): the
    URL JupyterLab prints, the browser it opens and ``/`` all land on the notebook,
    not on the Launcher.
    """
    command = [
        jupyter,
        "--ServerApp.root_dir=.",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--LabApp.default_url=/lab/tree/{notebook}",
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


def _original(name: str = NOTEBOOK) -> Path | None:
    """The notebook ``name`` as shipped: package data, else the checkout's source."""
    return notebooks().get(name)


def _notebook_name(name: str) -> str:
    """``models`` and ``models.ipynb`` both name ``models.ipynb``."""
    return name if name.endswith(".ipynb") else f"{name}.ipynb"


def _copy(original: Path, directory: Path, *, reset: bool) -> str:
    """Put the notebook in ``directory``; say what became of an existing copy (or "")."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / original.name
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

    available = notebooks()
    if args.list:
        names = {name.removesuffix(".ipynb"): path for name, path in available.items()}
        width = max(map(len, names), default=0)
        for short, path in names.items():
            print(f"{short:<{width}}  {describe(path)}".rstrip())
        return 0
    name, directory_arg = args.name, args.directory
    if name is not None and directory_arg is None and _notebook_name(name) not in available:
        name, directory_arg = None, name  # one argument naming no example: DIRECTORY
    notebook = _notebook_name(name) if name is not None else NOTEBOOK
    if directory_arg is None:
        directory_arg = DEFAULT_DIRECTORY
    original = available.get(notebook)
    if original is None and name is not None:
        listed = ", ".join(n.removesuffix(".ipynb") for n in available) or "none"
        print(
            f"nbchat demo: no example notebook {name!r}: the examples are {listed} "
            "(nbchat demo --list)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if original is None:
        print(
            f"nbchat demo: {notebook} is missing from this installation: "
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
    directory = Path(directory_arg).expanduser().resolve()
    if directory.suffix == ".ipynb" or (directory.exists() and not directory.is_dir()):
        print(
            f"nbchat demo: {directory_arg} is not a directory: name the folder to work in "
            f"(the demo copies {notebook} there)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        note = _copy(original, directory, reset=args.reset)
    except OSError as exc:
        print(f"nbchat demo: cannot copy {notebook} to {directory}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if note:
        print(f"nbchat demo: {note}", flush=True)
    print(
        f"nbchat demo: starting JupyterLab in {directory} on {notebook} (Ctrl-C to stop)",
        flush=True,
    )
    command = lab_command(jupyter, args.port, browser=not args.no_browser, notebook=notebook)
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
