"""SLURM job arrays (`--slurm-array-jobs`) against one job per Snakemake job, on the test cluster.

snakemake-executor-plugin-slurm (>= 2.6) can submit the ready jobs of one rule as a SLURM job
array: one `sbatch --array` call instead of one `sbatch` per job. Measured side by side, in one
run, on the one-node cluster of tests/slurm (started in a temporary directory, stopped at the
end), each variant in a fresh temporary workspace:

1. **Toy**: one rule with N jobs (a shell command that writes one line), submitted as N jobs
   and as an array. This is what arrays are for; it gives the best case.
2. **qbcat**: a small study (2 sweeps, 8 points: 4 simulation batches and 2 aggregations)
   through profiles/slurm, with and without `--slurm-array-jobs all`.

For each run: wall time, `sbatch` calls and the seconds from the first to the last (each
`sbatch` is wrapped to log its time: the submission load on the scheduler), SLURM job records
(sacct), the CPU SLURM accounted to the jobs (TotalCPU: batch script + srun step, i.e. the
per-job start-up of Snakemake), and the CPU of the submitting Snakemake.

    flock /tmp/qbcat-bench.lock python benchmarks/bench_slurm_arrays.py            # N = 16 (~6 min)
    flock /tmp/qbcat-bench.lock python benchmarks/bench_slurm_arrays.py --toy-jobs 32
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_slurm import cpu_seconds, load, run  # noqa: E402
from test_slurm import cluster_env, set_account_and_partition  # noqa: E402

from conftest import job_counts, make_workspace, simulation_jobs  # noqa: E402

TOY_SNAKEFILE = """\
N = {n}


rule all:
    input:
        expand("out/{{i}}.txt", i=range(N)),
    localrule: True


rule work:
    output:
        "out/{{i}}.txt",
    log:
        "logs/{{i}}.log",
    resources:
        runtime=5,
        mem_mb=100,
    shell:
        "echo {{wildcards.i}} > {{output}} 2> {{log}}"
"""

STUDY = {
    "base": {"n_fock": 3, "t_max": 10.0, "n_t": 101},
    "sweeps": {"g_scan": {"axes": {"g": {"values": [0.1, 0.2, 0.3, 0.4]}}},
               "kappa": {"axes": {"kappa_1": {"values": [0.02, 0.1, 0.2]}}}},
    "batch_size": 2,
}

POLL = ("--slurm-init-seconds-before-status-checks", "4")


def sbatch_logger(directory: Path, env: dict) -> tuple[dict, Path]:
    """env with an `sbatch` first in PATH that appends its start time to a log, then runs the
    cluster's sbatch (the next one in PATH)."""
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "sbatch.log"
    real = shutil.which("sbatch", path=env["PATH"])
    wrapper = directory / "sbatch"
    wrapper.write_text(f'#!/bin/sh\ndate +%s.%N >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return {**env, "PATH": f"{directory}:{env['PATH']}"}, log


def accounted(run_id: str, env: dict) -> tuple[int, int, float]:
    """(SLURM job records, array parents, TotalCPU seconds) of one Snakemake run."""
    out = subprocess.run(["sacct", "-n", "-P", "--starttime", "2000-01-01", "--name", run_id,
                          "--format", "JobID,TotalCPU,State"],
                         env=env, capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line and "." not in line.split("|")[0]]
    bad = [r for r in rows if r[2] != "COMPLETED"]
    if bad:
        raise RuntimeError(f"jobs not COMPLETED: {bad}")
    parents = {r[0].split("_")[0] for r in rows if "_" in r[0]}
    return len(rows), len(parents), sum(cpu_seconds(r[1]) for r in rows)


def one_run(name: str, ws: Path, env: dict, cmd: list[str]) -> dict:
    env, log = sbatch_logger(ws / ".bench-bin", env)
    wall, cpu, out = run(cmd, ws, env)
    stamps = [float(x) for x in log.read_text().split()] if log.exists() else []
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    records, arrays, slurm_cpu = accounted(run_id, env)
    return {"name": name, "wall": wall, "submit_cpu": cpu, "sbatch": len(stamps),
            "span": (max(stamps) - min(stamps)) if stamps else 0.0, "records": records,
            "arrays": arrays, "slurm_cpu": slurm_cpu, "out": out, "load": load()}


def row(r: dict) -> str:
    return (f"| {r['name']} | {r['sbatch']} | {r['span']:.2f} | {r['records']} ({r['arrays']} array) | "
            f"{r['slurm_cpu']:.1f} | {r['submit_cpu']:.1f} | {r['wall']:.1f} | {r['load']} |")


def measure(root: Path, env: dict, n_toy: int) -> None:
    account, partition = env["SLURM_TEST_ACCOUNT"], env["SLURM_TEST_PARTITION"]
    snakemake = [sys.executable, "-m", "snakemake"]
    print(f"cluster: 1 node, {os.cpu_count()} CPUs; load {load()}")
    print("\n| run | sbatch calls | first to last sbatch (s) | SLURM job records | SLURM CPU (s) | "
          "submit-side CPU (s) | wall (s) | load after |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for arrays in (False, True):
        ws = root / f"toy-{'array' if arrays else 'jobs'}"
        ws.mkdir(parents=True)
        (ws / "Snakefile").write_text(TOY_SNAKEFILE.format(n=n_toy))
        cmd = [*snakemake, "--executor", "slurm", "--jobs", str(n_toy),
               "--default-resources", f"slurm_account={account}", f"slurm_partition={partition}",
               *POLL, *(["--slurm-array-jobs", "all"] if arrays else [])]
        r = one_run(f"toy, {n_toy} jobs{', array' if arrays else ''}", ws, env, cmd)
        print(row(r), flush=True)
    for arrays in (False, True):
        ws = make_workspace(root / f"qbcat-{'array' if arrays else 'jobs'}", STUDY)
        set_account_and_partition(ws, account, partition)
        cmd = [*snakemake, "--profile", "slurm", "--jobs", "4", *POLL,
               *(["--slurm-array-jobs", "all"] if arrays else [])]
        r = one_run(f"qbcat, {'`--slurm-array-jobs all`' if arrays else 'one job each'}", ws, env, cmd)
        counts = job_counts(r["out"])
        r["name"] += f" ({simulation_jobs(counts)} batches + {counts['aggregate_sweep']} aggregations)"
        print(row(r), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toy-jobs", type=int, default=16, help="jobs of the toy rule (default 16)")
    ap.add_argument("--cluster-dir", type=Path, help="directory of the test cluster (default: a temporary one)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-arrays-"))
    try:
        with cluster_env(args.cluster_dir or root / "cluster") as env:
            measure(root, env, args.toy_jobs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
