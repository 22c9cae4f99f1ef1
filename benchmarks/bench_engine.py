"""Engine vs the naive QuTiP script, side by side in one run: wall time, ratio, and agreement.

Engine: ``qbcat.solve.simulate`` asks the solver only for expectation values (heat current and
net flux through the adjoint Lindbladian) and never stores a state.

Naive: what people usually write: ``qutip.mesolve`` storing every state (same integrator,
tolerances and options), then a Python loop over the states doing ``ptrace`` and ``expect``
for each observable, with d rho/dt from ``qutip.liouvillian(H(t), c_ops)`` applied to the state.

For scale, the bare integration with no observable at all ("floor") is timed as well.
All are timed end to end (model construction included) at the default point (docs/conventions.md), run
alternately (so all see the same machine load) and repeated; medians and minima are reported.
The per-process start-up cost (imports) is measured too, since the workflow pays it once per
point.

    python benchmarks/bench_engine.py [--repeats 5] [--n-fock 4 12]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import qutip

from qbcat.model import build_model
from qbcat.params import validate
from qbcat.solve import simulate

SPEC_DEFAULT = dict(omega_a=1.0, omega_c=1.0, omega_d=1.0, Omega=0.5, g=0.2, kappa_1=0.05,
                    gamma_D=0.05, t_max=300.0, n_t=3001, catalyst=True)
OBSERVABLES = ["ergotropy", "energy_qb", "energy_cat", "power", "heat_current", "net_flux",
               "internal_energy", "bloch_x", "bloch_y", "bloch_z", "trace"]


def engine(p: dict) -> dict:
    return simulate(p).data


def naive(p: dict) -> dict:
    """Store every state, then loop: ptrace, expect, and the Liouvillian applied to each state."""
    m = build_model(p)
    tlist = np.linspace(0.0, p["t_max"], p["n_t"])
    options = {"method": p["method"], "atol": p["atol"], "rtol": p["rtol"], "nsteps": p["nsteps"],
               "normalize_output": False, "store_states": True, "progress_bar": ""}
    result = qutip.mesolve(m.hamiltonian(), m.rho0, tlist, m.c_ops, options=options)

    sx, sy, sz = qutip.sigmax(), qutip.sigmay(), qutip.sigmaz()
    h_qb = 0.5 * p["omega_a"] * sz
    e_qb = h_qb.eigenenergies()  # ascending
    out = {k: np.empty(len(tlist)) for k in OBSERVABLES}
    for i, (t, rho) in enumerate(zip(tlist, result.states)):
        s = p["Omega"] * np.sin(p["omega_d"] * t)
        ds = p["Omega"] * p["omega_d"] * np.cos(p["omega_d"] * t)
        rho_qb = rho.ptrace(0)
        h_battery = h_qb + s * sx
        H_t = m.H_static + s * m.drive_op
        H_0 = m.H_QB + m.H_int + s * m.drive_op
        drho = qutip.vector_to_operator(qutip.liouvillian(H_t, m.c_ops) * qutip.operator_to_vector(rho))
        r_desc = np.sort(rho_qb.eigenenergies())[::-1]
        out["energy_qb"][i] = qutip.expect(h_qb, rho_qb)
        out["ergotropy"][i] = out["energy_qb"][i] - r_desc @ e_qb
        out["energy_cat"][i] = qutip.expect(m.H_cat, rho)
        out["bloch_x"][i] = qutip.expect(sx, rho_qb)
        out["bloch_y"][i] = qutip.expect(sy, rho_qb)
        out["bloch_z"][i] = qutip.expect(sz, rho_qb)
        out["power"][i] = ds * out["bloch_x"][i]
        out["heat_current"][i] = np.real(qutip.expect(h_battery, drho.ptrace(0)))
        out["net_flux"][i] = np.real(qutip.expect(H_0, drho))
        out["internal_energy"][i] = qutip.expect(h_battery, rho_qb)
        out["trace"][i] = np.real(rho.tr())
    return out


def integration_only(p: dict) -> dict:
    """The floor: the same integration with no observable at all (neither stored nor computed)."""
    m = build_model(p)
    tlist = np.linspace(0.0, p["t_max"], p["n_t"])
    options = {"method": p["method"], "atol": p["atol"], "rtol": p["rtol"], "nsteps": p["nsteps"],
               "normalize_output": False, "store_states": False, "progress_bar": ""}
    qutip.MESolver(m.hamiltonian(), m.c_ops, options=options).run(m.rho0, tlist)
    return {}


VARIANTS = (("engine", engine), ("naive", naive), ("floor", integration_only))


def timed_alternately(p: dict, repeats: int) -> dict:
    """Run the variants alternately ``repeats`` times, so all see the same machine load."""
    runs = {name: [] for name, _ in VARIANTS}
    data = {}
    for _ in range(repeats):
        for name, fn in VARIANTS:
            start = time.perf_counter()
            data[name] = fn(p)
            runs[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), min(t), t, data[name]) for name, t in runs.items()}


def startup(code: str, repeats: int) -> float:
    """Median wall time of a fresh ``python -c code`` process."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of each variant per point")
    ap.add_argument("--n-fock", type=int, nargs="+", default=[4, 12])
    args = ap.parse_args()

    print(f"python {platform.python_version()}, qutip {qutip.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} cores, {platform.machine()}")
    print(f"point: the default point {SPEC_DEFAULT}; solver defaults (method, atol, rtol) as in qbcat.params")
    print(f"{args.repeats} runs each, variants alternating; load average at start: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    rows = []
    for n_fock in args.n_fock:
        p = validate({**SPEC_DEFAULT, "n_fock": n_fock})
        res = timed_alternately(p, args.repeats)
        t_eng, min_eng, all_eng, d_eng = res["engine"]
        t_nai, min_nai, all_nai, d_nai = res["naive"]
        rows.append((n_fock, t_eng, t_nai))
        print(f"n_fock={n_fock} (Hilbert dim {2 * n_fock}, Liouvillian {(2 * n_fock) ** 2}), "
              f"method={p['method']} atol={p['atol']} rtol={p['rtol']}")
        for label, (med, low, runs) in (("engine", (t_eng, min_eng, all_eng)), ("naive ", (t_nai, min_nai, all_nai))):
            listing = ", ".join(f"{t:.3f}" for t in runs)
            print(f"  {label}: median {med:.3f} s, min {low:.3f} s  (runs: {listing})")
        t_flo, min_flo, all_flo, _ = res["floor"]
        print(f"  floor : median {t_flo:.3f} s, min {min_flo:.3f} s  (integration alone, no observables)")
        print(f"  ratio naive/engine: {t_nai / t_eng:.1f}x (medians), {min_nai / min_eng:.1f}x (minima)")
        print("  max |naive - engine| per observable (max |engine| in brackets):")
        for name in OBSERVABLES:
            dev = np.max(np.abs(d_nai[name] - d_eng[name]))
            print(f"    {name:<16} {dev:9.2e}  [{np.max(np.abs(d_eng[name])):.3g}]")
        print()

    t_pass = startup("pass", 5)
    t_import = startup("import qbcat.solve, qbcat.io", 5)
    print("per-process start-up (median of 5 fresh processes):")
    print(f"  python -c pass                          {t_pass:.3f} s")
    print(f"  python -c 'import qbcat.solve, qbcat.io' {t_import:.3f} s  "
          f"(imports alone: {t_import - t_pass:.3f} s)")
    print("\nsummary: n_fock  engine_s  naive_s  naive/engine  engine+startup_s")
    for n_fock, t_eng, t_nai in rows:
        print(f"         {n_fock:>6}  {t_eng:8.3f}  {t_nai:7.3f}  {t_nai / t_eng:12.1f}"
              f"  {t_eng + t_import:16.3f}")
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = all(t_nai / t_eng >= 2 for _, t_eng, t_nai in rows)
    print(f"target engine >= 2x faster than naive: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
