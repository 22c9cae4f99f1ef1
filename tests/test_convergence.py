"""Convergence checks (qbcat.science.convergence): logic on a converged and an unconverged point, the
cutoff search's guard against false early agreement, the pass/fail table and raise_if_failed."""

import numpy as np
import pandas as pd
import pytest

from qbcat.science import convergence as cv
from qbcat.engine.params import ParameterError, validate
from qbcat.engine.solve import Trajectory

SHORT = {"t_max": 20.0, "n_t": 201}  # the truncation error is made in the first ~30 time units
WEAK = {**SHORT, "g": 0.01, "n_fock": 3}  # barely excites the oscillator: truncation hardly matters


def test_common_time_indices_of_a_refined_grid():
    t = np.linspace(0, 20, 201)
    fine = np.linspace(0, 20, 401)
    i, j = cv.common_time_indices(t, fine)
    np.testing.assert_array_equal(i, np.arange(201))
    np.testing.assert_array_equal(j, 2 * np.arange(201))
    i, j = cv.common_time_indices(np.array([0.5, 1.5]), np.array([0.0, 1.0, 2.0]))
    assert i.size == 0


def test_converged_point_passes():
    table = cv.cutoff_check(WEAK, [2, 3, 8], progress=None)
    assert set(table["n_fock"]) == {2, 3}
    req = table[table["required"]]
    assert set(req["n_fock"]) == {3} and req["passed"].all()
    assert (req["max_deviation"] < 1e-4).all()
    cv.raise_if_failed(table, fail_on_error=True)  # does not raise
    assert "FAIL" not in cv.summary(table)


def test_tiny_cutoff_fails_loudly(capsys):
    """One photon (n_fock = 2) at the default coupling is far off (ergotropy error > 0.1)."""
    table = cv.cutoff_check({**SHORT, "n_fock": 2}, [2, 8], progress=None)
    erg = table[(table["observable"] == "ergotropy")]
    assert float(erg["max_deviation"].iloc[0]) > 0.1
    assert not table["passed"].any()
    text = cv.summary(table)
    assert text.startswith("convergence checks: FAIL") and "[FAIL] cutoff" in text
    with pytest.raises(cv.ConvergenceError, match="FAILED: cutoff"):
        cv.raise_if_failed(table, fail_on_error=True)
    cv.raise_if_failed(table, fail_on_error=False)  # reports, does not raise
    assert "WARNING: convergence check FAILED: cutoff" in capsys.readouterr().err


def test_relative_thresholds_scale_with_the_reference():
    table = cv.cutoff_check({**SHORT, "n_fock": 4}, [4, 8], {"energy_cat": 0.5}, relative=True, progress=None)
    row = table[table["observable"] == "energy_cat"].iloc[0]
    assert row["threshold"] == pytest.approx(0.5 * row["scale"])
    assert row["scale"] > 0.5  # max catalyst energy over the run


def test_smallest_passing_cutoff_on_a_real_point():
    result = cv.smallest_passing_cutoff(SHORT, range(2, 15), confirm=2, progress=None)
    n = result.n_fock
    assert n is not None and result.reference_n_fock == 14
    t = result.table
    assert t.loc[t["n_fock"] == n, "passed"].all()
    assert not t.loc[t["n_fock"] == n - 1, "passed"].all()
    assert t.loc[t["n_fock"].between(n, n + 2), "passed"].all()
    assert max(result.evaluated[:-1]) == n + 2  # stopped early: nothing between n + 2 and 14 was run
    # the same n passes against an independent, larger reference
    again = cv.cutoff_check({**SHORT, "n_fock": n}, [n, 18], progress=None)
    assert again.loc[again["required"], "passed"].all()


def _fake_simulate(deviation_by_n):
    """A stand-in for qbcat.engine.solve.simulate whose observables differ from the reference by a
    prescribed amount per n_fock (0 at cutoffs not listed)."""
    def simulate(params):
        p = validate(params)
        t = np.linspace(0, 1, 5)
        d = deviation_by_n.get(p["n_fock"], 0.0)
        return Trajectory(params=p, time=t, data={k: np.full(5, d) for k in cv.OBSERVABLES})
    return simulate


