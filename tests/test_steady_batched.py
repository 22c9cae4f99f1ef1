"""The batched steady state (qbcat.science.steady.batched_steady_states, qbcat.engine.batched.propagate): the
batched one-period propagation against QuTiP, the batched Arnoldi fixed point and relaxation time
against the full one-period propagator and the QuTiP methods, and steady maps against trajectories.
"""

import math

import numpy as np
import pytest
import qutip

from qbcat.engine import batched
from qbcat.engine.model import build_model
from qbcat.engine.params import ParameterError, validate
from qbcat.engine.solve import simulate_points, solver_options
from qbcat.science.steady import (batched_arnoldi, batched_propagators, herm_to_vec, late_time_mean, propagator_spectrum,
                          steady_map, steady_state, vec_to_herm)

TIGHT = {"rtol": 1e-11, "atol": 1e-13}
T = 2 * math.pi  # omega_d = 1


def _random_hermitian(rng, d):
    a = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    return a + a.conj().T


@pytest.mark.parametrize("params", [{"n_fock": 4, "g": 0.3, "omega_c": 0.8},
                                    {"n_fock": 12, "g": 0.2, "omega_c": 0.5},
                                    {"catalyst": False, "gamma_D": 0.1}])
def test_batched_propagation_equals_qutip_on_a_random_hermitian_matrix(params):
    """rho(T) = U rho(0) for a Hermitian rho(0) that is not a state (the map is linear). Reference:
    QuTiP at tight tolerances, ``qutip.propagator`` (the d^2 x d^2 superoperator) where it is cheap
    (d^2 <= 64), else one MESolver evolution of the matrix (what the propagator applies)."""
    rng = np.random.default_rng(7)
    p = validate(params)
    m = build_model(p)
    d = m.rho0.shape[0]
    H = _random_hermitian(rng, d)
    opts = solver_options(validate({**params, **TIGHT}))
    if d * d <= 64:
        U = qutip.propagator(m.hamiltonian(), T, m.c_ops, options={**opts, "store_states": True}).full()
        ref = (U @ H.ravel(order="F")).reshape(d, d, order="F")
    else:
        solver = qutip.MESolver(m.hamiltonian(), m.c_ops, options=opts)
        solver.start(qutip.Qobj(H, dims=m.rho0.dims), 0.0)
        ref = solver.step(T).full()
    # among other lanes (another point, another matrix) and starting later (t0 != 0: the frame's phase)
    other = validate({**params, "omega_a": 1.1, "Omega": 0.3})
    out = batched.propagate([other, p], np.stack([np.eye(d), H]), T)
    assert np.max(np.abs(out[1] - ref)) < 1e-6 * np.abs(ref).max()
    assert np.max(np.abs(out[1] - out[1].conj().T)) == 0  # Hermitian by construction
    later = batched.propagate([p], out[1][None], 2 * T, t0=T)[0]
    twice = batched.propagate([p], ref[None], T)[0]  # periodic: U(2T, T) = U(T, 0)
    assert np.max(np.abs(later - twice)) < 1e-6 * np.abs(ref).max()


def test_propagation_refuses_non_hermitian_matrices():
    p = validate({"n_fock": 2})
    with pytest.raises(ValueError, match="Hermitian"):
        batched.propagate([p], np.triu(np.ones((1, 4, 4))), T)


def test_hermitian_coordinates_are_orthonormal():
    rng = np.random.default_rng(1)
    A, B = _random_hermitian(rng, 5), _random_hermitian(rng, 5)
    x = herm_to_vec(np.stack([A, B]))
    np.testing.assert_allclose(vec_to_herm(x, 5), np.stack([A, B]), atol=1e-14)
    assert x[0] @ x[1] == pytest.approx(np.trace(A @ B).real, rel=1e-12)  # Hilbert-Schmidt


def test_full_batched_propagator_has_qutips_spectrum():
    """The real d^2 x d^2 map in Hermitian coordinates and QuTiP's complex superoperator are the
    same linear map in two bases: same eigenvalues (n_fock 3: 36 of them)."""
    p = validate({"n_fock": 3, "g": 0.4, "omega_c": 0.7, **TIGHT})
    m = build_model(p)
    U = batched_propagators([p])[0]
    Uq = qutip.propagator(m.hamiltonian(), T, m.c_ops,
                          options={**solver_options(p), "store_states": True}).full()
    w, wq = np.linalg.eigvals(U), np.linalg.eigvals(Uq)
    for lam in wq:
        assert np.min(np.abs(w - lam)) < 1e-8


