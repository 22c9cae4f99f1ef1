"""The project's own documentation keeps up with the code: docs/conventions.md names every
parameter (with its default) and every dataset variable, docs/architecture.md every module, and
nothing in the repository points to the conventions page's former, external name."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

from qbcat.data import datasets
from qbcat.engine.params import PARAMETERS, validate

from conftest import REPO

CONVENTIONS = REPO / "docs" / "conventions.md"
ARCHITECTURE = REPO / "docs" / "architecture.md"
OLD_NAME = re.compile(r"\b" + "SP" + "EC" + r"\b")  # spelt apart so that this file does not match


def named(text: str) -> set[str]:
    """Every name written as code (`name`) in a Markdown text."""
    return set(re.findall(r"`([^`\s]+)`", text))


def test_the_conventions_page_names_every_parameter_and_variable():
    names = named(CONVENTIONS.read_text())
    for what, defined in [("parameters", PARAMETERS), ("point-dataset variables", datasets.VARIABLES),
                          ("sweep-dataset variables", datasets.AGGREGATE_VARIABLES)]:
        missing = sorted(set(defined) - names)
        assert not missing, f"{what} missing from docs/conventions.md: {missing}"


def test_the_parameter_table_has_the_code_defaults():
    rows = {}
    for line in CONVENTIONS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].strip("`") in PARAMETERS and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[2].strip("`")
    assert set(rows) == set(PARAMETERS), "the parameter table must have one row per parameter"
    for name, default in rows.items():
        assert validate({name: default})[name] == PARAMETERS[name].default, name


def test_the_architecture_note_names_every_module():
    names = named(ARCHITECTURE.read_text())
    modules = {p.stem for p in (REPO / "src" / "qbcat").rglob("*.py") if p.stem != "__init__"}
    layers = {p.name for p in (REPO / "src" / "qbcat").iterdir() if (p / "__init__.py").is_file()}
    modules |= layers
    missing = sorted(modules - names)
    assert not missing, f"modules missing from docs/architecture.md: {missing}"


def test_no_tracked_file_refers_to_the_former_conventions_file():
    try:
        files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                               check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    offenders = []
    for name in files:
        try:
            text = (REPO / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the work tree
        offenders += [f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1) if OLD_NAME.search(line)]
    assert not offenders, f"refer to docs/conventions.md instead: {offenders}"


#: What each layer of the package may import (docs/architecture.md, "Who owns what"): a layer
#: never imports one after it, and only the workflow glue and the command reach into the
#: workflow's orchestration (configuration, batches, plan, status, profile).
ALLOWED_IMPORTS = {
    "engine": {"engine"},
    "data": {"engine", "data", "workflow.study"},
    "science": {"engine", "data", "science", "workflow.study"},
    "figures": {"engine", "data", "science", "figures"},
    "workflow": {"engine", "workflow", "data", "science"},
}


def qbcat_imports(path: Path, layer: str | None) -> set[str]:
    """Every qbcat module ``path`` imports, also inside functions, as "layer.module" (or a top
    module name)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0 and (node.module or "").startswith("qbcat"):
            parts = node.module.split(".")[1:]
        elif node.level == 1:
            parts = ([layer] if layer else []) + (node.module.split(".") if node.module else [])
        elif node.level == 2:
            parts = node.module.split(".") if node.module else []
        else:
            continue
        if len(parts) == 1 and parts[0] in ALLOWED_IMPORTS:  # from qbcat.layer import module
            parts += [alias.name for alias in node.names][:1]
        found.add(".".join(parts[:2]) if parts else "")
    return found


def layer_offenders(root: Path) -> list[str]:
    """Imports under ``root`` (a copy of src/qbcat) that break :data:`ALLOWED_IMPORTS`."""
    offenders = []
    for layer, allowed in ALLOWED_IMPORTS.items():
        for path in sorted((root / layer).glob("*.py")):
            for target in qbcat_imports(path, layer):
                top = target.split(".")[0]
                if top == "cli" or (top in ALLOWED_IMPORTS and top not in allowed and target not in allowed):
                    offenders.append(f"{layer}/{path.name} imports {target}")
    return offenders


def test_each_layer_imports_only_the_layers_the_architecture_note_allows():
    assert layer_offenders(REPO / "src" / "qbcat") == []


def test_the_layer_check_catches_a_forbidden_import(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "engine").mkdir()
    (tmp_path / "data" / "bad.py").write_text("def f():\n    from ..workflow.batches import run_batch\n")
    (tmp_path / "data" / "good.py").write_text("from ..workflow.study import CASES\nfrom .datasets import x\n")
    (tmp_path / "engine" / "bad.py").write_text("from qbcat.science import analysis\n")
    assert sorted(layer_offenders(tmp_path)) == ["data/bad.py imports workflow.batches",
                                                 "engine/bad.py imports science.analysis"]
