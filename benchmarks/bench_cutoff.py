"""What the cutoff certificates and ``n_fock: auto`` cost, side by side in one run.

1. Engine (one process, one core): the catalyzed points of the default study
   (config/config.yaml) simulated three ways, alternately, ``--repeats`` times:
   - ``fixed, no certificate``: the hand-set cutoffs the study used before (n_fock 12; 20 in
     kappa_1_scan and kappa_1_gamma_D_map), one run per point (qbcat.engine.solve.simulate_points);
   - ``fixed + certificate``: the same cutoffs, each point also run at n_fock + cutoff_gap
     (qbcat.engine.cutoff.simulate_certified);
   - ``auto``: n_fock auto, the study's policy (ladder 6, 8, ..., 40, gap 4, thresholds 1e-3).
   Prints seconds, runs per point, the cutoffs chosen and how many points each way certifies.
2. Workflow (``--skip workflow`` to leave out): the default study cold, ``snakemake --cores 2``
   in fresh temporary copies of the workflow, with the config as it was before (fixed cutoffs,
   a cutoff check at the corners of every sweep) and as it is (n_fock auto, a certificate on
   every point, no corner checks). Wall time of each, alternately.

    flock /tmp/qbcat-bench.lock python benchmarks/bench_cutoff.py [--repeats 2] [--skip workflow]
"""

from __future__ import annotations

import argparse
import collections
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from qbcat.engine import cutoff  # noqa: E402
from qbcat.workflow.configuration import load_config  # noqa: E402
from qbcat.engine.solve import simulate_points  # noqa: E402

#: The hand-set cutoffs of the default study before n_fock auto.
OLD_N_FOCK = {"base": 12, "kappa_1_scan": 20, "kappa_1_gamma_D_map": 20}
WORKFLOW_FILES = ["Snakefile", "workflow", "scripts", "envs", "profiles", "config/schema.yaml"]


def study_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def old_config(config: dict) -> dict:
    """The default study as it was: fixed cutoffs, the corners checked for the cutoff."""
    old = copy.deepcopy(config)
    old["base"]["n_fock"] = OLD_N_FOCK["base"]
    for name, n in OLD_N_FOCK.items():
        if name in old["sweeps"]:
            old["sweeps"][name].setdefault("set", {})["n_fock"] = n
    old["convergence"]["checks_at_corners"] = ["cutoff"]
    return old


def catalyzed_points(config: dict) -> list[dict]:
    study = load_config(copy.deepcopy(config), REPO / "config" / "schema.yaml")
    return [p for p in study.points.values() if p["catalyst"]]


def run_engine(repeats: int) -> None:
    new = catalyzed_points(study_config())
    old = catalyzed_points(old_config(study_config()))
    print(f"engine: {len(new)} catalyzed points of the default study (n_fock auto), {len(old)} with the old "
          "fixed cutoffs; one process", flush=True)
    list(simulate_points(old[:2]))  # load the compiled kernel once, outside the timings
    ways = {
        "fixed, no certificate": lambda: list(simulate_points(old)),
        "fixed + certificate": lambda: list(cutoff.simulate_certified(old)),
        "auto + certificate": lambda: list(cutoff.simulate_certified(new)),
    }
    times = collections.defaultdict(list)
    results = {}
    for _ in range(repeats):
        for name, run in ways.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    base = min(times["fixed, no certificate"])
    print(f"{'way':<24} {'best s':>8} {'ratio':>6}  certified  cutoffs used", flush=True)
    for name in ways:
        trajs = [r for _, r in results[name] if not isinstance(r, Exception)]
        certs = [t.certificate for t in trajs if t.certificate is not None]
        passed = sum(c.passed(t.params) for t, c in zip(trajs, certs))
        used = collections.Counter(c.n_fock for c in certs) if certs else collections.Counter(
            t.params["n_fock"] for t in trajs)
        cert_text = f"{passed}/{len(certs)}" if certs else "-"
        print(f"{name:<24} {min(times[name]):8.2f} {min(times[name]) / base:6.2f}  {cert_text:>9}  "
              + ", ".join(f"{n}: {k}" for n, k in sorted(used.items())), flush=True)


def workspace(root: Path, config: dict) -> Path:
    for name in WORKFLOW_FILES:
        src, dst = REPO / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def run_workflow(repeats: int) -> None:
    configs = {"before: fixed cutoffs, corner checks": old_config(study_config()),
               "now: n_fock auto, certificates": study_config()}
    times = collections.defaultdict(list)
    for _ in range(repeats):
        for name, config in configs.items():
            with tempfile.TemporaryDirectory() as tmp:
                ws = workspace(Path(tmp), config)
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=ws,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                wall = time.perf_counter() - start
                if proc.returncode != 0:
                    print(proc.stdout[-3000:])
                    raise SystemExit(f"{name}: snakemake failed")
                times[name].append(wall)
                print(f"  {name}: {wall:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    print(f"{'default study, cold, 2 cores':<40} {'best s':>8}", flush=True)
    for name in configs:
        print(f"{name:<40} {min(times[name]):8.0f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["engine", "workflow"])
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    if "engine" not in a.skip:
        run_engine(a.repeats)
    if "workflow" not in a.skip:
        run_workflow(a.repeats)


if __name__ == "__main__":
    main()