@pytest.mark.parametrize("params", [{"n_fock": 12, "g": 0.2, "omega_c": 0.5},  # QuTiP krylov: ~104
                                    {"n_fock": 12, "g": 0.5, "omega_c": 1.5},
                                    {"n_fock": 12, "g": 0.0, "omega_c": 1.0}])
def test_relaxation_time_is_the_full_propagators(params):
    """-T/ln|lambda_2| from the batched Arnoldi equals that of the full one-period propagator's
    second eigenvalue (d^2 = 576 basis propagations, dense eigenvalues). At g = 0.2, omega_c = 0.5
    the Krylov extrapolation of the QuTiP method reported ~104 from a spurious Ritz value; the
    propagator's is ~23.7."""
    p = validate(params)
    U = batched_propagators([p])[0]
    tau_full, lam2_full, n_stat = propagator_spectrum(U, T)
    ar = batched_arnoldi([p])
    assert n_stat == 1 and ar.converged[0]
    assert ar.lam2[0] == pytest.approx(lam2_full, abs=1e-5)
    tau = -T / math.log(ar.lam2[0])
    assert tau == pytest.approx(tau_full, rel=1e-4)
    if params["g"] == 0.2:
        assert tau == pytest.approx(23.75, abs=0.01)
    # the fixed point is U's: U x = x
    assert np.max(np.abs(U @ ar.x[0] - ar.x[0])) < 1e-6


def test_batched_steady_state_agrees_with_the_qutip_methods():
    ref = steady_state({"n_fock": 4}, method="propagator", n_period=16)
    s = steady_state({"n_fock": 4}, method="batched", n_period=16)
    assert s.method == "batched" and s.n_stationary == 1
    assert np.max(np.abs(s.rho.full() - ref.rho.full())) < 1e-6
    assert s.relaxation_time == pytest.approx(ref.relaxation_time, rel=1e-4)
    for k in ref.mean:
        assert s.mean[k] == pytest.approx(ref.mean[k], abs=1e-6), k
    assert s.sanity["fixed_point_residual"] < 1e-6 and s.sanity["min_eigenvalue"] > -1e-9
    # the baseline (d^2 = 4: the Krylov space is the whole space, exact Ritz values)
    b, bref = (steady_state({"catalyst": False, "gamma_D": 0.1}, method=m, n_period=16)
               for m in ("batched", "propagator"))
    assert b.relaxation_time == pytest.approx(bref.relaxation_time, rel=1e-6)
    assert b.mean["ergotropy"] == pytest.approx(bref.mean["ergotropy"], abs=1e-8)


def test_undamped_points_get_the_full_propagator_and_undriven_ones_qutip():
    undamped = steady_state({"catalyst": False, "gamma_D": 0.0}, method="batched")
    ref = steady_state({"catalyst": False, "gamma_D": 0.0}, method="propagator")
    assert undamped.method == "batched_propagator" and math.isinf(undamped.relaxation_time)
    assert undamped.n_stationary == ref.n_stationary >= 2
    np.testing.assert_allclose(undamped.rho.full(), ref.rho.full(), atol=1e-6)
    undriven = steady_state({"n_fock": 3, "Omega": 0.0}, method="batched")
    assert undriven.method == "steadystate"


def test_steady_map_cells_match_the_late_time_means_of_trajectories():
    """Every cell of a 2 x 2 map (n_fock 4): the steady period average equals the mean over the
    last 10 periods of a 120-period trajectory (> 15 relaxation times: transient < 1e-6)."""
    axes = {"g": [0.1, 0.4], "omega_c": [0.7, 1.2]}
    n_per, n_periods = 32, 120
    base = {"n_fock": 4, "t_max": 2 * math.pi * n_periods, "n_t": n_periods * n_per + 1}
    ds = steady_map(base, axes, n_period=n_per, progress=None)
    cells = [(g, w, case) for g in axes["g"] for w in axes["omega_c"] for case in ("catalyzed", "baseline")]
    trajs = dict(simulate_points([validate({**base, "g": g, "omega_c": w, "catalyst": c == "catalyzed"})
                                  for g, w, c in cells]))
    for i, (g, w, case) in enumerate(cells):
        traj = trajs[i]
        late = late_time_mean(traj, 10)
        cell = ds.sel(g=g, omega_c=w, case=case)
        assert float(cell["relaxation_time"]) * 15 < 2 * math.pi * (n_periods - 10)
        for k in ("ergotropy", "energy_qb", "heat_current", "energy_cat"):
            if case == "catalyzed" or k != "energy_cat":
                assert float(cell[k]) == pytest.approx(late[k], abs=2e-6), (g, w, case, k)
    # validated at the corners (here: every cell) and at the slowest one
    checked = np.isfinite(ds["relaxation_time_propagator"].values)
    assert checked.all()
    np.testing.assert_allclose(ds["relaxation_time"].values, ds["relaxation_time_propagator"].values, rtol=1e-4)
    assert ds.attrs["relaxation_time_max_relative_deviation"] < 1e-4


