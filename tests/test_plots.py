"""qbcat.figures.plots: every figure renders from synthetic sweeps with its panels, labels, legends and files."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest

from qbcat.science import analysis as A
from qbcat.figures import plots as P

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
PAPER_SWEEPS = {"omega_c": [0.8, 1.0, 1.2], "g": [0.1, 0.2, 0.3, 0.4], "kappa_1": [0.01, 0.05],
                "gamma_D": [0.01, 0.05, 0.2]}


def sweep_1d(axis, values, n_t=301, t_max=30.0):
    """Damped oscillations; the baseline is shared unless the axis is gamma_D (a qubit parameter)."""
    t = np.linspace(0, t_max, n_t)
    v = np.asarray(values, dtype=float)[:, None]
    E_cat = 0.3 + 0.2 * v / v.max() + 0.2 * np.exp(-t / 5) * np.sin(t)
    J = -0.5 * v / v.max() * np.exp(-((t - 1) / 0.5) ** 2) - 0.01 + 0.005 * np.sin(t)
    E_c = 1.0 - np.exp(-t / 2) + 0 * v
    if axis == "gamma_D":
        E_base = 0.3 * np.exp(-v * t) + 0.1
        J_base = 0.01 * np.sin(t) * np.exp(-v * t)
    else:
        E_base, J_base = 0.3 + 0.1 * np.exp(-t / 5) * np.sin(t), 0.01 * np.sin(t)
    J_deph = 0.02 * np.sin(t) + 0 * v  # the channels add up to J
    return A.build_sweep({axis: values}, t, {"ergotropy": E_cat, "heat_current": J, "energy_cat": E_c,
                                             "heat_current_catalyst": J - J_deph, "heat_current_dephasing": J_deph},
                         {"ergotropy": E_base, "heat_current": J_base, "heat_current_catalyst": 0 * J_base,
                          "heat_current_dephasing": J_base}, name=axis)


@pytest.fixture(scope="module")
def paper_sweeps():
    return [sweep_1d(a, v) for a, v in PAPER_SWEEPS.items()]


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def legend_labels(ax):
    leg = ax.get_legend()
    return [] if leg is None else [t.get_text() for t in leg.get_texts()]


def assert_written(paths):
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    pdf, png = paths
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert not [p for p in pdf.parent.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_figure_ergotropy_panels_labels_legends_and_files(paper_sweeps, tmp_path):
    fig = P.figure_ergotropy(paper_sweeps)
    main = [ax for ax in fig.axes if ax.get_ylabel().startswith("ergotropy")]
    twins = [ax for ax in fig.axes if ax.get_ylabel().startswith("catalyst energy")]
    assert len(fig.axes) == 8 and len(main) == 4 and len(twins) == 4
    assert sorted(t for t in texts(fig) if re.fullmatch(r"\([a-z]\)", t)) == ["(a)", "(b)", "(c)", "(d)"]
    for ax, (axis, values) in zip(main, PAPER_SWEEPS.items()):
        assert "1/\\omega_0" in ax.get_xlabel() and "hbar" in ax.get_ylabel()
        labels = legend_labels(ax)
        assert len(labels) == len(values) + 2  # one per value, the baseline, E_cat
        assert labels[0] == P.value_label(axis, values[0])
        assert any("uncatalyzed" in lab for lab in labels)
    # a shared baseline is one red dashed curve; a gamma_D baseline changes with gamma_D: one per value
    red = [ln for ln in main[0].get_lines() if ln.get_color() == P.BASELINE_COLOR]
    assert len(red) == 1 and red[0].get_linestyle() == "--"
    dashed = [ln for ln in main[3].get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == len(PAPER_SWEEPS["gamma_D"])
    # same rank -> same colour in every panel
    first = [ax.get_lines()[0].get_color() for ax in main]
    assert all(np.allclose(c, first[0]) for c in first)
    assert_written(P.save_figure(fig, tmp_path / "fig2.pdf"))
    plt.close(fig)


def test_figure_ergotropy_same_axis_and_errors(paper_sweeps):
    fig = P.figure_ergotropy(paper_sweeps[:2], catalyst_axis="same")
    assert len(fig.axes) == 2
    assert len(fig.axes[1].get_lines()) == 2 * len(PAPER_SWEEPS["g"]) + 1  # E, E_cat per value + baseline
    plt.close(fig)
    with pytest.raises(ValueError, match="catalyst_axis"):
        P.figure_ergotropy(paper_sweeps, catalyst_axis="left")
    two_d = A.build_sweep({"g": [0.1, 0.2], "kappa_1": [0.1, 0.2]}, [0, 1, 2],
                          {"ergotropy": np.ones((2, 2, 3)), "energy_cat": np.ones((2, 2, 3))},
                          {"ergotropy": np.ones(3)}, name="map")
    with pytest.raises(ValueError, match="1-D sweep"):
        P.figure_ergotropy([two_d])


def test_figure_heat_current_has_a_zoomed_early_row(paper_sweeps, tmp_path):
    fig = P.figure_heat_current(paper_sweeps, zoom_t_end=4.0)
    assert len(fig.axes) == 8
    tops, zooms = fig.axes[0::2], fig.axes[1::2]
    for top, zoom, values in zip(tops, zooms, PAPER_SWEEPS.values()):
        assert top.get_xlim()[1] == pytest.approx(30.0)
        assert zoom.get_xlim()[1] <= 4.0
        for ax in (top, zoom):
            assert "J" in ax.get_ylabel() and "omega_0^2" in ax.get_ylabel() and ax.get_xlabel()
        assert len(legend_labels(top)) == len(values) + 1
        # the zoom row shows the early backflow peak (the y range reaches the minimum near t = 1)
        assert zoom.get_ylim()[0] <= -0.5 * 0.9 * min(values) / max(values)
    assert sorted(t for t in texts(fig) if re.fullmatch(r"\([a-z]\)", t)) == ["(a)", "(b)", "(c)", "(d)"]
    assert_written(P.save_figure(fig, tmp_path / "fig3.pdf"))
    plt.close(fig)
    with pytest.raises(ValueError, match="zoom_t_end"):
        P.figure_heat_current(paper_sweeps, zoom_t_end=-1.0)


def map_sweep():
    g = np.array([0.05, 0.1, 0.2, 0.4])  # log-spaced
    k = np.array([0.0, 0.05, 0.1])  # linear, includes 0
    t = np.linspace(0, 10, 101)
    E_cat = 0.2 + g[:, None, None] - k[None, :, None] + 0 * t
    E_base = np.full(t.size, 0.2)
    ds = A.build_sweep({"g": g, "kappa_1": k}, t, {"ergotropy": E_cat}, {"ergotropy": E_base}, name="g_kappa")
    return ds


def test_enhancement_map(tmp_path):
    ds = map_sweep()
    ds["ergotropy"].loc[dict(case="baseline", g=0.4, kappa_1=0.1)] = 0.0  # ratio undefined there
    enh = A.ergotropy_enhancement(ds)
    fig = P.figure_enhancement_map(enh)
    maps = [ax for ax in fig.axes if ax.get_xlabel().startswith("$g$")]
    assert len(maps) == 6 and len(fig.axes) == 12  # 3 metrics x 2 kinds, each with a colour bar
    assert sorted(t for t in texts(fig) if re.fullmatch(r"\([a-z]\)", t)) == [f"({c})" for c in "abcdef"]
    for ax in maps:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "linear"
        assert ax.get_xlabel().startswith("$g$") and ax.get_ylabel().startswith("$\\kappa_1$")
    # the cell values are the data (difference panel (a): rows kappa_1, columns g)
    mesh = maps[0].collections[0]
    np.testing.assert_allclose(np.asarray(mesh.get_array()).reshape(3, 4), enh["mean_difference"].values.T)
    assert any("ratio undefined" in t for t in texts(fig))
    assert_written(P.save_figure(fig, tmp_path / "map.pdf"))
    plt.close(fig)
    # late times: the baseline has decayed to ~0 at every cell, the late ratio is undefined: no
    # grey square, a note with the baseline's size instead
    ds["ergotropy"].loc[dict(case="baseline")] = ds["ergotropy"].sel(case="baseline").where(ds.time < 8, 1e-9)
    fig = P.figure_enhancement_map(A.ergotropy_enhancement(ds))
    maps = [ax for ax in fig.axes if ax.get_xlabel().startswith("$g$")]
    assert len(maps) == 5 and len(fig.axes) == 11  # (f) is the note, without axes or colour bar
    note = [t for t in texts(fig) if "ratio not shown" in t]
    assert len(note) == 1 and "12 of 12 cells" in note[0] and "1e-09" in note[0]
    assert sorted(t for t in texts(fig) if re.fullmatch(r"\([a-z]\)", t)) == [f"({c})" for c in "abcdef"]
    assert P.layout_problems(fig) == []
    plt.close(fig)
    with pytest.raises(ValueError, match="2-D sweep"):
        P.figure_enhancement_map(A.ergotropy_enhancement(sweep_1d("g", [0.1, 0.2])))


def test_log_spacing_and_cell_edges():
    assert P.is_log_spaced([0.01, 0.03, 0.1, 0.3])
    assert P.is_log_spaced([1, 2, 4, 8, 16])
    assert not P.is_log_spaced([0.1, 0.2, 0.3, 0.4])
    assert not P.is_log_spaced([0.0, 0.1, 1.0])
    np.testing.assert_allclose(P.cell_edges([1, 2, 3], log=False), [0.5, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(P.cell_edges([1, 10, 100], log=True), [10**-0.5, 10**0.5, 10**1.5, 10**2.5])


def test_backflow_scatter_annotations_match_the_correlations(paper_sweeps, tmp_path):
    pts = A.point_table(paper_sweeps)
    fig = P.figure_backflow_scatter(pts)
    assert len(fig.axes) == 2
    for ax, metric in zip(fig.axes, ("integrated_backflow", "min_heat_current")):
        c = A.correlate(pts[metric], pts["mean_difference"])
        title = ax.get_title()
        assert f"n = {c['n']}" in title and f"{c['pearson_r']:+.2f}" in title and f"{c['spearman_r']:+.2f}" in title
        assert ax.get_xlabel() and ax.get_ylabel()
        assert len(ax.collections) == len(PAPER_SWEEPS)
    # one legend for both panels, below them: each sweep with its rho in (a) and (b) and its n
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == len(PAPER_SWEEPS)
    for label, (axis, values) in zip(labels, PAPER_SWEEPS.items()):
        part = pts[pts["sweep"] == axis]
        rhos = [A.correlate(part[m], part["mean_difference"])["spearman_r"]
                for m in ("integrated_backflow", "min_heat_current")]
        assert label.startswith(axis) and f"n = {len(values)}" in label
        assert all(("n/a" if np.isnan(r) else f"{r:+.2f}") in label for r in rhos)
    assert_written(P.save_figure(fig, tmp_path / "scatter.pdf"))
    plt.close(fig)


def test_saved_pdf_is_reproducible(paper_sweeps, tmp_path):
    """Same data, same bytes: no creation date in the PDF."""
    out = []
    for name in ("a", "b"):
        fig = P.figure_ergotropy(paper_sweeps[:1])
        out.append(P.save_figure(fig, tmp_path / f"{name}.pdf", formats=("pdf",))[0].read_bytes())
        plt.close(fig)
    assert out[0] == out[1]


class _Named(SimpleNamespace):
    def get(self, key, default=None):
        return getattr(self, key, default)


def test_figure_scripts_under_snakemake(paper_sweeps, tmp_path):
    files = []
    for ds in paper_sweeps[:2]:
        files.append(str(tmp_path / f"{ds.attrs['sweep_name']}.nc"))
        ds.to_netcdf(files[-1])
    fake = SimpleNamespace(input=_Named(sweeps=files),
                           output=_Named(fig2=str(tmp_path / "out" / "fig2.pdf"),
                                         fig3=str(tmp_path / "out" / "fig3.pdf"),
                                         fig3_channels=str(tmp_path / "out" / "fig3_channels.pdf")),
                           params=_Named(zoom_t_end=3.0, ergotropy_curves="both"))
    runpy.run_path(str(SCRIPTS / "figure_paper.py"), init_globals={"snakemake": fake})
    for name in ("fig2", "fig3", "fig3_channels"):
        assert_written([tmp_path / "out" / f"{name}.pdf", tmp_path / "out" / f"{name}.png"])
    map_file = tmp_path / "map.nc"
    map_sweep().to_netcdf(map_file)
    fake = SimpleNamespace(input=_Named(sweep=str(map_file)), output=_Named(netcdf=str(tmp_path / "m" / "enh.nc")),
                           params=_Named(t_start=2.0))
    runpy.run_path(str(SCRIPTS / "enhancement.py"), init_globals={"snakemake": fake})
    fake = SimpleNamespace(input=_Named(enhancement=str(tmp_path / "m" / "enh.nc")),
                           output=_Named(figure=str(tmp_path / "m" / "map.pdf")), params=_Named())
    runpy.run_path(str(SCRIPTS / "enhancement_figure.py"), init_globals={"snakemake": fake})
    import xarray as xr

    with xr.open_dataset(tmp_path / "m" / "enh.nc") as enh:
        assert enh.attrs["window_start"] == 2.0 and enh["mean_difference"].dims == ("g", "kappa_1")
    assert (tmp_path / "m" / "map.png").stat().st_size > 5000
    plt.close("all")


@pytest.mark.parametrize("name", sorted(p.name for p in SCRIPTS.glob("*.py")))
def test_scripts_survive_the_snakemake_preamble(name):
    """Snakemake's script: directive prepends its own code, so e.g. a `from __future__` import breaks."""
    text = (SCRIPTS / name).read_text()
    compile("import sys\nsnakemake = None\n" + text, name, "exec")


