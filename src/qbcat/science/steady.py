"""The long-time limit: the periodic steady state of the driven Lindbladian, without the transient.

The drive s(t) = Omega sin(omega_d t) has period T = 2 pi / omega_d, so the Lindbladian is periodic
and the one-period propagator (a superoperator) U = T exp(int_0^T L(t) dt) maps the state at t to
the state at t + T. Its eigenvalues lie in the unit disc; those with |lambda| < 1 are the transient,
and the state at t = n T tends to the fixed point U rho = rho (eigenvalue 1, trace 1, Hermitian).
The asymptotic state is then rho_ss(t) = U(t, 0) rho for t in [0, T), repeated with period T.
The slowest transient mode |lambda_2| gives the relaxation time tau = -T / ln |lambda_2|, i.e. the
time after which a trajectory from any initial state is within exp(-t/tau) of the periodic state.

Fixed point, four ways (``method``):

- ``"batched"`` (the maps' default, :func:`batched_steady_states`): every point of a map at once
  with the batched engine. Per point, Arnoldi on the real map x -> U x over Hermitian matrices
  (d^2 real coordinates, :func:`herm_to_vec`), started from rho(0) plus a fixed random Hermitian
  matrix so that every mode is excited; each Arnoldi step is ONE batched one-period propagation
  (:func:`qbcat.engine.batched.propagate`) of all points' current vectors, each lane with its own
  point and its own matrix. A point stops when the Ritz residuals ||U V y - theta V y|| of the
  fixed point (theta ~ 1) and of lambda_2 (the largest-modulus other Ritz value) are small, so an
  unconverged Ritz value is never taken for the slowest mode (:func:`batched_arnoldi`; ~30-60
  steps). lambda_2 is the whole spectrum's, not one initial state's, and equals the full
  propagator's (tests; benchmarks/README.md, "Steady state": the relaxation times agree to
  1e-6 at n_fock 12, also at g = 0.2, omega_c = 0.5 where the krylov method's Krylov space gave
  104 instead of 23.7, and to 2e-5 on the weakly damped kappa_1 x gamma_D map at n_fock 20; a
  21 x 21 map at n_fock 12 takes 42-53 s, ~0.1 s a cell, against 0.35 s (krylov) and 1.6 s
  (arnoldi) per cell with QuTiP). Where Arnoldi does not settle within ``max_steps`` or |lambda_2| ~ 1, the
  full one-period propagator of that point is computed the same way (d^2 basis propagations in
  one batch, :func:`batched_propagators`; method "batched_propagator"). Maps also compute it at
  their validation cells (corners, slowest cell) and store its relaxation time beside Arnoldi's.
  The period's observables come from one more batched integration from the fixed points
  (:func:`qbcat.engine.batched.evolve_expect`).

- ``"krylov"``: the trajectory from rho(0), sampled once per period in one continuous integration,
  and its limit extrapolated by exact dynamic mode decomposition (Rayleigh-Ritz in the Krylov space
  span{rho(0), U rho(0), U^2 rho(0), ...}; :func:`dmd_fixed_point`), with periods added in chunks
  until the estimate settles. It needs far fewer periods than a plain trajectory needs to relax to
  the same accuracy, and is transient-free (costs: benchmarks/README.md, "Steady state"). Its
  relaxation time is that of the slowest mode the initial state excites.
- ``"propagator"``: the full superoperator from ``qutip.propagator`` with the engine's QobjEvo
  Hamiltonian, its dense eigendecomposition, and the spectral projection of rho(0) onto the
  eigenvalue-1 space, P = R (L^H R)^-1 L^H (right/left eigenvectors). For a unique fixed point this
  is the normalised eigenvector, independent of rho(0); if eigenvalue 1 is degenerate (a conserved
  quantity) it is the long-time limit of the actual initial state, and if other eigenvalues lie on
  the unit circle (no dissipation) it is the long-time average of the stroboscopic states (then
  ``relaxation_time`` is inf, and the ergotropy is that of the averaged state). Costs d^2 state
  propagations over one period (d = Hilbert-space dimension): cheapest for the baseline (d = 2) and
  n_fock <= 4, but it grows as d^2 and is far dearer than a trajectory at the study's cutoffs.
- ``"arnoldi"``: matrix-free; ARPACK (scipy eigs, the 2 largest-magnitude eigenvalues) on the map
  v -> U v, each product one propagation of a single d x d matrix over one period; its relaxation
  time does not depend on the initial state.
- ``"auto"`` (default): propagator for superoperators of dimension <= 64 (baseline, n_fock <= 4),
  krylov above.

The QuTiP methods (per point) are the reference and the fallback of the batched one.
krylov and arnoldi detect a degenerate or undamped fixed point (|lambda_2| ~ 1) and hand the point
to the propagator method (or refuse it when the superoperator would exceed DENSE_MAX).
The three agree in the period averages to the integration tolerance (benchmarks/README.md).

Time-independent points (Omega = 0 or omega_d = 0: no drive): ``qutip.steadystate`` when the
Liouvillian's kernel is one-dimensional, otherwise the spectral projection of rho(0) onto the
kernel (e.g. the undriven baseline under pure dephasing keeps its initial populations).

Observables over the period are computed as in qbcat.engine.solve (expectation values only; rates via the
adjoint Lindbladian) on ``n_period`` equispaced times in [0, T); the period average is their plain
mean, which is the exact average of any trigonometric polynomial of degree < n_period (spectrally
accurate for a smooth periodic signal).
"""

from __future__ import annotations

import itertools
import math
import sys
import time as _time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Sequence

import numpy as np
import qutip
import scipy.linalg as sla
import scipy.sparse.linalg as spla

from ..engine.cutoff import resolve
from ..engine.model import Model, build_model
from ..engine.params import PARAMETERS, ParameterError, point_id, validate
from ..engine.solve import expect_operators, observables_from_expect, solver_options
from ..workflow.study import CASES

#: Observables of a steady state (energy_cat only for catalyzed points), as in a point dataset.
OBSERVABLES = ("ergotropy", "energy_qb", "energy_cat", "power", "heat_current", "net_flux",
               "internal_energy", "bloch_x", "bloch_y", "bloch_z")
METHODS = ("auto", "batched", "propagator", "krylov", "arnoldi")

#: "auto" uses the full propagator up to this superoperator dimension (d^2), Arnoldi above.
AUTO_PROPAGATOR_MAX = 64
#: Ritz values of the Krylov method beyond 1 + this are discarded as numerical noise.
SPURIOUS_RITZ_MARGIN = 1e-6
#: Largest superoperator dimension for which a dense propagator or eigendecomposition is attempted.
DENSE_MAX = 1024


class SteadyStateError(RuntimeError):
    """The long-time state could not be computed; the message names the point and what to change."""


@dataclass
class SteadyState:
    """The asymptotic (periodic) state of one point and its observables over one drive period.

    ``rho``: the state at t = 0 mod T. ``time``: n_period points on [0, T) (just [0] when the point
    is time-independent). ``data``: observables on ``time``; ``mean``: their period averages plus
    ``ergotropy_min``/``ergotropy_max``. ``relaxation_time``: slowest transient decay time (inf if
    some mode never decays, NaN if not computed). ``n_stationary``: dimension of the stationary
    space (1: the limit does not depend on the initial state).
    """

    params: dict
    method: str
    period: float
    rho: qutip.Qobj
    time: np.ndarray
    data: dict
    mean: dict
    relaxation_time: float
    n_stationary: int
    sanity: dict = field(default_factory=dict)
    wall_time: float = 0.0
    periods: int = 0  # drive periods integrated by the krylov method (0 for the others)


