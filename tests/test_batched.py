"""The batched engine (qbcat.engine.batched): its Liouvillian, its agreement with QuTiP, and batching.

The Liouvillian is checked against ``qutip.liouvillian`` of the model, element by element; the
trajectories against the QuTiP engine at n_fock 4, 12 and 20 (the independent numpy/scipy
reference is compared with both engines in test_physics.py). Batching must not change any
point: a point integrated among others (other physics, other tolerances, a failing one) gives
bit for bit what it gives alone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import qutip

from qbcat.engine import batched
from qbcat.engine.model import build_model
from qbcat.engine.params import validate
from qbcat.engine.solve import SimulationError, simulate, simulate_points


def _random_params(rng, catalyst, n_fock):
    return validate(dict(
        catalyst=catalyst, n_fock=n_fock, omega_a=rng.uniform(0.5, 1.5), omega_c=rng.uniform(0.5, 1.5),
        g=rng.uniform(0, 0.5), gamma_D=rng.uniform(0, 0.2), kappa_1=rng.uniform(0, 0.2),
        Omega=rng.uniform(0, 1), omega_d=rng.uniform(0.5, 1.5)))


def _weights(st, cr, ci):
    """The kernel's per-lane weights W_u = C_ch v_u (batched._weights)."""
    Wr, Wi = np.empty((len(st.w_ch), cr.shape[1])), np.empty((len(st.w_ch), cr.shape[1]))
    batched._weights(cr, ci, st.w_ch, np.ascontiguousarray(st.w_v.real), np.ascontiguousarray(st.w_v.imag), Wr, Wi)
    return Wr, Wi


def _rhs_once(st, p, rho_frame, t):
    """The kernel's right-hand side for one point at time t, as a full d x d matrix."""
    x = st.to_upper(rho_frame)
    coef = np.zeros((len(st.names) + 1, 1))
    coef[:-1, 0] = [p[n] for n in st.names]
    static = [k for k, name in enumerate(st.names) if name not in batched.FRAME]
    dg = np.einsum("kr,kb->rb", st.diag[static], coef[static])
    cr, ci = np.zeros((len(st.ch_k), 1)), np.zeros((len(st.ch_k), 1))
    one = lambda v: np.array([v], dtype=float)  # noqa: E731
    batched._coefficients(one(t), coef, one(p["Omega"]), one(p["omega_d"]), one(p["omega_a"]),
                          one(p["omega_c"] if p["catalyst"] else 0.0), st.ch_k, st.ch_alpha, st.ch_beta, cr, ci)
    Yr, Yi = np.zeros((st.size, 1)), np.zeros((st.size, 1))
    batched._rhs(np.ascontiguousarray(x.real[:, None]), np.ascontiguousarray(x.imag[:, None]), Yr, Yi,
                 np.ascontiguousarray(dg), st.is_diag, st.ptr, st.col,
                 st.weight, st.conj, *_weights(st, cr, ci), one(1.0))
    full = np.zeros((st.dim, st.dim), dtype=complex)
    full[st.rows[:, 0], st.rows[:, 1]] = Yr[:, 0] + 1j * Yi[:, 0]
    return full + np.triu(full, 1).conj().T


