"""The photon-cutoff certificate of every catalyzed point and ``n_fock: auto`` (qbcat.engine.cutoff).

Physics checks against independent runs (the QuTiP engine at a larger cutoff, QuTiP states and
their partial trace), the identity rules (what a threshold change reruns), and that a failed
certificate shows in the sweep dataset, the aggregation log, the products and the claims.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import xarray as xr

from qbcat.data import aggregate
from qbcat.science import analysis
from qbcat.science import claims
from qbcat.engine import cutoff
from qbcat.science.convergence import max_deviations
from qbcat.engine.params import ParameterError, canonical, point_id, validate
from qbcat.engine.solve import simulate
from qbcat.workflow.batches import run_batch
from qbcat.workflow.configuration import load_config
from qbcat.workflow.study import point_path

from conftest import REPO

SCHEMA = REPO / "config" / "schema.yaml"
THRESHOLD = 1e-3  # the default cutoff_tolerance and cutoff_top_tolerance


def test_a_point_at_too_low_a_cutoff_fails_its_certificate():
    (i, traj), = cutoff.simulate_certified([{"n_fock": 6}])
    cert = traj.certificate
    assert cert.n_fock == 6 and cert.n_fock_reference == 10
    # the certificate is the deviation from the n_fock + gap run (a fixed cutoff's reference at
    # 10x the point's tolerances), computed independently here
    loose = cutoff.REFERENCE_LOOSENING
    assert (cert.reference_rtol, cert.reference_atol) == (1e-7 * loose, 1e-9 * loose)
    ref = simulate({"n_fock": 10, "rtol": 1e-7 * loose, "atol": 1e-9 * loose})
    expected = max_deviations(simulate({"n_fock": 6}), ref, cutoff.CERTIFIED)
    for name, value in expected.items():
        assert cert.deviation[name] == pytest.approx(value, rel=1e-9, abs=1e-15), name
    assert not cert.passed(traj.params)
    broken = cert.violations(traj.params)
    assert any("energy_cat" in v for v in broken) and any("top Fock level" in v for v in broken)
    assert cert.attrs(traj.params)["cutoff_ok"] == 0


def test_a_looser_reference_changes_the_certificate_by_a_small_part_of_its_tolerance():
    """A fixed cutoff's reference runs at REFERENCE_LOOSENING x the point's tolerances. On hard
    points of the g x omega_c map (strong coupling, detuned) its certificate differs from one
    against a reference at the point's own tolerances by well under the threshold (measured: at
    most 2e-5 of 1e-3), and the verdict is the same; the point's own run is untouched."""
    base = dict(n_fock=12, t_max=150.0, n_t=1501)
    hard = [dict(g=0.5, omega_c=0.5), dict(g=0.5, omega_c=1.5), dict(g=0.3, omega_c=0.75)]
    for over in hard:
        (_, traj), = cutoff.simulate_certified([{**base, **over}])
        tight = cutoff.certify(simulate({**base, **over}), simulate({**base, **over, "n_fock": 16}))
        assert traj.certificate.reference_rtol == pytest.approx(10 * tight.reference_rtol)
        for name in cutoff.CERTIFIED:
            assert abs(traj.certificate.deviation[name] - tight.deviation[name]) <= 0.05 * THRESHOLD, (over, name)
        assert traj.certificate.passed(traj.params) == tight.passed(traj.params)
        assert np.array_equal(traj.data["ergotropy"], simulate({**base, **over}).data["ergotropy"])


@pytest.mark.parametrize("over, expected", [({}, [10]), ({"kappa_1": 0.0}, [18, 20])])
def test_auto_picks_the_smallest_passing_cutoff_and_an_independent_run_confirms_it(over, expected):
    """default point (docs/conventions.md): 10 at threshold 1e-3; without photon loss (kappa_1 = 0) 18-20
    (measured before this feature, with qbcat cutoff). The check: the QuTiP engine (another
    integrator, another code path) at the chosen cutoff + 6 agrees within the threshold, and the
    rung below the chosen one does not pass."""
    traj = simulate({**over, "n_fock": "auto"})
    n = traj.certificate.n_fock
    assert n in expected and traj.params["n_fock"] == "auto"
    assert traj.certificate.reference_rtol == traj.params["rtol"]  # a later rung's own run
    assert traj.certificate.passed(traj.params)
    independent = simulate({**over, "n_fock": n + 6, "engine": "qutip", "method": "adams"})
    for name, dev in max_deviations(traj, independent, cutoff.CERTIFIED).items():
        assert dev <= THRESHOLD, (name, dev)
    below, = [r for _, r in cutoff.simulate_certified([{**over, "n_fock": n - 2}])]
    assert not below.certificate.passed(below.params)


