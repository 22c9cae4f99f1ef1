"""The periodic steady state (qbcat.science.steady) against long trajectories, analytic limits and itself
by independent numerical routes (full propagator, Krylov extrapolation, Arnoldi)."""

import math

import numpy as np
import pytest
import xarray as xr

from qbcat.data.datasets import write_netcdf
from qbcat.engine.params import ParameterError, validate
from qbcat.engine.solve import Trajectory, simulate
from qbcat.science.steady import late_time_mean, steady_map, steady_state

SMALL = {"n_fock": 4}  # cheap catalyzed point; the defaults otherwise (relaxation time ~22)
COMPARED = ("ergotropy", "energy_qb", "heat_current", "power", "energy_cat")


def test_late_time_mean_of_a_known_periodic_signal():
    T = 2 * math.pi
    for n_t, tol in ((40 * 32 + 1, 1e-12), (3001, 1e-4)):  # whole samples per period, and not
        t = np.linspace(0, 40 * T if n_t != 3001 else 300.0, n_t)
        y = 0.3 + np.sin(t) + 0.5 * np.cos(2 * t + 0.4)
        traj = Trajectory(params=validate({}), time=t, data={"ergotropy": y})
        assert late_time_mean(traj, 10, names=["ergotropy"])["ergotropy"] == pytest.approx(0.3, abs=tol)


@pytest.mark.parametrize("catalyst", [True, False])
def test_periodic_state_matches_the_end_of_a_long_trajectory(catalyst):
    """80 periods (~22 relaxation times at n_fock = 4) leave a transient below 1e-8 over the last 10."""
    n_per, n_periods = 32, 80
    p = {**SMALL, "catalyst": catalyst, "t_max": 2 * math.pi * n_periods, "n_t": n_periods * n_per + 1}
    traj = simulate(p)
    ss = steady_state(p, n_period=n_per)
    assert ss.relaxation_time * 15 < 2 * math.pi * (n_periods - 10)
    late = late_time_mean(traj, 10)
    for name in COMPARED:
        if name in ss.mean:
            assert ss.mean[name] == pytest.approx(late[name], abs=2e-6), name
    # the whole orbit, phase by phase, over the last period
    for name in ("ergotropy", "heat_current"):
        np.testing.assert_allclose(traj.data[name][-n_per - 1:-1], ss.data[name], atol=5e-6)
    if catalyst:
        assert ss.mean["ergotropy"] > 0.05  # the catalyst keeps the battery non-passive


def test_fixed_point_methods_agree():
    """Full propagator + spectral projection, Krylov extrapolation of the stroboscopic trajectory,
    and Arnoldi on the one-period map: three routes to the same fixed point and relaxation time."""
    states = {m: steady_state(SMALL, method=m, n_period=16) for m in ("propagator", "krylov", "arnoldi")}
    ref = states["propagator"]
    assert ref.n_stationary == 1
    for m, s in states.items():
        assert s.method == m
        assert np.max(np.abs(s.rho.full() - ref.rho.full())) < 2e-6, m
        assert s.relaxation_time == pytest.approx(ref.relaxation_time, rel=1e-4), m
        assert s.mean["ergotropy"] == pytest.approx(ref.mean["ergotropy"], abs=1e-6), m
        assert s.sanity["fixed_point_residual"] < 1e-5
        assert s.sanity["min_eigenvalue"] > -1e-9


def test_first_law_holds_on_average_in_the_periodic_state():
    """E(t) is periodic, so the period average of dE/dt = J + P vanishes: <J> = -<P>."""
    s = steady_state(SMALL, n_period=64)
    assert abs(s.mean["power"]) > 1e-2  # the drive does work on average ...
    assert s.mean["heat_current"] == pytest.approx(-s.mean["power"], abs=1e-6)  # ... all of it dumped


def test_unital_dynamics_heat_up_to_the_maximally_mixed_state():
    """With Hermitian jump operators only (dephasing; no photon loss) the map is unital: I/d is the
    fixed point. Baseline: rho = I/2, so ergotropy and energy vanish. Catalyzed with kappa_1 = 0:
    the uniform photon distribution on 0..n_fock-1, energy_cat = omega_c (n_fock - 1)/2."""
    b = steady_state({"catalyst": False})
    np.testing.assert_allclose(b.rho.full(), np.eye(2) / 2, atol=1e-7)
    assert b.mean["ergotropy"] == pytest.approx(0, abs=1e-7)
    assert b.mean["energy_qb"] == pytest.approx(0, abs=1e-7)
    c = steady_state({"n_fock": 4, "kappa_1": 0.0, "omega_c": 1.3}, method="propagator")
    assert c.mean["energy_cat"] == pytest.approx(1.3 * 3 / 2, abs=1e-6)
    assert c.mean["ergotropy"] == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("undriven", [{"Omega": 0.0}, {"omega_d": 0.0}])
