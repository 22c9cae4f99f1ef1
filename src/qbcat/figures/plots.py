"""Publication figures from sweep datasets (matplotlib, Agg backend).

Every ``figure_*`` function returns a :class:`matplotlib.figure.Figure`; :func:`save_figure`
writes it as PDF (vector) and PNG. Units: time in 1/omega_0, energies in hbar*omega_0, the heat
current J (energy per time) in hbar*omega_0^2, model parameters (frequencies and rates) in omega_0.

Colours are the same in every panel: the catalyzed curve of the k-th smallest swept value gets
``value_colors(n)[k]`` (a colormap indexed by rank); the uncatalyzed baseline is red dashed and
the catalyst energy green dashed, as in the paper.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.cm  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.ticker  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ..science import analysis  # noqa: E402
from ..science.analysis import BASELINE, CASE, CATALYZED, TIME  # noqa: E402
from ..atomic import atomic_output

STYLE = {
    "font.size": 9,
    "axes.labelsize": 9,
    "axes.titlesize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7,
    "legend.handlelength": 2.2,
    "lines.linewidth": 1.0,
    "mathtext.fontset": "stix",
    "font.family": "STIXGeneral",
    "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF
    "axes.linewidth": 0.8,
}

BASELINE_COLOR = "#d62728"
CATALYST_CMAP = "Greens"
VALUE_CMAP = "viridis"
VALUE_CMAP_RANGE = (0.0, 0.55)  # dark purple -> blue -> teal: away from the baseline red and catalyst green

PARAM_SYMBOLS = {
    "omega_a": r"\omega_a", "omega_c": r"\omega_c", "g": "g", "Omega": r"\Omega", "omega_d": r"\omega_d",
    "kappa_1": r"\kappa_1", "gamma_D": r"\gamma_D", "n_fock": r"n_\mathrm{Fock}", "t_max": r"t_\mathrm{max}",
}
DIMENSIONLESS_PARAMS = {"n_fock", "n_t"}

TIME_LABEL = r"time $t$ ($1/\omega_0$)"
ERGOTROPY_LABEL = r"ergotropy $\mathcal{E}$ ($\hbar\omega_0$)"
CATALYST_LABEL = r"catalyst energy $E_\mathrm{cat}$ ($\hbar\omega_0$)"
HEAT_CURRENT_LABEL = r"heat current $J$ ($\hbar\omega_0^2$)"

METRIC_TITLES = {"mean": "time average", "peak": "peak", "late": "late time"}
BACKFLOW_LABELS = {
    "integrated_backflow": r"integrated backflow $\int \min(J,0)\,dt$ ($\hbar\omega_0$)",
    "min_heat_current": r"most negative heat current $J_\mathrm{min}$ ($\hbar\omega_0^2$)",
    "time_of_min_heat_current": r"time of $J_\mathrm{min}$ ($1/\omega_0$)",
    "first_backflow_time": r"first time with $J<0$ ($1/\omega_0$)",
    "backflow_fraction": r"fraction of time with $J<0$",
    "late_mean_heat_current": r"late-time mean $J$ ($\hbar\omega_0^2$)",
}


# ----------------------------------------------------------------------------------------------
# Small helpers


def param_symbol(name: str) -> str:
    return PARAM_SYMBOLS.get(name, name.replace("_", r"\_"))


def param_label(name: str) -> str:
    """Axis label of a model parameter with its unit, e.g. '$\\kappa_1$ ($\\omega_0$)'."""
    unit = "" if name in DIMENSIONLESS_PARAMS else r" ($\omega_0$)"
    return f"${param_symbol(name)}${unit}"


def value_label(name: str, value: float) -> str:
    return f"${param_symbol(name)} = {float(value):g}$"


def value_colors(n: int, cmap: str = VALUE_CMAP, span: tuple[float, float] = VALUE_CMAP_RANGE) -> list:
    """n colours of ``cmap`` indexed by rank 0..n-1 (same n -> same colours in every panel)."""
    lo, hi = span
    positions = [0.5 * (lo + hi)] if n == 1 else np.linspace(lo, hi, n)
    return [plt.get_cmap(cmap)(p) for p in positions]


def panel_letter(ax, letter: str, x: float = -0.13, y: float = 1.04):
    """Bold '(a)' at the top left, outside the axes."""
    return ax.text(x, y, f"({letter})", transform=ax.transAxes, fontweight="bold", fontsize=10,
                   va="bottom", ha="left")


def legend_above(ax, handles, ncols: int | None = None):
    """The legend in a band above the axes (never hides a curve); 2 or 3 columns by label length."""
    if ncols is None:
        longest = max(len(h.get_label()) for h in handles)
        ncols = 3 if longest <= 24 else 2
    return ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.02), ncols=min(ncols, len(handles)),
                     borderaxespad=0.0, frameon=False, handlelength=2.0, columnspacing=1.2)


def _one_axis(ds: xr.Dataset) -> str:
    axes = analysis.sweep_axes(ds)
    if len(axes) != 1:
        raise ValueError(f"sweep {analysis.sweep_name(ds)!r}: a paper panel needs a 1-D sweep, "
                         f"this one has axes {axes}")
    return axes[0]


def _baselines_identical(base: xr.DataArray) -> bool:
    """True when the baseline curve is the same for every value (sweeps of catalyst-only parameters)."""
    b = base.values
    return bool(np.allclose(b, b[:1], rtol=1e-12, atol=1e-14, equal_nan=True))


def _sorted(ds: xr.Dataset, axis: str) -> xr.Dataset:
    return ds.sortby(axis)


def _grid(n: int, ncols: int = 2):
    return max(1, -(-n // ncols)), min(ncols, n)


# ----------------------------------------------------------------------------------------------
# Fig. 2 and Fig. 3 of the paper


#: Fig. 2's curves: the period-averaged envelope (default), the raw curves, or both (raw faint).
CURVES = ("period_mean", "raw", "both")


def period_mean(t, y, period: float) -> np.ndarray:
    """Running mean of ``y`` over one drive period centred on each time (shorter at the ends),

        ybar(t) = 1/(b - a) int_a^b y dt',  a = max(t - T/2, t_0),  b = min(t + T/2, t_end),

    from the cumulative trapezoid integral (any grid). It removes the oscillation at the drive
    frequency and keeps the slower envelope; ``y`` may have leading axes (time last).
    """
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if not (np.isfinite(period) and period > 0):
        raise ValueError(f"period_mean: period must be > 0, got {period}")
    cum = np.concatenate([np.zeros(y.shape[:-1] + (1,)),
                          np.cumsum(0.5 * (y[..., 1:] + y[..., :-1]) * np.diff(t), axis=-1)], axis=-1)
    a = np.maximum(t - period / 2, t[0])
    b = np.minimum(t + period / 2, t[-1])
    flat = cum.reshape(-1, t.size)
    out = np.array([(np.interp(b, t, c) - np.interp(a, t, c)) / (b - a) for c in flat])
    return out.reshape(y.shape)


def drive_period(ds: xr.Dataset, axis: str, value) -> float:
    """2 pi / omega_d of a sweep's point (omega_d swept, a sweep attribute, or the default)."""
    if axis == "omega_d":
        omega_d = float(value)
    else:
        from ..engine.params import PARAMETERS

        omega_d = float(ds.attrs.get("omega_d", PARAMETERS["omega_d"].default))
    return 2 * np.pi / omega_d if omega_d > 0 else np.nan


