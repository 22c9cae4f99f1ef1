"""qbcat.science.analysis: enhancement, backflow statistics and correlations against analytic values."""

from __future__ import annotations

import math
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from qbcat.science import analysis as A

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def linear_sweep(n_t=2001, t_max=10.0):
    """2-D sweep: E_cat = a + b t per point, E_base = c (constant), J = -a cos(t)."""
    t = np.linspace(0.0, t_max, n_t)
    a = np.array([0.1, 0.2, 0.3])
    b = np.array([0.01, 0.02])
    E_cat = a[:, None, None] + b[None, :, None] * t
    J = -a[:, None, None] * np.cos(t) * np.ones((1, 2, 1))
    ds = A.build_sweep({"g": a, "kappa_1": b}, t,
                       {"ergotropy": E_cat, "heat_current": J, "energy_cat": np.ones_like(E_cat)},
                       {"ergotropy": np.full(n_t, 0.25), "heat_current": np.zeros(n_t)}, name="g_kappa")
    return ds, t, a, b


# ----------------------------------------------------------------------------------------------
# Enhancement


def test_enhancement_matches_analytic_integrals():
    ds, t, a, b = linear_sweep()
    enh = A.ergotropy_enhancement(ds, t_start=2.0, t_end=6.0, late_duration=1.0)
    # time average of a + b t over [2, 6] is a + 4 b; peak is a + 10 b; late mean is a + 9.5 b
    mean = a[:, None] + 4.0 * b[None, :]
    peak = a[:, None] + 10.0 * b[None, :]
    late = a[:, None] + 9.5 * b[None, :]
    for name, exact in (("mean", mean), ("peak", peak), ("late", late)):
        assert enh[f"{name}_catalyzed"].dims == ("g", "kappa_1")
        np.testing.assert_allclose(enh[f"{name}_difference"], exact - 0.25, atol=1e-12)
        np.testing.assert_allclose(enh[f"{name}_ratio"], exact / 0.25, rtol=1e-12)
        np.testing.assert_allclose(enh[f"{name}_baseline"], 0.25, rtol=1e-12)
    assert enh.attrs["window_start"] == 2.0 and enh.attrs["window_end"] == 6.0
    assert enh.attrs["late_start"] == pytest.approx(9.0) and enh.attrs["late_end"] == 10.0


def test_enhancement_default_windows_are_whole_run_and_last_tenth():
    ds, t, a, b = linear_sweep()
    enh = A.ergotropy_enhancement(ds)
    np.testing.assert_allclose(enh["mean_catalyzed"], a[:, None] + 5.0 * b[None, :], atol=1e-12)
    np.testing.assert_allclose(enh["late_catalyzed"], a[:, None] + 9.5 * b[None, :], atol=1e-12)


def test_every_output_variable_has_units_and_long_name():
    ds, *_ = linear_sweep(n_t=201)
    for out in (A.ergotropy_enhancement(ds), A.backflow_statistics(ds)):
        for name in out.data_vars:
            assert out[name].attrs.get("units") is not None, name
            assert out[name].attrs.get("long_name"), name


def test_ratio_is_nan_with_a_note_where_the_baseline_vanishes():
    t = np.linspace(0, 1, 11)
    cat = np.array([np.full(11, 0.5), np.full(11, 0.5)])
    base = np.array([np.zeros(11), np.full(11, 0.25)])  # first point: baseline exactly 0
    ds = A.build_sweep({"gamma_D": [0.0, 0.1]}, t, {"ergotropy": cat}, {"ergotropy": base})
    with np.errstate(all="raise"):  # no silent division by zero
        enh = A.ergotropy_enhancement(ds)
    ratio = enh["mean_ratio"].values
    assert np.isnan(ratio[0]) and ratio[1] == pytest.approx(2.0)
    assert not np.isinf(enh[[v for v in enh.data_vars if v.endswith("ratio")]].to_array()).any()
    assert "1 of 2" in enh["mean_ratio"].attrs["note"]
    np.testing.assert_allclose(enh["mean_difference"], [0.5, 0.25])


# ----------------------------------------------------------------------------------------------
# Backflow


def cosine_sweep(amplitudes=(1.0, 2.0), n_t=4001):
    t = np.linspace(0.0, 2 * np.pi, n_t)
    amp = np.asarray(amplitudes)
    J = amp[:, None] * np.cos(t)
    ds = A.build_sweep({"g": amp}, t, {"ergotropy": np.ones_like(J), "heat_current": J},
                       {"ergotropy": np.ones(n_t), "heat_current": np.abs(np.sin(t)) + 0.1})
    return ds, t, amp


