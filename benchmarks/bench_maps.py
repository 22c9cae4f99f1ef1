"""End to end: maps at n_fock 12 through the whole workflow, batched engine against QuTiP's.

1. A 21 x 21 g x omega_c map (441 catalyzed points + 1 shared baseline, n_fock 12, t_max 300,
   n_t 3001), cold, ``snakemake --cores 2``: once with ``engine: batched`` and once with
   ``engine: qutip``, and the bare batched engine on the same points (two processes, each
   integrating and writing half the points, imports included) for the workflow's own cost.
   Every catalyzed point carries its cutoff certificate (a second run at n_fock + 4), in the
   workflow and in the bare runs alike.
   Target: qutip / batched >= 10 (wall).
2. A 100 x 100 map of real points (10^4 catalyzed + 1 baseline), cold, 2 cores, sweep dataset
   (aggregation) included. Target: <= 10 minutes wall.
3. Parse: ``snakemake -n`` (reading the workflow, planning the batches and building the DAG) of
   the 21 x 21 and the 100 x 100 maps, nothing computed; and the aggregation alone of the
   21 x 21 map's points, with ``aggregate.threads`` 1 and 2.

Every run is in a fresh temporary workspace; wall time, CPU time of the process tree and the
machine's load are printed with each figure.

    python benchmarks/bench_maps.py                  # both (~20 min)
    python benchmarks/bench_maps.py --skip big       # the 21 x 21 comparison only
    python benchmarks/bench_maps.py --big 50         # a 50 x 50 map instead of 100 x 100
    python benchmarks/bench_maps.py --skip map21 big # parse and aggregation only (~2 min)
"""

from __future__ import annotations

import argparse
import math
import re
import platform
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_workflow import Run, load, snakemake, workspace  # noqa: E402


def map_config(n: int, engine: str) -> dict:
    return {
        "base": {"n_fock": 12, "t_max": 300.0, "n_t": 3001, "engine": engine},
        "sweeps": {"map": {"axes": {"g": {"range": {"start": 0.0, "stop": 0.5, "num": n}},
                                    "omega_c": {"range": {"start": 0.5, "stop": 1.5, "num": n}}}}},
        "build_products": False,
    }


BARE_BATCHED = textwrap.dedent("""
    import sys, yaml
    from multiprocessing import Pool
    from qbcat.workflow.configuration import load_config
    from qbcat.workflow.study import point_path

    def half(items):
        from qbcat.engine.cutoff import simulate_certified
        from qbcat.data.datasets import write_point
        for k, traj in simulate_certified([p for p, _ in items]):  # as the workflow: with certificates
            write_point(traj, items[k][1])
        return len(items)

    if __name__ == "__main__":
        config, schema, out = sys.argv[1:4]
        study = load_config(yaml.safe_load(open(config)), schema)
        items = [(p, point_path(out, pid)) for pid, p in study.points.items()]
        with Pool(2) as pool:
            print(sum(pool.map(half, [items[0::2], items[1::2]])))
""")


def simulation_jobs(output: str) -> int:
    """Batch jobs run: each prints one line "Job N: simulate K points (...)"."""
    return sum(1 for line in output.splitlines() if re.match(r"Job \d+: simulate \d+ point", line))