def _curve(ds, da, axis, value, curves):
    """(raw, shown): the curve as stored and as drawn (its period mean unless curves == 'raw')."""
    raw = np.asarray(da.values, dtype=float)
    if curves == "raw":
        return raw, raw
    T = drive_period(ds, axis, value)
    return raw, (period_mean(ds[TIME].values, raw, T) if np.isfinite(T) else raw)


def _plot_value_curves(ax, ds, var, axis, colors, with_baseline=True, curves="raw"):
    """Catalyzed ``var`` for each value (rank colours) and the baseline; returns legend handles.

    ``curves``: "raw" draws the stored curves; "period_mean" their running mean over one drive
    period (:func:`period_mean`); "both" the mean over the raw curve drawn faint."""
    handles = []
    t = ds[TIME].values

    def draw(da, value, **style):
        raw, shown = _curve(ds, da, axis, value, curves)
        if curves == "both":
            ax.plot(t, raw, color=style["color"], ls=style.get("ls", "-"), lw=0.5, alpha=0.3)
        return ax.plot(t, shown, **style)[0]

    for k, v in enumerate(ds[axis].values):
        handles.append(draw(ds[var].sel({axis: v, CASE: CATALYZED}), v, color=colors[k],
                            label=value_label(axis, v)))
    if with_baseline:
        base = ds[var].sel({CASE: BASELINE})
        if _baselines_identical(base):
            v0 = ds[axis].values[0]
            handles.append(draw(base.isel({axis: 0}), v0, color=BASELINE_COLOR, ls="--", lw=1.2,
                                label="uncatalyzed"))
        else:  # the baseline changes with the swept value (e.g. gamma_D): one dashed curve per value
            for k, v in enumerate(ds[axis].values):
                draw(base.sel({axis: v}), v, color=colors[k], ls="--", lw=0.9)
            handles.append(Line2D([], [], color="0.3", ls="--", lw=0.9,
                                  label="uncatalyzed (dashed)"))
    return handles


