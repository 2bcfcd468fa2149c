"""The Binder configuration installs everything the notebooks import.

Everything here is read from the repository (binder/, pyproject.toml, the
notebooks), never from the environment running the tests: what happens to be
installed locally says nothing about what Binder will install.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.unit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

DISTRIBUTION_OF = {
    "IPython": "ipython",
    "markdown_it": "markdown-it-py",
    "nbchat": "jupyter-nbchat",  # "nbchat" on PyPI is another project
    "yaml": "pyyaml",
}
"""Importable modules whose distribution is not named after them. Any other module must
be provided by the distribution of its own name (``nest_asyncio2`` by ``nest-asyncio2``)."""


def notebook_modules(path: Path) -> set[str]:
    """Top-level modules a notebook imports or runs (``-m``), magics (``%load_ext x``) included."""
    modules: set[str] = set()
    for cell in read_notebook(path)["cells"]:
        source = "".join(cell["source"])  # nbformat 4 keeps a list of lines, or one string
        if cell["cell_type"] != "code" or source.lstrip().startswith("%%"):
            continue  # a cell magic's body is not Python
        code_lines = []
        for line in source.splitlines():
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


def read_notebook(path: Path) -> dict[str, Any]:
    """A notebook file as the JSON it is (nbformat 4)."""
    notebook: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4, f"{path.name}: nbformat {notebook['nbformat']}"
    return notebook


def pyproject() -> dict[str, Any]:
    """The project's pyproject.toml."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        data: dict[str, Any] = tomllib.load(file)
    return data


def binder_requirements() -> list[Requirement]:
    """The requirements in binder/requirements.txt, comments and blank lines left out."""
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in (line.split("#")[0].strip() for line in lines) if line]


def binder_distributions() -> set[str]:
    """Distributions Binder installs: binder/requirements.txt, then this one and its dependencies.

    postBuild runs ``pip install .``: nbchat's own dependencies, as pyproject.toml
    declares them, without extras.
    """
    names = {pyproject()["project"]["name"]} | {r.name for r in binder_requirements()}
    for spec in pyproject()["project"]["dependencies"]:
        requirement = Requirement(spec)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.add(requirement.name)
    return {canonicalize_name(name) for name in names}


def distribution_of(module: str) -> str:
    """The distribution expected to provide the top-level ``module``."""
    return canonicalize_name(DISTRIBUTION_OF.get(module, module))


def missing_from_binder(modules: set[str], installed: set[str]) -> list[str]:
    """The modules of ``modules`` neither in the standard library nor installed by Binder."""
    return [
        f"{module} (distribution {distribution_of(module)})"
        for module in sorted(modules)
        if module not in sys.stdlib_module_names and distribution_of(module) not in installed
    ]


def test_postbuild_installs_this_checkout() -> None:
    """postBuild installs nbchat from the repository root, where repo2docker runs it."""
    script = (ROOT / "binder" / "postBuild").read_text()
    assert re.search(r"pip install\b.*\s\.\s*$", script, re.MULTILINE)
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_import_is_installed_by_binder(path: Path) -> None:
    """Each module a notebook imports is in the standard library or installed by Binder."""
    missing = missing_from_binder(notebook_modules(path), binder_distributions())
    assert not missing, f"{path.name} imports what Binder does not install: {missing}"


def test_the_check_sees_a_module_binder_lacks() -> None:
    """A notebook importing something Binder does not install is caught, by distribution name."""
    installed = binder_distributions()
    assert missing_from_binder({"polars", "json", "nbformat"}, installed) == [
        "polars (distribution polars)"
    ]
    assert missing_from_binder({"IPython"}, {"jupyterlab"}) == ["IPython (distribution ipython)"]
    assert missing_from_binder({"nest_asyncio2"}, installed) == []  # an nbchat dependency


def test_binder_asks_for_the_versions_the_project_declares() -> None:
    """A package Binder and pyproject.toml both name is asked for with the same versions."""
    project = pyproject()["project"]
    declared: dict[str, str] = {}
    extras = project["optional-dependencies"].values()
    for spec in itertools.chain(project["dependencies"], *extras):
        requirement = Requirement(spec)
        declared[canonicalize_name(requirement.name)] = str(requirement.specifier)
    disagree = [
        f"{r.name}{r.specifier} (pyproject.toml: {declared[canonicalize_name(r.name)]})"
        for r in binder_requirements()
        if canonicalize_name(r.name) in declared
        and str(r.specifier) != declared[canonicalize_name(r.name)]
    ]
    assert not disagree, f"binder/requirements.txt disagrees with pyproject.toml: {disagree}"


def test_notebooks_import_nbchat_from_the_distribution_binder_installs() -> None:
    """Binder's ``pip install .`` brings the module ``nbchat``: the check knows its distribution."""
    assert distribution_of("nbchat") == canonicalize_name(pyproject()["project"]["name"])
    assert missing_from_binder({"nbchat"}, binder_distributions()) == []


def test_notebooks_declare_a_kernelspec() -> None:
    """Every notebook names its kernel, so nbval and Binder start the right one."""
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        assert read_notebook(path)["metadata"]["kernelspec"]["name"] == "python3"