def _describe(p: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items())


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def is_time_independent(p: dict) -> bool:
    """No drive: H_drive = Omega sin(omega_d t) sx vanishes identically if Omega = 0 or omega_d = 0."""
    return p["Omega"] == 0 or p["omega_d"] == 0


def drive_period(p: dict) -> float:
    """T = 2 pi / omega_d (NaN for a time-independent point)."""
    return math.nan if is_time_independent(p) else 2 * math.pi / p["omega_d"]


# ----------------------------------------------------------------------------- observables


def _period_means(data: dict) -> dict:
    mean = {k: float(np.mean(v)) for k, v in data.items() if k in OBSERVABLES}
    mean["ergotropy_min"] = float(np.min(data["ergotropy"]))
    mean["ergotropy_max"] = float(np.max(data["ergotropy"]))
    return mean


# ----------------------------------------------------------------------------- linear algebra


def _vec(rho: np.ndarray) -> np.ndarray:
    """Column stacking, QuTiP's superoperator convention: vec(rho)[i + j d] = rho[i, j]."""
    return rho.ravel(order="F")


def _unvec(v: np.ndarray) -> np.ndarray:
    d = int(round(math.sqrt(v.size)))
    return v.reshape(d, d, order="F")


def stationary_projection(M: np.ndarray, v0: np.ndarray, is_stationary: Callable[[np.ndarray], np.ndarray]):
    """Spectral projection of v0 onto the eigenspace of M selected by ``is_stationary``.

    P = R (L^H R)^-1 L^H with the right (R) and left (L) eigenvectors of the selected eigenvalues:
    the part of v0 that survives lim M^n v0 (or lim exp(M t) v0). Returns (P v0, eigenvalues, mask).
    The peripheral spectrum of a trace-preserving completely positive map is semisimple, so P is
    well defined.
    """
    w, vl, vr = sla.eig(M, left=True, right=True)
    mask = is_stationary(w)
    if not mask.any():
        raise SteadyStateError("no stationary eigenvalue found")
    R, Lh = vr[:, mask], vl[:, mask].conj().T
    return R @ np.linalg.solve(Lh @ R, Lh @ v0), w, mask


def _finish_state(rho: np.ndarray, dims) -> tuple[qutip.Qobj, float]:
    """Normalise to trace 1 and symmetrise; returns the state and the relative Hermiticity error."""
    rho = rho / np.trace(rho)
    herm = float(np.max(np.abs(rho - rho.conj().T)))
    return qutip.Qobj(0.5 * (rho + rho.conj().T), dims=dims), herm


def _fixed_point_propagator(model: Model, p: dict, T: float, stationary_tol: float):
    """(rho, relaxation_time, n_stationary, hermiticity error) from the full one-period propagator."""
    U = qutip.propagator(model.hamiltonian(), T, model.c_ops,
                         options=solver_options(p, store_states=True)).full()
    rho0 = model.rho0.full()
    x, w, mask = stationary_projection(U, _vec(rho0), lambda w: np.abs(w - 1) < stationary_tol)
    rest = np.abs(w[~mask])
    slowest = rest.max() if rest.size else 0.0
    relax = _relax(slowest, T, stationary_tol)
    rho, herm = _finish_state(_unvec(x), model.rho0.dims)
    return rho, relax, int(mask.sum()), herm


def _fixed_point_arnoldi(model: Model, p: dict, T: float, stationary_tol: float, tol: float, ncv: int,
                         maxiter: int = 20):
    """(rho, relaxation_time) from Arnoldi on v -> U v (one single-state propagation per product)."""
    d = model.rho0.shape[0]
    D = d * d
    dims = model.rho0.dims
    solver = qutip.MESolver(model.hamiltonian(), model.c_ops, options=solver_options(p))

    def one_period(v: np.ndarray) -> np.ndarray:
        solver.start(qutip.Qobj(v.reshape(d, d), dims=dims), 0.0)
        return solver.step(T).full().ravel()

    op = spla.LinearOperator((D, D), matvec=one_period, dtype=complex)
    w, vecs = spla.eigs(op, k=2, which="LM", v0=model.rho0.full().ravel().astype(complex),
                        tol=tol, ncv=min(ncv, D), maxiter=maxiter)
    i = int(np.argmin(np.abs(w - 1)))
    if abs(w[i] - 1) > 1e-4:
        raise SteadyStateError(f"Arnoldi found no eigenvalue 1 of the one-period map (closest {w[i]:.6g})")
    lam2 = abs(w[1 - i])
    relax = _relax(lam2, T, stationary_tol)
    rho, herm = _finish_state(vecs[:, i].reshape(d, d), dims)
    return rho, relax, herm, lam2


def dmd_fixed_point(X: np.ndarray, rank_tol: float = 1e-10):
    """Fixed point of the linear map behind a sequence x_{k+1} = U x_k (columns of X).

    Exact dynamic mode decomposition, i.e. Rayleigh-Ritz in the Krylov space span{x_0, U x_0, ...}:
    X0 = W S V^H (singular values below rank_tol * S_max dropped), H = W^H X1 V S^-1 is U projected
    on that space; the Ritz vector W y of the Ritz value closest to 1 is the fixed point. Returns
    (x, ritz_values, index of the fixed point's Ritz value).
    """
    X0, X1 = X[:, :-1], X[:, 1:]
    W, S, Vh = np.linalg.svd(X0, full_matrices=False)
    r = int(np.sum(S > rank_tol * S[0]))
    W, S, Vh = W[:, :r], S[:r], Vh[:r]
    H = (W.conj().T @ X1 @ Vh.conj().T) / S
    w, y = np.linalg.eig(H)
    i = int(np.argmin(np.abs(w - 1)))
    return W @ y[:, i], w, i


def _fixed_point_krylov(model: Model, p: dict, T: float, stationary_tol: float, tol: float,
                        chunk: int = 5, min_periods: int = 20, max_periods: int = 400):
    """(rho, relaxation_time, hermiticity error, |lambda_2|, periods) from the stroboscopic trajectory.

    The trajectory from rho(0) is sampled once per period (one continuous integration, no
    restarts) and :func:`dmd_fixed_point` extrapolates its limit; ``chunk`` more periods are added
    until two successive estimates differ by less than ``tol`` (max abs over matrix elements).
    The Krylov space only holds the modes the initial state excites, so lambda_2 (and the
    relaxation time) is the slowest mode of this initial state's transient.
    """
    d = model.rho0.shape[0]
    dims = model.rho0.dims
    solver = qutip.MESolver(model.hamiltonian(), model.c_ops, options=solver_options(p))
    solver.start(model.rho0, 0.0)
    X = [model.rho0.full().ravel()]
    previous, k = None, 0
    while True:
        for _ in range(chunk):
            k += 1
            X.append(solver.step(k * T).full().ravel())
        if k < min_periods:
            continue
        x, w, i = dmd_fixed_point(np.array(X).T)
        rho = x.reshape(d, d) / x.reshape(d, d).trace()
        if previous is not None and np.max(np.abs(rho - previous)) < tol:
            break
        if k >= max_periods:
            raise SteadyStateError(f"the Krylov extrapolation did not settle to {tol:g} within {k} periods")
        previous = rho
    if abs(w[i] - 1) > 1e-4:
        raise SteadyStateError(f"no eigenvalue 1 among the Ritz values (closest {w[i]:.6g})")
    others = np.abs(np.delete(w, i))
    # The one-period map is CPTP, so its spectrum lies in the unit disc: a Ritz value outside it
    # is a noise mode of the ill-conditioned Krylov basis, not a slow transient (such values sent
    # points to the far dearer dense propagator: benchmarks/README.md, "Steady state").
    others = others[others <= 1 + SPURIOUS_RITZ_MARGIN]
    lam2 = float(others.max()) if others.size else 0.0
    relax = _relax(lam2, T, stationary_tol)
    rho, herm = _finish_state(rho, dims)
    return rho, relax, herm, lam2, k