def figure_ergotropy(
    sweeps: Sequence[xr.Dataset],
    *,
    catalyst_axis: str = "twin",
    curves: str = "period_mean",
    letters: str = string.ascii_lowercase,
    ncols: int = 2,
) -> Figure:
    """Fig. 2: ergotropy vs time, catalyzed for each swept value, baseline red dashed, E_cat green dashed.

    One 1-D sweep per panel (the paper: omega_c, g, kappa_1, gamma_D). ``catalyst_axis`` is
    ``"twin"`` (E_cat on a right-hand axis, its own scale) or ``"same"`` (same axis as E).
    ``curves`` (:data:`CURVES`): the catalyzed ergotropy oscillates at the drive frequency, so the
    raw curves of several values fill a band; "period_mean" (default) draws every curve as its
    running mean over one drive period (:func:`period_mean`), "raw" the stored curves, "both"
    the mean over the faint raw curve.
    """
    if catalyst_axis not in ("twin", "same"):
        raise ValueError(f"catalyst_axis={catalyst_axis!r}: use 'twin' or 'same'")
    if curves not in CURVES:
        raise ValueError(f"curves={curves!r}: use one of {', '.join(CURVES)}")
    if not sweeps:
        raise ValueError("figure_ergotropy: no sweeps given")
    for ds in sweeps:
        analysis.validate_sweep(ds, ["ergotropy", "energy_cat"])
    nrows, nc = _grid(len(sweeps), ncols)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(3.6 * nc, 2.8 * nrows), layout="constrained")
        axs = fig.subplots(nrows, nc, squeeze=False).ravel()
        for ax in axs[len(sweeps):]:
            ax.remove()
        for k, (ax, ds) in enumerate(zip(axs, sweeps)):
            axis = _one_axis(ds)
            ds = _sorted(ds, axis)
            colors = value_colors(ds.sizes[axis])
            handles = _plot_value_curves(ax, ds, "ergotropy", axis, colors, curves=curves)
            cax = ax.twinx() if catalyst_axis == "twin" else ax
            greens = value_colors(ds.sizes[axis], CATALYST_CMAP, (0.55, 0.95))
            for j, v in enumerate(ds[axis].values):
                _, shown = _curve(ds, ds["energy_cat"].sel({axis: v, CASE: CATALYZED}), axis, v, curves)
                cax.plot(ds[TIME], shown, color=greens[j], ls=(0, (4, 2)), lw=0.9)
            notes = (["right axis"] if catalyst_axis == "twin" else []) + (
                ["darker = larger value"] if ds.sizes[axis] > 1 else [])
            label = r"$E_\mathrm{cat}$" + (f" ({', '.join(notes)})" if notes else "")
            handles.append(Line2D([], [], color=greens[-1], ls=(0, (4, 2)), lw=0.9, label=label))
            ax.set_xlabel(TIME_LABEL)
            ax.set_xlim(float(ds[TIME][0]), float(ds[TIME][-1]))
            ax.set_ylim(bottom=0)
            if catalyst_axis == "twin":
                ax.set_ylabel(ERGOTROPY_LABEL)
                cax.set_ylabel(CATALYST_LABEL, color=greens[-1])
                cax.tick_params(axis="y", colors=greens[-1])
                cax.spines["right"].set_color(greens[-1])
                cax.set_ylim(bottom=0)
            else:
                ax.set_ylabel(r"$\mathcal{E}$, $E_\mathrm{cat}$ ($\hbar\omega_0$)")
            legend_above(ax, handles)
            panel_letter(ax, letters[k], y=1.02)
        if curves != "raw":
            fig.suptitle(r"every curve: running mean over one drive period $2\pi/\omega_d$"
                         + (" (raw curves faint)" if curves == "both" else ""), fontsize=8)
    return fig


def _check_early_window(sweeps, names, t_end: float, figure: str, key: str) -> None:
    """ValueError unless there are sweeps, each holds ``names``, and [0, t_end] holds >= 2 times."""
    if not sweeps:
        raise ValueError(f"{figure}: no sweeps given")
    for ds in sweeps:
        analysis.validate_sweep(ds, names)
        t = ds[TIME].values
        if not (t_end > t[0] and np.sum(t <= t_end) >= 2):
            raise ValueError(f"{key}={t_end} must lie inside the run (time from {t[0]} to {t[-1]})")