@pytest.mark.parametrize("catalyst, n_fock", [(False, 0), (True, 2), (True, 3), (True, 6)])
def test_kernel_liouvillian_equals_qutip_in_the_rotating_frame(catalyst, n_fock):
    """rho_I = U0^dag rho U0 with U0 = exp(-i H0 t), H0 = H_QB + H_cat, obeys
    d rho_I/dt = U0^dag (L_t(rho) + i[H0, rho]) U0; L_t from qutip.liouvillian."""
    rng = np.random.default_rng(n_fock)
    st = batched.structure(catalyst, n_fock)
    for _ in range(3):
        p = _random_params(rng, catalyst, max(n_fock, 2))
        m = build_model(p)
        t = rng.uniform(0, 10)
        H = m.H_static + p["Omega"] * math.sin(p["omega_d"] * t) * m.drive_op
        L = qutip.liouvillian(H, m.c_ops)
        a = rng.normal(size=(st.dim, st.dim)) + 1j * rng.normal(size=(st.dim, st.dim))
        rho = a @ a.conj().T
        rho /= np.trace(rho)
        Q = qutip.Qobj(rho, dims=m.H_QB.dims)
        lab = qutip.vector_to_operator(L * qutip.operator_to_vector(Q)).full()
        H0 = (m.H_QB + m.H_cat).full()
        U0 = np.diag(np.exp(-1j * np.diag(H0) * t))
        expected = U0.conj().T @ (lab + 1j * (H0 @ rho - rho @ H0)) @ U0
        got = _rhs_once(st, p, U0.conj().T @ rho @ U0, t)
        assert np.max(np.abs(got - expected)) < 1e-12


@pytest.mark.parametrize("catalyst, n_fock", [(False, 0), (True, 3), (True, 12)])
def test_the_right_hand_side_of_many_lanes_is_each_lane_alone_scaled(catalyst, n_fock):
    """The integrator calls the right-hand side checked above on many lanes at once, each scaled
    by its own step: ``Y = h L_t(X)`` lane by lane. On random states, coefficients and steps of 13
    lanes (an odd number: a partial SIMD block), every lane must equal the same lane computed
    alone with h = 1, times its h; and the folded couplings must share weights."""
    rng = np.random.default_rng(7 + n_fock)
    st = batched.structure(catalyst, n_fock)
    assert len(st.w_ch) < st.couplings and set(np.unique(st.conj)) <= {-1.0, 1.0}
    nl = 13
    Xr, Xi = rng.normal(size=(st.size, nl)), rng.normal(size=(st.size, nl))
    dg = rng.normal(size=(st.size, nl))
    cr, ci = rng.normal(size=(len(st.ch_k), nl)), rng.normal(size=(len(st.ch_k), nl))
    h = rng.uniform(0.01, 1.0, nl)
    args = (dg, st.is_diag, st.ptr, st.col, st.weight, st.conj)
    got_r, got_i = np.empty((st.size, nl)), np.empty((st.size, nl))
    batched._rhs(Xr, Xi, got_r, got_i, *args, *_weights(st, cr, ci), h)
    for b in range(nl):
        lane = np.s_[:, b:b + 1]
        one_r, one_i = np.empty((st.size, 1)), np.empty((st.size, 1))
        batched._rhs(*(np.ascontiguousarray(a[lane]) for a in (Xr, Xi)), one_r, one_i,
                     np.ascontiguousarray(dg[lane]), *args[1:],
                     *_weights(st, np.ascontiguousarray(cr[lane]), np.ascontiguousarray(ci[lane])), np.ones(1))
        scale = np.max(np.abs(one_r)) + np.max(np.abs(one_i))
        assert np.max(np.abs(got_r[:, b] - h[b] * one_r[:, 0])) < 1e-14 * scale
        assert np.max(np.abs(got_i[:, b] - h[b] * one_i[:, 0])) < 1e-14 * scale


@pytest.mark.parametrize("catalyst", [True, False])
def test_expectation_operators_are_the_same_from_numpy_and_qutip_models(catalyst):
    """The batched engine builds the operators with numpy (no QuTiP import); the QuTiP engine
    wraps the same arrays. Every expectation operator must come out the same either way (an
    operator written with ``*`` would be a matrix product for QuTiP, elementwise for numpy)."""
    from qbcat.engine.model import operators
    from qbcat.engine.solve import expect_operators

    p = validate(dict(catalyst=catalyst, n_fock=4, g=0.3, omega_c=1.2, kappa_1=0.1, gamma_D=0.07))
    from_numpy, from_qutip = expect_operators(operators(p)), expect_operators(build_model(p))
    assert list(from_numpy) == list(from_qutip)
    for name in from_numpy:
        assert np.allclose(from_numpy[name], from_qutip[name].full(), atol=1e-14), name