# ---------------------------------------------------------------------------------------------
# Fig. 2 curves, Fig. 3 by channel


def test_period_mean_removes_the_drive_oscillation():
    t = np.linspace(0, 60, 6001)
    T = 2 * np.pi / 1.3
    y = 0.4 + 0.1 * t / 60 + 0.3 * np.sin(1.3 * t)  # slow envelope + oscillation at the drive
    m = P.period_mean(t, np.stack([y, 2 * y]), T)
    inside = (t > T) & (t < 60 - T)
    # one whole period averages the sine away; the linear envelope's centred mean is itself
    np.testing.assert_allclose(m[0, inside], (0.4 + 0.1 * t / 60)[inside], atol=1e-5)
    np.testing.assert_allclose(m[1], 2 * m[0])
    np.testing.assert_allclose(P.period_mean(t, np.full_like(t, 0.7), T), 0.7)
    with pytest.raises(ValueError, match="period"):
        P.period_mean(t, y, 0.0)


def test_fig2_curves_option(paper_sweeps):
    ds = paper_sweeps[0]
    raw = P.figure_ergotropy([ds], curves="raw")
    mean = P.figure_ergotropy([ds], curves="period_mean")
    both = P.figure_ergotropy([ds], curves="both")
    first = ds["ergotropy"].sel(case="catalyzed").isel(omega_c=0).values
    np.testing.assert_array_equal(raw.axes[0].get_lines()[0].get_ydata(), first)
    T = P.drive_period(ds, "omega_c", 1.0)  # the sweep has no omega_d attribute: the default, 1
    assert T == pytest.approx(2 * np.pi)
    np.testing.assert_allclose(mean.axes[0].get_lines()[0].get_ydata(), P.period_mean(ds.time.values, first, T))
    n = len(raw.axes[0].get_lines())
    assert len(mean.axes[0].get_lines()) == n and len(both.axes[0].get_lines()) == 2 * n
    assert "drive period" in mean.get_suptitle() and not raw.get_suptitle()
    with pytest.raises(ValueError, match="curves"):
        P.figure_ergotropy([ds], curves="smooth")
    plt.close("all")


