"""What a SLURM job costs the workflow, measured side by side in one run on the test cluster.

The 21 x 21 map of bench_workflow.py (441 catalyzed points + 1 shared baseline, n_fock 4,
t_max 300, n_t 3001, batch_size 250), cold, run through profiles/slurm with several values of
`jobs`; on a cluster, `jobs` is also the smallest number of simulation batches (common.smk,
qbcat.workflow.batches.partition), so it sets how many SLURM jobs the map becomes. Alongside, the same map
run locally (`snakemake --cores 2`, profiles/default) as the reference.

For each run: wall time of `snakemake` (the submit side), the SLURM jobs it submitted, and the
CPU time SLURM accounted to them (sacct TotalCPU: the job's batch script, the srun step with
its own Snakemake, the Python imports and the simulation). On this one-node, 2-core cluster the
jobs queue behind each other, so the wall times here are NOT what a large cluster would give;
the CPU seconds each extra job adds are what carries over.

The cluster is tests/slurm/slurm-up.sh (needs root, Debian 12) in a temporary directory, or in
--cluster-dir (reused if it already runs there); it is stopped at the end either way. Every run
uses a fresh temporary copy of the workflow, never the repository's results/.

    python benchmarks/bench_slurm.py                    # jobs 2, 8 and 32 (~10 min)
    python benchmarks/bench_slurm.py --jobs 2 100
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from test_slurm import cluster_env, set_account_and_partition  # noqa: E402  (same set-up as the test)

from conftest import job_counts, make_workspace, simulation_jobs  # noqa: E402

MAP21 = {
    "base": {"n_fock": 4, "t_max": 300.0, "n_t": 3001},
    "sweeps": {"map21": {"axes": {"g": {"range": {"start": 0.0, "stop": 0.5, "num": 21}},
                                  "omega_c": {"range": {"start": 0.5, "stop": 1.5, "num": 21}}}}},
    "batch_size": 250,
}
N_POINTS = 442


def cpu_seconds(text: str) -> float:
    """sacct's TotalCPU ([D-][HH:]MM:SS[.mmm]) in seconds."""
    days, _, rest = text.rpartition("-")
    parts = [float(p) for p in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    return (int(days) if days else 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def run(cmd: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """Wall and CPU seconds (this process's children: the submit side) and output of cmd."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n{proc.stdout[-5000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def slurm_jobs(run_id: str, env: dict) -> list[tuple[str, float, float]]:
    """(job id, elapsed s, TotalCPU s) of every job of one Snakemake run (job name = run id)."""
    out = subprocess.run(
        ["sacct", "-n", "-P", "--starttime", "2000-01-01", "--name", run_id,
         "--format", "JobID,ElapsedRaw,TotalCPU,State"],
        env=env, capture_output=True, text=True, check=True).stdout
    # the job's own line (no '.': not a step) sums its steps' CPU; with -X it would be 0
    rows = [line.split("|") for line in out.splitlines() if line and "." not in line.split("|")[0]]
    bad = [r for r in rows if r[3] != "COMPLETED"]
    if bad:
        raise RuntimeError(f"jobs not COMPLETED: {bad}")
    return [(r[0], float(r[1]), cpu_seconds(r[2])) for r in rows]


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, nargs="+", default=[2, 8, 32], help="values of `jobs` to run")
    ap.add_argument("--cluster-dir", type=Path, help="directory of the test cluster (default: a temporary one)")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    try:
        with cluster_env(args.cluster_dir or root / "cluster") as env:
            measure(root, env, args.jobs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(root: Path, env: dict, jobs_values: list[int]) -> None:
    print(f"21 x 21 map: {N_POINTS} points, n_fock 4, t_max 300, n_t 3001, batch_size 250; "
          f"cluster: 1 node, {os.cpu_count()} CPUs")
    snakemake = [sys.executable, "-m", "snakemake"]

    # what the profile as shipped (only account and partition set) would submit
    ws = make_workspace(root / "dry", MAP21)
    set_account_and_partition(ws, env["SLURM_TEST_ACCOUNT"], env["SLURM_TEST_PARTITION"])
    profile_jobs = yaml.safe_load((ws / "profiles" / "slurm" / "config.yaml").read_text())["jobs"]
    _, _, out = run([*snakemake, "-n", "--profile", "profiles/slurm"], ws, env)
    print(f"`snakemake -n --profile profiles/slurm` (jobs: {profile_jobs}): "
          f"{simulation_jobs(job_counts(out))} simulation jobs + {job_counts(out)['aggregate_sweep']} aggregation job")

    ws = make_workspace(root / "local", MAP21)
    print(f"\nlocal, --cores 2 (load {load()}) ...", flush=True)
    wall, cpu, out = run([*snakemake, "--cores", "2"], ws, env)
    print(f"local: {simulation_jobs(job_counts(out))} batches, wall {wall:.1f} s, CPU {cpu:.1f} s (load {load()})")
    local_cpu = cpu

    print("\n| jobs | SLURM jobs (simulation + aggregation) | points per job | wall (s) | "
          "SLURM CPU (s) | submit-side CPU (s) | SLURM CPU / local CPU | load before/after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    results = []
    for jobs in jobs_values:
        ws = make_workspace(root / f"jobs{jobs}", MAP21)
        set_account_and_partition(ws, env["SLURM_TEST_ACCOUNT"], env["SLURM_TEST_PARTITION"])
        before = load()
        wall, cpu, out = run([*snakemake, "--profile", "profiles/slurm", "--jobs", str(jobs),
                              "--slurm-init-seconds-before-status-checks", "4"], ws, env)
        run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
        rows = slurm_jobs(run_id, env)
        n_sim = simulation_jobs(job_counts(out))
        slurm_cpu = sum(r[2] for r in rows)
        results.append((n_sim, slurm_cpu))
        print(f"| {jobs} | {len(rows)} ({n_sim} + {len(rows) - n_sim}) | {N_POINTS / n_sim:.1f} | {wall:.1f} | "
              f"{slurm_cpu:.1f} | {cpu:.1f} | {slurm_cpu / local_cpu:.2f} | {before}/{load()} |", flush=True)
    if len(results) > 1:
        (n0, c0), (n1, c1) = min(results), max(results)
        print(f"\nCPU per extra simulation job: ({c1:.1f} - {c0:.1f}) / ({n1} - {n0}) = "
              f"{(c1 - c0) / (n1 - n0):.2f} s")


if __name__ == "__main__":
    main()
