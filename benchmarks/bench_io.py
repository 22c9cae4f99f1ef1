"""Per point file I/O: the point file write of a batch and the aggregation's reads (issue 10).

Side by side in one process, alternating rounds (old, new, old, new, ...) so that a change of
the machine's load hits both alike:

1. Write one point file (n_fock 12 with its certificate, t_max 300, n_t 3001; catalyzed and
   baseline): the old path, ``write_netcdf(to_dataset(traj), path, compress=False)`` (an xarray
   Dataset written by xarray's netCDF4 engine), against ``write_point(traj, path)`` (the same
   content, :func:`qbcat.data.datasets.point_content`, written with netCDF4 directly), both
   atomic. Also the parts: ``to_dataset`` and ``point_content`` alone.
2. The aggregation's reads of one point file: the header (``check_points``) and the data
   (``_read_block``), the old readers (as of commit 3c4f6f2, copied below) against the current.

Each figure is the median over the rounds of the mean per file of a round; files are written
to and read from a temporary folder (page cache, as on a workstation).

    flock /tmp/qbcat-bench.lock python benchmarks/bench_io.py           # ~1 min
    flock /tmp/qbcat-bench.lock python benchmarks/bench_io.py --files 100 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


# --------------------------------------------------------------------------------------------
# The old readers (qbcat.data.aggregate at commit 3c4f6f2), for the side-by-side figures


def old_read_header(path: str):
    import netCDF4

    from qbcat.data.aggregate import _nc_lock

    with _nc_lock():
        with netCDF4.Dataset(path) as nc:
            attrs = {k: nc.getncattr(k) for k in nc.ncattrs()}
            return attrs, set(nc.variables), len(nc.dimensions["time"])


def old_read_block(paths: np.ndarray, names, n_time: int) -> np.ndarray:
    import netCDF4

    from qbcat.data.aggregate import _nc_lock

    out = np.full((len(names),) + paths.shape + (n_time,), np.nan)
    cache: dict[str, dict] = {}
    for index in np.ndindex(*paths.shape):
        path = paths[index]
        if path not in cache:
            with _nc_lock():
                with netCDF4.Dataset(path) as nc:
                    nc.set_auto_mask(False)
                    cache[path] = {v: nc.variables[v][:] for v in names if v in nc.variables}
        for k, name in enumerate(names):
            if name in cache[path]:
                out[(k,) + index] = cache[path][name]
    return out


# --------------------------------------------------------------------------------------------


def trajectories():
    """A catalyzed point at the default parameters (n_fock 12, certified against 16) and its
    baseline, from the batched engine as the workflow computes them."""
    from qbcat.engine.cutoff import simulate_certified

    out = dict(simulate_certified([{"g": 0.1}, {"g": 0.1, "catalyst": False}]))
    for traj in out.values():
        if isinstance(traj, Exception):
            raise traj
    return {"catalyzed": out[0], "baseline": out[1]}


def per_file(fn, items, rounds: int) -> tuple[float, float]:
    """(median, min) over ``rounds`` of the mean wall time per item of ``fn(item)``, in ms."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            fn(item)
        times.append((time.perf_counter() - start) / len(items) * 1e3)
    return statistics.median(times), min(times)


def interleaved(cases: dict, items, rounds: int) -> dict:
    """Each case's (median, min) ms per item, the cases run in turn, round after round."""
    runs = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            runs[name].append(per_file(fn, items, 1)[0])
    return {name: (statistics.median(t), min(t)) for name, t in runs.items()}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100, help="point files per round (default 100)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per figure (default 7)")
    args = parser.parse_args(argv)

    from qbcat.data import aggregate
    from qbcat.data.datasets import point_content, to_dataset, write_netcdf, write_point

    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; load average {load()} (1, 5, 15 min); "
          f"{args.files} files x {args.rounds} rounds", flush=True)
    start = time.perf_counter()
    trajs = trajectories()
    print(f"trajectories in {time.perf_counter() - start:.1f} s (n_fock "
          f"{trajs['catalyzed'].certificate.n_fock}, n_t {len(trajs['catalyzed'].time)})", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_io_"))
    try:
        names = aggregate._observables()
        rows = []
        for case, traj in trajs.items():
            folder_old, folder_new = tmp / f"old_{case}", tmp / f"new_{case}"
            folder_old.mkdir()
            folder_new.mkdir()
            paths = [f"{k:016x}.nc" for k in range(args.files)]
            write_point(traj, folder_new / "warm.nc")  # first imports and caches, not timed
            write_netcdf(to_dataset(traj), folder_old / "warm.nc", compress=False)
            figures = interleaved({
                "old": lambda name: write_netcdf(to_dataset(traj), folder_old / name, compress=False),
                "new": lambda name: write_point(traj, folder_new / name),
                "to_dataset": lambda name: to_dataset(traj),
                "point_content": lambda name: point_content(traj),
            }, paths, args.rounds)
            rows.append((f"write a {case} point file", figures["old"], figures["new"]))
            rows.append((f"  of which the content ({case}): to_dataset / point_content",
                         figures["to_dataset"], figures["point_content"]))
            # the aggregation's reads, on the files just written (the new writer's: same content)
            files = [str(folder_new / name) for name in paths]
            figures = interleaved({
                "old header": old_read_header,
                "new header": aggregate._read_header,
                "old data": lambda path: old_read_block(np.array([path], dtype=object), names,
                                                        len(traj.time)),
                "new data": lambda path: aggregate._read_block(np.array([path], dtype=object), names,
                                                               len(traj.time)),
            }, files, args.rounds)
            rows.append((f"aggregation: read the header of a {case} point file",
                         figures["old header"], figures["new header"]))
            rows.append((f"aggregation: read the data of a {case} point file",
                         figures["old data"], figures["new data"]))
            old_total = tuple(a + b for a, b in zip(figures["old header"], figures["old data"]))
            new_total = tuple(a + b for a, b in zip(figures["new header"], figures["new data"]))
            rows.append((f"aggregation: both reads of a {case} point file", old_total, new_total))
        print(f"\nms per file, median (min) over {args.rounds} rounds of {args.files} files; "
              f"load average {load()}")
        width = max(len(r[0]) for r in rows)
        print(f"{'':<{width}}  {'old':>15}  {'new':>15}  {'old/new':>7}")
        for label, (old_med, old_min), (new_med, new_min) in rows:
            print(f"{label:<{width}}  {old_med:7.2f} ({old_min:5.2f})  {new_med:7.2f} ({new_min:5.2f})  "
                  f"{old_med / new_med:6.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