def test_the_top_level_population_agrees_with_qutip_states():
    """max_t <n-1| Tr_QB rho |n-1> from the stored states of a QuTiP mesolve (an independent
    calculation: states and partial traces) against both engines' expectation value."""
    qutip = pytest.importorskip("qutip")
    from qbcat.engine.model import build_model

    p = validate({"n_fock": 5, "t_max": 30.0, "n_t": 301, "g": 0.4})
    model = build_model(p)
    result = qutip.mesolve(model.hamiltonian(), model.rho0, np.linspace(0, 30.0, 301), model.c_ops,
                           options={"atol": 1e-10, "rtol": 1e-9, "store_states": True})
    top = max(float(np.real(s.ptrace(1).full()[4, 4])) for s in result.states)
    assert top > 1e-3  # the test is not about zeros
    for engine in ("batched", "qutip"):
        assert simulate({**p, "engine": engine}).top_population == pytest.approx(top, rel=1e-5), engine


def test_a_baseline_has_no_cutoff_and_no_certificate():
    (i, traj), = cutoff.simulate_certified([{"catalyst": False, "t_max": 10.0, "n_t": 101}])
    assert traj.certificate is None and np.isnan(traj.top_population)


def test_the_ladder_and_the_identity():
    auto = validate({"n_fock": "auto", "n_fock_min": 4, "n_fock_max": 9, "n_fock_step": 2})
    assert cutoff.ladder(auto) == [4, 6, 8]
    assert cutoff.ladder(validate({"n_fock": 7})) == [7]
    # auto: the whole policy is the identity; a fixed cutoff: only the gap (thresholds only flag)
    for key, value in (("cutoff_tolerance", 1e-4), ("cutoff_top_tolerance", 1e-2), ("cutoff_gap", 6),
                       ("n_fock_min", 8), ("n_fock_max", 30), ("n_fock_step", 4)):
        assert point_id({"n_fock": "auto", key: value}) != point_id({"n_fock": "auto"}), key
        fixed_changes = point_id({"n_fock": 12, key: value}) != point_id({"n_fock": 12})
        assert fixed_changes == (key == "cutoff_gap"), key
    # the baseline has no cutoff: none of it is its identity
    assert point_id({"catalyst": False, "n_fock": "auto", "cutoff_tolerance": 1e-5}) == point_id({"catalyst": False})
    assert "cutoff_tolerance" not in canonical({"catalyst": False})
    for bad, message in (({"n_fock": "automatic"}, "n_fock: expected an integer or auto"),
                         ({"n_fock": "auto", "n_fock_min": 10, "n_fock_max": 8}, "n_fock_max: must be >= n_fock_min"),
                         ({"cutoff_gap": 0}, "cutoff_gap: must be >= 1")):
        with pytest.raises(ParameterError, match=message):
            validate(bad)


CONFIG = {
    "base": {"n_fock": "auto", "n_fock_min": 3, "n_fock_max": 9, "t_max": 10.0, "n_t": 101},
    "sweeps": {
        "g_scan": {"axes": {"g": {"values": [0.1, 0.2]}}},
        "k_scan": {"axes": {"kappa_1": {"values": [0.05, 0.1]}}},
    },
}


def _study(config):
    return load_config(copy.deepcopy(config), SCHEMA)


def test_a_threshold_change_reruns_exactly_the_points_whose_identity_changes():
    before = _study(CONFIG)
    # one sweep sets a tighter threshold: its catalyzed points are new, nothing else
    config = copy.deepcopy(CONFIG)
    config["sweeps"]["k_scan"]["set"] = {"cutoff_tolerance": 1e-4}
    after = _study(config)
    new = set(after.points) - set(before.points)
    assert new == {pid for pid in after.sweep_points["k_scan"] if after.points[pid]["catalyst"]}
    assert len(new) == 2
    # a fixed cutoff: a threshold only flags, no point changes; the gap changes every catalyzed point
    fixed = copy.deepcopy(CONFIG)
    fixed["base"]["n_fock"] = 6
    assert set(_study({**fixed, "base": {**fixed["base"], "cutoff_tolerance": 1e-5}}).points) == set(_study(fixed).points)
    gap = _study({**fixed, "base": {**fixed["base"], "cutoff_gap": 2}})
    changed = set(gap.points) - set(_study(fixed).points)
    assert changed == {pid for pid, p in gap.points.items() if p["catalyst"]}


