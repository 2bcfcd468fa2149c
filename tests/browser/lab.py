"""A JupyterLab server for the browser tests, and the notebooks it serves.

The server runs from the project's environment (the ``jupyter-lab`` next to
``sys.executable``), so its kernels import this checkout of nbchat. It listens on
loopback, on a port the OS picks, behind a random token, with every Jupyter
directory it writes to in a temporary folder: a test run neither reads nor
changes the user's Jupyter configuration, workspaces or running servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

from tests.helpers import TIMEOUT

__all__ = ["CHROMIUM_ARGS", "JupyterLab", "find_chromium"]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
"""Flags for Debian's Chromium: no sandbox (we run as root in CI), and none of the
background services whose connections this machine's closed network refuses."""

DEBIAN_CHROMIUM = "/usr/bin/chromium"

STARTUP_TIMEOUT = 6 * TIMEOUT
"""Seconds JupyterLab gets to answer /api/status: a cold start on 2 cores takes about 3."""

NOTIFICATION_SETTINGS = {"fetchNews": "false", "checkForUpdates": False}
"""No "official Jupyter news" prompt over the notebook, and no update check off the machine."""


def find_chromium() -> str | None:
    """Debian's ``chromium``: Playwright's own browser download cannot be reached from here."""
    found = shutil.which("chromium")
    if found:
        return found
    return DEBIAN_CHROMIUM if os.access(DEBIAN_CHROMIUM, os.X_OK) else None


class JupyterLab:
    """One JupyterLab process serving ``base / "root"``; :meth:`stop` ends it and its kernels."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        """The server's root_dir: the notebooks under test are written here."""
        self.token = secrets.token_hex(16)
        self.port = 0
        """Read from the server's info file once it runs (it binds port 0)."""
        self.log_path = base / "jupyter-lab.log"
        self._process: subprocess.Popen[bytes] | None = None

    # Lifecycle

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Start the server and return once ``/api/status`` answers with our token."""
        runtime = self.base / "runtime"
        settings = self.base / "settings"
        for folder in (self.root, runtime, settings, self.base / "config", self.base / "ipython"):
            folder.mkdir(parents=True, exist_ok=True)
        notification = settings / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True, exist_ok=True)
        (notification / "notification.jupyterlab-settings").write_text(
            json.dumps(NOTIFICATION_SETTINGS)
        )
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(runtime),
            "JUPYTER_CONFIG_DIR": str(self.base / "config"),
            "IPYTHONDIR": str(self.base / "ipython"),
        }
        env.pop("NBCHAT_WS_URL", None)  # ChatWidget() must start its built-in server
        command = [
            str(Path(sys.executable).parent / "jupyter-lab"),
            "--no-browser",
            "--ServerApp.open_browser=False",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port=0",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={self.base / 'workspaces'}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # CI containers run as root
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root
            )
        info = runtime / f"jpserver-{self._process.pid}.json"
        deadline = time.monotonic() + timeout
        while not self._answers(info):
            if self._process.poll() is not None:
                raise RuntimeError(f"jupyter-lab exited early:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"jupyter-lab did not answer in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)  # polling a condition (the server answering), with a deadline

    def stop(self, timeout: float = 2 * TIMEOUT) -> None:
        """Shut the kernels down, then the server (terminate, and kill if it hangs)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(OSError):  # the server is going anyway
            self.shutdown_kernels()
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    # Public methods

    def url(self, path: str = "lab") -> str:
        """A browser URL on this server, carrying the token."""
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}?token={self.token}"

    def api(self, method: str, path: str) -> Any:
        """Call the REST API with the token; the decoded JSON answer, or None if empty."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        """End every session and its kernel: each test starts its own, and 2 cores are few."""
        for session in self.api("GET", "api/sessions"):
            self.api("DELETE", f"api/sessions/{session['id']}")

    def write_notebook(self, name: str, sources: Sequence[str]) -> str:
        """Write a notebook of code cells into the root; return its name."""
        notebook = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
        notebook.cells = [nbformat.v4.new_code_cell(s) for s in sources]  # type: ignore[no-untyped-call]
        notebook.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nbformat.write(notebook, self.root / name)  # type: ignore[no-untyped-call]
        return name

    def copy_notebook(self, source: Path, name: str | None = None) -> str:
        """Copy a notebook into the root without its outputs and saved widget state.

        Saved widget views would render before any cell runs: the page must only
        show what this run produces.
        """
        notebook = nbformat.read(source, as_version=4)  # type: ignore[no-untyped-call]
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
        notebook.metadata.pop("widgets", None)
        name = name or source.name
        nbformat.write(notebook, self.root / name)  # type: ignore[no-untyped-call]
        return name

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # Private methods

    def _answers(self, info: Path) -> bool:
        if not self.port:
            if not info.exists():
                return False
            try:
                self.port = int(json.loads(info.read_text())["port"])
            except (ValueError, KeyError):
                return False  # written but not yet complete
        try:
            self.api("GET", "api/status")
        except (urllib.error.URLError, OSError):
            return False
        return True