# ----------------------------------------------------------------------------- the steady state


def _static_state(model: Model, p: dict, stationary_tol: float):
    """Long-time state of a time-independent Lindbladian: qutip.steadystate if the kernel is
    one-dimensional, else the projection of rho(0) onto the kernel."""
    L = qutip.liouvillian(model.H_static, model.c_ops)
    D = L.shape[0]
    if D > DENSE_MAX:  # no spectrum: trust steadystate (it raises on a singular kernel)
        try:
            rho = qutip.steadystate(model.H_static, model.c_ops)
        except Exception as exc:
            raise SteadyStateError(f"qutip.steadystate failed ({exc}); the stationary state may not be "
                                   "unique (no dissipation or a conserved quantity)") from exc
        return rho, math.nan, 1, 0.0, "steadystate"
    x, w, mask = stationary_projection(L.full(), _vec(model.rho0.full()),
                                       lambda w: np.abs(w) < stationary_tol)
    rates = -w[~mask].real
    relax = math.inf if (rates.size and rates.min() < stationary_tol) else (
        1.0 / rates.min() if rates.size else 0.0)
    n_stat = int(mask.sum())
    if n_stat == 1:
        return qutip.steadystate(model.H_static, model.c_ops), relax, 1, 0.0, "steadystate"
    rho, herm = _finish_state(_unvec(x), model.rho0.dims)
    return rho, relax, n_stat, herm, "projection"


def steady_state(params: dict | None = None, *, method: str = "auto", n_period: int = 128,
                 stationary_tol: float = 1e-6, krylov_tol: float = 1e-8, arnoldi_tol: float = 1e-10,
                 ncv: int = 30) -> SteadyState:
    """The asymptotic state of one point and its period-averaged observables (module docstring).

    ``params``: overrides of the defaults (t_max and n_t play no role; initial_qubit only matters
    when the stationary state is not unique). ``method``: "auto", "batched", "krylov",
    "propagator" or "arnoldi". ``n_period``: output times per period. ``stationary_tol``: |lambda - 1| (periodic)
    or |mu| (time-independent, in units of omega_0) below which an eigenvalue counts as stationary.
    ``krylov_tol``: max change of the krylov estimate between two checks (5 periods apart) that
    stops it. ``arnoldi_tol``, ``ncv``: ARPACK's tolerance and Krylov-space size. Raises
    SteadyStateError (naming the point) when no long-time state can be computed.
    """
    p = resolve(params)  # n_fock auto: the cutoff the study's point uses
    if method not in METHODS:
        raise ParameterError(f"method: steady-state method must be one of {', '.join(METHODS)}, got {method!r}")
    if not (isinstance(n_period, int) and n_period >= 4):
        raise ParameterError(f"n_period: must be an integer >= 4, got {n_period!r}")
    if method == "batched":  # a batch of one (maps batch all their points: steady_map)
        return batched_steady_states([p], n_period=n_period, stationary_tol=stationary_tol)[0]
    model = build_model(p)
    ops = expect_operators(model)
    periods = 0
    start = _time.perf_counter()
    try:
        if is_time_independent(p):
            rho, relax, n_stat, herm, used = _static_state(model, p, stationary_tol)
            t = np.zeros(1)
            ev = {k: np.atleast_1d(qutip.expect(op, rho)) for k, op in ops.items()}
            residual = float(np.max(np.abs(qutip.liouvillian(model.H_static, model.c_ops)(rho).full())))
            T = math.nan
        else:
            T = drive_period(p)
            D = model.rho0.shape[0] ** 2
            used = method if method != "auto" else ("propagator" if D <= AUTO_PROPAGATOR_MAX else "krylov")
            if used in ("krylov", "arnoldi"):
                try:
                    if used == "krylov":
                        rho, relax, herm, lam2, periods = _fixed_point_krylov(model, p, T, stationary_tol,
                                                                              krylov_tol)
                    else:
                        rho, relax, herm, lam2 = _fixed_point_arnoldi(model, p, T, stationary_tol,
                                                                      arnoldi_tol, ncv)
                    n_stat = 1
                    if math.isinf(relax):  # |lambda_2| ~ 1: the vector found is one of several
                        raise SteadyStateError(f"second eigenvalue |lambda_2| = {lam2:.8f} ~ 1")
                except (SteadyStateError, spla.ArpackNoConvergence) as exc:
                    if D > DENSE_MAX:
                        raise SteadyStateError(
                            f"{used} failed ({exc}) and the propagator ({D}x{D}) is too large") from exc
                    used = "propagator"
            if used == "propagator":
                if D > DENSE_MAX:
                    raise SteadyStateError(f"the one-period propagator would be {D}x{D} (> {DENSE_MAX}); "
                                           "use method='arnoldi'")
                rho, relax, n_stat, herm = _fixed_point_propagator(model, p, T, stationary_tol)
            t_out = np.linspace(0.0, T, n_period + 1)
            solver = qutip.MESolver(model.hamiltonian(), model.c_ops,
                                    options=solver_options(p, store_final_state=True))
            result = solver.run(rho, t_out, e_ops=list(ops.values()))
            ev = {k: np.asarray(v)[:-1] for k, v in zip(ops, result.expect)}
            residual = float(np.max(np.abs(result.final_state.full() - rho.full())))
            t = t_out[:-1]
    except SteadyStateError as exc:
        raise SteadyStateError(f"{exc} at point {_describe(p)}") from exc
    except Exception as exc:  # QuTiP integrator errors
        raise SteadyStateError(f"steady state failed ({type(exc).__name__}: {exc}) at point {_describe(p)}; "
                               "try another method or solver settings") from exc
    wall = _time.perf_counter() - start
    data = observables_from_expect(p, t, ev)
    bad = [k for k, v in data.items() if not np.all(np.isfinite(v))]
    if bad:
        raise SteadyStateError(f"non-finite {', '.join(bad)} in the steady state at point {_describe(p)}")
    sanity = {
        "trace_error_max": float(np.max(np.abs(data["trace"] - 1))),
        "min_eigenvalue": float(np.min(np.linalg.eigvalsh(rho.full()))),
        "hermiticity_error": herm,
        "fixed_point_residual": residual,
    }
    return SteadyState(params=p, method=used, period=T, rho=rho, time=t, data=data,
                       mean=_period_means(data), relaxation_time=float(relax), n_stationary=int(n_stat),
                       sanity=sanity, wall_time=wall, periods=periods)


