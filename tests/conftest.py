"""Shared test helpers: a throw-away copy of the workflow, and running Snakemake in it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

#: What a workspace needs from the repository to run the workflow (qbcat itself is installed).
WORKFLOW_FILES = ["Snakefile", "workflow", "scripts", "envs", "profiles", "config/schema.yaml"]


def make_workspace(path: Path, config: dict | str | None = None) -> Path:
    """A copy of the workflow in ``path`` with ``config`` as config/config.yaml (a dict, YAML
    text, or None for the repository's own config). Nothing is written into the repository."""
    path.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src, dst = REPO / name, path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    write_config(path, config if config is not None else (REPO / "config" / "config.yaml").read_text())
    return path


def write_config(workspace: Path, config: dict | str) -> None:
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    (workspace / "config" / "config.yaml").write_text(text)


def read_config(workspace: Path) -> dict:
    return yaml.safe_load((workspace / "config" / "config.yaml").read_text())


def snakemake(workspace: Path, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m snakemake ARGS`` in ``workspace`` (its profiles/default applies, as for
    a user, but with ``--cores 2`` unless ARGS say otherwise: the number of batches depends on
    the cores); stdout and stderr together in ``.stdout``."""
    if "--cores" not in args and "--lint" not in args:
        args = ("--cores", "2", *args)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc


NOTHING_TO_DO = "Nothing to be done"


def job_counts(output: str) -> dict[str, int]:
    """Rule -> number of jobs, from the first 'Job stats' table Snakemake prints ({} if none)."""
    if NOTHING_TO_DO in output:
        return {}
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except StopIteration:
        raise AssertionError(f"no job stats table in:\n{output[-3000:]}") from None
    counts = {}
    for line in lines[start + 3:]:  # skip "job count" and the dashes
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def simulation_jobs(counts: dict[str, int]) -> int:
    return sum(n for rule, n in counts.items() if rule.startswith("simulate_batch_"))


def planned_points(output: str) -> list[str]:
    """Point ids a dry run would simulate: the outputs of its simulate_batch_* jobs."""
    ids = []
    for block in re.split(r"\n(?=(?:local)?rule )", output):
        if re.match(r"(?:local)?rule simulate_batch_\w+:", block):
            match = re.search(r"^\s+output: (.*)$", block, re.M)
            ids += [Path(f.strip()).stem for f in match.group(1).split(",")]
    return sorted(set(ids))


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
