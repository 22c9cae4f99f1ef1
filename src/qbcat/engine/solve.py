"""Solve one point's Lindblad equation with QuTiP 5 and return every docs/conventions.md observable.

The solver is asked only for expectation values (see qbcat.engine.observables): no state is stored, no
partial trace is taken in Python. Output normalisation is off, so a trace error shows up in
``trace`` instead of being hidden.
"""

from __future__ import annotations

import time as _time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from . import observables as obs
from .model import build_model
from .params import validate


class SimulationError(RuntimeError):
    """The solver failed on a point; the message names the point's parameters and what to change."""


@dataclass
class Trajectory:
    """Observables of one point on its output times (1-D numpy arrays of length n_t)."""

    params: dict
    time: np.ndarray
    data: dict = field(default_factory=dict)
    sanity: dict = field(default_factory=dict)
    wall_time: float = 0.0
    stats: dict = field(default_factory=dict)  # integrator counts (batched engine)
    #: max_t of the population of the catalyst's top Fock level |n_fock - 1> (NaN for the
    #: baseline): what the truncation cuts off; part of the cutoff certificate (qbcat.engine.cutoff)
    top_population: float = float("nan")
    #: the cutoff certificate of a certified run (qbcat.engine.cutoff.Certificate), else None
    certificate: object = None


def trajectory_from_expect(p: dict, tlist: np.ndarray, ev: dict, wall_time: float = 0.0,
                           stats: dict | None = None) -> Trajectory:
    """The Trajectory of point ``p`` from the expectation values of :func:`expect_operators`
    (either engine): observables, top-level population and sanity numbers."""
    traj = Trajectory(params=p, time=tlist, data=observables_from_expect(p, tlist, ev),
                      wall_time=wall_time, stats=dict(stats or {}))
    if "top" in ev:
        traj.top_population = float(np.max(np.real(np.asarray(ev["top"]))))
    traj.sanity = sanity_checks(traj)
    return traj


def _describe(p: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items())


def simulate(params: dict | None = None) -> Trajectory:
    """Simulate one point (defaults for whatever ``params`` does not set) with its ``engine``.

    A catalyzed point with n_fock "auto" is run up its ladder (qbcat.engine.cutoff) and comes back at
    the chosen cutoff with its certificate; an integer n_fock is run as it is, uncertified.
    """
    p = validate(params)
    if p["catalyst"] and p["n_fock"] == "auto":
        from .cutoff import simulate_certified

        result = next(simulate_certified([p]))[1]
        if isinstance(result, Exception):
            raise result
        return result
    if p["engine"] == "batched":
        from .batched import simulate_many

        result = simulate_many([p])[0]
        if isinstance(result, Exception):
            raise result
        return result
    return simulate_qutip(p)


def simulate_points(params_list) -> Iterator[tuple[int, Trajectory | SimulationError]]:
    """Simulate many points; yields (index into ``params_list``, Trajectory or SimulationError)
    as each is done, so a caller can write points while the others run.

    Points of engine "batched" are integrated together (grouped by shape, qbcat.engine.batched); the
    others one by one with QuTiP. A failed point is yielded as its SimulationError. Cutoffs must
    be integers (qbcat.engine.cutoff.simulate_certified resolves "auto" and certifies).
    """
    ps = [validate(p) for p in params_list]
    auto = [i for i, p in enumerate(ps) if p["catalyst"] and p["n_fock"] == "auto"]
    if auto:
        raise ValueError(f"point {auto[0]} has n_fock auto: run it with qbcat.engine.cutoff.simulate_certified")
    batched = [i for i, p in enumerate(ps) if p["engine"] == "batched"]
    if batched:
        from .batched import iter_simulate

        for k, result in iter_simulate([ps[i] for i in batched]):
            yield batched[k], result
    for i, p in enumerate(ps):
        if p["engine"] != "batched":
            try:
                yield i, simulate_qutip(p)
            except SimulationError as exc:
                yield i, exc


def simulate_qutip(params: dict) -> Trajectory:
    """Simulate one point with one QuTiP MESolver run (expectation values only)."""
    import qutip

    p = validate(params)
    model = build_model(p)
    tlist = np.linspace(0.0, p["t_max"], p["n_t"])

    e_ops = expect_operators(model)

    options = solver_options(p)
    start = _time.perf_counter()
    try:
        solver = qutip.MESolver(model.hamiltonian(), model.c_ops, options=options)
        with warnings.catch_warnings():
            # scipy's ode integrators warn on every failure that QuTiP then raises as an
            # IntegratorException with the same text: silence the duplicate so that the CLI's
            # error stays one line.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"scipy\.integrate\._ode")
            result = solver.run(model.rho0, tlist, e_ops=list(e_ops.values()))
    except Exception as exc:  # QuTiP raises IntegratorException and others
        raise SimulationError(
            f"solver failed ({type(exc).__name__}: {exc}) at point {_describe(p)}; "
            "try a larger nsteps, another method (e.g. bdf for stiff points) or looser atol/rtol"
        ) from exc
    wall = _time.perf_counter() - start

    ev = dict(zip(e_ops, result.expect))
    bad = [k for k, v in ev.items() if not np.all(np.isfinite(v))]
    if bad:
        raise SimulationError(
            f"non-finite {', '.join(bad)} at point {_describe(p)}; "
            "try tighter atol/rtol, a smaller max_step or another method"
        )
    return trajectory_from_expect(p, tlist, ev, wall)