# ----------------------------------------------------------------------------- batched: all cells at once
#
# The one-period map of every cell applied to one Hermitian matrix per cell is ONE batched
# integration (qbcat.engine.batched.propagate). Hermitian matrices are real vectors of length d^2 in the
# orthonormal (Hilbert-Schmidt) basis E_ii, (E_ij + E_ji)/sqrt 2, i (E_ij - E_ji)/sqrt 2 (i < j);
# the map preserves Hermiticity, so in this basis it is a real d^2 x d^2 matrix with the spectrum
# of the superoperator.


def herm_to_vec(rho: np.ndarray) -> np.ndarray:
    """(n, d, d) Hermitian -> (n, d^2) real coordinates: rho_ii, sqrt2 Re rho_ij, sqrt2 Im rho_ij (i<j)."""
    d = rho.shape[-1]
    iu, ju = np.triu_indices(d, 1)
    off = rho[:, iu, ju]
    return np.concatenate([np.einsum("nii->ni", rho).real, math.sqrt(2) * off.real, math.sqrt(2) * off.imag], axis=1)


def vec_to_herm(x: np.ndarray, d: int) -> np.ndarray:
    """Inverse of :func:`herm_to_vec`."""
    n = x.shape[0]
    iu, ju = np.triu_indices(d, 1)
    k = len(iu)
    rho = np.zeros((n, d, d), dtype=complex)
    rho[:, np.arange(d), np.arange(d)] = x[:, :d]
    off = (x[:, d:d + k] + 1j * x[:, d + k:]) / math.sqrt(2)
    rho[:, iu, ju] = off
    rho[:, ju, iu] = off.conj()
    return rho


def _one_period(points: Sequence[dict], X: np.ndarray, d: int) -> np.ndarray:
    """x_b -> U_b x_b over one drive period for every row b (real coordinates), in one batch."""
    from ..engine.batched import propagate

    T = np.array([drive_period(p) for p in points])
    if not np.all(T == T[0]):
        raise ValueError("the points of one batched propagation must share the drive period")
    return herm_to_vec(propagate(points, vec_to_herm(X, d), T[0]))


def batched_propagators(points: Sequence[dict]) -> np.ndarray:
    """The full one-period maps (n, d^2, d^2), real, of points sharing (catalyst, n_fock, omega_d):
    d^2 basis propagations per point, all in one batch."""
    d = _dim(points[0])
    D = d * d
    basis = np.eye(D)
    X = np.tile(basis, (len(points), 1))
    lanes = [p for p in points for _ in range(D)]
    Y = _one_period(lanes, X, d)
    return Y.reshape(len(points), D, D).transpose(0, 2, 1)  # column k = U e_k


def _dim(p: dict) -> int:
    return 2 * p["n_fock"] if p["catalyst"] else 2


def _relax(lam2: float, T: float, stationary_tol: float) -> float:
    """The relaxation time tau = -T / ln |lambda_2| of the slowest transient mode (inf when it
    does not decay: |lambda_2| within stationary_tol of 1; 0 when nothing is left to decay)."""
    return math.inf if lam2 >= 1 - stationary_tol else (-T / math.log(lam2) if lam2 > 0 else 0.0)


def propagator_spectrum(U: np.ndarray, T: float, stationary_tol: float = 1e-6):
    """(relaxation time, |lambda_2|, number of eigenvalues within stationary_tol of 1) of a full
    one-period map."""
    w = np.linalg.eigvals(U)
    stat = np.abs(w - 1) < stationary_tol
    rest = np.abs(w[~stat])
    lam2 = float(rest.max()) if rest.size else 0.0
    return _relax(lam2, T, stationary_tol), lam2, int(stat.sum())


@dataclass
class ArnoldiResult:
    """Per cell: the fixed point (real coordinates, trace 1), |lambda_2|, the Ritz residuals of
    both, the Krylov dimension used and whether the stopping test passed."""

    x: np.ndarray
    lam2: np.ndarray
    residual_1: np.ndarray
    residual_2: np.ndarray
    steps: np.ndarray
    converged: np.ndarray  # both residuals below their tolerances (or an invariant subspace)
    fixed_converged: np.ndarray  # the fixed point's residual below its tolerance


def batched_arnoldi(points: Sequence[dict], *, tol: float = 1e-8, tau_rtol: float = 1e-5, min_steps: int = 16,
                    max_steps: int = 60, check_every: int = 4, seed: int = 0) -> ArnoldiResult:
    """Fixed point and slowest decay mode of the one-period map U of every point, all at once.

    Arnoldi on each point's U (real arithmetic on Hermitian coordinates), started from the
    point's initial state plus a random Hermitian matrix (so that every mode is excited and
    lambda_2 does not depend on the initial state): V_{k+1} h_{k+1,k} = U v_k - V_k h_k, twice
    classical Gram-Schmidt. Each step is one batched one-period propagation of the active points'
    vectors. Every ``check_every`` steps (from ``min_steps``), per point: the Ritz pairs
    (theta, V y) of H_k with residuals |h_{k+1,k} y_k| = ||U V y - theta V y||; the fixed point is
    the Ritz pair closest to 1, lambda_2 the largest-modulus other Ritz value. A point stops when
    the fixed point's residual is below ``tol`` and lambda_2's below what moves the relaxation
    time by ``tau_rtol`` (an eigenvalue's error is about its residual times its condition number,
    and d tau / tau = d|lambda| / (|lambda| |ln |lambda||), so weakly damped points, |lambda_2|
    near 1, iterate longer; measured against the full propagator: benchmarks/README.md). The
    lambda_2 candidate is the largest-modulus Ritz value other than the fixed point, so an
    unconverged (possibly spurious) Ritz value above the slowest mode keeps the point iterating
    instead of being taken for it. Points not converged at ``max_steps`` are flagged
    (``converged`` False); a point whose Krylov space becomes invariant (``h_{k+1,k}`` ~ 0: exact
    Ritz values, e.g. the baseline's d^2 = 4) stops there.
    """
    from ..engine.model import operators

    n = len(points)
    d = _dim(points[0])
    D = d * d
    m_max = min(max_steps, D)
    rng = np.random.default_rng(seed)
    V = np.zeros((n, m_max + 1, D))
    H = np.zeros((n, m_max + 1, m_max))
    rho0 = np.stack([operators(p).rho0 for p in points])
    # the same random part for every point: a point's result does not depend on its batch
    v0 = herm_to_vec(rho0) + rng.normal(size=D) / math.sqrt(D)
    V[:, 0] = v0 / np.linalg.norm(v0, axis=1, keepdims=True)
    out = ArnoldiResult(x=np.zeros((n, D)), lam2=np.full(n, np.nan), residual_1=np.full(n, np.nan),
                        residual_2=np.full(n, np.nan), steps=np.zeros(n, dtype=int),
                        converged=np.zeros(n, dtype=bool), fixed_converged=np.zeros(n, dtype=bool))
    active = np.arange(n)
    breakdown = np.zeros(n, dtype=bool)
    for k in range(m_max):
        W = _one_period([points[b] for b in active], V[active, k], d)
        Vk = V[active, :k + 1]
        for _ in range(2):  # classical Gram-Schmidt, twice ("twice is enough")
            h = np.einsum("bkd,bd->bk", Vk, W)
            W = W - np.einsum("bkd,bk->bd", Vk, h)
            H[active, :k + 1, k] += h
        beta = np.linalg.norm(W, axis=1)
        H[active, k + 1, k] = beta
        tiny = beta < 1e-12
        breakdown[active[tiny]] = True  # an invariant subspace: the Ritz values are exact
        V[active, k + 1] = np.where(tiny[:, None], 0.0, W / np.where(tiny, 1.0, beta)[:, None])
        m = k + 1
        last = m == m_max
        if not (last or breakdown[active].any() or (m >= min_steps and (m - min_steps) % check_every == 0)):
            continue
        done = []
        for b in active:
            if not (last or breakdown[b] or m >= min_steps):
                continue
            theta, Y = np.linalg.eig(H[b, :m, :m])
            Y = Y / np.linalg.norm(Y, axis=0)
            res = 0.0 if breakdown[b] else np.abs(H[b, m, m - 1] * Y[m - 1])
            res = np.broadcast_to(res, theta.shape)
            i1 = int(np.argmin(np.abs(theta - 1)))
            others = np.delete(np.arange(m), i1)
            if others.size:
                i2 = others[int(np.argmax(np.abs(theta[others])))]
                lam2, r2 = float(abs(theta[i2])), float(res[i2])
            else:
                lam2, r2 = 0.0, 0.0
            # d tau / tau = d|lambda| / (|lambda| |ln |lambda||): the residual allowed for tau_rtol
            ok = res[i1] < tol and r2 < tau_rtol * lam2 * abs(math.log(lam2)) if 0 < lam2 < 1 else res[i1] < tol
            if not (ok or last or breakdown[b]):
                continue
            x = V[b, :m].T @ Y[:, i1]
            x = np.real(x / x[:d].sum())  # trace 1 (theta_1 is real: its eigenvector is real)
            out.x[b], out.lam2[b], out.residual_1[b], out.residual_2[b] = x, lam2, res[i1], r2
            out.steps[b], out.converged[b] = m, bool(ok or breakdown[b])
            out.fixed_converged[b] = bool(res[i1] < tol or breakdown[b])
            done.append(b)
        active = np.setdiff1d(active, done)
        if active.size == 0:
            break
    return out