def test_fig3_by_channel(paper_sweeps):
    fig = P.figure_heat_current_channels(paper_sweeps, t_end=4.0)
    assert len(fig.axes) == 8
    tops, bottoms = fig.axes[0::2], fig.axes[1::2]
    for top, bottom, ds in zip(tops, bottoms, paper_sweeps):
        assert "J_\\mathrm{cat}" in top.get_ylabel() and "J_\\mathrm{deph}" in bottom.get_ylabel()
        assert "omega_0^2" in top.get_ylabel() and bottom.get_xlabel()
        assert bottom.get_xlim()[1] <= 4.0
        axis = A.sweep_axes(ds)[0]
        np.testing.assert_allclose(top.get_lines()[0].get_ydata(),
                                   ds["heat_current_catalyst"].sel(case="catalyzed").isel({axis: 0})
                                   .sel(time=slice(None, 4.0)).values)
        assert any("uncatalyzed" in lab for lab in legend_labels(top))
    with pytest.raises(A.SweepFormatError, match="heat_current_catalyst"):
        P.figure_heat_current_channels([paper_sweeps[0].drop_vars("heat_current_catalyst")])
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Layout: what a reader sees


def steady_map_dataset(uniform_baseline=True):
    import xarray as xr

    g, w = np.array([0.0, 0.25, 0.5]), np.array([0.5, 1.0, 1.5])
    cat = 0.02 * g[:, None] * w[None, :] / 0.75
    base = np.full_like(cat, 1e-12) if uniform_baseline else 0.01 + 0.001 * w[None, :] + 0 * g[:, None]
    ds = xr.Dataset({"ergotropy": (("g", "omega_c", "case"), np.stack([cat, base], axis=-1),
                                   {"long_name": "period-averaged asymptotic qubit ergotropy", "units": "1"})},
                    coords={"g": g, "omega_c": w, "case": ["catalyzed", "baseline"]})
    ds.attrs["sweep_axes"] = "g omega_c"
    return ds


