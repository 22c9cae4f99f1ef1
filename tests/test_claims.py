"""qbcat.science.claims: each verdict follows from the data and flips when the data contradict the claim."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from qbcat.science import analysis as A
from qbcat.science import claims as C

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
T = np.linspace(0.0, 60.0, 601)
AXES = {"omega_c": [0.8, 1.0, 1.2], "g": [0.1, 0.2, 0.3], "kappa_1": [0.01, 0.05, 0.2], "gamma_D": [0.01, 0.05, 0.2]}
#: Thresholds scaled to the 60-time-unit synthetic runs.
TH = {"catalyst_t_start": 20.0}


def paper_like(axis, values, *, gain=0.1, link=+1, peak_time=1.0, late_J=-0.01, ecat_wobble=0.0,
               enhancement_at_top=None, carrier="catalyst", channels=True):
    """A sweep that behaves as the paper says; keyword arguments break one claim at a time.

    Backflow amplitude a_k grows with the value's rank; the enhancement is gain * a_k (link=+1,
    more backflow -> more enhancement) or gain / a_k (link=-1, the opposite ranking). The heat
    current's channels add up to J; ``carrier`` is the channel that carries the backflow (the
    other one oscillates weakly); ``channels=False`` leaves them out (a sweep of an older qbcat).
    """
    n = len(values)
    amp = 0.5 * (1.0 + np.arange(n)) / n
    enh = gain * (amp if link > 0 else 0.1 / amp)
    if enhancement_at_top is not None:
        enh[-1] = enhancement_at_top
    t = T
    E_base = 0.2 + 0.05 * np.exp(-t / 10) * np.sin(t)
    E_cat = E_base + enh[:, None] * (1 - np.exp(-t / 0.5))
    J = -amp[:, None] * np.exp(-((t - peak_time) / 0.4) ** 2) + late_J * (1 - np.exp(-t / 3))
    E_c = 1.0 - np.exp(-t / 2) + ecat_wobble * np.sin(0.5 * t)
    J_base = 0.002 * np.sin(t)
    pids = {"catalyzed": [f"{axis}-{v}" for v in values], "baseline": [f"{axis}-base"] * n}
    cat = {"ergotropy": E_cat, "heat_current": J, "energy_cat": E_c + 0 * J}
    base = {"ergotropy": E_base, "heat_current": J_base}
    if channels:
        weak = 0.003 * np.sin(3 * t) + 0 * J
        cat["heat_current_catalyst"] = J - weak if carrier == "catalyst" else weak
        cat["heat_current_dephasing"] = J - cat["heat_current_catalyst"]
        base.update(heat_current_catalyst=0 * J_base, heat_current_dephasing=J_base)
    return A.build_sweep({axis: values}, t, cat, base, name=axis, point_ids=pids, attrs={"n_fock": 12})


def sweeps(**changes):
    """The four paper sweeps; ``changes`` maps a sweep name to keyword arguments of paper_like."""
    return {a: paper_like(a, v, **changes.get(a, {})) for a, v in AXES.items()}


def verdicts(sw, thresholds=TH, convergence=None, **options):
    return {c.number: c.verdict for c in C.evaluate_claims(sw, thresholds=thresholds, convergence=convergence,
                                                            **options)}


@pytest.fixture(scope="module")
def baseline_verdicts():
    return verdicts(sweeps(), convergence={4: 1e-4, 8: 1e-5, 12: 0.0})


def test_all_claims_hold_on_paper_like_data(baseline_verdicts):
    assert baseline_verdicts == {i: C.HOLDS for i in range(1, 9)}


def everywhere(**kw):
    return {a: kw for a in AXES}


def test_claim_1_enhancement_flips(baseline_verdicts):
    assert verdicts(sweeps(**everywhere(gain=-0.1)))[1] == C.DOES_NOT_HOLD
    # two of the four sweeps below the baseline: half the points -> PARTLY
    v = verdicts(sweeps(omega_c=dict(gain=-0.1), g=dict(gain=-0.1)))
    assert v[1] == C.PARTLY


def test_claim_2_catalyst_energy_flips():
    v = verdicts(sweeps(**everywhere(ecat_wobble=0.3)))
    assert v[2] == C.DOES_NOT_HOLD
    # a looser threshold accepts the same wobble: the verdict comes from the threshold
    loose = {**TH, "catalyst_max_rel_variation": 1.5}
    assert verdicts(sweeps(**everywhere(ecat_wobble=0.3)), thresholds=loose)[2] == C.HOLDS
    # an initial transient before catalyst_t_start does not count
    assert verdicts(sweeps(), thresholds={**TH, "catalyst_t_start": 0.0})[2] == C.DOES_NOT_HOLD


def test_claim_3_early_backflow_flips():
    late_peak = verdicts(sweeps(**everywhere(peak_time=3.0)))
    assert late_peak[3] == C.DOES_NOT_HOLD
    assert verdicts(sweeps(**everywhere(peak_time=3.0)), thresholds={**TH, "peak_time_tolerance": 2.5})[3] == C.HOLDS
    claims = C.evaluate_claims(sweeps(**everywhere(peak_time=3.0)), thresholds=TH)
    assert claims[2].numbers["time of the most negative early J, median"] == "3"


def test_claim_3_needs_negative_current():
    sw = {a: paper_like(a, v) for a, v in AXES.items()}
    for ds in sw.values():  # mirror J: positive transient, no backflow at all
        ds["heat_current"].loc[dict(case="catalyzed")] = np.abs(ds["heat_current"].sel(case="catalyzed"))
    v = verdicts(sw)
    assert v[3] == C.DOES_NOT_HOLD and v[4] == C.DOES_NOT_HOLD


def test_claim_4_late_current_flips():
    assert verdicts(sweeps(**everywhere(late_J=+0.01)))[4] == C.DOES_NOT_HOLD  # wrong sign
    assert verdicts(sweeps(**everywhere(late_J=-2.0)))[4] == C.DOES_NOT_HOLD  # not small
    assert verdicts(sweeps(omega_c=dict(late_J=+0.01)), thresholds={**TH, "fraction_holds": 1.0})[4] == C.PARTLY


def test_claim_5_robustness_flips():
    assert verdicts(sweeps(kappa_1=dict(enhancement_at_top=-0.01), gamma_D=dict(enhancement_at_top=-0.01)))[5] \
        == C.DOES_NOT_HOLD
    assert verdicts(sweeps(kappa_1=dict(enhancement_at_top=-0.01)))[5] == C.PARTLY
    sw = sweeps()
    del sw["gamma_D"]
    assert verdicts(sw)[5] == C.PARTLY  # only kappa_1 checked
    del sw["kappa_1"]
    assert verdicts(sw)[5] == C.NOT_CHECKED


def test_claim_6_cutoff(baseline_verdicts):
    sw = sweeps()
    assert verdicts(sw, convergence={4: 0.3, 8: 0.02, 12: 0.0})[6] == C.DOES_NOT_HOLD
    assert verdicts(sw, convergence={4: 0.3}, thresholds={**TH, "cutoff_max_deviation": 0.5})[6] == C.HOLDS
    assert verdicts(sw, convergence=None)[6] == C.NOT_CHECKED
    assert verdicts(sw, convergence={"n_fock": [6, 8], "max_deviation": [0.1, 0.0]})[6] == C.NOT_CHECKED
    text = C.claims_report(sw, thresholds=TH)
    assert "not checked in this run" in text
    claim = C.evaluate_claims(sw, thresholds=TH, convergence=[{"n_fock": 4, "max_deviation": 0.3},
                                                              {"n_fock": 8, "max_deviation": 1e-4}])[5]
    assert claim.verdict == C.DOES_NOT_HOLD and claim.numbers["smallest n_fock within the tolerance"] == 8


def test_claim_6_reads_the_convergence_modules_table():
    """The tidy table of qbcat.science.convergence: rows per (check, setting, observable)."""
    import pandas as pd

    rows = []
    for n, dev in ((4, {"ergotropy": 0.09, "heat_current": 0.02, "energy_cat": 0.24}),
                   (12, {"ergotropy": 2e-6, "heat_current": 1e-6, "energy_cat": 1.2e-5})):
        rows += [{"check": "cutoff", "setting": f"n_fock={n}", "observable": o, "max_deviation": d, "n_fock": n}
                 for o, d in dev.items()]
    rows.append({"check": "tolerance", "setting": "rtol=1e-5", "observable": "ergotropy", "max_deviation": 0.5,
                 "n_fock": np.nan})
    conv = C.normalise_convergence(pd.DataFrame(rows))
    assert list(conv["n_fock"]) == [4, 12]
    assert list(conv["max_deviation"]) == [0.24, 1.2e-5]  # worst observable per cutoff; tolerance row ignored
    assert conv.loc[0, "max_deviation[ergotropy]"] == 0.09
    claim = C.evaluate_claims(sweeps(), thresholds=TH, convergence=pd.DataFrame(rows))[5]
    assert claim.verdict == C.DOES_NOT_HOLD
    assert claim.numbers["smallest n_fock within the tolerance"] == 12


def test_claim_7_link_flips():
    assert verdicts(sweeps(**everywhere(link=-1)))[7] == C.DOES_NOT_HOLD


def test_claim_8_channel_flips_and_reports_both_readings():
    assert verdicts(sweeps(**everywhere(carrier="dephasing")))[8] == C.DOES_NOT_HOLD
    # half of the sweeps' backflow through dephasing: 6 of 12 points -> PARTLY
    v = verdicts(sweeps(omega_c=dict(carrier="dephasing"), g=dict(carrier="dephasing")))
    assert v[8] == C.PARTLY
    claim = C.evaluate_claims(sweeps(), thresholds=TH)[7]
    assert claim.number == 8 and claim.verdict == C.HOLDS
    assert claim.numbers["points whose early backflow is carried by the catalyst"].startswith("12 of 12")
    assert any(n.startswith("cause reading") for n in claim.notes)
    assert claim.numbers["correlation reading: verdict by claim 7's rule"] == C.HOLDS  # more backflow, more gain
    anti = C.evaluate_claims(sweeps(**everywhere(link=-1)), thresholds=TH)[7]
    assert anti.verdict == C.HOLDS  # the mechanism holds ...
    assert anti.numbers["correlation reading: verdict by claim 7's rule"] == C.DOES_NOT_HOLD  # ... the correlation not
    # a stricter time fraction than the data give flips it
    strict = verdicts(sweeps(), thresholds={**TH, "channel_min_time_fraction": 1.0})
    assert strict[8] == C.HOLDS  # the catalyst channel is the more negative one all the time here
    old = {a: paper_like(a, v, channels=False) for a, v in AXES.items()}
    assert verdicts(old)[8] == C.NOT_CHECKED


def test_decoupled_and_missing_points_are_left_out_with_a_note():
    sw = sweeps()
    g = paper_like("g", [0.0, 0.1, 0.2, 0.3])
    g["ergotropy"].loc[dict(g=0.0, case="catalyzed")] = g["ergotropy"].sel(g=0.0, case="baseline")  # no catalysis
    g["ergotropy"].loc[dict(g=0.3, case="catalyzed")] = np.nan  # a gap
    sw["g"] = g
    claims = C.evaluate_claims(sw, thresholds=TH)
    assert claims[0].verdict == C.HOLDS  # the g = 0 point is not counted as a failure of catalysis
    assert claims[0].numbers["catalyzed points"] == 11
    assert any("g = 0" in n for n in claims[0].notes) and any("missing" in n for n in claims[0].notes)


def test_report_lists_every_claim_with_its_numbers(tmp_path):
    sw = sweeps(omega_c=dict(gain=-0.1))
    claims = C.evaluate_claims(sw, thresholds=TH, convergence={4: 0.3, 12: 0.0})
    text = C.render_markdown(claims, sw, TH)
    for c in claims:
        assert f"## ({c.number}) {c.title}: **{c.verdict}**" in text
        assert f"| {c.number} | {c.title} | **{c.verdict}** |" in text
    assert "DOES NOT HOLD" in text and "enhanced points: 9 of 12" in text
    for key in C.DEFAULT_THRESHOLDS:
        assert f"`{key}`" in text
    table_lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    # no unescaped '|' inside a cell: every row of a table has as many cells as its header
    assert all(ln.replace("\\|", "").count("|") >= 3 for ln in table_lines)
    path = C.write_report(text, tmp_path / "claims.md")
    assert path.read_text() == text


def test_bad_thresholds_and_convergence_are_refused():
    with pytest.raises(ValueError, match="'peak_tme': unknown"):
        C.check_thresholds({"peak_tme": 1.0})
    with pytest.raises(ValueError, match="fraction_holds=1.5"):
        C.check_thresholds({"fraction_holds": 1.5})
    with pytest.raises(ValueError, match="fraction_partly=0.9 must not exceed"):
        C.check_thresholds({"fraction_holds": 0.8, "fraction_partly": 0.9})
    with pytest.raises(ValueError, match="enhancement_metric='mean'"):
        C.check_thresholds({"enhancement_metric": "mean"})
    with pytest.raises(ValueError, match="peak_time='one'"):
        C.check_thresholds({"peak_time": "one"})
    with pytest.raises(ValueError, match="'max_deviation' missing"):
        C.normalise_convergence([{"n_fock": 4, "error": 0.1}])


class _Named(SimpleNamespace):
    def get(self, key, default=None):
        return getattr(self, key, default)


def test_claims_script_under_snakemake(tmp_path):
    files = []
    for name, ds in sweeps().items():
        files.append(str(tmp_path / f"{name}.nc"))
        ds.to_netcdf(files[-1])
    conv = tmp_path / "conv.csv"
    conv.write_text("n_fock,max_deviation\n4,0.4\n8,0.01\n12,0\n")
    fake = SimpleNamespace(input=_Named(sweeps=files, convergence=str(conv)),
                           output=_Named(report=str(tmp_path / "claims.md")),
                           params=_Named(thresholds=TH, t_start=None))
    runpy.run_path(str(SCRIPTS / "claims_report.py"), init_globals={"snakemake": fake})
    text = (tmp_path / "claims.md").read_text()
    assert "| 6 | Photon cutoff n_photon = 3 is enough | **DOES NOT HOLD** |" in text
    assert "| 1 | Catalyzed ergotropy above the uncatalyzed baseline | **HOLDS** |" in text
    # a bad threshold is a one-line error naming it, before any work
    fake = SimpleNamespace(input=_Named(sweeps=files), output=_Named(report=str(tmp_path / "x.md")),
                           params=_Named(thresholds={"nonsense": 1}))
    with pytest.raises(ValueError, match="'nonsense': unknown"):
        runpy.run_path(str(SCRIPTS / "claims_report.py"), init_globals={"snakemake": fake})
    assert not (tmp_path / "x.md").exists()