#: Largest superoperator dimension d^2 for which the batched path computes the full one-period
#: propagator (d^2 lanes, a dense eigendecomposition) when Arnoldi did not settle: n_fock 20.
BATCHED_PROPAGATOR_MAX = 1600
#: Points whose Arnoldi did not settle in max_steps are run again with this many times more steps.
RETRY_STEPS_FACTOR = 4


def _batched_state_group(points: Sequence[dict], *, n_period: int, stationary_tol: float, tol: float,
                         tau_rtol: float, max_steps: int) -> list:
    """SteadyState of points sharing (catalyst, n_fock, omega_d), or a SteadyStateError per point.

    Arnoldi first (:func:`batched_arnoldi`), again with RETRY_STEPS_FACTOR x ``max_steps`` for the
    points where it did not settle; a point where it still did not settle, or whose |lambda_2|
    is ~1 (a degenerate or undamped fixed point), gets the full one-period propagator
    (:func:`batched_propagators`, up to BATCHED_PROPAGATOR_MAX): lambda_2 from its spectrum and,
    unless Arnoldi's fixed point converged with |lambda_2| < 1, the spectral projection of rho(0)
    on its eigenvalue-1 space (method "batched_propagator")."""
    from ..engine.batched import evolve_expect, propagate
    from ..engine.model import operators

    start = _time.perf_counter()
    n = len(points)
    d = _dim(points[0])
    D = d * d
    T = drive_period(points[0])
    ar = batched_arnoldi(points, tol=tol, tau_rtol=tau_rtol, max_steps=max_steps)
    retry = np.flatnonzero(~ar.converged)
    if retry.size:  # weakly damped points (|lambda_2| near 1, clustered): a longer Krylov space,
        # for the few points that need it (still far cheaper than d^2 propagations)
        again = batched_arnoldi([points[b] for b in retry], tol=tol, tau_rtol=tau_rtol,
                                max_steps=RETRY_STEPS_FACTOR * max_steps)
        for name in ("x", "lam2", "residual_1", "residual_2", "steps", "converged", "fixed_converged"):
            getattr(ar, name)[retry] = getattr(again, name)
    x = ar.x.copy()
    lam2 = ar.lam2.copy()
    n_stat = np.ones(n, dtype=int)
    method = np.array(["batched"] * n, dtype=object)
    errors: dict = {}
    full = np.flatnonzero(~ar.converged | ~(ar.lam2 < 1 - stationary_tol))
    if full.size and D > BATCHED_PROPAGATOR_MAX:
        for b in full:
            errors[b] = SteadyStateError(
                f"Arnoldi did not settle in {ar.steps[b]} steps (residuals {ar.residual_1[b]:.1e}, "
                f"{ar.residual_2[b]:.1e}, |lambda_2| {ar.lam2[b]:.6f}) and the propagator would be {D}x{D}")
    elif full.size:
        for b, U in zip(full, batched_propagators([points[b] for b in full])):
            w = np.linalg.eigvals(U)
            stat = np.abs(w - 1) < stationary_tol
            rest = np.abs(w[~stat])
            lam2[b] = float(rest.max()) if rest.size else 0.0
            n_stat[b] = int(stat.sum())
            if not (ar.fixed_converged[b] and n_stat[b] == 1):
                v0 = herm_to_vec(operators(points[b]).rho0[None])[0]
                xb, _, _ = stationary_projection(U, v0, lambda w: np.abs(w - 1) < stationary_tol)
                x[b] = np.real(xb / xb[:d].sum())
            method[b] = "batched_propagator"
    rho = vec_to_herm(x, d)  # Hermitian by construction (real coordinates)
    t_out = np.linspace(0.0, T, n_period + 1)
    lanes = evolve_expect(points, rho, t_out)
    after = propagate(points, rho, T)
    wall = (_time.perf_counter() - start) / n
    results = []
    for b, (p, lr) in enumerate(zip(points, lanes)):
        if b in errors:
            results.append(errors[b])
            continue
        if lr.status != 0:
            results.append(SteadyStateError(f"the period's integration failed (status {lr.status})"))
            continue
        t = t_out[:-1]
        data = observables_from_expect(p, t, {k: v[:-1] for k, v in lr.expect.items()})
        sanity = {
            "trace_error_max": float(np.max(np.abs(data["trace"] - 1))),
            "min_eigenvalue": float(np.min(np.linalg.eigvalsh(rho[b]))),
            "hermiticity_error": 0.0,
            "fixed_point_residual": float(np.max(np.abs(after[b] - rho[b]))),
            "ritz_residual_fixed_point": float(ar.residual_1[b]),
            "ritz_residual_lambda_2": float(ar.residual_2[b]),
        }
        results.append(SteadyState(
            params=p, method=str(method[b]), period=T, rho=qutip.Qobj(rho[b], dims=_dims(p)), time=t, data=data,
            mean=_period_means(data), relaxation_time=_relax(float(lam2[b]), T, stationary_tol),
            n_stationary=int(n_stat[b]), sanity=sanity, wall_time=wall, periods=int(ar.steps[b])))
    return results