def figure_heat_current(
    sweeps: Sequence[xr.Dataset],
    *,
    zoom_t_end: float = 5.0,
    letters: str = string.ascii_lowercase,
    ncols: int = 2,
) -> Figure:
    """Fig. 3: heat current J(t) per swept value and baseline; each panel has a zoomed row [0, zoom_t_end].

    Each panel is two stacked axes: the whole run (top) and the early transient (bottom), where
    the paper places the backflow peak (near t = 1). A grey line marks J = 0.
    """
    _check_early_window(sweeps, ["heat_current"], zoom_t_end, "figure_heat_current", "zoom_t_end")
    nrows, nc = _grid(len(sweeps), ncols)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(3.6 * nc, 3.9 * nrows), layout="constrained")
        outer = fig.add_gridspec(nrows, nc)
        for k, ds in enumerate(sweeps):
            axis = _one_axis(ds)
            ds = _sorted(ds, axis)
            colors = value_colors(ds.sizes[axis])
            inner = outer[k // nc, k % nc].subgridspec(2, 1, height_ratios=[1.5, 1], hspace=0.05)
            top = fig.add_subplot(inner[0])
            zoom = fig.add_subplot(inner[1])
            handles = _plot_value_curves(top, ds, "heat_current", axis, colors)
            early = ds.sel({TIME: slice(None, zoom_t_end)})
            _plot_value_curves(zoom, early, "heat_current", axis, colors)
            for a in (top, zoom):
                a.axhline(0.0, color="0.5", lw=0.6, zorder=0)
                a.set_ylabel(HEAT_CURRENT_LABEL)
            top.set_xlim(float(ds[TIME][0]), float(ds[TIME][-1]))
            zoom.set_xlim(float(early[TIME][0]), float(early[TIME][-1]))
            top.set_xlabel(TIME_LABEL)
            zoom.set_xlabel(TIME_LABEL)
            zoom.set_title(f"early transient (zoom), $t \\leq {zoom_t_end:g}$", loc="left", fontsize=7.5, pad=2)
            legend_above(top, handles)
            panel_letter(top, letters[k], y=1.02)
    return fig


CHANNEL_LABELS = {
    "heat_current_catalyst": r"catalyst channel $J_\mathrm{cat}$ ($\hbar\omega_0^2$)",
    "heat_current_dephasing": r"dephasing channel $J_\mathrm{deph}$ ($\hbar\omega_0^2$)",
}


def figure_heat_current_channels(
    sweeps: Sequence[xr.Dataset],
    *,
    t_end: float = 5.0,
    letters: str = string.ascii_lowercase,
    ncols: int = 2,
) -> Figure:
    """Fig. 3 by channel: J = J_cat + J_deph (docs/heat-channels.md) in the early window [0, t_end].

    Each panel is two stacked axes on the same J scale: the catalyst channel J_cat (energy from
    the catalyst through H_int, top) and the dephasing channel J_deph (bottom), per swept value
    (the rank colours of Fig. 3); the bottom axes also show the uncatalyzed baseline, whose J is
    all dephasing (its J_cat is 0). A grey line marks 0: below it the channel feeds the battery.
    """
    names = list(CHANNEL_LABELS)
    _check_early_window(sweeps, names, t_end, "figure_heat_current_channels", "t_end")
    nrows, nc = _grid(len(sweeps), ncols)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(3.6 * nc, 3.9 * nrows), layout="constrained")
        outer = fig.add_gridspec(nrows, nc)
        for k, ds in enumerate(sweeps):
            axis = _one_axis(ds)
            ds = _sorted(ds, axis).sel({TIME: slice(None, t_end)})
            colors = value_colors(ds.sizes[axis])
            inner = outer[k // nc, k % nc].subgridspec(2, 1, hspace=0.05)
            top = fig.add_subplot(inner[0])
            bottom = fig.add_subplot(inner[1], sharex=top, sharey=top)
            handles = _plot_value_curves(top, ds, names[0], axis, colors, with_baseline=False)
            handles += _plot_value_curves(bottom, ds, names[1], axis, colors)[ds.sizes[axis]:]  # the baseline
            for a, name in zip((top, bottom), names):
                a.axhline(0.0, color="0.5", lw=0.6, zorder=0)
                a.set_ylabel(CHANNEL_LABELS[name])
            top.tick_params(labelbottom=False)
            bottom.set_xlabel(TIME_LABEL)
            bottom.set_xlim(float(ds[TIME][0]), float(ds[TIME][-1]))
            legend_above(top, handles)
            panel_letter(top, letters[k], x=-0.16, y=1.05)
    return fig


# ----------------------------------------------------------------------------------------------
# Enhancement maps (2-D sweeps)


def is_log_spaced(values) -> bool:
    """True for >= 3 positive values spanning >= a factor 5 that are more evenly spaced in log than linearly.

    (0.01, 0.03, 0.1, 0.3) counts as log-spaced, (0.1, 0.2, 0.3, 0.4) does not.
    """
    v = np.sort(np.asarray(values, dtype=float))
    if v.size < 3 or np.any(v <= 0) or v[-1] / v[0] < 5:
        return False

    def spread(d):
        return np.std(d) / np.mean(d)

    return bool(spread(np.diff(np.log(v))) < spread(np.diff(v)))


def _value_ticks(ax, which: str, values, log: bool):
    """Ticks at the swept values (cell centres), labelled plainly, e.g. 0.05 rather than 5x10^-2."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    v = np.sort(np.asarray(values, dtype=float))
    if v.size > 8:  # too many to label each: keep every k-th
        v = v[:: int(np.ceil(v.size / 8))]
    axis.set_ticks(v, labels=[f"{x:.3g}" for x in v])
    axis.set_minor_locator(matplotlib.ticker.NullLocator())


def _ratio_norm(z):
    """Colour scale for ratios: logarithmic and symmetric about 1 (r and 1/r equally strong)."""
    finite = z[np.isfinite(z)]
    if finite.size and np.all(finite > 0):
        h = float(np.max(np.abs(np.log(finite))))
        h = max(h, 1e-6)
        norm = matplotlib.colors.LogNorm(np.exp(-h), np.exp(h))
        nice = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100])
        ticks = nice[(nice >= np.exp(-h)) & (nice <= np.exp(h))]
        if ticks.size < 3:
            ticks = np.array([np.exp(-h), 1.0, np.exp(h)])
        return norm, ticks
    half = float(np.max(np.abs(finite - 1))) if finite.size else 1.0
    return Normalize(1 - max(half, 1e-12), 1 + max(half, 1e-12)), None


def cell_edges(values, log: bool) -> np.ndarray:
    """Edges of pcolormesh cells centred on ``values`` (midpoints in log space for a log axis)."""
    v = np.asarray(values, dtype=float)
    w = np.log(v) if log else v
    if w.size == 1:  # one value: a cell of unit width (a factor e either side on a log axis)
        e = np.array([w[0] - 0.5, w[0] + 0.5])
    else:
        mid = 0.5 * (w[1:] + w[:-1])
        e = np.concatenate([[w[0] - (mid[0] - w[0])], mid, [w[-1] + (w[-1] - mid[-1])]])
    return np.exp(e) if log else e


def map_mesh(ax, xv, yv, z, cmap, norm):
    """Draw ``z`` (rows: sorted ``yv``, columns: sorted ``xv``) as cells centred on the values;
    an axis whose values are log-spaced is drawn on a log scale, ticks at the values."""
    xlog, ylog = is_log_spaced(xv), is_log_spaced(yv)
    mesh = ax.pcolormesh(cell_edges(np.sort(xv), xlog), cell_edges(np.sort(yv), ylog), np.ma.masked_invalid(z),
                         cmap=cmap, norm=norm, shading="flat")
    if xlog:
        ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
    _value_ticks(ax, "x", xv, xlog)
    _value_ticks(ax, "y", yv, ylog)
    return mesh


def _ratio_undefined_note(ax, enh: xr.Dataset, metric: str, letter: str) -> None:
    """In place of a ratio map that is mostly undefined: why, with the baseline's numbers."""
    base = np.asarray(enh[f"{metric}_baseline"].values, dtype=float)
    floor = float(enh.attrs.get("ratio_floor", analysis.RATIO_FLOOR))
    small = int(np.sum(np.abs(base) <= floor))
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"{METRIC_TITLES.get(metric, metric)}: ratio not shown\n\n"
            f"the uncatalyzed {METRIC_TITLES.get(metric, metric)} ergotropy is\n"
            f"$\\leq$ {floor:g} at {small} of {base.size} cells\n"
            f"(largest: {np.nanmax(np.abs(base)):.2g} $\\hbar\\omega_0$),\n"
            "so catalyzed / uncatalyzed is undefined there;\n"
            "the difference map beside it is then the\ncatalyzed value itself",
            transform=ax.transAxes, ha="center", va="center", fontsize=8,
            bbox=dict(facecolor="0.95", edgecolor="0.6", boxstyle="round,pad=0.6"))
    panel_letter(ax, letter, x=-0.2)