def test_expectation_weights_give_the_trace_formula():
    rng = np.random.default_rng(3)
    st = batched.structure(True, 4)
    a = rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))
    rho, A = a @ a.conj().T, a + a.conj().T
    w, x = st.expect_weights(A), st.to_upper(rho)
    assert np.sum(np.conj(w) * x).real == pytest.approx(np.trace(A @ rho).real, rel=1e-12)
    with pytest.raises(ValueError, match="not Hermitian"):
        st.expect_weights(a)
    # a stack of operators (the engine's call for a whole group): each as alone; one bad one is caught
    stack = np.array([[A, 2 * A], [A @ A, np.eye(8)]])
    assert np.array_equal(st.expect_weights(stack)[1, 0], st.expect_weights(A @ A))
    with pytest.raises(ValueError, match="not Hermitian"):
        st.expect_weights(np.array([A, A + 1e-9 * a]))


TIGHT = {"atol": 1e-12, "rtol": 1e-10}


@pytest.mark.parametrize("n_fock", [4, 12, 20])
def test_batched_equals_qutip_engine(n_fock):
    p = dict(n_fock=n_fock, t_max=25.0, n_t=251, g=0.4, kappa_1=0.03, gamma_D=0.02, Omega=0.8, **TIGHT)
    b = simulate({**p, "engine": "batched"})
    q = simulate({**p, "engine": "qutip"})
    assert set(b.data) == set(q.data)
    for name in b.data:
        assert np.max(np.abs(b.data[name] - q.data[name])) < 1e-7, name
    assert np.ptp(b.data["energy_cat"]) > 0.05  # photons are really made


def test_default_tolerance_meets_one_in_a_million():
    """The default atol/rtol keep ergotropy, catalyst energy and heat current within 1e-6 of a
    tight run over a long, strongly driven trajectory."""
    p = dict(n_fock=8, t_max=100.0, n_t=1001)
    default, tight = batched.simulate_many([validate(p), validate({**p, **TIGHT})])
    for name in ("ergotropy", "energy_cat", "heat_current"):
        assert np.max(np.abs(default.data[name] - tight.data[name])) < 1e-6, name


MIXED = [
    dict(n_fock=5),
    dict(n_fock=5, omega_a=1.3, omega_c=0.7, g=0.45),
    dict(n_fock=5, Omega=1.2, omega_d=1.7, initial_qubit="excited"),
    dict(n_fock=5, gamma_D=0.3, kappa_1=0.0, initial_qubit="plus"),
    dict(n_fock=5, rtol=1e-10, atol=1e-12),  # a tighter point takes its own, smaller steps
    dict(n_fock=5, Omega=6.0, omega_d=9.0, g=0.0),  # a hard, fast point
    dict(n_fock=3, g=0.3),  # another shape: its own group
    dict(catalyst=False, gamma_D=0.1),
    dict(n_fock=5, Omega=6.0, omega_d=9.0, nsteps=1),  # fails: too many steps between two outputs
]
SHORT = dict(t_max=15.0, n_t=151)


def test_a_point_gives_the_same_result_in_any_batch():
    points = [validate({**SHORT, **p}) for p in MIXED]
    together = dict(simulate_points(points))
    for k, p in enumerate(points):
        alone = dict(simulate_points([p]))[0]
        if isinstance(alone, SimulationError):
            assert isinstance(together[k], SimulationError)
            continue
        assert alone.stats == together[k].stats
        for name in alone.data:
            assert np.array_equal(alone.data[name], together[k].data[name]), (k, name)
    # the points really differ, and each lane kept its own step count
    steps = [together[k].stats["steps"] for k in range(len(points) - 1)]
    assert len(set(steps)) > 3
    assert steps[4] > 3 * steps[0]  # tolerance 1000x tighter: many more steps for that point only