def test_backflow_statistics_of_a_cosine():
    ds, t, amp = cosine_sweep()
    d = 0.5
    bf = A.backflow_statistics(ds, late_duration=d).sel(case="catalyzed")
    dt = t[1] - t[0]
    np.testing.assert_allclose(bf["min_heat_current"], -amp, rtol=1e-6)
    np.testing.assert_allclose(bf["time_of_min_heat_current"], np.pi, atol=dt)
    np.testing.assert_allclose(bf["first_backflow_time"], np.pi / 2, atol=dt)
    np.testing.assert_allclose(bf["backflow_fraction"], 0.5, atol=2 * dt / (2 * np.pi))
    # int_0^{2 pi} min(A cos t, 0) dt = -2 A
    np.testing.assert_allclose(bf["integrated_backflow"], -2 * amp, rtol=1e-5)
    # mean of A cos t over [t0, 2 pi] = A (sin 2 pi - sin t0) / (2 pi - t0); t0 = first sample >= 2 pi - d
    t0 = bf.attrs["late_start"]
    assert 0 <= t0 - (2 * np.pi - d) < dt
    np.testing.assert_allclose(bf["late_mean_heat_current"], -amp * np.sin(t0) / (2 * np.pi - t0), rtol=1e-6)
    assert bf["min_heat_current"].dims == ("g",)


def test_backflow_without_negative_current_and_with_roundoff():
    ds, t, amp = cosine_sweep()
    base = A.backflow_statistics(ds).sel(case="baseline")  # J = |sin t| + 0.1 > 0
    assert np.all(np.isnan(base["first_backflow_time"]))
    np.testing.assert_array_equal(base["backflow_fraction"], 0.0)
    np.testing.assert_array_equal(base["integrated_backflow"], 0.0)
    # J = -1e-14 everywhere is solver round-off, not backflow, under the default tolerance
    n = t.size
    noisy = A.build_sweep({"g": [0.1]}, t, {"ergotropy": np.ones((1, n)), "heat_current": np.full((1, n), -1e-14)},
                          {"ergotropy": np.ones(n), "heat_current": np.zeros(n)})
    bf = A.backflow_statistics(noisy).sel(case="catalyzed")
    assert np.isnan(bf["first_backflow_time"].item()) and bf["backflow_fraction"].item() == 0.0
    assert A.backflow_statistics(noisy, tolerance=0.0).sel(case="catalyzed")["backflow_fraction"].item() == 1.0