def figure_enhancement_map(
    enh: xr.Dataset,
    *,
    x: str | None = None,
    y: str | None = None,
    metrics: Sequence[str] = analysis.ENHANCEMENT_METRICS,
    kinds: Sequence[str] = analysis.ENHANCEMENT_KINDS,
    letters: str = string.ascii_lowercase,
) -> Figure:
    """Heat maps of an enhancement dataset of a 2-D sweep: one row per metric, one column per kind.

    Differences use a diverging colormap centred on 0, ratios one centred on 1 (white = no
    enhancement). NaN cells (ratio with a ~0 baseline) are grey; a ratio map undefined at more
    than half of its cells (late times, when the baseline has decayed to ~0) is replaced by a
    note giving the baseline's size. An axis whose values are log-spaced is drawn on a log scale.
    """
    axes = analysis.sweep_axes(enh)
    if len(axes) != 2:
        raise ValueError(f"enhancement map needs a 2-D sweep; {analysis.sweep_name(enh)!r} has axes {axes}")
    x = x or axes[0]
    y = y or [a for a in axes if a != x][0]
    if {x, y} != set(axes):
        raise ValueError(f"x={x!r}, y={y!r} must be the sweep's axes {axes}")
    for m in metrics:
        for kd in kinds:
            if f"{m}_{kd}" not in enh:
                raise ValueError(f"enhancement dataset lacks {m}_{kd}")
    xv, yv = enh[x].values, enh[y].values
    ox, oy = np.argsort(xv), np.argsort(yv)
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(3.5 * len(kinds), 2.6 * len(metrics)), layout="constrained")
        axs = fig.subplots(len(metrics), len(kinds), squeeze=False)
        n = 0
        for i, m in enumerate(metrics):
            for j, kd in enumerate(kinds):
                ax = axs[i, j]
                da = enh[f"{m}_{kd}"].transpose(y, x)
                z = np.asarray(da.values, dtype=float)[np.ix_(oy, ox)]
                if kd == "ratio" and np.mean(~np.isfinite(z)) > 0.5:  # a grey square says nothing
                    _ratio_undefined_note(ax, enh, m, letters[n])
                    n += 1
                    continue
                if kd == "ratio":
                    norm, ticks = _ratio_norm(z)
                else:
                    finite = z[np.isfinite(z)]
                    half = float(np.max(np.abs(finite))) if finite.size else 1.0
                    norm, ticks = Normalize(-max(half, 1e-12), max(half, 1e-12)), None
                mesh = map_mesh(ax, xv, yv, z, plt.get_cmap("RdBu_r").with_extremes(bad="0.75"), norm)
                if z.size <= 64:  # small grids: print each cell's value
                    for iy, yy in enumerate(yv[oy]):
                        for ix, xx in enumerate(xv[ox]):
                            if np.isfinite(z[iy, ix]):
                                dark = abs(norm(z[iy, ix]) - 0.5) > 0.3
                                ax.text(xx, yy, f"{z[iy, ix]:.2g}", ha="center", va="center", fontsize=6.5,
                                        color="white" if dark else "black")
                ax.set_xlabel(param_label(x))
                ax.set_ylabel(param_label(y))
                window = ""
                if m == "mean":
                    window = f", $t\\in[{enh.attrs.get('window_start', 0):g}, {enh.attrs.get('window_end', 0):g}]$"
                elif m == "late":
                    window = f", $t\\in[{enh.attrs.get('late_start', 0):g}, {enh.attrs.get('late_end', 0):g}]$"
                ax.set_title(f"{METRIC_TITLES.get(m, m)}{window}", loc="right")
                if kd == "ratio":
                    label = r"$\mathcal{E}_\mathrm{cat}/\mathcal{E}_\mathrm{base}$"
                else:
                    label = r"$\mathcal{E}_\mathrm{cat}-\mathcal{E}_\mathrm{base}$ ($\hbar\omega_0$)"
                cbar = fig.colorbar(mesh, ax=ax, label=label)
                if ticks is not None:
                    cbar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
                    cbar.ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
                if np.isnan(z).any():
                    ax.text(0.02, 0.02, "grey: baseline ~ 0 (ratio undefined)", transform=ax.transAxes,
                            fontsize=6.5, bbox=dict(facecolor="white", edgecolor="none", alpha=0.8, pad=1))
                _mark_uncertified(ax, enh, x, y)
                panel_letter(ax, letters[n], x=-0.2)
                n += 1
        title = f"ergotropy enhancement, sweep {analysis.sweep_name(enh)!r}"
        if analysis.uncertified(enh):
            title += f"  -  framed: {analysis.uncertified(enh)} cell(s) FAIL the photon-cutoff certificate"
        fig.suptitle(title, fontsize=9, color="C3" if analysis.uncertified(enh) else "black")
    return fig


