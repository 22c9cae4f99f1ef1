"""Periodic steady state vs a full trajectory, side by side in one run: wall time, ratio, agreement.

At the default point (docs/conventions.md) (omega_a = omega_c = omega_d = 1, Omega = 0.5, g = 0.2,
kappa_1 = gamma_D = 0.05; adams, rtol 1e-7, atol 1e-9) and each n_fock, times alternately (same
machine load) and repeatedly:

- trajectory: ``qbcat.engine.solve.simulate`` with t_max = 300, n_t = 3001 (the study's run);
- steady:     ``qbcat.science.steady.steady_state`` with each fixed-point method (krylov: extrapolation of
              the stroboscopic trajectory; arnoldi: ARPACK on the one-period map; propagator: the
              full d^2 x d^2 one-period superoperator, only up to --propagator-max n_fock), each
              followed by the one-period propagation of the state on 128 times (the averages).

It prints medians and minima, the ratio steady/trajectory, and the accuracy: the period-averaged
ergotropy, heat current and catalyst energy of the steady state against the late-time mean (last
10 drive periods) of the t_max = 300 trajectory and of a long trajectory (150 periods, ~18
relaxation times), plus the relaxation time -T/ln|lambda_2|. The uncatalyzed baseline is timed too.

    python benchmarks/bench_steady.py [--repeats 3] [--n-fock 4 8 10 12 16] [--propagator-max 12]

The map (``--map``, or ``--map-only`` for this part alone): a steady map of N x N cells (g 0-0.5,
omega_c 0.5-1.5, n_fock 12, the default point otherwise; ``--map-size``, default 21) with the
batched method (``qbcat.science.steady.steady_map``, method batched: batched Arnoldi on every cell's
one-period map at once) in 1 and 2 processes (``--workers``), without the validation, which is
timed apart: the full one-period propagator (576 basis propagations each, batched) of the corners
and the slowest cell, its relaxation time against the map's. Side by side, a few cells
(``--qutip-cells``) with the QuTiP methods krylov and arnoldi: time per cell, relaxation time and
period-averaged ergotropy against the batched map's. Then the default study's two maps as the
workflow computes them (every cell, with the validation).

    python benchmarks/bench_steady.py --map-only [--map-size 21] [--workers 1 2]

BLAS runs single-threaded here (OPENBLAS_NUM_THREADS etc. = 1 unless already set), as in a workflow
that runs one point per core: on a loaded 2-core machine, OpenBLAS's threads oversubscribe the
cores and slow the small dense operations of the steady-state methods (SVD, eigendecompositions) by
up to several times, which swamps the comparison.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import qutip  # noqa: E402

import numpy as np  # noqa: E402

from qbcat.engine.params import validate  # noqa: E402
from qbcat.engine.solve import simulate  # noqa: E402
from qbcat.science.steady import (batched_propagators, late_time_mean, propagator_spectrum, steady_map,  # noqa: E402
                          steady_state)

DEFAULT_POINT = dict(omega_a=1.0, omega_c=1.0, omega_d=1.0, Omega=0.5, g=0.2, kappa_1=0.05,
                    gamma_D=0.05, t_max=300.0, n_t=3001, catalyst=True)
COMPARED = ("ergotropy", "heat_current", "energy_cat")


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def bench_point(params: dict, methods: list[str], repeats: int) -> dict:
    times = {name: [] for name in ["trajectory", *methods]}
    results = {}
    for _ in range(repeats):  # alternate, so every variant sees the same load
        wall, results["trajectory"] = timed(simulate, params)
        times["trajectory"].append(wall)
        for m in methods:
            wall, results[m] = timed(steady_state, params, method=m)
            times[m].append(wall)
    return {"times": times, "results": results}


def _children_cpu() -> float:
    """CPU seconds of this process's finished child processes (the map's workers): with the wall
    time, what the map costs when other jobs share the cores."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_map(size: int, workers: list[int], qutip_cells: int) -> None:
    """The N x N map with the batched method, its validation, and QuTiP on a few cells."""
    axes = {"g": [float(v) for v in np.linspace(0.0, 0.5, size)],
            "omega_c": [float(v) for v in np.linspace(0.5, 1.5, size)]}
    base = {**DEFAULT_POINT, "n_fock": 12}
    del base["catalyst"]
    cells = size * size
    print(f"\n# steady map {size} x {size} (g 0-0.5, omega_c 0.5-1.5, n_fock 12): {cells} catalyzed cells "
          "+ 1 baseline; method batched; load average "
          f"{os.getloadavg()[0]:.2f}")
    ds = None
    for w in workers:
        cpu0 = time.process_time() + _children_cpu()
        wall, ds = timed(steady_map, base, axes, validation=[], workers=w, progress=None)
        cpu = time.process_time() + _children_cpu() - cpu0
        k = ds["krylov_dimension"].sel(case="catalyzed").values
        full = int((ds["relaxation_time_propagator"].sel(case="catalyzed").notnull()).sum())
        print(f"workers {w}: {wall:7.1f} s wall, {cpu:.1f} s CPU (all processes)  ({1e3 * wall / cells:.0f} ms "
              f"per cell; Arnoldi steps mean {k.mean():.1f}, "
              f"max {k.max():.0f}; {full} cells by the full propagator)  load average {os.getloadavg()[0]:.2f}",
              flush=True)
    # validation: the corners and the slowest cell, full one-period propagator
    cat = ds.sel(case="catalyzed")
    tau = cat["relaxation_time"].values
    picks = {(0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1),
             tuple(int(i) for i in np.unravel_index(np.nanargmax(tau), tau.shape)),
             (size * 2 // 5, 0)}  # g = 0.2, omega_c = 0.5 at size 21: the spurious-Ritz-value cell
    points = [validate({**base, "g": axes["g"][i], "omega_c": axes["omega_c"][j]}) for i, j in sorted(picks)]
    wall, Us = timed(batched_propagators, points)
    print(f"\n# validation: full one-period propagator (576 basis propagations each, batched) of "
          f"{len(points)} cells: {wall:.1f} s ({wall / len(points):.1f} s per cell, with the eigenvalues)")
    print(f"{'g':>6}{'omega_c':>9}{'tau batched':>13}{'tau propagator':>16}{'rel. dev':>10}")
    for (i, j), U in zip(sorted(picks), Us):
        t_full = propagator_spectrum(U, 2 * math.pi)[0]
        print(f"{axes['g'][i]:>6.3f}{axes['omega_c'][j]:>9.3f}{tau[i, j]:>13.4f}{t_full:>16.4f}"
              f"{abs(tau[i, j] / t_full - 1):>10.1e}", flush=True)
    # QuTiP per cell, side by side
    print(f"\n# QuTiP methods on {qutip_cells} cells (per cell) against the batched map")
    print(f"{'g':>6}{'omega_c':>9}{'method':>9}{'time s':>8}{'tau':>9}{'tau batched':>13}{'|d ergotropy|':>15}")
    slowest = tuple(int(i) for i in np.unravel_index(np.nanargmax(tau), tau.shape))
    for i, j in list(dict.fromkeys([(size * 2 // 5, 0), (size - 1, size - 1), slowest, *sorted(picks)]))[:qutip_cells]:
        p = {**base, "g": axes["g"][i], "omega_c": axes["omega_c"][j]}
        for m in ("krylov", "arnoldi"):
            wall, s = timed(steady_state, p, method=m)
            d = abs(s.mean["ergotropy"] - float(cat["ergotropy"].values[i, j]))
            print(f"{p['g']:>6.3f}{p['omega_c']:>9.3f}{m:>9}{wall:>8.2f}{s.relaxation_time:>9.2f}"
                  f"{tau[i, j]:>13.2f}{d:>15.1e}", flush=True)
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


def bench_default_maps(workers: int) -> None:
    """The default study's two maps (config/config.yaml) as the workflow computes them: every
    cell, validation at the corners and the slowest cell, ``workers`` processes."""
    maps = {"g_omega_c_map (6 x 6, n_fock 12)": ({"n_fock": 12}, {"g": list(np.linspace(0.0, 0.5, 6)),
                                                                   "omega_c": list(np.linspace(0.5, 1.5, 6))}),
            "kappa_1_gamma_D_map (5 x 5, n_fock 20)": ({"n_fock": 20}, {
                "kappa_1": list(np.geomspace(0.005, 0.5, 5)), "gamma_D": list(np.geomspace(0.005, 0.5, 5))})}
    print(f"\n# the default study's maps, workers {workers}, validation corners + slowest")
    for label, (base, axes) in maps.items():
        wall, ds = timed(steady_map, {**DEFAULT_POINT, **base}, axes, workers=workers, progress=None)
        cat = ds.sel(case="catalyzed")
        checked = cat["relaxation_time_propagator"].notnull()
        dev = np.abs(cat["relaxation_time"] / cat["relaxation_time_propagator"] - 1).where(checked)
        print(f"{label}: {wall:.1f} s; Arnoldi steps mean {float(cat['krylov_dimension'].mean()):.1f}, max "
              f"{float(cat['krylov_dimension'].max()):.0f}; tau {float(cat['relaxation_time'].min()):.1f}-"
              f"{float(cat['relaxation_time'].max()):.1f}; {int(checked.sum())} catalyzed cells checked, largest "
              f"|tau / tau_propagator - 1| = {float(dev.max()):.1e}; load average {os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-fock", type=int, nargs="+", default=[4, 8, 10, 12, 16])
    ap.add_argument("--propagator-max", type=int, default=12, help="largest n_fock for the full propagator")
    ap.add_argument("--map", action="store_true", help="also the batched steady map")
    ap.add_argument("--map-only", action="store_true", help="only the batched steady map")
    ap.add_argument("--map-size", type=int, default=21)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--qutip-cells", type=int, default=3)
    ap.add_argument("--no-default-maps", action="store_true", help="skip the default study's maps")
    args = ap.parse_args()
    print(f"# bench_steady: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"QuTiP {qutip.__version__}; load average {os.getloadavg()[0]:.2f}; "
          f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
    if args.map_only:
        bench_map(args.map_size, args.workers, args.qutip_cells)
        if not args.no_default_maps:
            bench_default_maps(max(args.workers))
        return
    print(f"# the default point, t_max=300, n_t=3001; {args.repeats} alternating repeats; times in s\n")
    header = f"{'point':<16}{'variant':<12}{'median':>9}{'min':>9}{'steady/traj (median)':>22}"
    print(header)
    print("-" * len(header))
    cases = [("baseline", {**DEFAULT_POINT, "catalyst": False}, ["propagator", "krylov"])]
    for n in args.n_fock:
        methods = ["krylov", "arnoldi"] + (["propagator"] if n <= args.propagator_max else [])
        cases.append((f"n_fock={n}", {**DEFAULT_POINT, "n_fock": n}, methods))
    accuracy = []
    for label, params, methods in cases:
        out = bench_point(params, methods, args.repeats)
        traj_med = statistics.median(out["times"]["trajectory"])
        for name, ts in out["times"].items():
            ratio = "" if name == "trajectory" else f"{statistics.median(ts) / traj_med:.2f}x"
            extra = f"  ({out['results'][name].periods} periods)" if name == "krylov" else ""
            print(f"{label:<16}{name:<12}{statistics.median(ts):>9.3f}{min(ts):>9.3f}{ratio:>22}{extra}", flush=True)
        accuracy.append((label, params, out["results"]))
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")
    print("\n# accuracy: steady period average minus late-time mean of trajectories (last 10 periods)")
    long_periods = 150
    for label, params, results in accuracy:
        # the most direct method available is the reference: propagator, then arnoldi, then krylov
        ss = results[next(m for m in ("propagator", "arnoldi", "krylov") if m in results)]
        short = late_time_mean(results["trajectory"], 10)
        long_params = {**params, "t_max": 2 * math.pi * long_periods, "n_t": long_periods * 64 + 1}
        long = late_time_mean(simulate(long_params), 10)
        print(f"{label}: relaxation time {ss.relaxation_time:.2f} (t_max=300 is {300 / ss.relaxation_time:.1f} "
              f"of them); method {ss.method}")
        for name in COMPARED:
            if name in ss.mean:
                print(f"    {name:<13} steady {ss.mean[name]:+.9f}   t_max=300: {short[name] - ss.mean[name]:+.2e}"
                      f"   t_max={long_params['t_max']:.0f}: {long[name] - ss.mean[name]:+.2e}")
        for m in [k for k in results if k != "trajectory"]:
            d = max(abs(results[m].mean[k] - ss.mean[k]) for k in COMPARED if k in ss.mean)
            print(f"    {m:<13} vs {ss.method}: max |d mean| {d:.1e}")
    if args.map:
        bench_map(args.map_size, args.workers, args.qutip_cells)
        bench_default_maps(max(args.workers))


if __name__ == "__main__":
    main()