def solver_options(p: dict, **extra) -> dict:
    """MESolver options for the point's solver settings; output normalisation off so that a
    trace error shows instead of being hidden."""
    options = {
        "method": p["method"],
        "atol": p["atol"],
        "rtol": p["rtol"],
        "nsteps": p["nsteps"],
        "normalize_output": False,
        "store_states": False,
        "progress_bar": "",
        **extra,
    }
    if p["max_step"] > 0:
        options["max_step"] = p["max_step"]
    return options


def expect_operators(model) -> dict:
    """The operators whose expectation values give every observable (see qbcat.engine.observables).

    J = <J0> + s(t)<J1> and net flux = <F0> + s(t)<F1>; their s^2 terms, i[sx, sx], vanish.
    The heat current's catalyst channel is <Jc0> + s(t)<Jc1> (catalyzed models only; see
    qbcat.engine.observables.channel_operators); its dephasing channel comes from <sx>.
    """
    H_0_static = model.H_QB + model.H_int  # H_0(t) = H_QB + H_int + s(t) sx
    J = obs.rate_operators(model, model.H_QB, model.drive_op)
    F = obs.rate_operators(model, H_0_static, model.drive_op)
    assert _is_zero(J[2]) and _is_zero(F[2])
    ops = {
        "trace": model.identity,
        "bloch_x": model.sx,
        "bloch_y": model.sy,
        "bloch_z": model.sz,
        "J0": J[0],
        "J1": J[1],
        "F0": F[0],
        "F1": F[1],
    }
    if model.catalyst:
        ops["num"] = model.num
        ops["top"] = model.top
    ops.update(obs.channel_operators(model))
    return ops


def _is_zero(A) -> bool:
    return not np.any(A.full() if hasattr(A, "full") else A)


def observables_from_expect(p: dict, t: np.ndarray, ev: dict) -> dict:
    """docs/conventions.md observables at times ``t`` from the expectation values of :func:`expect_operators`."""
    re = {k: np.real(np.asarray(v)) for k, v in ev.items()}
    s = p["Omega"] * np.sin(p["omega_d"] * t)
    ds = p["Omega"] * p["omega_d"] * np.cos(p["omega_d"] * t)
    x, y, z = re["bloch_x"], re["bloch_y"], re["bloch_z"]
    energy_qb = 0.5 * p["omega_a"] * z
    data = {
        "ergotropy": obs.ergotropy_qubit(x, y, z, p["omega_a"]),
        "energy_qb": energy_qb,
        "power": ds * x,
        "heat_current": re["J0"] + s * re["J1"],
        # the baseline has no H_int: its catalyst channel is exactly zero
        "heat_current_catalyst": re["Jc0"] + s * re["Jc1"] if "Jc0" in re else np.zeros_like(x),
        "heat_current_dephasing": obs.dephasing_heat_current(p["gamma_D"], s, x),
        "net_flux": re["F0"] + s * re["F1"],
        "internal_energy": energy_qb + s * x,
        "bloch_x": x,
        "bloch_y": y,
        "bloch_z": z,
        "trace": re["trace"],
    }
    if "num" in re:
        data["energy_cat"] = p["omega_c"] * re["num"]
    return data


def central_derivative(y: np.ndarray, dt: float) -> np.ndarray:
    """dy/dt on a uniform grid to 4th order: central 5-point stencil inside, one-sided at the ends."""
    if y.size < 5:
        return np.gradient(y, dt, edge_order=2 if y.size > 2 else 1)
    d = np.empty_like(y)
    d[2:-2] = (-y[4:] + 8 * y[3:-1] - 8 * y[1:-3] + y[:-4]) / (12 * dt)
    d[0] = (-25 * y[0] + 48 * y[1] - 36 * y[2] + 16 * y[3] - 3 * y[4]) / (12 * dt)
    d[1] = (-3 * y[0] - 10 * y[1] + 18 * y[2] - 6 * y[3] + y[4]) / (12 * dt)
    d[-1] = (25 * y[-1] - 48 * y[-2] + 36 * y[-3] - 16 * y[-4] + 3 * y[-5]) / (12 * dt)
    d[-2] = (3 * y[-1] + 10 * y[-2] - 18 * y[-3] + 6 * y[-4] - y[-5]) / (12 * dt)
    return d


def sanity_checks(traj: Trajectory) -> dict:
    """Worst trace error, most negative eigenvalue of rho_QB, first-law residual, and the
    heat-current channel closure max |J_cat + J_deph - J| (round-off: the two channels are
    computed from other operators than J; docs/heat-channels.md).

    The first-law residual is max |dE/dt - (J + P)| with dE/dt from 4th-order finite
    differences of ``internal_energy``, so it also measures the sampling error of the output
    grid; it is reported relative to max |J| + max |P| as well.
    """
    d = traj.data
    r = np.sqrt(d["bloch_x"] ** 2 + d["bloch_y"] ** 2 + d["bloch_z"] ** 2)
    dt = traj.time[1] - traj.time[0]
    dE = central_derivative(d["internal_energy"], dt)
    residual = np.max(np.abs(dE - d["heat_current"] - d["power"]))
    scale = np.max(np.abs(d["heat_current"])) + np.max(np.abs(d["power"]))
    return {
        "trace_error_max": float(np.max(np.abs(d["trace"] - 1.0))),
        "min_eigenvalue_qb": float(np.min((d["trace"] - r) / 2)),
        "first_law_residual": float(residual),
        "first_law_residual_rel": float(residual / scale) if scale > 0 else 0.0,
        "heat_channel_residual": float(np.max(np.abs(
            d["heat_current_catalyst"] + d["heat_current_dephasing"] - d["heat_current"]))),
    }