def _dims(p: dict) -> list:
    return [[2, p["n_fock"]], [2, p["n_fock"]]] if p["catalyst"] else [[2], [2]]


def batched_steady_states(points: Sequence[dict], *, n_period: int = 128, stationary_tol: float = 1e-6,
                          tol: float = 1e-8, tau_rtol: float = 1e-5, max_steps: int = 60,
                          fallback: str = "arnoldi", workers: int = 1,
                          progress: Callable[[str], None] | None = None) -> list[SteadyState]:
    """The steady states of many validated points with :func:`batched_arnoldi` (module docstring).

    Points are grouped by (catalyst, n_fock, omega_d) and each group is one batched Arnoldi
    iteration (one batched propagation per step for all its points), then one batched integration
    of the period with ``n_period`` outputs for the observables. Points whose Arnoldi did not
    settle (after a retry with more steps) and points with |lambda_2| ~ 1 (degenerate or
    undamped) get the batched full propagator (method "batched_propagator"; up to d^2 =
    BATCHED_PROPAGATOR_MAX), time-independent points and larger failed ones :func:`steady_state`
    with method ``fallback`` (QuTiP). Returns one SteadyState per point, in order; raises
    SteadyStateError (naming the point) if a fallback fails too. ``tol``, ``tau_rtol``,
    ``max_steps``: :func:`batched_arnoldi`.

    ``workers`` > 1: the points are split into that many parts, each computed in its own process
    (a point's result does not depend on its batch, so the split changes nothing but the time).
    """
    if not (isinstance(workers, int) and workers >= 1):
        raise ParameterError(f"workers: expected an integer >= 1, got {workers!r}")
    options = dict(n_period=n_period, stationary_tol=stationary_tol, tol=tol, tau_rtol=tau_rtol,
                   max_steps=max_steps, fallback=fallback)
    if workers > 1 and len(points) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        parts = [list(points[k::workers]) for k in range(min(workers, len(points)))]
        # fork, not spawn: a spawned child re-runs the parent's main script, and a Snakemake
        # script job has no __main__ guard (it would compute the map again)
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(len(parts), mp_context=multiprocessing.get_context(method)) as pool:
            done = list(pool.map(_states_part, parts, [options] * len(parts)))
        out: list = [None] * len(points)
        for k, states in enumerate(done):
            out[k::workers] = states
        if progress:
            progress(f"batched steady states: {len(points)} points in {len(parts)} processes")
        return out
    out = [None] * len(points)
    groups: dict = {}
    for i, p in enumerate(points):
        if is_time_independent(p):
            out[i] = steady_state(p, method=fallback, n_period=n_period, stationary_tol=stationary_tol)
            continue
        key = (p["catalyst"], p["n_fock"] if p["catalyst"] else 0, p["omega_d"])
        groups.setdefault(key, []).append(i)
    for key, idx in groups.items():
        t0 = _time.perf_counter()
        res = _batched_state_group([points[i] for i in idx], n_period=n_period, stationary_tol=stationary_tol,
                                   tol=tol, tau_rtol=tau_rtol, max_steps=max_steps)
        n_fallback = 0
        n_full = sum(1 for r in res if getattr(r, "method", "") == "batched_propagator")
        for i, r in zip(idx, res):
            if isinstance(r, Exception):
                n_fallback += 1
                if progress:
                    progress(f"{r} at point {_describe(points[i])}: method {fallback}")
                out[i] = steady_state(points[i], method=fallback, n_period=n_period, stationary_tol=stationary_tol)
            else:
                out[i] = r
        if progress:
            progress(f"batched steady states (catalyst={key[0]}, n_fock={key[1]}, omega_d={key[2]}): "
                     f"{len(idx)} points in {_time.perf_counter() - t0:.1f} s, {n_full} by the full propagator, "
                     f"{n_fallback} handed to {fallback}")
    return out



def _states_part(points: list, options: dict) -> list:
    """One worker process's share of :func:`batched_steady_states` (its messages to stderr)."""
    return batched_steady_states(points, **options, progress=_stderr)


# ----------------------------------------------------------------------------- trajectories


def late_time_mean(traj, n_periods: int = 10, names: Sequence[str] | None = None,
                   period: float | None = None) -> dict:
    """Time average of a trajectory's observables over its last ``n_periods`` whole drive periods,

        <X> = 1/(n T) int_{t_end - n T}^{t_end} X(t) dt,

    by the trapezoidal rule on the output grid (the window start linearly interpolated). On a grid
    with a whole number of samples per period the rule is spectrally accurate for periodic X.
    ``traj``: a qbcat.engine.solve.Trajectory; ``period`` defaults to 2 pi / omega_d.
    """
    T = period if period is not None else drive_period(traj.params)
    if not (T > 0 and math.isfinite(T)):
        raise ValueError("late_time_mean needs a drive period (omega_d > 0 and Omega > 0) or period=")
    t = np.asarray(traj.time)
    t0 = t[-1] - n_periods * T
    if t0 < t[0] - 1e-9 * T:
        raise ValueError(f"the trajectory spans {t[-1] - t[0]:.6g}, less than {n_periods} periods of {T:.6g}")
    keep = t > t0 + 1e-9 * T
    names = names or [k for k in OBSERVABLES if k in traj.data]
    out = {}
    for k in names:
        y = np.asarray(traj.data[k])
        tw = np.concatenate([[t0], t[keep]])
        yw = np.concatenate([[np.interp(t0, t, y)], y[keep]])
        out[k] = float(np.trapezoid(yw, tw) / (t[-1] - t0))
    return out


# ----------------------------------------------------------------------------- maps


MAP_VARIABLES = {
    "ergotropy_min": ("1", "minimum over the period of the asymptotic qubit ergotropy"),
    "ergotropy_max": ("1", "maximum over the period of the asymptotic qubit ergotropy"),
    "relaxation_time": ("1", "slowest transient decay time -T/ln|lambda_2| (inf: some mode never decays)"),
    "relaxation_time_propagator": ("1", "relaxation time from the full one-period propagator's spectrum "
                                        "(validation cells only, NaN elsewhere)"),
    "n_stationary": ("1", "dimension of the stationary space (1: limit independent of the initial state)"),
    "n_fock": ("1", "photon cutoff of the cell (the catalyzed case's; the baseline has no oscillator)"),
    "krylov_dimension": ("1", "Arnoldi steps (one-period propagations) of the batched method; 0 for the others"),
    "sanity_min_eigenvalue": ("1", "smallest eigenvalue of the asymptotic state (>= 0 up to round-off)"),
    "sanity_fixed_point_residual": ("1", "max |rho(T) - rho(0)| of the periodic state (or max |L rho|)"),
    "sanity_trace_error_max": ("1", "max |Tr rho - 1| over the period"),
    "wall_time": ("s", "wall-clock time of the steady-state computation (a batched point: its share)"),
}

