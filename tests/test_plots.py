"""qbcat.plots: every figure renders from synthetic sweeps with its panels, labels, legends and files."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest

from qbcat import analysis as A
from qbcat import plots as P

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
    return A.build_sweep({axis: values}, t, {"ergotropy": E_cat, "heat_current": J, "energy_cat": E_c},
                         {"ergotropy": E_base, "heat_current": J_base}, name=axis)


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
        assert len(legend_labels(ax)) == len(PAPER_SWEEPS)
        assert ax.get_xlabel() and ax.get_ylabel()
        assert len(ax.collections) == len(PAPER_SWEEPS)
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
                                         fig3=str(tmp_path / "out" / "fig3.pdf")),
                           params=_Named(zoom_t_end=3.0))
    runpy.run_path(str(SCRIPTS / "figure_paper.py"), init_globals={"snakemake": fake})
    for name in ("fig2", "fig3"):
        assert_written([tmp_path / "out" / f"{name}.pdf", tmp_path / "out" / f"{name}.png"])
    map_file = tmp_path / "map.nc"
    map_sweep().to_netcdf(map_file)
    fake = SimpleNamespace(input=_Named(sweep=str(map_file)),
                           output=_Named(netcdf=str(tmp_path / "m" / "enh.nc"), figure=str(tmp_path / "m" / "map.pdf")),
                           params=_Named(t_start=2.0))
    runpy.run_path(str(SCRIPTS / "enhancement_map.py"), init_globals={"snakemake": fake})
    import xarray as xr

    with xr.open_dataset(tmp_path / "m" / "enh.nc") as enh:
        assert enh.attrs["window_start"] == 2.0 and enh["mean_difference"].dims == ("g", "kappa_1")
    assert (tmp_path / "m" / "map.png").stat().st_size > 5000
    plt.close("all")


@pytest.mark.parametrize("name", ["figure_paper.py", "enhancement_map.py", "backflow_stats.py", "claims_report.py"])
def test_scripts_survive_the_snakemake_preamble(name):
    """Snakemake's script: directive prepends its own code, so e.g. a `from __future__` import breaks."""
    text = (SCRIPTS / name).read_text()
    compile("import sys\nsnakemake = None\n" + text, name, "exec")