def test_a_failing_point_is_named_and_the_others_are_computed():
    points = [validate({**SHORT, **p}) for p in MIXED]
    results = dict(simulate_points(points))
    failed = [k for k, r in results.items() if isinstance(r, SimulationError)]
    assert failed == [len(MIXED) - 1]
    message = str(results[failed[0]])
    assert "nsteps=1" in message and "Omega=6.0" in message and "more than nsteps" in message
    assert all(np.all(np.isfinite(results[k].data["ergotropy"])) for k in results if k not in failed)


def test_a_lane_refilled_from_the_queue_gives_each_point_its_result_alone():
    """More points than lanes: a lane whose point is done (or failed) takes the next point of the
    queue. Every point, refilled into whichever lane frees first, gives bit for bit its result
    alone, and a failure early in the queue frees its lane without touching the others."""
    shape = [dict(n_fock=5, nsteps=1, Omega=6.0, omega_d=9.0), dict(n_fock=5, Omega=6.0, omega_d=9.0, g=0.0),
             dict(n_fock=5), dict(n_fock=5, g=0.45, omega_c=1.3, initial_qubit="plus"),
             dict(n_fock=5, rtol=1e-10, atol=1e-12), dict(n_fock=5, kappa_1=0.3, gamma_D=0.0),
             dict(n_fock=5, omega_a=1.4, Omega=0.1)]
    points = [validate({**SHORT, **p}) for p in shape]
    st = batched.structure(True, 5)
    tlist = np.linspace(0.0, SHORT["t_max"], SHORT["n_t"])
    queued = batched.integrate_group(points, st, tlist, lanes=2)
    assert queued[0].status == batched.TOO_MANY_STEPS
    assert all(r.status == batched.OK for r in queued[1:])
    for p, q in zip(points, queued):
        (alone,) = batched.integrate_group([p], st, tlist)
        assert (q.status, q.steps, q.rejected) == (alone.status, alone.steps, alone.rejected)
        if alone.status == batched.OK:
            for name in alone.expect:
                assert np.array_equal(q.expect[name], alone.expect[name]), name
    assert len({r.steps for r in queued[1:]}) >= 4  # different work: lanes free at different times


def test_the_queue_puts_the_hardest_points_first():
    """Lanes drain on the last points of a queue: the harder ones (stronger coupling, larger
    detuning or drive, tighter rtol) are queued first, and a call takes several lanes' worth."""
    base = dict(n_fock=12)
    easy, *harder = [validate({**base, **p}) for p in
                     (dict(g=0.0), dict(g=0.5), dict(omega_c=1.5), dict(Omega=2.0), dict(rtol=1e-10))]
    assert all(batched._difficulty(p) > batched._difficulty(easy) for p in harder)
    st = batched.structure(True, 12)
    lanes = batched.lanes_for(st)
    assert batched.queue_for(st, 3001, lanes) == batched.QUEUE_LANES * lanes
    # a very long time grid: the queue shrinks to its byte budget, never below the lanes
    assert batched.queue_for(st, 10**7, lanes) == lanes


def test_outputs_are_at_exactly_the_requested_times():
    traj = simulate(dict(n_fock=3, t_max=7.3, n_t=74))
    assert np.array_equal(traj.time, np.linspace(0.0, 7.3, 74))
    # the continuous extension agrees with integrating to each output time (t_max of a run)
    end = simulate(dict(n_fock=3, t_max=traj.time[37], n_t=2, **TIGHT))
    tight = simulate(dict(n_fock=3, t_max=7.3, n_t=74, **TIGHT))
    assert abs(tight.data["bloch_z"][37] - end.data["bloch_z"][-1]) < 1e-8


def test_lanes_fit_the_cache():
    small, large = batched.structure(True, 4), batched.structure(True, 20)
    assert batched.lanes_for(small) >= batched.lanes_for(large) >= 8


def test_a_structure_is_built_once_per_process():
    """structure() caches by (catalyst, n_fock): a batch must not rebuild it (~50 ms at n_fock 12)."""
    assert batched.structure(True, 4) is batched.structure(True, 4)
    assert batched.structure(False, 0) is batched.structure(False, 7)  # n_fock means nothing without one