@pytest.fixture(scope="module")
def flagged_sweep(tmp_path_factory):
    """A 1-D sweep at a fixed n_fock 3 (far too small where g is large) through the real batch
    runner and aggregation: the certificate fails at g = 0.4 and passes at g = 0."""
    tmp = tmp_path_factory.mktemp("cutoff")
    config = {"base": {"n_fock": 3, "t_max": 20.0, "n_t": 201},
              "sweeps": {"g_scan": {"axes": {"g": {"values": [0.0, 0.4]}}}}}
    study = _study(config)
    ids = list(study.points)
    points = [study.points[pid] for pid in ids]
    assert run_batch(points, [point_path(tmp / "points", pid) for pid in ids], log=lambda m: None) == []
    messages = []
    files = [point_path(tmp / "points", pid) for pid in ids]
    out = aggregate.write_sweep(study.sweeps["g_scan"], files, tmp / "g_scan.nc", log=messages.append)
    return study, tmp, files, out, messages


def test_a_failed_certificate_shows_in_the_sweep_log_products_and_claims(flagged_sweep):
    study, tmp, files, out, messages = flagged_sweep
    with xr.open_dataset(out) as ds:
        ds = ds.load()
    ok = ds["cutoff_ok"].sel(case="catalyzed").values.tolist()
    assert ok == [1, 0]  # g = 0: nothing to truncate; g = 0.4 at n_fock 3 fails
    assert ds["cutoff_ok"].sel(case="baseline").values.tolist() == [-1, -1]
    assert ds["n_fock"].sel(case="catalyzed").values.tolist() == [3, 3]
    assert np.isnan(ds["n_fock"].sel(case="baseline").values).all()
    assert ds["cutoff_deviation_energy_cat"].sel(case="catalyzed", g=0.4) > THRESHOLD
    assert any("CUTOFF: 1 point(s) FAIL their cutoff certificate" in m for m in messages)
    assert any("g=0.4" in m and "n_fock 3" in m for m in messages)
    # products: the enhancement and backflow datasets carry the flag and count the failed point
    enh = analysis.ergotropy_enhancement(ds)
    assert analysis.uncertified(enh) == 1 and enh["cutoff_ok"].values.tolist() == [1, 0]
    assert analysis.uncertified(analysis.backflow_statistics(ds)) == 1
    # claims: a warning at the top, and a note on the claims that use the point
    report = claims.claims_report({"g_scan": ds})
    assert "WARNING: 1 catalyzed point(s) of the sweeps FAIL their photon-cutoff certificate" in report
    assert "CUTOFF: 1 point(s) used here FAIL their cutoff certificate" in report and "g=0.4" in report


def test_fail_on_cutoff_stops_the_aggregation_and_keeps_the_points(flagged_sweep):
    study, tmp, files, out, messages = flagged_sweep
    target = tmp / "strict.nc"
    with pytest.raises(aggregate.AggregationError, match="1 point\\(s\\) fail their cutoff certificate"):
        aggregate.write_sweep(study.sweeps["g_scan"], files, target, fail_on_cutoff=True, log=lambda m: None)
    assert not target.exists() and all(os.path.exists(f) for f in files)


def test_the_certificate_figure_marks_the_failed_cell(flagged_sweep, tmp_path):
    from qbcat.figures import plots

    study, tmp, files, out, messages = flagged_sweep
    data = analysis.open_sweeps([out], variables=None)
    margin = plots.certificate_margin(data["g_scan"]).values
    assert margin[0] > 0 > margin[1]  # certified by some decades at g = 0, failed at g = 0.4
    fig = plots.figure_cutoff_certificates(data)
    assert plots.layout_problems(fig) == []
    assert "1/2 certified" in fig.axes[0].get_title(loc="right")
