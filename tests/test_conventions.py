"""The project's own documentation keeps up with the code: docs/conventions.md names every
parameter (with its default) and every dataset variable, docs/architecture.md every module, and
nothing in the repository points to the conventions page's former, external name."""

from __future__ import annotations

import re
import subprocess

import pytest

from qbcat import io
from qbcat.params import PARAMETERS, validate

from conftest import REPO

CONVENTIONS = REPO / "docs" / "conventions.md"
ARCHITECTURE = REPO / "docs" / "architecture.md"
OLD_NAME = re.compile(r"\b" + "SP" + "EC" + r"\b")  # spelt apart so that this file does not match


def named(text: str) -> set[str]:
    """Every name written as code (`name`) in a Markdown text."""
    return set(re.findall(r"`([^`\s]+)`", text))


def test_the_conventions_page_names_every_parameter_and_variable():
    names = named(CONVENTIONS.read_text())
    for what, defined in [("parameters", PARAMETERS), ("point-dataset variables", io.VARIABLES),
                          ("sweep-dataset variables", io.AGGREGATE_VARIABLES)]:
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
    modules = {p.stem for p in (REPO / "src" / "qbcat").glob("*.py") if p.stem != "__init__"}
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