def test_time_independent_points(undriven):
    """No drive: photon loss and JC exchange empty the excitation, |g,0> (catalyzed); the baseline
    under pure dephasing keeps its populations (the limit depends on the initial state) while its
    coherences decay at 2 gamma_D."""
    c = steady_state({**SMALL, **undriven, "initial_qubit": "excited"})
    assert c.method == "steadystate" and c.n_stationary == 1
    assert c.mean["ergotropy"] == pytest.approx(0, abs=1e-9)
    assert c.mean["energy_qb"] == pytest.approx(-0.5, abs=1e-9)
    assert c.mean["energy_cat"] == pytest.approx(0, abs=1e-9)
    excited = steady_state({"catalyst": False, "gamma_D": 0.05, **undriven, "initial_qubit": "excited"})
    assert excited.n_stationary == 2
    assert excited.mean["ergotropy"] == pytest.approx(1.0, abs=1e-12)  # omega_a, stays excited
    plus = steady_state({"catalyst": False, "gamma_D": 0.05, **undriven, "initial_qubit": "plus"})
    assert plus.mean["ergotropy"] == pytest.approx(0, abs=1e-12)  # coherence gone: I/2
    assert plus.relaxation_time == pytest.approx(1 / (2 * 0.05), rel=1e-9)


def test_undamped_point_is_flagged():
    """No dissipation at all: nothing relaxes; the result is the long-time average and says so."""
    s = steady_state({"catalyst": False, "gamma_D": 0.0})
    assert math.isinf(s.relaxation_time)
    assert s.n_stationary >= 2


def test_steady_map(tmp_path):
    axes = {"g": [0.0, 0.2]}
    ds = steady_map(SMALL, axes, n_period=16, progress=None)
    assert ds["ergotropy"].dims == ("g", "case")
    assert list(ds["case"].values) == ["catalyzed", "baseline"]
    np.testing.assert_array_equal(ds["g"].values, [0.0, 0.2])
    for name, var in ds.data_vars.items():
        assert "units" in var.attrs and "long_name" in var.attrs, name
    base = ds.sel(case="baseline")
    assert base["ergotropy"].values[0] == base["ergotropy"].values[1]  # one baseline for all g
    assert np.all(np.isnan(base["energy_cat"].values))
    # g = 0: the qubit is decoupled, so the catalyzed point is the baseline (other Hilbert space)
    cat0 = ds.sel(case="catalyzed", g=0.0)
    assert float(cat0["ergotropy"]) == pytest.approx(float(base["ergotropy"][0]), abs=1e-6)
    point = steady_state({**SMALL, "g": 0.2}, n_period=16, method="batched")
    assert float(ds["ergotropy"].sel(g=0.2, case="catalyzed")) == pytest.approx(point.mean["ergotropy"], rel=1e-9)
    assert ds.attrs["steady_method"] == "batched" and ds.attrs["relaxation_time_validation"] == "corners slowest"
    # every cell is a corner of a 1-D map: all validated against the full propagator
    np.testing.assert_allclose(ds["relaxation_time_propagator"].values, ds["relaxation_time"].values, rtol=1e-4)
    assert ds.attrs["sweep_axes"] == "g" and ds.attrs["n_fock"] == 4
    path = write_netcdf(ds, tmp_path / "steady.nc")
    with xr.open_dataset(path) as back:
        assert float(back["ergotropy"].sel(g=0.2, case="catalyzed")) == pytest.approx(point.mean["ergotropy"])


@pytest.mark.parametrize("axes, message", [
    ({"gg": [0.1]}, "gg: unknown parameter"),
    ({"g": [0.1, -1.0]}, "g: must be >= 0"),
    ({"catalyst": [True]}, "catalyst: not an axis"),
    ({"g": []}, "g: expected a non-empty list"),
])
def test_steady_map_rejects_bad_axes_before_work(axes, message):
    with pytest.raises(ParameterError, match=message):
        steady_map(SMALL, axes, progress=None)