def _mark_uncertified(ax, ds: xr.Dataset, x: str, y: str) -> None:
    """A heavy frame around every cell whose catalyzed point fails its cutoff certificate
    (cutoff_ok = 0), leaving the cell's value readable."""
    if "cutoff_ok" not in ds:
        return
    xv, yv = np.sort(ds[x].values), np.sort(ds[y].values)
    xe, ye = cell_edges(xv, is_log_spaced(xv)), cell_edges(yv, is_log_spaced(yv))
    bad = (ds["cutoff_ok"] == 0).transpose(y, x).sortby(x).sortby(y).values
    for iy, ix in zip(*np.nonzero(bad)):
        ax.add_patch(matplotlib.patches.Rectangle((xe[ix], ye[iy]), xe[ix + 1] - xe[ix], ye[iy + 1] - ye[iy],
                                                  fill=False, edgecolor="black", linewidth=2.5, zorder=5))
        ax.add_patch(matplotlib.patches.Rectangle((xe[ix], ye[iy]), xe[ix + 1] - xe[ix], ye[iy + 1] - ye[iy],
                                                  fill=False, edgecolor="yellow", linewidth=1.0, zorder=6))


# ----------------------------------------------------------------------------------------------
# Cutoff certificates


def certificate_margin(ds: xr.Dataset) -> xr.DataArray:
    """log10 of the smallest ratio threshold / measured over a point's certificate (catalyzed
    case): > 0 certified (by that many decades), < 0 failed. Thresholds: the sweep's attributes
    cutoff_tolerance and cutoff_top_tolerance (the defaults when not recorded)."""
    from ..engine.params import DEFAULTS

    cat = ds.sel(case=analysis.CATALYZED)
    tol = float(ds.attrs.get("cutoff_tolerance", DEFAULTS["cutoff_tolerance"]))
    top = float(ds.attrs.get("cutoff_top_tolerance", DEFAULTS["cutoff_top_tolerance"]))
    ratios = [tol / cat[name] for name in ds.data_vars if name.startswith("cutoff_deviation_")]
    ratios.append(top / cat["cutoff_top_population"])
    worst = ratios[0]
    for r in ratios[1:]:
        worst = np.fmin(worst, r)
    return np.log10(worst.clip(min=1e-12, max=1e12)).where(cat["cutoff_ok"] >= 0)