def steady_map_with_relaxation_time():
    """A batched steady map's relaxation time, checked at two cells."""
    ds = steady_map_dataset()
    tau = 20.0 + 10.0 * ds["ergotropy"].values / ds["ergotropy"].values.max()
    checked = np.full_like(tau, np.nan)
    checked[0, 0], checked[-1, -1] = tau[0, 0], tau[-1, -1]
    ds["relaxation_time"] = (ds["ergotropy"].dims, tau, {"long_name": "relaxation time", "units": "1"})
    ds["relaxation_time_propagator"] = (ds["ergotropy"].dims, checked, {"long_name": "checked", "units": "1"})
    return ds


def overview_table(n=12):
    import pandas as pd

    return pd.DataFrame({"label": [f"omega_c_scan omega_c={0.5 + 0.1 * k:g}" for k in range(n)],
                         "check": ["cutoff"] * n, "point_id": [f"{k:016x}" for k in range(n)],
                         "worst_deviation": np.logspace(-7, 1, n), "threshold": 1e-3,
                         "verdict": np.where(np.logspace(-7, 1, n) > 1e-3, "FAIL", "PASS")})


def every_figure(paper_sweeps):
    from qbcat.figures import checks as PC

    pts = A.point_table(paper_sweeps)
    ds = map_sweep()
    ds["ergotropy"].loc[dict(case="baseline", g=0.4, kappa_1=0.1)] = 0.0
    return {
        "fig2": lambda: P.figure_ergotropy(paper_sweeps),
        "fig2 same axis, raw": lambda: P.figure_ergotropy(paper_sweeps, catalyst_axis="same", curves="both"),
        "fig3": lambda: P.figure_heat_current(paper_sweeps),
        "fig3 by channel": lambda: P.figure_heat_current_channels(paper_sweeps),
        "enhancement map": lambda: P.figure_enhancement_map(A.ergotropy_enhancement(ds)),
        "backflow scatter": lambda: P.figure_backflow_scatter(pts),
        "backflow scatter, ratio": lambda: P.figure_backflow_scatter(pts, enhancement_metric="late_ratio"),
        "steady map": lambda: PC.figure_steady_map(steady_map_dataset()),
        "steady map, varying baseline": lambda: PC.figure_steady_map(steady_map_dataset(False)),
        "steady map, relaxation time": lambda: PC.figure_steady_map(steady_map_with_relaxation_time()),
        "steady map 1-D": lambda: PC.figure_steady_map(steady_map_dataset().isel(omega_c=[0]).squeeze("omega_c")
                                                     .assign_attrs(sweep_axes="g")),
        "convergence overview": lambda: PC.figure_convergence_overview(overview_table()),
    }