def test_steady_map_takes_a_cutoff_per_cell():
    """n_fock per cell (as a sweep with n_fock: auto carries it): each cell is computed at its own
    cutoff, the same as a point alone at that cutoff; cells of one cutoff are batched together."""
    axes = {"g": [0.1, 0.3]}
    cutoffs = np.array([[3, np.nan], [5, 7]])  # (g, case); the baseline's is not used (may be NaN)
    ds = steady_map({}, axes, n_fock=cutoffs, n_period=16, progress=None, validation=[])
    assert ds["n_fock"].sel(case="catalyzed").values.tolist() == [3, 5]
    assert np.isnan(ds["n_fock"].sel(case="baseline").values).all() and "n_fock" not in ds.attrs
    for g, n in ((0.1, 3), (0.3, 5)):
        alone = steady_state({"g": g, "n_fock": n}, method="batched", n_period=16)
        assert float(ds["ergotropy"].sel(g=g, case="catalyzed")) == pytest.approx(alone.mean["ergotropy"], rel=1e-9)
    assert np.isnan(ds["relaxation_time_propagator"].values).all()  # validation: none
    fixed = steady_map({}, axes, n_fock=3, n_period=16, progress=None, validation=[])
    assert float(fixed["ergotropy"].sel(g=0.1, case="catalyzed")) == float(ds["ergotropy"].sel(g=0.1, case="catalyzed"))
    assert fixed.attrs["n_fock"] == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"n_fock": np.array([3, 4, 5])}, "n_fock: per-cell cutoffs must have shape"),
    ({"n_fock": np.array([[3, 3], [1, 1]])}, "n_fock: per-cell cutoffs must be integers >= 2"),
    ({"validation": ["corner"]}, "validation: expected a list of corners, slowest"),
    ({"method": "dmd"}, "method: steady-state method must be one of"),
])
def test_steady_map_rejects_bad_options_before_work(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        steady_map({}, {"g": [0.1, 0.3]}, progress=None, **kwargs)


def test_the_map_reads_per_cell_cutoffs_from_a_sweep():
    """qbcat.science.steady.cell_cutoffs (the steady_map rule's): a sweep run with n_fock: auto carries
    n_fock over (*axes, case); the map takes each cell's (a subset of the sweep's grid, in the
    map's order); a sweep without the variable gives None (the base's cutoff)."""
    import xarray as xr

    from qbcat.science.steady import cell_cutoffs

    g, w = [0.0, 0.1, 0.2], [0.8, 1.2]
    n = np.array([[[4, -1], [5, -1]], [[6, -1], [7, -1]], [[8, -1], [9, -1]]], dtype=float)
    sweep = xr.Dataset({"n_fock": (("g", "omega_c", "case"), n), "ergotropy": (("g",), [0.0, 0.0, 0.0])},
                       coords={"g": g, "omega_c": w, "case": ["catalyzed", "baseline"]})
    cells = cell_cutoffs(sweep, {"omega_c": [1.2], "g": [0.2, 0.0]})
    assert cells.shape == (1, 2, 2) and cells[0, :, 0].tolist() == [9, 5]
    assert cell_cutoffs(sweep.drop_vars("n_fock"), {"g": g}) is None
    with pytest.raises(ValueError, match="do not hold the map's"):
        cell_cutoffs(sweep, {"g": [0.15]})


def test_workers_split_the_points_and_change_nothing():
    """batched_steady_states in 2 processes (as a Snakemake script job runs it: no __main__
    guard) gives each point what it gets in one process."""
    from qbcat.science.steady import batched_steady_states

    points = [validate({"n_fock": 3, "g": g}) for g in (0.1, 0.2, 0.3)] + [validate({"catalyst": False})]
    one = batched_steady_states(points, n_period=8)
    two = batched_steady_states(points, n_period=8, workers=2)
    for a, b in zip(one, two):
        assert a.params == b.params and a.method == b.method
        assert a.mean["ergotropy"] == pytest.approx(b.mean["ergotropy"], rel=1e-9, abs=1e-12)
        assert a.relaxation_time == pytest.approx(b.relaxation_time, rel=1e-9)
    with pytest.raises(ParameterError, match="workers"):
        batched_steady_states(points, workers=0)
