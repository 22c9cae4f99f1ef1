"""The engine against analytic limits, hand-computed ergotropies and an independent integrator.

Nothing here compares the engine with itself: every expected value comes from a closed form,
a hand calculation, or ``reference_lindblad`` (plain numpy/scipy, its own operators, d rho/dt
from the Lindbladian applied to stored states). The analytic limits are checked on both the
engine and the reference, so the reference is itself tested before it is trusted.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference_lindblad as ref
from qbcat.engine import observables as obs
from qbcat.engine.params import PARAMETERS, point_id, validate
from qbcat.engine.solve import central_derivative, simulate

TIGHT = {"atol": 1e-12, "rtol": 1e-10}
QUBIT_OBSERVABLES = ["ergotropy", "energy_qb", "power", "heat_current", "net_flux",
                     "internal_energy", "bloch_x", "bloch_y", "bloch_z", "trace",
                     "heat_current_catalyst", "heat_current_dephasing"]
SX = np.array([[0, 1], [1, 0]], dtype=complex)
SY = np.array([[0, -1j], [1j, 0]], dtype=complex)
SZ = np.array([[1, 0], [0, -1]], dtype=complex)


ENGINES = ["batched", "qutip"]


def run(impl: str, **overrides) -> tuple[np.ndarray, dict]:
    """(time, observables) of one point from an engine (batched, qutip) or from the reference
    integrator."""
    p = validate({**overrides, **TIGHT})
    if impl in ENGINES:
        traj = simulate({**p, "engine": impl})
        return traj.time, traj.data
    times, data, _ = ref.simulate(p)
    return times, data


BOTH = pytest.mark.parametrize("impl", [*ENGINES, "reference"])


# ---------------------------------------------------------------- analytic and limiting cases


@BOTH
@pytest.mark.parametrize("catalyst", [True, False])
def test_no_drive_from_ground_stores_no_ergotropy(impl, catalyst):
    # |g,0> is an eigenstate of H_QB + H_int + H_cat (no counter-rotating terms) and is left
    # alone by dephasing and photon loss: the battery stays passive.
    t, d = run(impl, catalyst=catalyst, Omega=0.0, n_fock=3, omega_c=1.4, g=0.6, kappa_1=0.2,
               gamma_D=0.1, t_max=20.0, n_t=201)
    assert np.max(np.abs(d["ergotropy"])) < 1e-10
    assert np.allclose(d["bloch_z"], -1.0, atol=1e-10)


@BOTH
def test_zero_coupling_catalyst_is_invisible_to_the_qubit(impl):
    common = dict(Omega=0.7, omega_d=1.15, gamma_D=0.06, t_max=30.0, n_t=301)
    _, cat = run(impl, catalyst=True, g=0.0, n_fock=3, omega_c=1.7, kappa_1=0.25, **common)
    _, base = run(impl, catalyst=False, **common)
    for name in QUBIT_OBSERVABLES:
        assert np.max(np.abs(cat[name] - base[name])) < 1e-8, name
    # and the oscillator stays in its vacuum
    assert np.max(np.abs(cat["energy_cat"])) < 1e-10


@BOTH
@pytest.mark.parametrize("catalyst", [True, False])
def test_pure_dephasing_of_plus_state(impl, catalyst):
    # |+>, no drive: rho_eg(t) = 1/2 exp(-i omega_a t) exp(-2 gamma_D t), so
    # x = cos(omega_a t) e^{-2 gamma_D t}, y = sin(omega_a t) e^{-2 gamma_D t}, z = 0 and the
    # ergotropy is omega_a/2 |r| = omega_a/2 e^{-2 gamma_D t}. (Catalyzed with g = 0, so the
    # oscillator cannot take the excitation away.)
    omega_a, gamma_D = 1.3, 0.08
    t, d = run(impl, catalyst=catalyst, initial_qubit="plus", Omega=0.0, omega_a=omega_a,
               gamma_D=gamma_D, g=0.0, n_fock=2, kappa_1=0.1, t_max=25.0, n_t=251)
    decay = np.exp(-2 * gamma_D * t)
    assert np.max(np.abs(d["bloch_x"] - np.cos(omega_a * t) * decay)) < 1e-8
    assert np.max(np.abs(d["bloch_y"] - np.sin(omega_a * t) * decay)) < 1e-8
    assert np.max(np.abs(d["bloch_z"])) < 1e-10
    assert np.max(np.abs(d["ergotropy"] - 0.5 * omega_a * decay)) < 1e-8


@BOTH
@pytest.mark.parametrize("omega_c", [1.0, 1.25])
def test_vacuum_rabi_oscillation(impl, omega_c):
    # |e,0> couples only to |g,1> (Jaynes-Cummings, matrix element g). With detuning
    # D = omega_a - omega_c and Omega_R = sqrt(D^2 + 4 g^2):
    # P_e(t) = 1 - (4 g^2 / Omega_R^2) sin^2(Omega_R t / 2), <n>(t) = 1 - P_e(t).
    g, omega_a = 0.3, 1.0
    t, d = run(impl, catalyst=True, initial_qubit="excited", Omega=0.0, gamma_D=0.0, kappa_1=0.0,
               g=g, omega_a=omega_a, omega_c=omega_c, n_fock=3, t_max=30.0, n_t=301)
    rabi = np.sqrt((omega_a - omega_c) ** 2 + 4 * g**2)
    p_e = 1 - (4 * g**2 / rabi**2) * np.sin(rabi * t / 2) ** 2
    assert np.max(np.abs(d["bloch_z"] - (2 * p_e - 1))) < 1e-8
    assert np.max(np.abs(d["energy_cat"] - omega_c * (1 - p_e))) < 1e-8


@pytest.mark.parametrize("engine", ENGINES)
def test_no_dissipation_baseline_stays_pure(engine):
    t, d = run(engine, catalyst=False, gamma_D=0.0, Omega=0.9, omega_d=0.8, t_max=40.0, n_t=401)
    length = np.sqrt(d["bloch_x"] ** 2 + d["bloch_y"] ** 2 + d["bloch_z"] ** 2)
    assert np.max(np.abs(length - 1.0)) < 1e-8
    assert np.max(np.abs(d["trace"] - 1.0)) < 1e-10
    # the Bloch vector really moves (the check above is not trivially satisfied)
    assert np.ptp(d["bloch_z"]) > 0.5


@pytest.mark.parametrize("engine", ENGINES)
def test_no_dissipation_catalyzed_stays_pure(engine):
    p = validate(dict(catalyst=True, gamma_D=0.0, kappa_1=0.0, Omega=0.6, g=0.4, omega_c=1.2,
                      n_fock=4, t_max=20.0, n_t=201, engine=engine, **TIGHT))
    times, data, states = ref.simulate(p)
    purity = np.einsum("tij,tji->t", states, states).real
    assert np.max(np.abs(purity - 1.0)) < 1e-9
    assert np.max(np.abs(data["trace"] - 1.0)) < 1e-10
    # the engine follows the same unitary evolution ...
    traj = simulate(p)
    for name in QUBIT_OBSERVABLES + ["energy_cat"]:
        assert np.max(np.abs(traj.data[name] - data[name])) < 1e-6, name
    # ... and the qubit does get entangled with the oscillator (reduced purity < 1)
    r2 = traj.data["bloch_x"] ** 2 + traj.data["bloch_y"] ** 2 + traj.data["bloch_z"] ** 2
    assert np.min(r2) < 0.9


# ---------------------------------------------------------------- ergotropy


def _qubit_rho(x, y, z):
    return 0.5 * (np.eye(2) + x * SX + y * SY + z * SZ)


def test_general_ergotropy_matches_qubit_closed_form():
    rng = np.random.default_rng(1)
    n = 200
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    r = rng.uniform(0, 1, size=n) ** (1 / 3)
    x, y, z = (direction * r[:, None]).T
    for omega_a in (0.4, 1.0, 2.7):
        H = 0.5 * omega_a * SZ
        rho = np.stack([_qubit_rho(*v) for v in zip(x, y, z)])
        general = obs.ergotropy(rho, H)  # the whole stack at once
        closed = obs.ergotropy_qubit(x, y, z, omega_a)
        assert np.max(np.abs(general - closed)) < 1e-12
        assert np.all(general > -1e-12)
        # one state at a time gives the same as the stack
        assert abs(obs.ergotropy(rho[7], H) - closed[7]) < 1e-12


def test_qubit_density_matrix_matches_pauli_construction():
    x, y, z = 0.3, -0.5, 0.6
    assert np.allclose(obs.qubit_density_matrix(x, y, z), _qubit_rho(x, y, z), atol=1e-15)


def test_ergotropy_of_a_diagonal_qutrit():
    # H = diag(0,1,2), rho = diag(0.2,0.3,0.5): energy 0.3 + 1.0 = 1.3; passive energy
    # 0.5*0 + 0.3*1 + 0.2*2 = 0.7; ergotropy 0.6.
    H = np.diag([0.0, 1.0, 2.0])
    assert obs.ergotropy(np.diag([0.2, 0.3, 0.5]), H) == pytest.approx(0.6, abs=1e-14)


def test_ergotropy_of_a_coherent_qutrit():
    # rho = 0.7 |psi><psi| + 0.3 |1><1| with |psi> = (|0> + |2>)/sqrt 2 and H = diag(0,1,2):
    # energy 0.7*1 + 0.3*1 = 1; eigenvalues (0.7, 0.3, 0) give passive energy 0*0.7 + 1*0.3 = 0.3;
    # ergotropy 0.7.
    psi = np.array([1, 0, 1]) / np.sqrt(2)
    rho = 0.7 * np.outer(psi, psi) + 0.3 * np.diag([0.0, 1.0, 0.0])
    assert obs.ergotropy(rho, np.diag([0.0, 1.0, 2.0])) == pytest.approx(0.7, abs=1e-14)


@pytest.mark.parametrize("H_diag, rho_diag", [
    ([0.0, 1.0, 2.0], [0.5, 0.3, 0.2]),
    ([2.0, 0.0, 1.0], [0.2, 0.5, 0.3]),  # energies not sorted: still passive
    ([-1.0, 3.0], [0.9, 0.1]),
    ([0.0, 1.0, 1.0, 5.0], [0.4, 0.3, 0.3, 0.0]),  # degenerate levels
])
def test_passive_diagonal_state_has_no_ergotropy(H_diag, rho_diag):
    assert abs(obs.ergotropy(np.diag(rho_diag), np.diag(H_diag))) < 1e-14


def _random_hermitian(rng, d):
    m = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    return (m + m.conj().T) / 2


def _random_state(rng, d):
    m = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
    rho = m @ m.conj().T
    return rho / np.trace(rho).real


@pytest.mark.parametrize("d", [2, 3, 5])
def test_pure_state_ergotropy_is_energy_above_ground(d):
    rng = np.random.default_rng(d)
    H = _random_hermitian(rng, d)
    psi = rng.normal(size=d) + 1j * rng.normal(size=d)
    psi /= np.linalg.norm(psi)
    rho = np.outer(psi, psi.conj())
    expected = (psi.conj() @ H @ psi).real - np.linalg.eigvalsh(H)[0]
    assert obs.ergotropy(rho, H) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("d", [2, 3, 4, 6])
def test_ergotropy_invariances(d):
    rng = np.random.default_rng(10 + d)
    H = _random_hermitian(rng, d)
    rho = _random_state(rng, d)
    value = obs.ergotropy(rho, H)
    assert value >= -1e-12
    # a constant energy shift changes nothing
    for c in (-3.0, 0.5, 17.0):
        assert obs.ergotropy(rho, H + c * np.eye(d)) == pytest.approx(value, abs=1e-12)
    # rotating state and Hamiltonian together changes nothing
    U, _ = np.linalg.qr(rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d)))
    rotated = obs.ergotropy(U @ rho @ U.conj().T, U @ H @ U.conj().T)
    assert rotated == pytest.approx(value, abs=1e-12)


# ---------------------------------------------------------------- engine vs reference integrator

REFERENCE_POINTS = {
    "detuned-strong-g": dict(catalyst=True, n_fock=4, t_max=30.0, n_t=301, omega_a=1.1,
                             omega_c=1.3, g=0.5, kappa_1=0.1, gamma_D=0.07, Omega=0.8, omega_d=0.9),
    "plus-lossy": dict(catalyst=True, n_fock=5, t_max=20.0, n_t=201, omega_c=0.7, g=0.35,
                       kappa_1=0.2, gamma_D=0.03, Omega=0.6, initial_qubit="plus"),
    "excited-n3": dict(catalyst=True, n_fock=3, t_max=25.0, n_t=251, omega_c=1.0, g=0.6,
                       kappa_1=0.3, gamma_D=0.1, Omega=1.0, omega_d=1.5, initial_qubit="excited"),
    "baseline": dict(catalyst=False, t_max=40.0, n_t=401, gamma_D=0.1, Omega=0.7, omega_d=1.2,
                     omega_a=0.9, initial_qubit="excited"),
}


@pytest.fixture(scope="module", params=[(name, engine) for name in REFERENCE_POINTS for engine in ENGINES],
                ids=lambda v: "-".join(v))
def engine_and_reference(request):
    name, engine = request.param
    p = validate({**REFERENCE_POINTS[name], **TIGHT, "engine": engine})
    return simulate(p), ref.simulate(p)


def test_engine_matches_reference_integrator(engine_and_reference):
    traj, (times, data, _) = engine_and_reference
    expected = set(QUBIT_OBSERVABLES) | ({"energy_cat"} if traj.params["catalyst"] else set())
    assert set(traj.data) == expected
    assert np.array_equal(traj.time, times)
    for name, values in traj.data.items():
        assert values.shape == times.shape, name
        assert np.max(np.abs(values - data[name])) < 1e-6, name
    # the point is non-trivial: ergotropy, heat current and catalyst energy all move
    assert np.ptp(traj.data["ergotropy"]) > 0.1
    assert np.ptp(traj.data["heat_current"]) > 0.01


def test_heat_current_channels_from_full_states(engine_and_reference):
    """J = J_cat + J_deph (docs/heat-channels.md): each channel agrees with the reference's
    Tr[-i[H_int, rho] h] and gamma_D Tr[D[sz](rho) h] on its stored full states, the two add
    up to J of both the engine and the reference, and the baseline has no catalyst channel."""
    traj, (_, data, _) = engine_and_reference
    d = traj.data
    for name in ("heat_current_catalyst", "heat_current_dephasing"):
        assert np.max(np.abs(d[name] - data[name])) < 1e-6, name
    # the reference's channels are computed term by term, independently of its J
    assert np.max(np.abs(data["heat_current_catalyst"] + data["heat_current_dephasing"]
                         - data["heat_current"])) < 1e-12
    assert np.max(np.abs(d["heat_current_catalyst"] + d["heat_current_dephasing"] - d["heat_current"])) < 1e-12
    assert traj.sanity["heat_channel_residual"] < 1e-12
    if traj.params["catalyst"]:  # both channels carry energy at these points
        assert np.ptp(d["heat_current_catalyst"]) > 0.01
        assert np.ptp(d["heat_current_dephasing"]) > 1e-3
    else:
        assert np.all(d["heat_current_catalyst"] == 0.0)
        assert np.max(np.abs(d["heat_current_dephasing"] - d["heat_current"])) < 1e-12  # all of J
        assert np.max(np.abs(data["heat_current_catalyst"])) == 0.0


def test_dephasing_channel_closed_form():
    """gamma_D Tr[D[sz](rho) h] = -2 gamma_D s <sx> for every qubit state and drive value: the
    adjoint dissipator keeps H_QB and flips sx (checked on operators, and against the formula)."""
    import qutip

    gamma, omega_a = 0.07, 1.3
    c_ops = [np.sqrt(gamma) * qutip.sigmaz()]
    for s in (-0.4, 0.0, 0.9):
        h = 0.5 * omega_a * qutip.sigmaz() + s * qutip.sigmax()
        adj = obs.adjoint_dissipator(c_ops, h)
        assert (adj - (-2 * gamma * s) * qutip.sigmax()).norm() < 1e-14
        rho = qutip.rand_dm(2, seed=3)
        direct = gamma * (qutip.sigmaz() * rho * qutip.sigmaz() - rho)
        value = (direct * h).tr().real
        formula = obs.dephasing_heat_current(gamma, s, qutip.expect(qutip.sigmax(), rho))
        assert value == pytest.approx(float(formula), abs=1e-14)


def test_invariants_at_every_time(engine_and_reference):
    traj, (_, data, _) = engine_and_reference
    d = traj.data
    assert np.max(np.abs(d["trace"] - 1.0)) < 1e-9
    rho_qb = obs.qubit_density_matrix(d["bloch_x"], d["bloch_y"], d["bloch_z"], d["trace"])
    assert np.linalg.eigvalsh(rho_qb).min() >= -1e-9
    assert traj.sanity["min_eigenvalue_qb"] >= -1e-9
    assert traj.sanity["trace_error_max"] < 1e-9
    # the full state of the reference is a density matrix too
    assert data["min_eigenvalue"].min() >= -1e-9


def _first_law_residual(p, n_t):
    traj = simulate({**p, "n_t": n_t})
    d = traj.data
    dE = central_derivative(d["internal_energy"], traj.time[1] - traj.time[0])
    return dE - d["heat_current"] - d["power"], d


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("catalyst", [True, False])
def test_first_law_closes_to_fourth_order(catalyst, engine):
    # dE/dt = J + P is exact; the residual of 4th-order finite differences of E must therefore
    # shrink 2^4 = 16x when dt halves (interior points, where the central stencil applies).
    p = validate(dict(catalyst=catalyst, n_fock=4, t_max=20.0, omega_c=1.3, g=0.5, kappa_1=0.1,
                      gamma_D=0.07, Omega=0.8, omega_d=0.9, engine=engine, **TIGHT))
    coarse, d = _first_law_residual(p, 401)
    fine, _ = _first_law_residual(p, 801)
    scale = np.max(np.abs(d["heat_current"])) + np.max(np.abs(d["power"]))
    assert np.max(np.abs(fine)) < 1e-5 * scale
    ratio = np.max(np.abs(coarse[2:-2])) / np.max(np.abs(fine[2:-2]))
    assert 13 < ratio < 19, ratio
    # same grid points: fine[::2] sits on the coarse grid
    pointwise = np.abs(coarse[2:-2]) / np.maximum(np.abs(fine[::2][2:-2]), 1e-300)
    assert 13 < np.median(pointwise) < 19


# ---------------------------------------------------------------- point identity

ALTERNATIVES = {
    "omega_a": 1.1, "omega_c": 0.9, "g": 0.3, "Omega": 0.4, "omega_d": 1.2, "kappa_1": 0.06,
    "gamma_D": 0.04, "n_fock": 5, "t_max": 200.0, "n_t": 2001, "catalyst": False,
    "initial_qubit": "plus", "method": "bdf", "atol": 1e-10, "rtol": 1e-8, "nsteps": 5000,
    "max_step": 0.1, "engine": "qutip", "n_fock_min": 8, "n_fock_max": 30, "n_fock_step": 4, "cutoff_gap": 6,
    "cutoff_tolerance": 1e-4, "cutoff_top_tolerance": 1e-4,
}


def test_alternatives_cover_every_parameter():
    assert set(ALTERNATIVES) == set(PARAMETERS)


def test_same_parameters_same_id():
    p = {"g": 0.3, "n_fock": 6}
    assert point_id(p) == point_id(dict(p)) == point_id(validate(p))
    assert len(point_id(p)) == 16 and int(point_id(p), 16) >= 0
    assert point_id({}) == point_id(validate({}))  # defaults spelled out or not


@pytest.mark.parametrize("engine", ["batched", "qutip"])
@pytest.mark.parametrize("name", list(ALTERNATIVES))
def test_changing_any_parameter_changes_the_id(name, engine):
    if name == "method" and engine == "batched":
        pytest.skip("the batched engine has one integrator: method is not part of its points")
    if name == "engine":
        assert point_id({"engine": "qutip"}) != point_id({"engine": "batched"})
        return
    # the ladder and thresholds of n_fock auto are the identity of an auto point only
    base = {"engine": engine, "n_fock": "auto"} if PARAMETERS[name].auto_only else {"engine": engine}
    assert point_id({**base, name: ALTERNATIVES[name]}) != point_id(base)


def test_method_is_no_part_of_a_batched_point():
    assert point_id({"engine": "batched", "method": "bdf"}) == point_id({"engine": "batched"})
    assert point_id({"engine": "qutip", "method": "bdf"}) != point_id({"engine": "qutip"})


@pytest.mark.parametrize("name", ["omega_c", "g", "kappa_1", "n_fock"])
def test_baseline_id_ignores_catalyst_parameters(name):
    base = {"catalyst": False}
    assert point_id({**base, name: ALTERNATIVES[name]}) == point_id(base)


@pytest.mark.parametrize("name", ["omega_a", "Omega", "omega_d", "gamma_D", "t_max", "n_t",
                                  "initial_qubit", "method", "atol"])
def test_baseline_id_keeps_its_own_parameters(name):
    base = {"catalyst": False, "engine": "qutip"}
    assert point_id({**base, name: ALTERNATIVES[name]}) != point_id(base)


@pytest.mark.parametrize("as_int, as_float", [
    ({"omega_a": 1}, {"omega_a": 1.0}),
    ({"t_max": 300}, {"t_max": 300.0}),
    ({"g": 0, "gamma_D": 0}, {"g": 0.0, "gamma_D": 0.0}),
    ({"n_fock": 4}, {"n_fock": 4.0}),
    ({"atol": "1e-9"}, {"atol": 1e-9}),  # YAML 1.1 reads 1e-9 as a string
    ({"gamma_D": -0.0, "g": -0.0}, {"gamma_D": 0.0, "g": 0.0}),  # negative zero is zero
])
def test_int_and_float_spellings_are_one_point(as_int, as_float):
    assert point_id(as_int) == point_id(as_float)
