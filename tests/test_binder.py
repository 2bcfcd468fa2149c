"""The Binder configuration installs everything the notebooks import."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def notebook_modules(path: Path) -> set[str]:
    """Top-level modules a notebook imports or runs (``-m``), magics (``%load_ext x``) included."""
    modules: set[str] = set()
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code" or cell.source.lstrip().startswith("%%"):
            continue  # a cell magic's body is not Python
        code_lines = []
        for line in cell.source.splitlines():
            if match := re.match(r"\s*%load_ext\s+(\w+)", line):
                modules.add(match.group(1))
            # Modules run as programs: [sys.executable, "-m", "pytest", ...]
            modules.update(re.findall(r"""["']-m["'],\s*["'](\w+)["']""", line))
            if "--nbval" in line:  # a pytest plugin, named by its flag
                modules.add("nbval")
            code_lines.append("" if line.lstrip().startswith(("%", "!")) else line)
        tree = ast.parse("\n".join(code_lines))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return modules


def binder_distributions() -> set[str]:
    """Distributions Binder installs: binder/requirements.txt, then nbchat and its dependencies."""
    names = {"nbchat"}
    for line in (ROOT / "binder" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(Requirement(line).name.lower())
    for spec in requires("nbchat") or []:
        requirement = Requirement(spec)
        if requirement.marker is None:  # extras are not installed on Binder
            names.add(requirement.name.lower())
    return {name.replace("_", "-") for name in names}


def test_postbuild_installs_this_checkout() -> None:
    """postBuild installs nbchat from the repository root, where repo2docker runs it."""
    script = (ROOT / "binder" / "postBuild").read_text()
    assert re.search(r"pip install\b.*\s\.\s*$", script, re.MULTILINE)
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_import_is_installed_by_binder(path: Path) -> None:
    """Each module a notebook imports is in the standard library or installed by Binder."""
    providers = packages_distributions()
    installed = binder_distributions()
    missing = []
    for module in sorted(notebook_modules(path)):
        if module in sys.stdlib_module_names:
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if module == "nbchat":
            dists.add("nbchat")
        if not dists & installed:
            missing.append(f"{module} (from {sorted(dists) or 'nowhere'})")
    assert not missing, f"{path.name} imports what Binder does not install: {missing}"


def test_notebooks_declare_a_kernelspec() -> None:
    """Every notebook names its kernel, so nbval and Binder start the right one."""
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        assert nbformat.read(path, as_version=4).metadata["kernelspec"]["name"] == "python3"