#: Where the batched relaxation time is checked against the full propagator (steady_map).
VALIDATION = ("corners", "slowest")


def _map_points(base: dict, axes: dict, cases: Sequence[str], n_fock=None):
    """Validated parameter sets of every (axis values..., case), before any work.

    ``n_fock``: None (the base's), an int, or an integer array of shape (*axes lengths, len(cases))
    or (*axes lengths) with each cell's cutoff (e.g. a sweep's per-point ``n_fock``)."""
    if not isinstance(axes, dict) or not axes:
        raise ParameterError("axes: expected a mapping of parameter names to lists of values")
    for name, values in axes.items():
        if name not in PARAMETERS:
            raise ParameterError(f"{name}: unknown parameter (known: {', '.join(PARAMETERS)})")
        if name == "catalyst":
            raise ParameterError("catalyst: not an axis; the map always has a case dimension")
        if name == "n_fock" and n_fock is not None:
            raise ParameterError("n_fock: an axis of the map and a per-cell cutoff at once")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
            raise ParameterError(f"{name}: expected a non-empty list of values, got {values!r}")
    for case in cases:
        if case not in CASES:
            raise ParameterError(f"cases: unknown case {case!r} (known: {', '.join(CASES)})")
    shape = tuple(len(v) for v in axes.values())
    cells = None
    base = {k: v for k, v in base.items() if k != "catalyst"}
    if n_fock is not None and not isinstance(n_fock, (int, np.integer)):
        cells = np.asarray(n_fock)
        if cells.shape == shape:
            cells = np.repeat(cells[..., None], len(cases), axis=-1)
        if cells.shape != shape + (len(cases),):
            raise ParameterError(f"n_fock: per-cell cutoffs must have shape {shape} or {shape + (len(cases),)}, "
                                 f"got {cells.shape}")
        # the baseline has no oscillator: its cutoff is not used (a sweep may hold NaN there)
        catalyzed = cells[..., [c == "catalyzed" for c in cases]].astype(float)
        if not np.all(np.isfinite(catalyzed)) or np.any(catalyzed != np.round(catalyzed)) or np.any(catalyzed < 2):
            raise ParameterError("n_fock: per-cell cutoffs must be integers >= 2")
        fill = int(catalyzed.flat[0]) if catalyzed.size else 2
        cells = np.where(np.isfinite(cells.astype(float)), cells, fill).astype(int)
        cells[..., [c == "baseline" for c in cases]] = fill
        base["n_fock"] = fill  # a placeholder for validation (e.g. base n_fock 'auto')
    elif n_fock is not None:
        base["n_fock"] = int(n_fock)
    base = validate(base)
    points = {}
    for combo in itertools.product(*(range(len(v)) for v in axes.values())):
        over = {name: axes[name][i] for name, i in zip(axes, combo)}
        for c, case in enumerate(cases):
            if cells is not None:
                over["n_fock"] = int(cells[combo + (c,)])
            points[combo, case] = validate({**base, **over, "catalyst": case == "catalyzed"})
    return base, points


def _validation_points(points: dict, results: dict, axes: dict, cases: Sequence[str], which: Sequence[str]):
    """The cells whose batched relaxation time is checked against the full propagator: the corners
    of the map and the slowest cell, for each case (points computed by the batched method only)."""
    chosen = []
    shape = [len(v) for v in axes.values()]
    for case in cases:
        keys = [key for (combo, cs), key in points.items() if cs == case]
        combos = [combo for (combo, cs) in points if cs == case]
        if "corners" in which:
            for corner in itertools.product(*[sorted({0, n - 1}) for n in shape]):
                chosen.append(keys[combos.index(corner)])
        if "slowest" in which:
            finite = [k for k in keys if math.isfinite(results[k].relaxation_time)]
            if finite:
                chosen.append(max(finite, key=lambda k: results[k].relaxation_time))
    return [k for k in dict.fromkeys(chosen) if results[k].method == "batched"]


