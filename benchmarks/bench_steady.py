"""Periodic steady state vs a full trajectory, side by side in one run: wall time, ratio, agreement.

At the default point (docs/conventions.md) (omega_a = omega_c = omega_d = 1, Omega = 0.5, g = 0.2,
kappa_1 = gamma_D = 0.05; adams, rtol 1e-7, atol 1e-9) and each n_fock, times alternately (same
machine load) and repeatedly:

- trajectory: ``qbcat.solve.simulate`` with t_max = 300, n_t = 3001 (the study's run);
- steady:     ``qbcat.steady.steady_state`` with each fixed-point method (krylov: extrapolation of
              the stroboscopic trajectory; arnoldi: ARPACK on the one-period map; propagator: the
              full d^2 x d^2 one-period superoperator, only up to --propagator-max n_fock), each
              followed by the one-period propagation of the state on 128 times (the averages).

It prints medians and minima, the ratio steady/trajectory, and the accuracy: the period-averaged
ergotropy, heat current and catalyst energy of the steady state against the late-time mean (last
10 drive periods) of the t_max = 300 trajectory and of a long trajectory (150 periods, ~18
relaxation times), plus the relaxation time -T/ln|lambda_2|. The uncatalyzed baseline is timed too.

    python benchmarks/bench_steady.py [--repeats 3] [--n-fock 4 8 10 12 16] [--propagator-max 12]

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

from qbcat.solve import simulate  # noqa: E402
from qbcat.steady import late_time_mean, steady_state  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-fock", type=int, nargs="+", default=[4, 8, 10, 12, 16])
    ap.add_argument("--propagator-max", type=int, default=12, help="largest n_fock for the full propagator")
    args = ap.parse_args()
    print(f"# bench_steady: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"QuTiP {qutip.__version__}; load average {os.getloadavg()[0]:.2f}; "
          f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")
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


if __name__ == "__main__":
    main()