def test_backflow_window_restricts_the_statistics():
    ds, t, amp = cosine_sweep()
    bf = A.backflow_statistics(ds, t_start=0.0, t_end=2.0).sel(case="catalyzed")
    dt = t[1] - t[0]
    np.testing.assert_allclose(bf["min_heat_current"], amp * np.cos(2.0), atol=amp.max() * dt)
    np.testing.assert_allclose(bf["time_of_min_heat_current"], 2.0, atol=dt)
    hi = bf.attrs["window_end"]  # the last output time <= 2
    assert 0 <= 2.0 - hi < dt
    np.testing.assert_allclose(bf["integrated_backflow"], amp * (np.sin(hi) - 1.0), rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Bad input


def test_bad_input_is_refused_with_a_message_naming_it():
    ds, *_ = linear_sweep(n_t=101)
    with pytest.raises(A.SweepFormatError, match="'case'"):
        A.ergotropy_enhancement(ds.isel(case=0, drop=True))
    with pytest.raises(A.SweepFormatError, match="heat_current"):
        A.backflow_statistics(ds.drop_vars("heat_current"))
    with pytest.raises(ValueError, match="t_start=8.0 must be smaller than t_end=3.0"):
        A.ergotropy_enhancement(ds, t_start=8.0, t_end=3.0)
    with pytest.raises(ValueError, match="need >= 2"):
        A.ergotropy_enhancement(ds, t_start=20.0, t_end=30.0)
    with pytest.raises(ValueError, match="late_duration=50"):
        A.backflow_statistics(ds, late_duration=50.0)
    bad = ds.copy()
    bad.attrs["sweep_axes"] = "g omega_c"
    with pytest.raises(A.SweepFormatError, match="omega_c"):
        A.ergotropy_enhancement(bad)


# ----------------------------------------------------------------------------------------------
# Correlations and tables


def test_correlate_against_numpy_and_exact_small_sample_p_values():
    x = np.linspace(-3, -1, 12)
    y = np.exp(-x)  # monotone decreasing, not linear
    c = A.correlate(x, y)
    assert c["n"] == 12 and c["p_method"] == "asymptotic"
    assert c["spearman_r"] == pytest.approx(-1.0)
    assert c["pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert -1.0 < c["pearson_r"] < -0.8
    # 3 points in perfect rank order: exactly 2 of the 3! = 6 orderings are as extreme -> p = 1/3
    c3 = A.correlate([1, 2, 3], [1, 4, 5])
    assert c3["spearman_r"] == pytest.approx(1.0) and c3["spearman_p"] == pytest.approx(1 / 3)
    assert c3["p_method"] == "exact permutation"
    # NaN pairs are dropped; too few points or a constant give NaN with a note
    c_nan = A.correlate([1, 2, np.nan, 4], [1, 2, 3, np.nan])
    assert c_nan["n"] == 2 and math.isnan(c_nan["pearson_r"]) and "need >= 3" in c_nan["note"]
    c_const = A.correlate([1, 2, 3, 4], [5, 5, 5, 5])
    assert math.isnan(c_const["spearman_r"]) and "constant" in c_const["note"]


def backflow_driven_sweep(axis, values, pid_prefix, shared=None, n_t=401):
    """Enhancement proportional to the backflow amplitude: a built-in negative link."""
    t = np.linspace(0, 20, n_t)
    values = np.asarray(values, dtype=float)
    amp = values * 2.0
    J = -amp[:, None] * np.exp(-((t - 1.0) / 0.5) ** 2)
    E_cat = 0.3 + 0.5 * amp[:, None] * (1 - np.exp(-t))
    pids = [f"{pid_prefix}{i}" for i in range(len(values))]
    if shared is not None:
        pids[shared] = "shared-default-point"
    return A.build_sweep({axis: values}, t, {"ergotropy": E_cat, "heat_current": J},
                         {"ergotropy": np.full(n_t, 0.3), "heat_current": np.zeros(n_t)}, name=axis,
                         point_ids={"catalyzed": pids, "baseline": ["base"] * len(values)})


def test_point_and_correlation_tables():
    sweeps = {"g": backflow_driven_sweep("g", [0.1, 0.2, 0.3, 0.4], "g", shared=1),
              "omega_c": backflow_driven_sweep("omega_c", [0.2, 0.5, 0.6], "w", shared=0)}
    pts = A.point_table(sweeps)
    assert len(pts) == 7 and list(pts["sweep"]).count("g") == 4
    assert pts.loc[pts["sweep"] == "g", "omega_c"].isna().all()  # not swept there
    for col in ("mean_difference", "late_ratio", "integrated_backflow", "baseline_min_heat_current", "point_id"):
        assert col in pts.columns
    corr = A.correlation_table(pts)
    assert len(corr) == 3 * len(A.BACKFLOW_METRICS) * 6  # two sweeps + pooled
    pooled = corr[(corr["sweep"] == "all") & (corr["backflow_metric"] == "integrated_backflow")
                  & (corr["enhancement_metric"] == "mean_difference")].iloc[0]
    assert pooled["n"] == 6  # the shared point counted once
    assert pooled["spearman_r"] == pytest.approx(-1.0)  # more backflow (more negative) <-> more enhancement
    assert pooled["pearson_r"] < -0.99
    with pytest.raises(ValueError, match="'nope'"):
        A.correlation_table(pts, backflow_metrics=["nope"])


def test_write_csv_round_trip(tmp_path):
    df = pd.DataFrame({"a": [1.0, np.nan, 1 / 3], "b": ["x", "y", "z"]})
    path = A.write_csv(df, tmp_path / "sub" / "t.csv")
    back = pd.read_csv(path)
    np.testing.assert_allclose(back["a"], df["a"], rtol=1e-9)
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary file left behind


# ----------------------------------------------------------------------------------------------
# Real engine output and the backflow_stats script


G_REAL = (0.0, 0.1, 0.3)


@pytest.fixture(scope="module")
def real_sweep():
    """A tiny g sweep from the engine, assembled from point datasets as the workflow does."""
    from qbcat.data.datasets import to_dataset
    from qbcat.engine.solve import simulate

    common = dict(n_fock=3, t_max=20.0, n_t=201)
    base = to_dataset(simulate(dict(common, catalyst=False)))
    cats = [to_dataset(simulate(dict(common, g=g))) for g in G_REAL]
    names = ["ergotropy", "heat_current", "energy_cat"]
    base = base.assign(energy_cat=xr.full_like(base["ergotropy"], np.nan))
    per_g = [xr.concat([c[names], base[names]], dim=xr.DataArray(["catalyzed", "baseline"], dims="case"))
             for c in cats]
    ds = xr.concat(per_g, dim=xr.DataArray(list(G_REAL), dims="g", name="g"))
    ds = ds.assign_coords(case=["catalyzed", "baseline"])
    ds.attrs = {"sweep_name": "g", "sweep_axes": "g"}
    return ds, cats, base


def test_real_sweep_against_direct_numpy(real_sweep):
    ds, cats, base = real_sweep
    t = ds["time"].values
    enh = A.ergotropy_enhancement(ds, t_start=5.0)
    bf = A.backflow_statistics(ds).sel(case="catalyzed")
    sel = t >= 5.0
    for i, c in enumerate(cats):
        E, Eb, J = c["ergotropy"].values, base["ergotropy"].values, c["heat_current"].values
        mean = np.trapezoid(E[sel] - Eb[sel], t[sel]) / (t[sel][-1] - t[sel][0])
        assert enh["mean_difference"].values[i] == pytest.approx(mean, rel=1e-12)
        assert enh["peak_catalyzed"].values[i] == pytest.approx(E.max())
        assert bf["integrated_backflow"].values[i] == pytest.approx(np.trapezoid(np.minimum(J, 0), t), rel=1e-12)
        first = t[np.argmax(J < -A.BACKFLOW_TOLERANCE)] if np.any(J < -A.BACKFLOW_TOLERANCE) else np.nan
        np.testing.assert_equal(bf["first_backflow_time"].values[i], first)
        assert bf["min_heat_current"].values[i] == J.min()


def test_decoupled_catalyst_gives_no_enhancement(real_sweep):
    """g = 0: the qubit never sees the oscillator, so the 'catalyzed' run is the baseline."""
    ds, *_ = real_sweep
    enh = A.ergotropy_enhancement(ds).sel(g=0.0)
    for m in A.ENHANCEMENT_METRICS:
        assert abs(enh[f"{m}_difference"].item()) < 1e-6
        assert enh[f"{m}_ratio"].item() == pytest.approx(1.0, abs=1e-5)
    assert abs(A.ergotropy_enhancement(ds).sel(g=0.3)["mean_difference"].item()) > 1e-3  # and g > 0 matters


def test_a_missing_point_gives_nan_statistics():
    ds, t, amp = cosine_sweep()
    ds["heat_current"].loc[dict(g=amp[0], case="catalyzed")] = np.nan  # a gap left by the aggregation
    bf = A.backflow_statistics(ds).sel(case="catalyzed")
    for name in A.BACKFLOW_METRICS:
        assert np.isnan(bf[name].values[0]), name
        assert np.isfinite(bf[name].values[1]), name


def test_backflow_stats_script_under_snakemake(real_sweep, tmp_path):
    ds, *_ = real_sweep
    sweep = tmp_path / "g.nc"
    ds.to_netcdf(sweep)
    out = SimpleNamespace(points=str(tmp_path / "p.csv"), correlations=str(tmp_path / "c.csv"))
    fake = SimpleNamespace(
        input=_Named(sweeps=[str(sweep)]), output=_Named(**vars(out)), params=_Named(t_start=2.0, tolerance=None))
    runpy.run_path(str(SCRIPTS / "backflow_stats.py"), init_globals={"snakemake": fake})
    fake = SimpleNamespace(input=_Named(points=out.points), output=_Named(figure=str(tmp_path / "s.pdf")),
                           params=_Named(dpi=60))
    runpy.run_path(str(SCRIPTS / "backflow_figure.py"), init_globals={"snakemake": fake})
    assert (tmp_path / "s.png").stat().st_size > 5000
    pts = pd.read_csv(out.points)
    assert len(pts) == 3 and set(pts["g"]) == set(G_REAL)
    corr = pd.read_csv(out.correlations)
    assert set(corr["sweep"]) == {"g", "all"}
    row = corr[(corr["sweep"] == "g") & (corr["backflow_metric"] == "integrated_backflow")
               & (corr["enhancement_metric"] == "mean_difference")].iloc[0]
    c = A.correlate(pts["integrated_backflow"], pts["mean_difference"])
    assert row["n"] == 3 and row["spearman_r"] == pytest.approx(c["spearman_r"])
    assert row["p_method"] == "exact permutation"
    for suffix in (".pdf", ".png"):
        assert (tmp_path / f"s{suffix}").stat().st_size > 1000


class _Named(SimpleNamespace):
    """Stands in for snakemake's Namedlist: attribute access plus get(key, default)."""

    def get(self, key, default=None):
        return getattr(self, key, default)