def figure_cutoff_certificates(sweeps: Mapping[str, xr.Dataset], letters: str = string.ascii_lowercase) -> Figure:
    """The photon-cutoff certificate of every catalyzed point of every sweep: its margin
    (:func:`certificate_margin`, decades below the thresholds) per cell, with the cutoff used.
    1-D sweeps: margin against the swept value, each point labelled with its n_fock; maps: the
    margin as colour, n_fock printed in each cell. Red (< 0) is a failed certificate."""
    names = [n for n, ds in sweeps.items() if "cutoff_ok" in ds and len(analysis.sweep_axes(ds)) in (1, 2)]
    if not names:
        raise ValueError("no sweep holds cutoff certificates (variable cutoff_ok)")
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    norm = Normalize(-2, 2)
    cmap = plt.get_cmap("RdYlGn")
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(3.6 * ncols, 2.9 * nrows), layout="constrained")
        axs = fig.subplots(nrows, ncols, squeeze=False)
        mesh = None
        for k, name in enumerate(names):
            ds = sweeps[name]
            ax = axs.flat[k]
            axes = analysis.sweep_axes(ds)
            margin = certificate_margin(ds)
            n_fock = ds["n_fock"].sel(case=analysis.CATALYZED) if "n_fock" in ds else None
            if len(axes) == 1:
                a = axes[0]
                xv = np.asarray(ds[a].values, dtype=float)
                order = np.argsort(xv)
                mv = np.asarray(margin.values, dtype=float)[order]
                ax.axhline(0, color="C3", lw=1, ls="--", label="threshold")
                ax.plot(xv[order], mv, "-", color="0.6", lw=1)
                ax.scatter(xv[order], mv, c=mv, cmap=cmap, norm=norm, s=30, edgecolors="black", linewidths=0.5,
                           zorder=3, label="point")
                if n_fock is not None:
                    for xx, mm, nn in zip(xv[order], mv, np.asarray(n_fock.values)[order]):
                        if np.isfinite(mm) and np.isfinite(nn):
                            ax.annotate(f"{int(nn)}", (xx, mm), textcoords="offset points", xytext=(0, 5),
                                        ha="center", fontsize=6.5)
                if is_log_spaced(xv):
                    ax.set_xscale("log")
                ax.set_xlabel(param_label(a))
                ax.set_ylabel("certificate margin (decades)")
                finite = mv[np.isfinite(mv)]
                top = max(1.0, float(finite.max()) if finite.size else 1.0)
                ax.set_ylim(min(-0.5, float(finite.min()) - 0.3 if finite.size else -0.5), top + 0.6)
                ax.legend(loc="lower right", fontsize=6.5)
            else:
                x, y = axes
                xv, yv = ds[x].values, ds[y].values
                ox, oy = np.argsort(xv), np.argsort(yv)
                z = np.asarray(margin.transpose(y, x).values, dtype=float)[np.ix_(oy, ox)]
                mesh = map_mesh(ax, xv, yv, z, cmap.with_extremes(bad="0.75"), norm)
                if n_fock is not None and z.size <= 144:
                    nz = np.asarray(n_fock.transpose(y, x).values, dtype=float)[np.ix_(oy, ox)]
                    for iy, yy in enumerate(yv[oy]):
                        for ix, xx in enumerate(xv[ox]):
                            if np.isfinite(nz[iy, ix]):
                                ax.text(xx, yy, f"{int(nz[iy, ix])}", ha="center", va="center", fontsize=6.5)
                ax.set_xlabel(param_label(x))
                ax.set_ylabel(param_label(y))
            failed = int((ds["cutoff_ok"].sel(case=analysis.CATALYZED) == 0).sum())
            total = int((ds["cutoff_ok"].sel(case=analysis.CATALYZED) >= 0).sum())
            ax.set_title(f"{name}: {total - failed}/{total} certified", loc="right",
                         color="C3" if failed else "black")
            panel_letter(ax, letters[k], x=-0.2)
        for ax in axs.flat[len(names):]:
            ax.set_visible(False)
        sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(mesh or sm, ax=axs, shrink=0.9, label="margin (decades)")
        fig.suptitle("photon-cutoff certificates: margin = log10(threshold / worst deviation); "
                     "numbers: n_fock used" if ncols > 1 else "photon-cutoff certificates\n"
                     "(margin = log10(threshold / worst deviation); numbers: n_fock)", fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------
# Backflow vs enhancement


def figure_backflow_scatter(
    points: pd.DataFrame,
    *,
    enhancement_metric: str = "mean_difference",
    backflow_metrics: Sequence[str] = ("integrated_backflow", "min_heat_current"),
    letters: str = string.ascii_lowercase,
) -> Figure:
    """Enhancement vs backflow metrics for all points of all sweeps (a :func:`analysis.point_table`).

    Each panel is annotated with the Pearson r, Spearman rho and n of the pooled points (each
    point_id once), computed by :func:`analysis.correlate` on exactly the plotted values; the
    legend gives each sweep's Spearman rho and n. More negative backflow metric = more backflow.
    """
    for col in [enhancement_metric, *backflow_metrics, "sweep"]:
        if col not in points.columns:
            raise ValueError(f"figure_backflow_scatter: column {col!r} not in the point table")
    pooled = points.drop_duplicates("point_id") if "point_id" in points.columns else points
    sweeps = list(dict.fromkeys(points["sweep"]))
    colors = plt.get_cmap("tab10")
    markers = "osD^vP*Xh<>"
    metric, kind = (enhancement_metric.split("_", 1) + [""])[:2]
    if kind == "ratio":
        ylabel = r"$\mathcal{E}_\mathrm{cat}/\mathcal{E}_\mathrm{base}$"
    else:
        ylabel = r"$\mathcal{E}_\mathrm{cat}-\mathcal{E}_\mathrm{base}$ ($\hbar\omega_0$)"
    ylabel = f"{METRIC_TITLES.get(metric, metric)} enhancement\n{ylabel}"
    with plt.rc_context(STYLE):
        fig = plt.figure(figsize=(3.6 * len(backflow_metrics), 3.6), layout="constrained")
        axs = fig.subplots(1, len(backflow_metrics), squeeze=False).ravel()
        handles = []
        for k, (ax, b) in enumerate(zip(axs, backflow_metrics)):
            for i, s in enumerate(sweeps):
                part = points[points["sweep"] == s]
                ax.scatter(part[b], part[enhancement_metric], s=18, color=colors(i % 10),
                           marker=markers[i % len(markers)], alpha=0.85, edgecolors="none")
            ax.axhline(1.0 if kind == "ratio" else 0.0, color="0.5", lw=0.6, zorder=0)
            ax.axvline(0.0, color="0.5", lw=0.6, zorder=0)
            c = analysis.correlate(pooled[b], pooled[enhancement_metric])
            pr = "n/a" if np.isnan(c["pearson_r"]) else f"{c['pearson_r']:+.2f}"
            sr = "n/a" if np.isnan(c["spearman_r"]) else f"{c['spearman_r']:+.2f}"
            ax.set_title(f"all points (n = {c['n']}):\nPearson $r$ = {pr}, Spearman $\\rho$ = {sr}", fontsize=8)
            ax.set_xlabel(BACKFLOW_LABELS.get(b, b))
            ax.set_ylabel(ylabel)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
            panel_letter(ax, letters[k], x=-0.2, y=1.02)
        for i, s in enumerate(sweeps):  # one legend for both panels: each sweep's rho per metric, and n
            part = points[points["sweep"] == s]
            rhos = []
            for b in backflow_metrics:
                r = analysis.correlate(part[b], part[enhancement_metric])["spearman_r"]
                rhos.append("n/a" if np.isnan(r) else f"{r:+.2f}")
            handles.append(Line2D([], [], ls="", marker=markers[i % len(markers)], color=colors(i % 10),
                                  label=f"{s} ({', '.join(rhos)}; n = {len(part)})"))
        rho_of = ", ".join(f"({letters[k]})" for k in range(len(backflow_metrics)))
        fig.legend(handles=handles, loc="outside lower center", ncols=2 if len(handles) > 3 else len(handles),
                   frameon=False, title=f"sweep (its Spearman $\\rho$ in {rho_of}; points)", title_fontsize=7)
    return fig


# ----------------------------------------------------------------------------------------------
# Layout check


def layout_problems(fig: Figure, min_axes_fraction: float = 0.08, slack_px: float = 1.5) -> list[str]:
    """What a reader would see as broken, after drawing ``fig``; [] if nothing.

    - an axes (colour bars included) narrower or lower than ``min_axes_fraction`` of the figure;
    - a visible, non-empty text (labels, ticks, titles, legend entries) reaching outside the canvas;
    - a legend reaching outside the canvas;
    - a panel letter '(a)' overlapping another text.
    """
    import matplotlib.text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    problems = []

    def outside(bb):
        return (bb.x0 < canvas.x0 - slack_px or bb.y0 < canvas.y0 - slack_px
                or bb.x1 > canvas.x1 + slack_px or bb.y1 > canvas.y1 + slack_px)

    tick_labels, drawn_ticks = set(), []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        pos = ax.get_position()
        long_side = max(pos.width, pos.height) if ax.get_label() == "<colorbar>" else min(pos.width, pos.height)
        if long_side < min_axes_fraction:
            name = ax.get_label() or ax.get_ylabel() or ax.get_title() or "axes"
            problems.append(f"axes {name!r} collapsed: {pos.width:.2f} x {pos.height:.2f} of the figure")
        for axis in ax._axis_map.values():
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                tick_labels.update((tick.label1, tick.label2))
            for tick in axis._update_ticks():  # the ticks inside the view limits: those drawn
                drawn_ticks += [lab for lab in (tick.label1, tick.label2) if lab.get_visible()]
    texts = [t for t in fig.findobj(matplotlib.text.Text)
             if t not in tick_labels and t.get_visible() and t.get_figure() is not None]
    texts = [t for t in texts + drawn_ticks if t.get_text().strip()]
    boxes = []
    for t in texts:
        bb = t.get_window_extent(renderer)
        if bb.width == 0 or bb.height == 0:
            continue
        boxes.append((t, bb))
        if outside(bb):
            problems.append(f"text {t.get_text()!r} outside the canvas")
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    for leg in legends:
        if leg is not None and leg.get_visible() and outside(leg.get_window_extent(renderer)):
            problems.append("legend outside the canvas")
    letters = [(t, bb) for t, bb in boxes if re.fullmatch(r"\([a-z]\)", t.get_text())]
    for t, bb in letters:
        for other, obb in boxes:
            if other is not t and bb.overlaps(obb):
                problems.append(f"panel letter {t.get_text()} overlaps {other.get_text()!r}")
    return problems


# ----------------------------------------------------------------------------------------------
# Saving


def save_figure(fig: Figure, path: str | os.PathLike, formats: Sequence[str] = ("pdf", "png"),
                dpi: int = 200) -> list[Path]:
    """Write ``fig`` as ``path`` with each suffix of ``formats`` (same stem), atomically; returns the paths.

    PDF metadata carry no creation date, so the same figure gives the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    with plt.rc_context(STYLE):
        for fmt in formats:
            target = path.with_suffix(f".{fmt}")
            with atomic_output(target) as tmp:
                metadata = {"CreationDate": None} if fmt == "pdf" else None
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=metadata)
            out.append(target)
    return out
