"""The science products and sharing wired into the workflow, end to end on a tiny study.

One cold run (in a temporary copy of the workflow, never in the repository) is shared by the
module: four 1-D sweeps of two values for Fig. 2/3, a 2 x 2 map (enhancement map, steady map),
convergence checks at the base point and the corners of one sweep with a threshold that the
tiny photon cutoff fails (fail_on_error false: the failure must be shown, not fatal), the
claims report, the manifest. Tests that change the config work on a private copy of it.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from qbcat.science import claims
from qbcat.science import convergence
from qbcat.engine.params import point_id, validate
from qbcat.engine.solve import simulate
from qbcat.workflow.configuration import load_config

from conftest import (
    NOTHING_TO_DO,
    REPO,
    job_counts,
    make_workspace,
    read_config,
    simulation_jobs,
    snakemake,
    write_config,
)

PAPER = ["omega_c_scan", "g_scan", "kappa_1_scan", "gamma_D_scan"]
BASE = {"n_fock": 4, "t_max": 20.0, "n_t": 201}
TINY = {
    "base": BASE,
    "sweeps": {
        "omega_c_scan": {"axes": {"omega_c": {"values": [0.8, 1.2]}}},
        "g_scan": {"axes": {"g": {"values": [0.1, 0.3]}}},
        "kappa_1_scan": {"axes": {"kappa_1": {"values": [0.02, 0.1]}}},
        "gamma_D_scan": {"axes": {"gamma_D": {"values": [0.02, 0.1]}}},
        "g_omega_c_map": {"axes": {"g": {"values": [0.1, 0.3]}, "omega_c": {"values": [0.8, 1.2]}}},
    },
    "batch_size": 50,
    "build_products": True,
    "figures": {"paper_sweeps": PAPER},
    "convergence": {
        "corner_sweeps": ["g_scan"],
        "checks_at_base": ["cutoff", "tolerance", "sampling"],
        "checks_at_corners": ["cutoff"],
        "reference_gap": 2,
        "n_fock_offsets": [-1],
        "n_fock_extra": [],
        # n_fock 4 against 6 at t_max 20 deviates by ~1e-2: the cutoff check FAILS, the solver
        # and sampling checks pass
        "thresholds": {"ergotropy": 1.0e-3, "heat_current": 1.0e-3, "energy_cat": 1.0e-3},
        "tolerances": [[1.0e-6, 1.0e-8], [1.0e-7, 1.0e-9]],
        "methods": ["adams", "bdf"],
        "fail_on_error": False,
    },
    "steady": {"maps": {"g_omega_c": {"sweep": "g_omega_c_map", "axes": {"g": [0.3]}}}, "late_periods": 2},
    "claims": {"thresholds": {"catalyst_t_start": 5.0}},
}
CONVERGENCE_POINTS = 3  # the base point and the two ends of g_scan

FIGURES = ["fig2", "fig3", "fig3_channels", "enhancement_g_omega_c_map", "backflow_scatter", "convergence",
           "steady_g_omega_c", "cutoff_certificates"]
FIGURE_RULES = {"paper_figures", "enhancement_figure", "backflow_figure", "convergence_figure", "steady_figure",
                "cutoff_figure",
                "convergence_point_figure"}
ANALYSIS = ["enhancement_g_omega_c_map.nc", "backflow_points.csv", "backflow_correlations.csv", "convergence.csv",
            "convergence_details.csv", "steady_g_omega_c.nc", "steady_vs_trajectory_g_omega_c.csv"]
CLAIM_NUMBERS = range(1, 9)
VERDICTS = (claims.HOLDS, claims.PARTLY, claims.DOES_NOT_HOLD, claims.NOT_CHECKED)


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """The tiny study with every product, run once from scratch: (workspace, snakemake output)."""
    ws = make_workspace(tmp_path_factory.mktemp("products"), TINY)
    return ws, snakemake(ws).stdout


@pytest.fixture
def warm(cold, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(cold[0], ws, symlinks=True)
    return ws


def results(ws):
    return ws / "results"


def qbcat_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "qbcat.cli", *args], cwd=cwd, capture_output=True, text=True)


# ------------------------------------------------------------------------------------------
# What the cold run made


@pytest.mark.slow
def test_every_product_exists_and_is_not_empty(cold):
    ws, out = cold
    counts = job_counts(out)
    assert counts["convergence_point"] == CONVERGENCE_POINTS and counts["enhancement"] == 1
    for name in FIGURES:
        for ext in ("pdf", "png"):
            assert (results(ws) / "figures" / f"{name}.{ext}").stat().st_size > 1000, name
    for name in ANALYSIS:
        assert (results(ws) / "analysis" / name).stat().st_size > 100, name
    for name in ("claims.md", "manifest.json", "config/config.yaml", "convergence/verdict.txt"):
        assert (results(ws) / name).stat().st_size > 0, name
    assert len(list((results(ws) / "convergence").glob("*.png"))) == CONVERGENCE_POINTS
    assert not (results(ws) / "qbcat-results.tar.gz").exists()  # export is not part of `all`


@pytest.mark.slow
def test_figures_have_one_page_and_the_configured_resolution(cold):
    from PIL import Image

    ws = cold[0]
    for name in FIGURES:
        pdf = (results(ws) / "figures" / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1, name
    # dpi 150 (plots.dpi): Fig. 2 is 2 x 2 panels of 3.6 x 2.8 inches
    with Image.open(results(ws) / "figures" / "fig2.png") as png:
        assert png.size == (round(2 * 3.6 * 150), round(2 * 2.8 * 150))
    # the convergence and steady figures too (qbcat.figures.checks: 7.2 x 6.4 and 3 x 3.6 x 3.0 inches:
    # catalyzed, difference from the baseline, relaxation time)
    for path, inches in [(next((results(ws) / "convergence").glob("*.png")), (7.2, 6.4)),
                         (results(ws) / "figures" / "steady_g_omega_c.png", (10.8, 3.0))]:
        with Image.open(path) as png:
            assert png.size == (round(inches[0] * 150), round(inches[1] * 150)), path


@pytest.mark.slow
def test_the_enhancement_dataset_matches_the_sweep(cold):
    ws = cold[0]
    with xr.open_dataset(results(ws) / "sweeps" / "g_omega_c_map.nc") as sweep, \
            xr.open_dataset(results(ws) / "analysis" / "enhancement_g_omega_c_map.nc") as enh:
        erg = sweep["ergotropy"]
        late = erg.where(erg.time >= 20.0 - 2.0, drop=True)  # default late window: the last 10 %
        mean = late.integrate("time") / (late.time[-1] - late.time[0])
        expected = mean.sel(case="catalyzed") - mean.sel(case="baseline")
        np.testing.assert_allclose(enh["late_difference"].transpose(*expected.dims).values, expected.values,
                                   rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_the_convergence_table_shows_the_failing_cutoff_check(cold):
    ws = cold[0]
    table = pd.read_csv(results(ws) / "analysis" / "convergence.csv", dtype={"point_id": str})
    details = pd.read_csv(results(ws) / "analysis" / "convergence_details.csv", dtype={"point_id": str})
    base = validate({**BASE, "catalyst": True})
    corners = [validate({**BASE, "g": g, "catalyst": True}) for g in (0.1, 0.3)]
    assert set(table["point_id"]) == {point_id(p) for p in [base, *corners]}
    assert set(table.loc[table["label"] == "base", "check"]) == {"cutoff", "tolerance", "sampling"}
    assert set(table.loc[table["label"] != "base", "check"]) == {"cutoff"}
    # a verdict is FAIL exactly when a required row of that point and check exceeds its threshold
    required = details[details["required"]]
    over = required.assign(bad=required["max_deviation"] > required["threshold"])
    bad = over.groupby(["point_id", "check"])["bad"].any()
    for row in table.itertuples():
        assert (row.verdict == "FAIL") == bool(bad[(row.point_id, row.check)])
    assert {"PASS", "FAIL"} <= set(table["verdict"])
    assert table["verdict"].iloc[0] == "FAIL"  # failures first
    cutoff = table[table["check"] == "cutoff"]
    assert (cutoff["verdict"] == "FAIL").all()  # n_fock 4 is far from converged (docs/conventions.md)
    # the reference (n_fock 6) run by the workflow agrees with an independent simulation
    row = details[(details["point_id"] == point_id(base)) & (details["check"] == "cutoff")
                  & (details["observable"] == "energy_cat") & (details["n_fock"] == 4)]
    a, b = simulate({**base, "n_fock": 4}), simulate({**base, "n_fock": 6})
    assert row["max_deviation"].item() == pytest.approx(np.max(np.abs(a.data["energy_cat"] - b.data["energy_cat"])),
                                                       rel=1e-4)
    verdict = (results(ws) / "convergence" / "verdict.txt").read_text()
    assert verdict.startswith("FAIL:") and "fail_on_error is false" in verdict


@pytest.mark.slow
def test_the_claims_report_has_every_claim_and_shows_the_failure_loudly(cold):
    text = (results(cold[0]) / "claims.md").read_text()
    for n in CLAIM_NUMBERS:
        match = re.search(rf"^## \({n}\) .*: \*\*(.+?)\*\*$", text, re.M)
        assert match and match.group(1) in VERDICTS, n
    # the convergence verdict comes before the claims, as a warning
    assert text.index("Numerical convergence of this run: **FAIL**") < text.index("## Summary")
    assert "WARNING" in text and "| **FAIL** | base | cutoff |" in text
    # claim 6 judges the paper's n_fock = 4 by its worst checked point, with only the cutoffs checked
    # at every point in its table (3 and 4; the references, 6, are not)
    details = pd.read_csv(results(cold[0]) / "analysis" / "convergence_details.csv")
    worst = details.loc[(details["check"] == "cutoff") & (details["n_fock"] == 4), "max_deviation"].max()
    six = text[text.index("## (6)"):text.index("## (7)")]
    assert six.startswith("## (6) Photon cutoff n_photon = 3 is enough: **DOES NOT HOLD**")
    assert f"max deviation at n_fock = 4: {claims.fmt(worst)}" in six
    assert re.findall(r"^\| (\d+) \|", six, re.M) == ["3", "4"]


@pytest.mark.slow
def test_the_steady_map_is_compared_with_the_trajectories(cold):
    ws = cold[0]
    comparison = pd.read_csv(results(ws) / "analysis" / "steady_vs_trajectory_g_omega_c.csv")
    # the configured subset g = 0.3 of the 2 x 2 map: 2 cells; catalyzed 4 observables, baseline 3
    assert len(comparison) == 2 * (4 + 3) and set(comparison["g"]) == {0.3}
    assert (comparison["late_periods"] == 2).all()
    row = comparison[(comparison["g"] == 0.3) & (comparison["omega_c"] == 1.2) & (comparison["case"] == "catalyzed")
                     & (comparison["observable"] == "ergotropy")].iloc[0]
    with xr.open_dataset(results(ws) / "sweeps" / "g_omega_c_map.nc") as sweep:
        traj = sweep["ergotropy"].sel(g=0.3, omega_c=1.2, case="catalyzed")
        t0 = 20.0 - 2 * 2 * math.pi  # the last two drive periods (omega_d = 1)
        t, y = traj.time.values, traj.values
        keep = t > t0
        tw, yw = np.r_[t0, t[keep]], np.r_[np.interp(t0, t, y), y[keep]]
        assert row["trajectory_late_mean"] == pytest.approx(np.trapezoid(yw, tw) / (t[-1] - t0), rel=1e-8)
    with xr.open_dataset(results(ws) / "analysis" / "steady_g_omega_c.nc") as steady:
        assert steady["g"].values.tolist() == [0.3] and steady["omega_c"].values.tolist() == [0.8, 1.2]
        assert row["steady_period_mean"] == pytest.approx(
            float(steady["ergotropy"].sel(g=0.3, omega_c=1.2, case="catalyzed")), rel=1e-9)
        assert steady.attrs["Conventions"].startswith("CF-")


@pytest.mark.slow
def test_the_manifest_lists_every_product_and_verify_passes(cold):
    ws = cold[0]
    manifest = yaml.safe_load((results(ws) / "manifest.json").read_text())
    rules = {entry["path"]: entry["rule"] for entry in manifest["files"]}
    assert rules["figures/fig2.pdf"] == "paper_figures" and rules["claims.md"] == "claims"
    assert rules["analysis/convergence.csv"] == "convergence_summary"
    assert rules["sweeps/g_scan.nc"] == "aggregate_sweep" and rules["config/config.yaml"] == "study_config"
    for name in FIGURES:
        assert rules[f"figures/{name}.png"], name
    for name in ANALYSIS:
        assert rules[f"analysis/{name}"], name
    proc = qbcat_cli("verify", "results", cwd=ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK:")


# ------------------------------------------------------------------------------------------
# Incremental behaviour and failure


@pytest.mark.slow
def test_a_rerun_with_nothing_changed_runs_nothing(cold):
    out = snakemake(cold[0], "-n").stdout
    assert NOTHING_TO_DO in out


@pytest.mark.slow
def test_a_plot_option_redraws_the_figures_only(warm):
    config = read_config(warm)
    config.setdefault("plots", {})["dpi"] = 100
    write_config(warm, config)
    counts = job_counts(snakemake(warm, "-n").stdout)
    # the figures, and the bookkeeping of the run: the config record, the manifest, `all`
    assert set(counts) == FIGURE_RULES | {"study_config", "manifest", "all"}
    assert simulation_jobs(counts) == 0


@pytest.mark.slow
def test_fail_on_error_fails_the_run_but_keeps_the_table_then_loose_thresholds_pass(warm):
    config = read_config(warm)
    config["convergence"]["fail_on_error"] = True
    write_config(warm, config)
    proc = snakemake(warm, check=False)
    assert proc.returncode != 0
    assert "convergence check FAILED" in proc.stdout and "FAIL base [cutoff]" in proc.stdout
    counts = job_counts(proc.stdout)
    assert set(counts) - {"study_config"} == {"convergence_gate", "manifest", "all"}  # nothing else reruns
    assert (results(warm) / "analysis" / "convergence.csv").exists()
    assert not (results(warm) / "convergence" / "verdict.txt").exists()
    # loose thresholds: every check passes, the run succeeds, the report says so
    config["convergence"]["thresholds"] = {"ergotropy": 0.5, "heat_current": 0.5, "energy_cat": 0.5}
    # n_fock 4 also fails the points' cutoff certificates (a warning in the claims); with a fixed
    # n_fock their thresholds only flag: loosening them re-flags the sweeps and reruns no point
    config["base"].update(cutoff_tolerance=0.5, cutoff_top_tolerance=0.5)
    write_config(warm, config)
    out = snakemake(warm).stdout
    assert simulation_jobs(job_counts(out)) == 0 and job_counts(out)["convergence_point"] == CONVERGENCE_POINTS
    assert job_counts(out)["aggregate_sweep"] == len(TINY["sweeps"])
    table = pd.read_csv(results(warm) / "analysis" / "convergence.csv")
    assert (table["verdict"] == "PASS").all()
    text = (results(warm) / "claims.md").read_text()
    assert "Numerical convergence of this run: **PASS**" in text and "WARNING" not in text
    assert (results(warm) / "convergence" / "verdict.txt").read_text().startswith("PASS")


@pytest.mark.slow
def test_a_bad_product_config_stops_snakemake_with_one_line(tmp_path):
    ws = make_workspace(tmp_path / "bad", {**TINY, "figures": {"paper_sweeps": ["g_scan", "g_sacn"]}})
    proc = snakemake(ws, "-n", check=False)
    assert proc.returncode != 0
    assert "qbcat: bad config: figures.paper_sweeps[1]: no sweep named 'g_sacn'" in proc.stdout
    assert "Traceback" not in proc.stdout
    write_config(ws, {**TINY, "convergence": {**TINY["convergence"], "methods": ["adams", "rk4"]}})
    proc = snakemake(ws, "-n", check=False)
    assert proc.returncode != 0 and "convergence.methods[1]" in proc.stdout and "rk4" in proc.stdout
    # a bad claims threshold (which the schema lets through) stops the run before any job too
    write_config(ws, {**TINY, "claims": {"thresholds": {"enhancement_metric": "mean_diference"}}})
    proc = snakemake(ws, "-n", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout
    assert "qbcat: bad config: claims.thresholds.enhancement_metric:" in proc.stdout


# ------------------------------------------------------------------------------------------
# Report and export


@pytest.mark.slow
def test_the_snakemake_report_holds_every_figure_and_caption(warm):
    snakemake(warm, "--report", "report.zip")
    with zipfile.ZipFile(warm / "report.zip") as z:
        names = "\n".join(z.namelist())
        assert "report.html" in names
        for name in FIGURES:
            assert f"{name}.png" in names, name
        html = z.read(next(n for n in z.namelist() if n.endswith("report.html"))).decode()
    assert "heat current J(t) into the qubit battery" in html  # Fig. 3's caption
    assert "Convergence checks of this run" in html
    snakemake(warm, "--report", "report.html")
    html = (warm / "report.html").read_text()
    assert "fig2.png" in html and "claims.md" in html


@pytest.mark.slow
def test_export_bundles_a_verifiable_archive(warm):
    out = snakemake(warm, "export").stdout
    assert job_counts(out) == {"export": 1}
    archive = results(warm) / "qbcat-results.tar.gz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(warm / "unpacked", filter="data")
    assert "qbcat-results/config/config.yaml" in names and "qbcat-results/claims.md" in names
    assert not any("/points/" in n for n in names)
    proc = qbcat_cli("verify", str(warm / "unpacked" / "qbcat-results"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the archived config (schema defaults filled in) describes the same study, point for point
    archived = yaml.safe_load((warm / "unpacked" / "qbcat-results" / "config" / "config.yaml").read_text())
    schema = REPO / "config" / "schema.yaml"
    assert load_config(archived, schema).points == load_config(read_config(warm), schema).points
    assert archived["convergence"] == {**archived["convergence"], **TINY["convergence"]}


# ------------------------------------------------------------------------------------------
# Config and CLI, without Snakemake


def test_the_schema_defaults_are_those_of_the_libraries():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())["properties"]
    th = schema["claims"]["properties"]["thresholds"]["properties"]
    defaults = {k: v["default"] for k, v in th.items()}
    assert defaults == {k: list(v) if isinstance(v, tuple) else v for k, v in claims.DEFAULT_THRESHOLDS.items()}
    conv = schema["convergence"]["properties"]
    assert {k: v["default"] for k, v in conv["thresholds"]["properties"].items()} == \
        convergence.DEFAULT_OPTIONS["thresholds"]
    # the repository's study builds the products and names existing 1-D sweeps for the paper figures
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config["build_products"] is True
    assert all(len(config["sweeps"][s]["axes"]) == 1 for s in config["figures"]["paper_sweeps"])


def test_qbcat_cutoff_prints_the_smallest_passing_cutoff():
    point = {"t_max": 30.0, "n_t": 301}
    limits = [f"--threshold={o}=0.01" for o in ("ergotropy", "heat_current", "energy_cat")]
    proc = qbcat_cli("cutoff", *[f"--set={k}={v}" for k, v in point.items()], *limits, "--candidates", "3-8",
                     "--reference", "12", "--confirm", "0")
    assert proc.returncode == 0, proc.stderr
    n = int(proc.stdout.strip())
    # independently: n passes against the reference, n - 1 does not
    p = validate({**point, "catalyst": True})
    ref = simulate({**p, "n_fock": 12})

    def worst(k):
        traj = simulate({**p, "n_fock": k})
        return max(np.max(np.abs(traj.data[o] - ref.data[o])) for o in ("ergotropy", "heat_current", "energy_cat"))

    assert 3 < n <= 8 and worst(n) <= 0.01 < worst(n - 1)
    bad = qbcat_cli("cutoff", "--set", "g=-1")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("qbcat: error: g:")