def test_cutoff_search_is_not_fooled_by_an_accidental_pass(monkeypatch):
    """Non-monotone error (as at the default point at tiny cutoffs): n = 3 passes by accident, 4 and
    5 fail, from 6 on everything passes. With confirmation the search returns 6, without it 3."""
    dev = {2: 0.1, 3: 1e-5, 4: 0.05, 5: 0.01, 6: 1e-4, 7: 1e-5, 8: 1e-6, 9: 1e-7}
    monkeypatch.setattr(cv, "simulate", _fake_simulate(dev))
    assert cv.smallest_passing_cutoff({}, range(2, 16), confirm=2, progress=None).n_fock == 6
    assert cv.smallest_passing_cutoff({}, range(2, 16), confirm=0, progress=None).n_fock == 3
    # nothing far enough below the reference passes: no answer, and the reason says what to do
    late = {n: 0.1 for n in range(2, 12)}
    monkeypatch.setattr(cv, "simulate", _fake_simulate(late))
    result = cv.smallest_passing_cutoff({}, range(2, 16), confirm=2, min_gap=4, progress=None)
    assert result.n_fock is None and "reference_n_fock" in result.reason


def test_reference_must_be_clearly_larger():
    with pytest.raises(ParameterError, match="candidates: need candidates at least 4 below"):
        cv.smallest_passing_cutoff({}, [10, 11, 12], progress=None)
    with pytest.raises(ParameterError, match="n_fock: the reference cutoff 8 must exceed"):
        cv.cutoff_check({"n_fock": 12}, [4, 8], progress=None)
    with pytest.raises(ParameterError, match="n_fock 12 by at least min_gap=4"):
        cv.cutoff_check({"n_fock": 12}, [4, 14], progress=None)


def test_tolerance_check_orders_by_tolerance():
    p = {**SHORT, "n_fock": 4, "engine": "qutip"}
    table = cv.tolerance_check(p, [[1e-4, 1e-6], [1e-9, 1e-11]], ["adams", "bdf"], progress=None)
    req = table[table["required"]]
    assert set(req["setting"]) == {"method=adams rtol=1e-07 atol=1e-09", "method=bdf rtol=1e-09 atol=1e-11"}
    assert req["passed"].all()
    erg = table[(table["observable"] == "ergotropy") & (table["method"] == "bdf")].set_index("rtol")
    assert erg.loc[1e-4, "max_deviation"] > 10 * erg.loc[1e-9, "max_deviation"]


def test_tolerance_check_compares_the_batched_engine_with_qutip():
    p = {**SHORT, "n_fock": 4, "engine": "batched"}
    table = cv.tolerance_check(p, [[1e-4, 1e-6], [1e-9, 1e-11]], ["adams"], progress=None)
    assert set(table[table["required"]]["setting"]) == {
        "engine=batched rtol=1e-07 atol=1e-09", "engine=batched rtol=1e-09 atol=1e-11"}
    assert set(table["reference"]) == {"method=adams rtol=1e-09 atol=1e-11"}
    assert table[table["required"]]["passed"].all()
    erg = table[(table["observable"] == "ergotropy") & (table["method"] == "batched")].set_index("rtol")
    # the batched engine converges to QuTiP's tight run as its own tolerance tightens
    assert erg.loc[1e-4, "max_deviation"] > 100 * erg.loc[1e-9, "max_deviation"]
    assert erg.loc[1e-9, "max_deviation"] < 1e-8


def test_sampling_check_passes():
    table = cv.sampling_check({**SHORT, "n_fock": 4, "method": "dop853"}, progress=None)
    assert list(table["setting"].unique()) == ["n_t=201"] and table["required"].all()
    assert table["passed"].all() and (table["max_deviation"] < 1e-6).all()


def test_run_checks_table_csv_and_verdicts(tmp_path):
    options = {"n_fock": [2, 3, 8], "tolerances": [[1e-5, 1e-7], [1e-8, 1e-10]], "methods": ["adams", "bdf"],
               "thresholds": {"ergotropy": 1e-4}}
    table = cv.run_checks(WEAK, options, progress=None)
    assert list(table.columns) == cv.COLUMNS
    assert list(dict.fromkeys(table["check"])) == ["cutoff", "tolerance", "sampling"]
    v = cv.verdicts(table).set_index("check")
    assert v["passed"].all()
    path = cv.write_table(table, tmp_path / "convergence.csv")
    back = pd.read_csv(path)
    assert len(back) == len(table) and back["passed"].dtype == bool
    assert set(back.loc[back["check"] == "cutoff", "threshold"].unique()) >= {1e-4}
    # the same table with one required row broken fails, naming the check
    broken = table.copy()
    i = broken.index[(broken["check"] == "sampling")][0]
    broken.loc[i, ["max_deviation", "passed"]] = [1.0, False]
    assert cv.failed_checks(broken) == ["sampling"]
    with pytest.raises(cv.ConvergenceError, match="FAILED: sampling"):
        cv.raise_if_failed(broken, fail_on_error=True)