def steady_map(base_params: dict, axes: dict, *, cases: Sequence[str] = CASES, method: str = "batched",
               n_period: int = 128, progress: Callable[[str], None] | None = _stderr, n_fock=None,
               validation: Sequence[str] = VALIDATION, **options):
    """Period-averaged asymptotic observables over a parameter grid: an xarray Dataset.

    ``base_params``: the parameters that are not swept; ``axes``: name -> list of values (dims in
    this order, then ``case`` = catalyzed / baseline). ``n_fock``: the cutoff of every cell, from
    ``base_params`` (None), one int, or per cell (an integer array over the axes, optionally also
    over the cases, e.g. a sweep dataset's ``n_fock`` variable). ``method``: "batched" (every cell
    at once, :func:`batched_steady_states`) or one of the per-point QuTiP methods of
    :func:`steady_state`. ``validation``: where the batched relaxation time is recomputed from the
    full one-period propagator (:func:`batched_propagators`): "corners" and/or "slowest" (of each
    case), stored in ``relaxation_time_propagator``.

    Variables (dims (*axes, case)): the period average of every observable of :data:`OBSERVABLES`
    (energy_cat NaN for the baseline), ``ergotropy_min``/``ergotropy_max`` over the period, and
    :data:`MAP_VARIABLES`. Every point is validated before the first computation; identical points
    (e.g. the baseline of every g) are computed once. ``options`` go to the method.
    """
    import xarray as xr

    from .. import __version__
    from ..data.datasets import CONVENTIONS, VARIABLES

    if method not in METHODS:
        raise ParameterError(f"method: steady-state method must be one of {', '.join(METHODS)}, got {method!r}")
    bad = [v for v in validation if v not in VALIDATION]
    if isinstance(validation, str) or bad:
        raise ParameterError(f"validation: expected a list of {', '.join(VALIDATION)}, got {validation!r}")
    base, points = _map_points(dict(base_params), dict(axes), tuple(cases), n_fock)
    per_cell = n_fock is not None and not isinstance(n_fock, (int, np.integer))
    shape = tuple(len(v) for v in axes.values()) + (len(cases),)
    names = list(OBSERVABLES) + list(MAP_VARIABLES)
    out = {k: np.full(shape, np.nan) for k in names}
    unique = {}
    for p in points.values():
        unique.setdefault(point_id(p), p)
    start = _time.perf_counter()
    if method == "batched":
        states = batched_steady_states(list(unique.values()), n_period=n_period, progress=progress, **options)
        cache = dict(zip(unique, states))
    else:
        cache = {}
        for n, (key, p) in enumerate(unique.items(), 1):
            cache[key] = steady_state(p, method=method, n_period=n_period, **options)
            if progress:
                where = ", ".join(f"{a}={p[a]}" for a in axes)
                progress(f"steady point {n}/{len(unique)} ({where}, catalyst={p['catalyst']}): "
                         f"{cache[key].wall_time:.2f} s, {cache[key].method}")
    keys = {cell: point_id(p) for cell, p in points.items()}
    # cells computed from the full propagator carry its relaxation time already
    checked = {k: s.relaxation_time for k, s in cache.items() if s.method == "batched_propagator"}
    if method == "batched" and validation:
        todo = _validation_points(keys, cache, axes, cases, validation)
        t0 = _time.perf_counter()
        groups: dict = {}
        for k in todo:
            p = unique[k]
            groups.setdefault((p["catalyst"], p["n_fock"] if p["catalyst"] else 0, p["omega_d"]), []).append(k)
        for group in groups.values():
            for k, U in zip(group, batched_propagators([unique[k] for k in group])):
                checked[k] = propagator_spectrum(U, drive_period(unique[k]))[0]
        if progress and checked:
            dev = max(abs(cache[k].relaxation_time / checked[k] - 1) for k in checked)
            progress(f"relaxation time checked against the full propagator at {len(checked)} points in "
                     f"{_time.perf_counter() - t0:.1f} s: largest relative deviation {dev:.1e}")
    for (combo, case), p in points.items():
        s = cache[keys[combo, case]]
        idx = combo + (list(cases).index(case),)
        for k in OBSERVABLES:
            if k in s.mean:
                out[k][idx] = s.mean[k]
        out["ergotropy_min"][idx] = s.mean["ergotropy_min"]
        out["ergotropy_max"][idx] = s.mean["ergotropy_max"]
        out["relaxation_time"][idx] = s.relaxation_time
        out["relaxation_time_propagator"][idx] = checked.get(keys[combo, case], math.nan)
        out["n_stationary"][idx] = s.n_stationary
        out["n_fock"][idx] = p["n_fock"] if p["catalyst"] else math.nan
        out["krylov_dimension"][idx] = s.periods if s.method == "batched" else 0
        out["sanity_min_eigenvalue"][idx] = s.sanity["min_eigenvalue"]
        out["sanity_fixed_point_residual"][idx] = s.sanity["fixed_point_residual"]
        out["sanity_trace_error_max"][idx] = s.sanity["trace_error_max"]
        out["wall_time"][idx] = s.wall_time
    dims = tuple(axes) + ("case",)
    coords = {name: (name, np.asarray([validate({name: v})[name] for v in vals])) for name, vals in axes.items()}
    coords["case"] = ("case", np.asarray(list(cases)))
    ds = xr.Dataset({k: (dims, v) for k, v in out.items()}, coords=coords)
    for k in OBSERVABLES:
        units, long_name, comment = VARIABLES[k]
        ds[k].attrs.update(units=units, long_name=f"period-averaged asymptotic {long_name}",
                           comment=f"{comment}; mean over one drive period of the periodic steady state")
    for k, (units, long_name) in MAP_VARIABLES.items():
        ds[k].attrs.update(units=units, long_name=long_name)
    for name in axes:
        ds[name].attrs.update(long_name=PARAMETERS[name].description, units="1")
    ds["case"].attrs.update(long_name="catalyzed (qubit + oscillator) or uncatalyzed baseline (qubit alone)")
    attrs = {k: v for k, v in base.items() if k not in axes and k != "catalyst" and not (per_cell and k == "n_fock")}
    attrs = {k: (int(v) if isinstance(v, bool) else v) for k, v in attrs.items()}
    attrs.update(CONVENTIONS)
    finite = {k: v for k, v in checked.items() if math.isfinite(v) and math.isfinite(cache[k].relaxation_time)}
    attrs.update(
        product="steady_map",
        sweep_axes=" ".join(axes),
        steady_method=method,
        n_period=n_period,
        relaxation_time_validation=" ".join(validation) if method == "batched" else "none",
        relaxation_time_max_relative_deviation=max(
            (abs(cache[k].relaxation_time / v - 1) for k, v in finite.items()), default=math.nan),
        quantity="period averages over one drive period of the asymptotic periodic state "
                 "(fixed point of the one-period propagator); no transient integration",
        title="qbcat steady-state map",
        source=f"qbcat {__version__}, QuTiP {qutip.__version__}",
        qbcat_version=__version__,
        qutip_version=qutip.__version__,
        date_created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        total_wall_time_s=_time.perf_counter() - start,
    )
    ds.attrs.update(attrs)
    return ds


# ---------------------------------------------------------------------------------------------
# A map against its sweep

#: Observables compared with the trajectories' late-time means (energy_cat: catalyzed case only).
COMPARED = ("ergotropy", "energy_qb", "heat_current", "energy_cat")


def cell_cutoffs(sweep, axes: dict, cases: Sequence[str] = CASES):
    """Per-cell cutoffs from a sweep dataset's ``n_fock`` variable (dims (*axes, case): a sweep
    run with n_fock: auto), on the map's axis values and cases; None if it has none."""
    if "n_fock" not in sweep.data_vars:
        return None
    da = sweep["n_fock"].sel({a: list(v) for a, v in axes.items()}, method="nearest")
    for a, values in axes.items():
        if not np.allclose(da[a].values.astype(float), np.asarray(values, dtype=float), rtol=1e-9, atol=0):
            raise ValueError(f"the sweep's {a} values do not hold the map's {list(values)}")
    if "case" in da.dims:
        return da.sel(case=list(cases)).transpose(*axes, "case").values
    return da.transpose(*axes).values


def compare_with_trajectories(steady, sweep, late_periods: int = 10):
    """Steady period average vs the trajectory's late-time mean, one row per cell, case and
    observable (a DataFrame). The late-time mean is :func:`late_time_mean` over the last n whole
    drive periods, n = min(late_periods, periods in the run); ``t_max_over_relaxation_time``
    says how far the trajectory had relaxed (exp(-t_max / tau) is what is left of the transient).
    """
    from types import SimpleNamespace

    import pandas as pd

    axes = steady.attrs["sweep_axes"].split()
    missing = [a for a in axes if a not in sweep.coords]
    if missing:
        raise ValueError(f"the sweep has no axis {missing[0]!r}; the steady map's axes are {axes}")
    rows = []
    for index in itertools.product(*(range(steady.sizes[a]) for a in axes)):
        cell = {a: steady[a].values[i] for a, i in zip(axes, index)}
        for case in steady["case"].values:
            traj = sweep.sel(cell, method="nearest").sel(case=case)
            for a in axes:
                if not np.isclose(float(traj[a]), float(cell[a]), rtol=1e-9, atol=0):
                    raise ValueError(f"no {a} = {cell[a]} in the sweep")
            omega_d = float(traj["omega_d"]) if "omega_d" in traj.coords else float(sweep.attrs["omega_d"])
            t = traj["time"].values
            period = 2 * math.pi / omega_d if omega_d > 0 else float("nan")
            n = min(int(late_periods), int((t[-1] - t[0]) / period)) if period == period else 0
            names = [k for k in COMPARED if k in sweep and not (k == "energy_cat" and case == "baseline")]
            late = {}
            if n >= 1:
                data = {k: traj[k].values for k in names}
                late = late_time_mean(SimpleNamespace(time=t, data=data, params={}), n_periods=n,
                                      names=names, period=period)
            tau = float(steady["relaxation_time"].sel(cell).sel(case=case))
            for k in names:
                s = float(steady[k].sel(cell).sel(case=case))
                m = late.get(k, float("nan"))
                rows.append({**{a: float(v) for a, v in cell.items()}, "case": str(case), "observable": k,
                             "steady_period_mean": s, "trajectory_late_mean": m, "difference": m - s,
                             "late_periods": n, "window_start": t[-1] - n * period if n else float("nan"),
                             "relaxation_time": tau, "t_max_over_relaxation_time": t[-1] / tau})
    return pd.DataFrame(rows)

