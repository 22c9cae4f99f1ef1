"""Engines side by side in one run, at equal accuracy: per-point time, flops, GFLOP/s against DGEMM.

For each n_fock (default 4, 12, 20) at the default point of docs/conventions.md (t_max 300, n_t 3001), on ONE core:

- ``batched``: qbcat's batched engine (qbcat.engine.batched), batches of 1, 64 and 256 points (the
  points of a batch differ slightly in g, so that none is a copy of another), at the default
  tolerances (atol 1e-9, rtol 1e-7) and at rtol 1e-6, atol 1e-8;
- ``qutip``: qbcat's QuTiP engine (one MESolver run per point, expectation values only);
- ``naive``: what people usually write: mesolve storing every state, then a Python loop of
  ptrace/expect, with d rho/dt from qutip.liouvillian (n_fock <= 12 unless --naive-all);
- ``dynamiqs``: if the package is installed (``pip install dynamiqs==0.3.7``: not a qbcat
  dependency), dq.mesolve of one point and of a batch of 64 on the CPU.

Accuracy: the max deviation over time of ergotropy, catalyst energy and heat current from a tight
QuTiP run (adams, rtol 1e-11, atol 1e-13) of the first point. Flops: the batched kernel's count per
point (right-hand sides, stage combinations, error norm, observables; see ``kernel_flops``), and
the GFLOP/s it reaches, next to a DGEMM (1000 x 1000, one thread) on the same core.

    python benchmarks/bench_engine.py                    # everything (~10 min)
    python benchmarks/bench_engine.py --n-fock 12 --batches 64 --skip naive dynamiqs
    python benchmarks/bench_engine.py --n-fock --skip startup   # the map section only (~2 min)

Map points (``--map-points N``, default 512, 0 to skip): N points drawn at random from the
100 x 100 g x omega_c map of bench_maps.py (n_fock 12), whose step counts differ by up to 4x.
Integrated twice, side by side: in chunks of ``lanes`` points, a kernel call each (a chunk runs
as long as its slowest point), and as the engine does it, a queue of points refilling its lanes
(qbcat.engine.batched.iter_simulate). Lane efficiency: the steps the points needed over the
lane-steps a run pays for (for the chunks: lanes x the slowest point's steps, per chunk).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core: DGEMM and the engines alike
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from qbcat.engine import batched  # noqa: E402
from qbcat.engine.params import validate  # noqa: E402
from qbcat.engine.solve import simulate  # noqa: E402

DEFAULT_POINT = dict(omega_a=1.0, omega_c=1.0, omega_d=1.0, Omega=0.5, g=0.2, kappa_1=0.05,
                    gamma_D=0.05, t_max=300.0, n_t=3001, catalyst=True)
CHECKED = ("ergotropy", "energy_cat", "heat_current")
TIGHT_QUTIP = {"engine": "qutip", "method": "adams", "rtol": 1e-11, "atol": 1e-13}
LOOSE = {"rtol": 1e-6, "atol": 1e-8}


def dgemm_gflops(n: int = 1000, repeats: int = 7) -> float:
    a, b = np.random.rand(n, n), np.random.rand(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def kernel_flops(st: batched.Structure, n_obs: int, obs_nnz: int) -> tuple[float, float]:
    """(flops of one right-hand side, flops of one Dormand-Prince step) per point.

    Right-hand side: 6 per element (complex diagonal) + 10 per coupling (2x2 real matrix times a
    per-point coefficient). A step: 6 right-hand sides, 21 stage combinations of 4 flops per
    element, the error norm (6 terms of 4 flops and ~10 for the norm per element) and the
    observables of 7 vectors (4 flops per weight)."""
    rhs = 6 * st.size + 10 * st.couplings
    step = 6 * rhs + st.size * (21 * 4 + 6 * 4 + 10) + 7 * 4 * obs_nnz
    return rhs, step


def deviation(data: dict, ref: dict) -> float:
    return max(float(np.max(np.abs(data[k] - ref[k]))) for k in CHECKED)


def batch_points(p: dict, n: int) -> list[dict]:
    """n points around p differing in g by at most 1e-3 (the first one is p)."""
    return [validate({**p, "g": p["g"] * (1 + 1e-3 * k / max(n, 1))}) for k in range(n)]


def bench_batched(p: dict, sizes: list[int], ref: dict, tol: dict, repeats: int) -> list[dict]:
    rows = []
    for n in sizes:
        points = batch_points({**p, **tol}, n)
        batched.simulate_many(points[:1])  # compiled code loaded, structure built
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            results = batched.simulate_many(points)
            times.append(time.perf_counter() - start)
        first = results[0]
        rows.append({"n": n, "s_per_point": min(times) / n, "median": statistics.median(times) / n,
                     "steps": first.stats["steps"], "dev": deviation(first.data, ref)})
    return rows


def bench_naive(p: dict) -> tuple[float, dict]:
    import qutip

    from qbcat.engine.model import build_model

    start = time.perf_counter()
    m = build_model(p)
    tlist = np.linspace(0.0, p["t_max"], p["n_t"])
    options = {"method": "adams", "atol": p["atol"], "rtol": p["rtol"], "nsteps": p["nsteps"],
               "normalize_output": False, "store_states": True, "progress_bar": ""}
    result = qutip.mesolve(m.hamiltonian(), m.rho0, tlist, m.c_ops, options=options)
    sz = qutip.sigmaz()
    h_qb = 0.5 * p["omega_a"] * sz
    e_qb = h_qb.eigenenergies()
    out = {k: np.empty(len(tlist)) for k in CHECKED}
    for i, (t, rho) in enumerate(zip(tlist, result.states)):
        s = p["Omega"] * np.sin(p["omega_d"] * t)
        rho_qb = rho.ptrace(0)
        h_battery = h_qb + s * qutip.sigmax()
        drho = qutip.vector_to_operator(qutip.liouvillian(m.H_static + s * m.drive_op, m.c_ops)
                                        * qutip.operator_to_vector(rho))
        r_desc = np.sort(rho_qb.eigenenergies())[::-1]
        out["ergotropy"][i] = qutip.expect(h_qb, rho_qb) - r_desc @ e_qb
        out["energy_cat"][i] = qutip.expect(m.H_cat, rho)
        out["heat_current"][i] = np.real(qutip.expect(h_battery, drho.ptrace(0)))
    return time.perf_counter() - start, out


def bench_dynamiqs(p: dict, ref: dict, n_batch: int) -> list[tuple[str, float, float]] | None:
    try:
        import dynamiqs as dq
        import jax.numpy as jnp
    except ImportError:
        return None
    from qbcat.engine.model import operators

    dq.set_precision("double")
    m = operators(p)
    tlist = np.linspace(0.0, p["t_max"], p["n_t"])
    out = []
    for n in (1, n_batch):
        gs = np.array([p["g"] * (1 + 1e-3 * k / n) for k in range(n)])
        H_int_unit = m.H_int / p["g"]
        Hs = jnp.asarray(np.stack([m.H_QB + m.H_cat + g * H_int_unit for g in gs]))
        H = dq.constant(Hs) + dq.modulated(lambda t: p["Omega"] * jnp.sin(p["omega_d"] * t), jnp.asarray(m.sx))
        e_ops = [jnp.asarray(m.sz), jnp.asarray(m.num)]
        opts = dict(method=dq.method.Tsit5(rtol=p["rtol"], atol=p["atol"], max_steps=10**7))
        dq.mesolve(H, [jnp.asarray(c) for c in m.c_ops], jnp.asarray(m.rho0), tlist[:11], exp_ops=e_ops, **opts)
        start = time.perf_counter()
        res = dq.mesolve(H, [jnp.asarray(c) for c in m.c_ops], jnp.asarray(m.rho0), tlist, exp_ops=e_ops, **opts)
        np.asarray(res.expects)
        wall = (time.perf_counter() - start) / n
        ev = np.asarray(res.expects).real.reshape(n, 2, -1)[0]
        dev = float(np.max(np.abs(p["omega_c"] * ev[1] - ref["energy_cat"])))  # photon number only
        out.append((f"dynamiqs batch {n}", wall, dev))
    return out


def bench_map_points(n: int, seed: int = 2) -> None:
    """Chunked kernel calls against the refilled queue on n points of the g x omega_c map."""
    rng = np.random.default_rng(seed)
    grid = [(g, wc) for g in np.linspace(0.0, 0.5, 100) for wc in np.linspace(0.5, 1.5, 100)]
    picks = rng.choice(len(grid), size=n, replace=False)
    points = [validate({**DEFAULT_POINT, "n_fock": 12, "g": float(grid[k][0]), "omega_c": float(grid[k][1])})
              for k in picks]
    st = batched.structure(True, 12)
    lanes = batched.lanes_for(st)
    tlist = np.linspace(0.0, DEFAULT_POINT["t_max"], DEFAULT_POINT["n_t"])
    batched.integrate_group(points[:2], st, tlist)  # compiled (or loaded from the cache) first
    order = sorted(range(n), key=lambda k: -batched._difficulty(points[k]))
    print(f"map points: {n} points of the 100 x 100 g x omega_c map, n_fock 12, {lanes} lanes, one core; "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    start = time.perf_counter()
    chunked = []
    for s in range(0, n, lanes):
        chunked += batched.integrate_group([points[k] for k in order[s:s + lanes]], st, tlist)
    t_chunked = time.perf_counter() - start
    steps = np.array([r.steps + r.rejected for r in chunked])
    paid = sum(lanes * steps[s:s + lanes].max() for s in range(0, n, lanes))
    start = time.perf_counter()
    queued = batched.simulate_many(points)
    t_queued = time.perf_counter() - start
    assert all(np.array_equal(a.expect["ergotropy"], queued[k].data["ergotropy"])
               for a, k in zip(chunked, order)), "a point's result must not depend on its scheduling"
    print(f"  chunks of {lanes}, a call each:   {1e3 * t_chunked / n:6.1f} ms/point, lane efficiency "
          f"{steps.sum() / paid:.2f} (steps {steps.min()}-{steps.max()} a point)")
    print(f"  refilled queue (the engine):  {1e3 * t_queued / n:6.1f} ms/point; chunks / queue "
          f"{t_chunked / t_queued:.2f}x (same numbers, bit for bit)")


def startup(code: str, repeats: int = 3) -> float:
    return statistics.median(_timed(lambda: subprocess.run([sys.executable, "-c", code], check=True))
                             for _ in range(repeats))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-fock", type=int, nargs="*", default=[4, 12, 20])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["qutip", "naive", "dynamiqs", "loose", "startup"])
    ap.add_argument("--naive-all", action="store_true", help="run the naive script at every n_fock")
    ap.add_argument("--map-points", type=int, default=512, help="points of the map section (0: skip it)")
    args = ap.parse_args()

    gf = dgemm_gflops()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, one thread; "
          f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"DGEMM 1000x1000 on this core: {gf:.1f} GFLOP/s\n")
    summary = []
    for n_fock in args.n_fock:
        p = validate({**DEFAULT_POINT, "n_fock": n_fock})
        st = batched.structure(True, n_fock)
        start = time.perf_counter()
        ref = simulate({**p, **TIGHT_QUTIP}).data
        t_ref = time.perf_counter() - start
        from qbcat.engine.model import operators
        from qbcat.engine.solve import expect_operators
        ops = expect_operators(operators(p))
        obs_nnz = sum(int(np.count_nonzero(st.expect_weights(A))) for A in ops.values())
        rhs, step = kernel_flops(st, len(ops), obs_nnz)
        print(f"n_fock {n_fock}: Hilbert dim {st.dim}, {st.size} independent elements of rho, "
              f"{st.couplings} couplings; {rhs / 1e3:.1f} kflop per right-hand side, "
              f"{step / 1e3:.0f} kflop per step (per point); tight reference {t_ref:.1f} s")
        print(f"  {'engine':<34} {'ms/point':>9} {'steps':>6} {'Mflop/pt':>9} {'GFLOP/s':>8} {'max dev':>9}")
        rows = {}
        tols = [("default", {})] + ([] if "loose" in args.skip else [("rtol 1e-6", LOOSE)])
        for label, tol in tols:
            for r in bench_batched(p, args.batches, ref, tol, args.repeats):
                flops = r["steps"] * step
                name = f"batched {label}, batch {r['n']}"
                rows[name] = r["s_per_point"]
                print(f"  {name:<34} {1e3 * r['s_per_point']:9.1f} {r['steps']:6d} {flops / 1e6:9.1f} "
                      f"{flops / r['s_per_point'] / 1e9:8.2f} {r['dev']:9.1e}")
        if "qutip" not in args.skip:
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                data = simulate({**p, "engine": "qutip"}).data
                times.append(time.perf_counter() - start)
            rows["qutip"] = min(times)
            print(f"  {'qutip engine (adams)':<34} {1e3 * min(times):9.1f} {'':>6} {'':>9} {'':>8} "
                  f"{deviation(data, ref):9.1e}")
        if "naive" not in args.skip and (n_fock <= 12 or args.naive_all):
            wall, data = bench_naive(p)
            rows["naive"] = wall
            print(f"  {'naive qutip script':<34} {1e3 * wall:9.1f} {'':>6} {'':>9} {'':>8} {deviation(data, ref):9.1e}")
        if "dynamiqs" not in args.skip:
            dq_rows = bench_dynamiqs(p, ref, 64)
            if dq_rows is None:
                print("  dynamiqs: not installed (pip install dynamiqs==0.3.7 to include it)")
            else:
                for name, wall, dev in dq_rows:
                    rows[name] = wall
                    print(f"  {name + ' (Tsit5)':<34} {1e3 * wall:9.1f} {'':>6} {'':>9} {'':>8} {dev:9.1e}")
        best = min(v for k, v in rows.items() if k.startswith("batched default"))
        for k in ("qutip", "naive"):
            if k in rows:
                print(f"  {k} / best batched (default tolerances): {rows[k] / best:.1f}x")
        summary.append((n_fock, rows))
        print()
    if args.map_points:
        bench_map_points(args.map_points)
        print()
    if "startup" not in args.skip:
        t_pass = startup("pass")
        t_batched = startup("import qbcat.engine.solve, qbcat.data.datasets, qbcat.engine.batched")
        t_qutip = startup("import qutip")
        print(f"start-up of a batch process: python {t_pass:.2f} s; + qbcat.engine.solve, io, batched "
              f"{t_batched - t_pass:.2f} s; (import qutip alone: {t_qutip - t_pass:.2f} s, not needed by "
              "the batched engine)")
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