FIGURE_NAMES = ["fig2", "fig2 same axis, raw", "fig3", "fig3 by channel", "enhancement map", "backflow scatter",
                "backflow scatter, ratio", "steady map", "steady map, varying baseline",
                "steady map, relaxation time", "steady map 1-D",
                "convergence overview"]


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_layout_of_every_figure(paper_sweeps, name):
    """No axes collapsed, no text or legend outside the canvas, no panel letter on a label, in the
    one style (the STIX font of qbcat.figures.plots.STYLE) and with a unit in every axis label."""
    fig = every_figure(paper_sweeps)[name]()
    assert P.layout_problems(fig) == []
    fonts = {t.get_fontfamily()[0] for ax in fig.axes for t in (ax.xaxis.label, ax.yaxis.label)}
    assert fonts == {P.STYLE["font.family"]}
    for ax in fig.axes:
        for label in (ax.get_xlabel(), ax.get_ylabel()):
            if label and ax.get_label() != "<colorbar>" and "rtol" not in label:
                dimensionless = "/" in label or "fraction" in label  # ratios and fractions have no unit
                assert "(" in label or dimensionless, f"{name}: label without a unit: {label!r}"
    plt.close(fig)


def test_layout_check_catches_a_broken_figure():
    """The old backflow scatter: legends hung below narrow axes, beyond the canvas."""
    with plt.rc_context(P.STYLE):
        fig, axs = plt.subplots(1, 2, figsize=(3, 2))
        for ax in axs:
            ax.plot([0, 1], [0, 1], label="a rather long sweep name (+0.90, 5)")
            ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.2))
            ax.set_title("all points (n = 50): Pearson r = +0.17, Spearman rho = -0.04")
            P.panel_letter(ax, "a", x=0.0, y=1.0)
    problems = P.layout_problems(fig)
    assert any("outside the canvas" in p for p in problems)
    assert any(p.startswith("legend outside") for p in problems)
    assert any("overlaps" in p for p in problems)
    fig2, ax = plt.subplots(figsize=(6, 4))
    ax.set_position([0.1, 0.1, 0.02, 0.8])
    assert any("collapsed" in p for p in P.layout_problems(fig2))
    plt.close("all")