def phases(output: str) -> dict:
    """Rule group -> (first start, last finish) in seconds after Snakemake's start (its "Date:"
    line), from its log: a time stamp "[Thu Dec  3 21:05:12 2026]" precedes a job's start
    ("Job N: <message>", or "rule NAME:" ... "jobid: N" for a job without message) and its end
    ("Finished jobid: N (Rule: NAME)"). The batch rules are one group, "simulate"."""
    from datetime import datetime

    stamp, zero, started, spans = None, None, {}, {}
    for line in output.splitlines():
        text = line.strip()
        m = re.match(r"^Date: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", text)
        if m and zero is None:
            zero = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
        m = re.match(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", text)
        if m:
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y").timestamp()
            zero = stamp if zero is None else zero
            continue
        m = re.match(r"^Job (\d+): ", text) or re.match(r"^jobid: (\d+)$", text)
        if m and stamp is not None:
            started.setdefault(int(m.group(1)), stamp)
            continue
        m = re.search(r"Finished jobid: (\d+) \(Rule: (\w+)\)", text)
        if m and stamp is not None:
            name = "simulate" if m.group(2).startswith("simulate_batch_") else m.group(2)
            lo, hi = spans.get(name, (math.inf, -math.inf))
            spans[name] = (min(lo, started.get(int(m.group(1)), stamp) - zero), max(hi, stamp - zero))
    return spans


def bench_map21(root: Path) -> None:
    print("\n== 1. 21 x 21 map, n_fock 12, t_max 300, n_t 3001, cold, 2 cores ==", flush=True)
    walls = {}
    ws = workspace(root, "bare", map_config(21, "batched"))
    (ws / "points").mkdir()
    bare = Run([sys.executable, "-c", BARE_BATCHED, "config/config.yaml", "config/schema.yaml", "points"], ws)
    print(f"bare batched engine, Pool(2):  wall {bare.wall:7.1f} s, CPU {bare.cpu:7.1f} s  ({load()})", flush=True)
    shutil.rmtree(ws)
    for engine in ("batched", "qutip"):
        ws = workspace(root, engine, map_config(21, engine))
        run = Run(snakemake(), ws)
        walls[engine] = run.wall
        print(f"workflow, engine {engine:<8}      wall {run.wall:7.1f} s, CPU {run.cpu:7.1f} s, "
              f"{simulation_jobs(run.output)} simulation jobs  ({load()})", flush=True)
        shutil.rmtree(ws)
    ratio = walls["qutip"] / walls["batched"]
    print(f"qutip / batched (workflow wall): {ratio:.1f}x  (target >= 10x: {'met' if ratio >= 10 else 'NOT met'})")
    print(f"workflow (batched) / bare batched engine: wall {walls['batched'] / bare.wall:.2f}")


def bench_big(root: Path, n: int) -> None:
    print(f"\n== 2. {n} x {n} map of real points, n_fock 12, cold, 2 cores, aggregation included ==", flush=True)
    ws = workspace(root, "big", map_config(n, "batched"))
    run = Run(snakemake(), ws)
    sweep = ws / "results" / "sweeps" / "map.nc"
    assert sweep.exists(), run.output[-3000:]
    print(f"{n * n + 1} points: wall {run.wall:7.1f} s ({run.wall / 60:.1f} min), CPU {run.cpu:7.1f} s, "
          f"{simulation_jobs(run.output)} simulation jobs, peak RSS {run.rss:.0f} MiB, sweep "
          f"{sweep.stat().st_size / 2**20:.0f} MiB  ({load()})")
    for name, (lo, hi) in sorted(phases(run.output).items(), key=lambda kv: kv[1]):
        print(f"  {name:<24} {lo:6.0f} s -> {hi:6.0f} s ({hi - lo:5.0f} s)")
    if n == 100:
        print(f"target <= 10 minutes: {'met' if run.wall <= 600 else 'NOT met'}")
    shutil.rmtree(ws)


def bench_parse(root: Path) -> None:
    print("\n== 3. Parse (snakemake -n, nothing computed) and aggregation alone ==", flush=True)
    for n in (21, 100):
        ws = workspace(root, f"parse{n}", map_config(n, "batched"))
        runs = [Run(snakemake("-n", "-q"), ws) for _ in range(2)]
        print(f"{n} x {n} map ({n * n + 1} points to compute): snakemake -n wall "
              f"{min(r.wall for r in runs):5.1f} s (best of 2)  ({load()})", flush=True)
        shutil.rmtree(ws)
    ws = workspace(root, "agg", map_config(21, "batched"))
    (ws / "points").mkdir()
    Run([sys.executable, "-c", BARE_BATCHED, "config/config.yaml", "config/schema.yaml", "points"], ws)
    for threads in (1, 2, 1, 2):
        run = Run([sys.executable, "-c", AGGREGATE, "config/config.yaml", "config/schema.yaml", "points",
                   str(threads)], ws)
        print(f"aggregation of the 21 x 21 map (442 point files), threads {threads}: wall {run.wall:5.1f} s, "
              f"CPU {run.cpu:5.1f} s  ({load()})", flush=True)
    shutil.rmtree(ws)


AGGREGATE = textwrap.dedent("""
    import sys, glob, yaml
    from qbcat.data.aggregate import write_sweep
    from qbcat.workflow.configuration import load_config

    config, schema, points, threads = sys.argv[1:5]
    study = load_config(yaml.safe_load(open(config)), schema)
    write_sweep(study.sweeps["map"], glob.glob(points + "/*.nc"), "map.nc", threads=int(threads),
                log=lambda message: None)
""")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", nargs="*", default=[], choices=["map21", "big", "parse"])
    ap.add_argument("--big", type=int, default=100, help="side of the big map")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}; {load()}")
    root = Path(tempfile.mkdtemp(prefix="qbcat-bench-maps-", dir=args.workdir))
    try:
        if "map21" not in args.skip:
            bench_map21(root)
        if "big" not in args.skip:
            bench_big(root, args.big)
        if "parse" not in args.skip:
            bench_parse(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
