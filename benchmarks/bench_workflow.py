"""The workflow's overhead, measured side by side in one run.

1. A 21 x 21 map (441 catalyzed points + 1 shared baseline, n_fock 4, t_max 300, n_t 3001),
   cold, ``snakemake --cores 2``, against simulating the same 442 points in a bare two-process
   pool (``multiprocessing.Pool(2)`` over ``qbcat.engine.solve.simulate`` + ``qbcat.data.datasets.write_netcdf``,
   started as a fresh Python process, imports included). Target: workflow / bare <= 1.3.
   Several ``batch_size`` values can be compared (``--batch-sizes``).
2. The default study (config/config.yaml): a cold run against a no-op re-run.
3. A 100 x 100 map (10^4 catalyzed points): the dry run (DAG build) with no point file and with
   all point files present, and the aggregation of the sweep dataset: wall time and peak memory
   (max RSS of the process). The point files are SYNTHETIC: one simulated point (and its
   baseline) copied under each point's name with that point's parameters written into its
   attributes; the physics is not what is measured here.

Every command runs in a fresh temporary workspace (a copy of the workflow), never in the
repository's results/. Machine load (1-min load average) is printed with every figure, since
other jobs on a shared machine inflate wall times.

    python benchmarks/bench_workflow.py                       # everything, configured batch_size
    python benchmarks/bench_workflow.py --batch-sizes 40 111 221 --skip default big
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "workflow", "scripts", "envs", "profiles", "config/schema.yaml"]

MAP21 = {
    "base": {"n_fock": 4, "t_max": 300.0, "n_t": 3001},
    "sweeps": {"map21": {"axes": {"g": {"range": {"start": 0.0, "stop": 0.5, "num": 21}},
                                  "omega_c": {"range": {"start": 0.5, "stop": 1.5, "num": 21}}}}},
}


def big_map(n: int) -> dict:
    return {
        "base": {"n_fock": 4, "t_max": 300.0, "n_t": 3001},
        "sweeps": {"map100": {"axes": {"g": {"range": {"start": 0.0, "stop": 0.5, "num": n}},
                                       "omega_c": {"range": {"start": 0.5, "stop": 1.5, "num": n}}}}},
    }

# Runs in a fresh interpreter and reports its own children's peak RSS: the measured command's.
MEASURE = textwrap.dedent("""
    import resource, subprocess, sys, time
    start = time.perf_counter()
    proc = subprocess.run(sys.argv[2:], cwd=sys.argv[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    sys.stdout.write(f"{proc.returncode} {wall:.3f} {rss:.1f} {cpu:.3f}\\n" + proc.stdout)
""")

BARE_POOL = textwrap.dedent("""
    import sys, yaml
    from multiprocessing import Pool
    from qbcat.workflow.configuration import load_config
    from qbcat.workflow.study import point_path
    from qbcat.data.datasets import to_dataset, write_netcdf
    from qbcat.engine.solve import simulate

    def one(item):
        params, path = item
        write_netcdf(to_dataset(simulate(params)), path)

    if __name__ == "__main__":
        config, schema, out = sys.argv[1:4]
        study = load_config(yaml.safe_load(open(config)), schema)
        items = [(p, point_path(out, pid)) for pid, p in study.points.items()]
        with Pool(2) as pool:
            pool.map(one, items, chunksize=1)
        print(len(items))
""")

AGGREGATE = textwrap.dedent("""
    import sys, yaml
    from qbcat.data import aggregate
    from qbcat.workflow.configuration import load_config
    from qbcat.workflow.study import point_path
    config, schema, points, out, threads = sys.argv[1:6]
    study = load_config(yaml.safe_load(open(config)), schema)
    name = next(iter(study.sweeps))
    files = [point_path(points, p) for p in study.sweep_points[name]]
    aggregate.write_sweep(study.sweeps[name], files, out, threads=int(threads))
""")


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


class Run:
    """Wall time, CPU time (user + sys of the whole process tree), peak RSS and output of a command."""

    def __init__(self, cmd: list[str], cwd: Path):
        out = subprocess.run([sys.executable, "-c", MEASURE, str(cwd), *cmd], capture_output=True, text=True)
        head, _, self.output = out.stdout.partition("\n")
        rc, wall, rss, cpu = head.split()
        if rc != "0":
            raise RuntimeError(f"{' '.join(cmd)} failed ({rc}) in {cwd}:\n{self.output[-4000:]}{out.stderr[-2000:]}")
        self.wall, self.rss, self.cpu = float(wall), float(rss), float(cpu)


def workspace(root: Path, name: str, config: dict | None) -> Path:
    ws = root / name
    for item in WORKFLOW_FILES:
        src, dst = REPO / item, ws / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    text = (REPO / "config" / "config.yaml").read_text() if config is None else yaml.safe_dump(config)
    (ws / "config" / "config.yaml").write_text(text)
    return ws


def snakemake(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--cores", "2", *args]


def bench_map21(root: Path, batch_sizes: list[int | None], repeats: int) -> None:
    print("\n== 1. 21 x 21 map, 442 points (n_fock 4, t_max 300, n_t 3001), cold, 2 cores ==")
    print("Runs alternate (bare, then each batch_size), so that each pair sees similar load;\n"
          "CPU = user + sys time of the whole process tree, less sensitive to other jobs than wall.")
    ratios: dict = {size: [] for size in batch_sizes}
    for rep in range(1, repeats + 1):
        ws = workspace(root, f"bare{rep}", MAP21)
        bare = Run([sys.executable, "-c", BARE_POOL, "config/config.yaml", "config/schema.yaml", "points"], ws)
        print(f"[{rep}] bare Pool(2):          wall {bare.wall:6.1f} s, CPU {bare.cpu:6.1f} s "
              f"({bare.output.split()[-1]} points)  ({load()})", flush=True)
        shutil.rmtree(ws)
        for size in batch_sizes:
            config = dict(MAP21, **({"batch_size": size} if size else {}))
            ws = workspace(root, f"wf{size}-{rep}", config)
            wf = Run(snakemake(), ws)
            jobs = sum(1 for line in wf.output.splitlines() if line.startswith("localrule simulate_batch_"))
            label = f"batch_size {size}" if size else "config batch_size"
            print(f"[{rep}] workflow, {label:<14} wall {wf.wall:6.1f} s, CPU {wf.cpu:6.1f} s, {jobs:3d} "
                  f"simulation jobs; workflow / bare: wall {wf.wall / bare.wall:.2f}, CPU "
                  f"{wf.cpu / bare.cpu:.2f}  ({load()})", flush=True)
            ratios[size].append((wf.wall / bare.wall, wf.cpu / bare.cpu))
            shutil.rmtree(ws)
    for size, values in ratios.items():
        walls, cpus = zip(*values)
        print(f"batch_size {size or 'default'}: ratio workflow / bare, wall: median "
              f"{statistics.median(walls):.2f} (runs {', '.join(f'{w:.2f}' for w in walls)}); CPU: median "
              f"{statistics.median(cpus):.2f}")


def bench_default(root: Path) -> None:
    print("\n== 2. default study (config/config.yaml), 2 cores ==")
    ws = workspace(root, "default", None)
    cold = Run(snakemake(), ws)
    n_points = len(list((ws / "results" / "points").glob("*.nc")))
    print(f"cold run:   wall {cold.wall:6.1f} s, CPU {cold.cpu:6.1f} s ({n_points} points)  ({load()})", flush=True)
    noop = Run(snakemake(), ws)
    assert "Nothing to be done" in noop.output, noop.output[-2000:]
    print(f"no-op run:  wall {noop.wall:6.1f} s, CPU {noop.cpu:6.1f} s = {noop.wall / cold.wall:.3f} of the "
          f"cold run's wall time  ({load()})", flush=True)
    shutil.rmtree(ws)


def synthesize_points(ws: Path) -> int:
    """Write every point of the study as a copy of one simulated point with its own attributes."""
    code = textwrap.dedent("""
        import shutil, sys, yaml, netCDF4
        import numpy as np
        from qbcat.workflow.configuration import load_config
        from qbcat.workflow.study import point_path
        from qbcat.data.datasets import to_dataset, write_netcdf
        from qbcat.engine.solve import simulate
        study = load_config(yaml.safe_load(open("config/config.yaml")), "config/schema.yaml")
        templates, data = {}, {}
        for case in (True, False):
            p = dict(next(p for p in study.points.values() if p["catalyst"] == case))
            ds = to_dataset(simulate(p))
            templates[case] = write_netcdf(ds, f"template_{case}.nc")
            data[case] = {v: ds[v].values for v in ds.data_vars}
        rng = np.random.default_rng(0)
        for pid, params in study.points.items():
            path = point_path("results/points", pid)
            shutil.copyfile(templates[params["catalyst"]], path)
            with netCDF4.Dataset(path, "a") as nc:
                for name, value in params.items():
                    nc.setncattr(name, int(value) if isinstance(value, bool) else value)
                nc.setncattr("point_id", pid)
                # relative noise of 1e-9 in every value, so that the files do not compress
                # better than real data (identical copies would)
                for name, values in data[params["catalyst"]].items():
                    nc.variables[name][:] = values * (1 + 1e-9 * rng.standard_normal(values.shape))
        print(len(study.points))
    """)
    (ws / "results" / "points").mkdir(parents=True)
    out = subprocess.run([sys.executable, "-c", code], cwd=ws, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def bench_big(root: Path, threads: int, n: int) -> None:
    print(f"\n== 3. {n} x {n} map ({n * n} catalyzed points + 1 baseline, n_t 3001) ==")
    ws = workspace(root, "big", big_map(n))
    dry = Run(snakemake("-n"), ws)
    jobs = sum(1 for line in dry.output.splitlines() if line.startswith("rule simulate_batch_"))
    print(f"dry run, no point file:     {dry.wall:6.1f} s, peak RSS {dry.rss:6.0f} MiB "
          f"({jobs} simulation jobs planned)  ({load()})", flush=True)
    start = time.perf_counter()
    n = synthesize_points(ws)
    print(f"(wrote {n} SYNTHETIC point files in {time.perf_counter() - start:.0f} s: one simulated "
          "point copied under each id with its parameters as attributes and 1e-9 relative noise "
          "on its values)", flush=True)
    dry = Run(snakemake("-n"), ws)
    print(f"dry run, all points exist:  {dry.wall:6.1f} s, peak RSS {dry.rss:6.0f} MiB  ({load()})", flush=True)
    for t in sorted({1, threads}):
        target = ws / "results" / "sweeps" / "map100.nc"
        agg = Run([sys.executable, "-c", AGGREGATE, "config/config.yaml", "config/schema.yaml",
                                  "results/points", str(target), str(t)], ws)
        import xarray as xr

        with xr.open_dataset(target) as ds:
            nbytes = ds.nbytes / 2**20
            shape = dict(ds.sizes)
        size = target.stat().st_size / 2**20
        print(f"aggregation, {t} thread(s):    {agg.wall:6.1f} s, peak RSS {agg.rss:6.0f} MiB; dataset "
              f"{shape}: {nbytes:.0f} MiB in memory, {size:.0f} MiB on disk  ({load()})", flush=True)
        target.unlink()
    points = sum(f.stat().st_size for f in (ws / "results" / "points").glob("*.nc")) / 2**20
    print(f"(point files: {points:.0f} MiB on disk)")
    shutil.rmtree(ws)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=None,
                        help="batch_size values for the 21 x 21 map (default: the config's)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats of the 21 x 21 map")
    parser.add_argument("--skip", nargs="*", default=[], choices=["map21", "default", "big"])
    parser.add_argument("--threads", type=int, default=2, help="also aggregate with this many threads")
    parser.add_argument("--big", type=int, default=100, help="side of the big map (default 100)")
    parser.add_argument("--workdir", default=None, help="where the temporary workspaces go")
    args = parser.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, {load()}")
    root = Path(tempfile.mkdtemp(prefix="qbcat-bench-", dir=args.workdir))
    try:
        if "map21" not in args.skip:
            bench_map21(root, args.batch_sizes or [None], args.repeats)
        if "default" not in args.skip:
            bench_default(root)
        if "big" not in args.skip:
            bench_big(root, args.threads, args.big)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