@pytest.mark.parametrize("options, message", [
    ({"n_foc": [2]}, "n_foc: unknown convergence option"),
    ({"thresholds": {"power": 1e-3}}, "thresholds.power: unknown observable"),
    ({"thresholds": {"ergotropy": -1}}, "thresholds.ergotropy: expected a positive number"),
    ({"methods": ["rk4"]}, "methods: unknown method 'rk4'"),
    ({"tolerances": [[1e-6]]}, r"tolerances: expected \[rtol, atol\] pairs"),
    ({"n_fock": [1, 4]}, "n_fock: values must be >= 2"),
    ({"checks": ["cutof"]}, "checks: unknown check 'cutof'"),
    ({"n_fock": [2, 8]}, "n_fock: the reference cutoff 8 must exceed the point's n_fock 12"),
    ({"n_fock": [2, 14]}, "by at least min_gap=4"),
    ({"min_gap": 0}, "min_gap: expected an integer >= 1"),
])
def test_bad_options_are_refused_before_work(options, message):
    with pytest.raises(ParameterError, match=message):
        cv.run_checks({}, options, progress=None)


def test_cutoff_check_needs_the_catalyst():
    with pytest.raises(ParameterError, match="catalyst: the cutoff check needs a catalyzed point"):
        cv.run_checks({"catalyst": False}, {"checks": ["cutoff"]}, progress=None)


def test_figure_is_written(tmp_path):
    from qbcat.figures.checks import plot_checks, write_summary

    table = cv.run_checks(WEAK, {"n_fock": [2, 3, 8], "tolerances": [[1e-5, 1e-7], [1e-8, 1e-10]],
                                 "methods": ["adams", "bdf"]}, progress=None)
    path = plot_checks(table, tmp_path / "checks.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    from qbcat.figures import plots
    from qbcat.figures.checks import figure_checks

    with Image.open(path) as png:  # the dpi asked for, no "tight" cropping: 7.2 x 6.4 inches
        assert png.size == (360, 320)
    fig = figure_checks(table)
    assert plots.layout_problems(fig) == []
    assert {ax.yaxis.label.get_fontfamily()[0] for ax in fig.axes} == {plots.STYLE["font.family"]}
    assert write_summary(table, tmp_path / "summary.txt").read_text().startswith("convergence checks: PASS")


def _one_row_table(deviation: float) -> pd.DataFrame:
    row = {name: np.nan for name in cv.COLUMNS}
    row.update(check="cutoff", setting="n_fock=4", observable="ergotropy", max_deviation=deviation, threshold=1e-3,
               passed=deviation <= 1e-3, required=True, reference="n_fock=8", n_fock=4, method="", note="")
    return cv._table([row])


def test_the_study_table_puts_failures_first_and_the_gate_fails_only_when_asked(tmp_path):
    points = {"a": {"label": "base", "params": {"g": 0.2}}, "b": {"label": "corner", "params": {"g": 0.4}}}
    path = tmp_path / "b.csv"
    cv.write_table(_one_row_table(1e-2), path)  # a per-point table survives its CSV
    combined, details = cv.combine({"a": _one_row_table(1e-4), "b": cv.read_table(path)}, points)
    assert list(combined["verdict"]) == ["FAIL", "PASS"] and combined.iloc[0]["label"] == "corner"
    assert combined.iloc[1]["margin"] == pytest.approx(10) and combined.iloc[0]["g"] == 0.4
    assert len(details) == 2 and set(details["label"]) == {"base", "corner"}
    text = cv.gate(combined, fail_on_error=False)
    assert text.startswith("FAIL: 1 of 2") and "FAIL corner [cutoff]" in text
    with pytest.raises(cv.ConvergenceError, match="FAILED for 1 of 2"):
        cv.gate(combined, fail_on_error=True)
    assert cv.gate(combined[combined["verdict"] == "PASS"], True).startswith("PASS: all 1")
    # a point with n_fock auto shows the cutoff its ladder chose (its required cutoff row)
    auto, _ = cv.combine({"a": _one_row_table(1e-4)}, {"a": {"label": "base", "params": {"n_fock": "auto"}}})
    assert auto.iloc[0]["n_fock"] == "auto (4)"
