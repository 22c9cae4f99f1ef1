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

#: What a workspace needs from the repository to run the workflow (qbcat itself is installed);
#: ``slurm`` is the link to profiles/slurm that makes ``--profile slurm`` work in the root.
WORKFLOW_FILES = ["Snakefile", "workflow", "scripts", "envs", "profiles", "slurm", "config/schema.yaml"]


def make_workspace(path: Path, config: dict | str | None = None) -> Path:
    """A copy of the workflow in ``path`` with ``config`` as config/config.yaml (a dict, YAML
    text, or None for the repository's own config). Nothing is written into the repository."""
    path.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src, dst = REPO / name, path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():  # a link inside the repository stays a link (to the copy)
            dst.symlink_to(src.readlink())
        elif src.is_dir():
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


def planned_batches(workspace: Path, *args: str) -> dict[str, list[str]]:
    """Batch rule -> point ids that ``snakemake ARGS`` would simulate now, from
    ``snakemake --summary ARGS`` (the console of a run shows one line per batch job, not its
    files): the point files that a simulate_batch_* rule would make."""
    out = snakemake(workspace, "--summary", *args).stdout
    batches: dict[str, list[str]] = {}
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) >= 6 and fields[2].startswith("simulate_batch_") and fields[5] != "no update":
            batches.setdefault(fields[2], []).append(Path(fields[0]).stem)
    return {name: sorted(ids) for name, ids in batches.items()}


def planned_points(workspace: Path, *args: str) -> list[str]:
    """Point ids a run (``snakemake ARGS``) would simulate now (see :func:`planned_batches`)."""
    return sorted(p for ids in planned_batches(workspace, *args).values() for p in ids)


def started_batches(output: str) -> list[str]:
    """The batch jobs a run started, from their one-line console entries
    ("Job 3: simulate 2 points (g_scan: 2), ...; progress in logs/simulate/<batch>.log")."""
    return sorted(set(re.findall(r"^Job \d+: simulate .*; progress in logs/simulate/(simulate_batch_\w+)\.log$",
                                 output, re.M)))


def ran_batches(workspace: Path, output: str) -> dict[str, list[str]]:
    """Batch rule -> point ids of the batch jobs the run whose console is ``output`` started
    (the ids from its batch plan, .snakemake/qbcat/batch-plan.json, written when its jobs started)."""
    from qbcat.workflow.batches import read_batch_plan

    plan = read_batch_plan(workspace / ".snakemake" / "qbcat" / "batch-plan.json")
    started = started_batches(output)
    assert set(started) <= set(plan), f"batches {started} not in the run's plan {sorted(plan)}"
    return {name: sorted(plan[name]) for name in started}


def ran_points(workspace: Path, output: str) -> list[str]:
    """Point ids the run whose console is ``output`` simulated (see :func:`ran_batches`)."""
    return sorted(p for ids in ran_batches(workspace, output).values() for p in ids)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
