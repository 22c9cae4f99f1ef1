"""Figures of the convergence checks (qbcat.science.convergence) and of steady-state maps (qbcat.science.steady).

Units: hbar = omega_0 = 1, so energies are in hbar omega_0, times in 1/omega_0, and the heat
current in hbar omega_0^2. The style, labels and saving are those of the paper figures
(:mod:`qbcat.figures.plots`: ``STYLE``, ``param_label``, ``save_figure``), so every figure of a run looks
alike and honours ``plots.dpi``. Each ``figure_*`` returns a Figure (for checks and tests); each
``plot_*`` draws and writes it atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import plots  # noqa: E402
from ..atomic import write_text  # noqa: E402
from ..science.convergence import OBSERVABLES, summary, verdicts  # noqa: E402

COLORS = {"ergotropy": "C0", "heat_current": "C1", "energy_cat": "C2"}
LABELS = {
    "ergotropy": (r"ergotropy $\mathcal{E}$", r"$\hbar\omega_0$"),
    "heat_current": (r"heat current $J$", r"$\hbar\omega_0^2$"),
    "energy_cat": (r"catalyst energy $E_\mathrm{cat}$", r"$\hbar\omega_0$"),
}
METHOD_MARKERS = {"adams": "o", "bdf": "s", "dop853": "^", "lsoda": "v", "vern7": "D", "vern9": "P", "tsit5": "X"}
FLOOR = 1e-16  # exact agreement (deviation 0) is drawn here on a log axis
DEVIATION_LABEL = r"$\mathrm{max}_t\,|X - X_\mathrm{ref}|$"


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Save ``fig`` to ``path`` (format from the suffix) with :func:`qbcat.figures.plots.save_figure`
    (atomic, the one style), at ``dpi``, and close it."""
    path = Path(path)
    try:
        plots.save_figure(fig, path, formats=(path.suffix.lstrip(".") or "png",), dpi=dpi)
    finally:
        plt.close(fig)
    return path


def axis_label(name: str) -> str:
    """A swept parameter's axis label with its unit, as in the paper figures."""
    if name == "t_max":
        return r"$t_\mathrm{max}$ ($1/\omega_0$)"
    return plots.param_label(name)


def _deviation_label(names) -> str:
    units = {LABELS[n][1] for n in names if n in LABELS}
    unit = units.pop() if len(units) == 1 else r"$\hbar\omega_0$; $\hbar\omega_0^2$ for $J$"
    return f"{DEVIATION_LABEL} ({unit})"


def plot_cutoff(table: pd.DataFrame, ax=None):
    """Max deviation from the reference cutoff vs n_fock (log y), per observable, with thresholds."""
    rows = table[table["check"] == "cutoff"]
    ax = ax or plt.subplots(figsize=(6, 4.2))[1]
    if rows.empty:
        ax.text(0.5, 0.5, "no cutoff check", ha="center", va="center", transform=ax.transAxes)
        return ax
    names = [o for o in OBSERVABLES if o in set(rows["observable"])]
    same_threshold = rows["threshold"].nunique() == 1
    for name in names:
        r = rows[rows["observable"] == name].sort_values("n_fock")
        c = COLORS[name]
        ax.semilogy(r["n_fock"], np.maximum(r["max_deviation"], FLOOR), "o-", ms=4, color=c, label=LABELS[name][0])
        if not same_threshold:
            ax.semilogy(r["n_fock"], r["threshold"], "--", color=c, lw=1, label=f"{LABELS[name][0]} threshold")
    if same_threshold:
        ax.axhline(rows["threshold"].iloc[0], color="k", ls="--", lw=1, label="threshold (all)")
    study = rows.loc[rows["required"], "n_fock"].unique()
    for n in study:
        ax.axvline(n, color="0.4", ls=":", lw=1.2, label=f"study cutoff $n_\\mathrm{{Fock}}$ = {int(n)}")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel(r"photon cutoff $n_\mathrm{Fock}$ (levels 0 .. $n_\mathrm{Fock}-1$)")
    ax.set_ylabel(_deviation_label(names))
    ax.set_title(f"photon cutoff, against {rows['reference'].iloc[0]}", loc="left")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(ncols=2, loc="best")
    return ax


def plot_tolerance(table: pd.DataFrame, axes=None):
    """Max deviation from the tightest run vs rtol, one panel per observable, one line per method."""
    rows = table[table["check"] == "tolerance"]
    names = [o for o in OBSERVABLES if o in set(rows["observable"])] or list(OBSERVABLES)
    if axes is None:
        axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)[1][0]
    if rows.empty:
        axes[0].text(0.5, 0.5, "no tolerance check", ha="center", va="center", transform=axes[0].transAxes)
        return axes
    for ax, name in zip(axes, names):
        r = rows[rows["observable"] == name]
        for method in dict.fromkeys(r["method"]):
            m = r[r["method"] == method].sort_values("rtol")
            ax.loglog(m["rtol"], np.maximum(m["max_deviation"], FLOOR), marker=METHOD_MARKERS.get(method, "o"),
                      ms=4, label=method)
        if not r.empty:
            ax.axhline(r["threshold"].iloc[0], color="k", ls="--", lw=1, label="threshold")
            ax.set_title(LABELS[name][0], fontsize=8)
        ax.set_xlabel("relative tolerance rtol\n(atol as configured)")
        ax.set_ylabel(_deviation_label([name]))
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="best")
    return axes


def figure_checks(table: pd.DataFrame):
    """One figure: the cutoff panel on top, the tolerance panels below, the verdicts as a caption."""
    with plt.rc_context(plots.STYLE):
        fig = plt.figure(figsize=(7.2, 6.4), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.1, 1])
        plot_cutoff(table, top.subplots(1, 1))
        names = [o for o in OBSERVABLES if o in set(table.loc[table["check"] == "tolerance", "observable"])]
        plot_tolerance(table, bottom.subplots(1, max(len(names), 1), squeeze=False)[0])
        reference = table.loc[table["check"] == "tolerance", "reference"]
        if len(reference):
            bottom.suptitle(f"solver tolerance, against {reference.iloc[0]}", fontsize=9, x=0.02, ha="left")
        v = verdicts(table)
        status = "PASS" if len(v) and v["passed"].all() else "FAIL"
        fig.suptitle(f"convergence checks: {status}  (" + ", ".join(
            f"{r.check} {'PASS' if r.passed else 'FAIL'}" for r in v.itertuples()) + ")",
            color="k" if status == "PASS" else "red", fontweight="bold")
    return fig


def plot_checks(table: pd.DataFrame, path: str | os.PathLike, dpi: int = 150) -> Path:
    """:func:`figure_checks` written to ``path`` (format from the suffix) at ``dpi``."""
    return save_figure(figure_checks(table), path, dpi=dpi)


def figure_convergence_overview(table: pd.DataFrame):
    """Every check of every point as one bar: its worst required deviation / threshold (log x).

    ``table``: the workflow's combined pass/fail table (one row per point and check)."""
    ratio = (table["worst_deviation"] / table["threshold"]).to_numpy(dtype=float)
    failed_run = ~np.isfinite(ratio)
    shown = np.clip(np.where(failed_run, 1e3, ratio), 1e-6, 1e3)
    fail = (table["verdict"] == "FAIL").to_numpy()
    n_fail = int(fail.sum())
    with plt.rc_context(plots.STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 1.6 + 0.22 * len(table)), layout="constrained")
        y = np.arange(len(table))[::-1]
        ax.barh(y, shown, left=1e-6, color=np.where(fail, "#d62728", "#2ca02c"), height=0.7)
        ax.set_xscale("log")
        ax.set_xlim(1e-6, 2e3)
        ax.axvline(1.0, color="k", ls="--", lw=1, label="threshold (deviation = threshold)")
        for yy, is_bad, r, exact in zip(y, failed_run, shown, ratio == 0):
            if is_bad or exact:
                ax.text(r, yy, " run failed" if is_bad else " 0 (identical)", va="center", fontsize=7,
                        color="#d62728" if is_bad else "k")
        ax.set_yticks(y, [f"{lab} [{chk}]" for lab, chk in zip(table["label"], table["check"])], fontsize=7)
        ax.set_xlabel(f"worst required {DEVIATION_LABEL} / threshold (log; < 1 passes)")
        status = f"FAIL: {n_fail} of {len(table)} checks" if n_fail else f"PASS: all {len(table)} checks"
        n_points = table["point_id"].nunique()
        ax.set_title(f"convergence checks at {n_points} point{'s' if n_points != 1 else ''}: {status}",
                     color="#d62728" if n_fail else "k", fontweight="bold")
        ax.legend(loc="lower right", fontsize=7)
        ax.grid(True, axis="x", which="major", alpha=0.3)
    return fig


def write_summary(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The text summary (qbcat.science.convergence.summary) written atomically next to the figure."""
    return write_text(summary(table) + "\n", path)


#: Steady-map variables: (symbol, unit) for the axis and colour-bar labels.
STEADY_LABELS = {
    "ergotropy": (r"$\bar{\mathcal{E}}$", r"$\hbar\omega_0$"),
    "energy_qb": (r"$\bar{E}_\mathrm{QB}$", r"$\hbar\omega_0$"),
    "energy_cat": (r"$\bar{E}_\mathrm{cat}$", r"$\hbar\omega_0$"),
    "heat_current": (r"$\bar{J}$", r"$\hbar\omega_0^2$"),
    "heat_current_catalyst": (r"$\bar{J}_\mathrm{cat}$", r"$\hbar\omega_0^2$"),
    "heat_current_dephasing": (r"$\bar{J}_\mathrm{deph}$", r"$\hbar\omega_0^2$"),
    "power": (r"$\bar{P}$", r"$\hbar\omega_0^2$"),
    "net_flux": (r"$\bar{F}$", r"$\hbar\omega_0^2$"),
    "relaxation_time": (r"$\tau$", r"$1/\omega_0$"),
}


def _steady_label(ds, variable: str) -> str:
    symbol, unit = STEADY_LABELS.get(variable, (variable.replace("_", r"\_"), "1"))
    name = str(ds[variable].attrs.get("long_name", variable))
    name = name.replace("period-averaged asymptotic ", "")
    return f"{name} {symbol} ({unit})" if unit != "1" else f"{name} {symbol}"


def _map_panel(fig, ax, ds, axes, z, label, norm, cmap, title, fmt=".2g"):
    """One colour map over the first two axes (cell edges and ticks as the enhancement maps)."""
    xv, yv = ds[axes[0]].values, ds[axes[1]].values
    xlog, ylog = plots.is_log_spaced(xv), plots.is_log_spaced(yv)
    ox, oy = np.argsort(xv), np.argsort(yv)
    z = z[np.ix_(oy, ox)]
    mesh = ax.pcolormesh(plots.cell_edges(xv[ox], xlog), plots.cell_edges(yv[oy], ylog), np.ma.masked_invalid(z),
                         cmap=plt.get_cmap(cmap).with_extremes(bad="0.75"), norm=norm, shading="flat")
    if xlog:
        ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
    plots._value_ticks(ax, "x", xv, xlog)
    plots._value_ticks(ax, "y", yv, ylog)
    if z.size <= 64:  # small maps: each cell's value
        for iy, yy in enumerate(yv[oy]):
            for ix, xx in enumerate(xv[ox]):
                if np.isfinite(z[iy, ix]):
                    v = norm(z[iy, ix])
                    dark = abs(v - 0.5) > 0.3 if cmap == "RdBu_r" else v < 0.55  # viridis: dark when low
                    ax.text(xx, yy, f"{z[iy, ix]:{fmt}}", ha="center", va="center", fontsize=6.5,
                            color="white" if dark else "black")
    ax.set_xlabel(axis_label(axes[0]))
    ax.set_ylabel(axis_label(axes[1]))
    ax.set_title(title, loc="right")
    fig.colorbar(mesh, ax=ax, label=label)


def figure_steady_map(ds, variable: str = "ergotropy"):
    """Period-averaged asymptotic ``variable`` of a steady map (no transient).

    1-D map: one line per case. 2-D (first two axes; others at their first value): the catalyzed
    map and its difference from the uncatalyzed baseline; the baseline gets a map of its own only
    when it varies over the map (a qubit-only baseline does not depend on catalyst parameters,
    so its value is then quoted in the difference panel's title instead); and, when the map has
    it, the catalyzed relaxation time, with the cells checked against the full propagator circled."""
    axes = ds.attrs["sweep_axes"].split()
    da = ds[variable]
    label = _steady_label(ds, variable)
    cases = [str(c) for c in ds["case"].values]
    with plt.rc_context(plots.STYLE):
        if len(axes) == 1:
            fig, ax = plt.subplots(figsize=(3.6, 2.9), layout="constrained")
            x = ds[axes[0]].values
            for case in cases:
                style = dict(color=plots.BASELINE_COLOR, ls="--") if case == "baseline" else dict(color="C0")
                ax.plot(x, da.sel(case=case).values, marker="o", ms=3,
                        label="uncatalyzed" if case == "baseline" else case, **style)
            ax.set_xlabel(axis_label(axes[0]))
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            ax.legend(loc="best")
        else:
            sub = da.isel({a: 0 for a in axes[2:]}) if len(axes) > 2 else da
            cat = sub.sel(case="catalyzed").transpose(axes[1], axes[0]).values
            base = sub.sel(case="baseline").transpose(axes[1], axes[0]).values if "baseline" in cases else None
            panels = [("catalyzed", cat, label, "viridis")]
            dsub = ds.isel({a: 0 for a in axes[2:]}) if len(axes) > 2 else ds
            tau = dsub["relaxation_time"] if variable != "relaxation_time" and "relaxation_time" in ds else None
            # uniform up to the steady state's accuracy (~1e-7): e.g. the unital baseline's
            # ergotropy, 0 at every gamma_D, computed as 1e-9..5e-8
            uniform = base is not None and np.nanmax(base) - np.nanmin(base) <= 1e-6 * max(
                1.0, float(np.nanmax(np.abs(base))))
            if base is not None and not uniform:
                panels.append(("uncatalyzed", base, label, "viridis"))
            if base is not None:
                title = "catalyzed $-$ uncatalyzed"
                if uniform:
                    title += f"\n(uncatalyzed: {float(np.nanmean(base)):.3g} at every cell)"
                panels.append((title, cat - base, f"difference of {label}", "RdBu_r"))
            if tau is not None:  # how fast the catalyzed cell relaxes to it
                z_tau = tau.sel(case="catalyzed").transpose(axes[1], axes[0]).values
                panels.append(("catalyzed: relaxation time", z_tau, r"relaxation time $\tau$ ($1/\omega_0$)", "plasma"))
            fig = plt.figure(figsize=(3.6 * len(panels), 3.0), layout="constrained")
            axs = fig.subplots(1, len(panels), squeeze=False)[0]
            lo = float(np.nanmin([np.nanmin(p[1]) for p in panels if p[3] == "viridis"]))
            hi = float(np.nanmax([np.nanmax(p[1]) for p in panels if p[3] == "viridis"]))
            for k, (ax, (title, z, lab, cmap)) in enumerate(zip(axs, panels)):
                if cmap == "RdBu_r":
                    half = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
                    norm = matplotlib.colors.Normalize(-max(half, 1e-12), max(half, 1e-12))
                elif cmap == "plasma":
                    finite = z[np.isfinite(z)]
                    zlo, zhi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
                    norm = matplotlib.colors.Normalize(zlo, zhi if zhi > zlo else zlo + 1e-12)
                else:
                    norm = matplotlib.colors.Normalize(lo, hi if hi > lo else lo + 1e-12)
                _map_panel(fig, ax, ds, axes, z, lab, norm, cmap, title, fmt=".3g" if cmap == "plasma" else ".2g")
                if cmap == "plasma" and "relaxation_time_propagator" in ds:
                    checked = dsub["relaxation_time_propagator"].sel(case="catalyzed")
                    cells = np.argwhere(np.isfinite(checked.transpose(axes[0], axes[1]).values))
                    if cells.size:  # framed, and said in the title: a legend box would hide cells
                        xv, yv = ds[axes[0]].values, ds[axes[1]].values
                        ox, oy = np.argsort(xv), np.argsort(yv)
                        xe = plots.cell_edges(xv[ox], plots.is_log_spaced(xv))
                        ye = plots.cell_edges(yv[oy], plots.is_log_spaced(yv))
                        rx, ry = np.argsort(ox), np.argsort(oy)  # a value's position on the sorted axis
                        for i, j in cells:
                            a, b = rx[i], ry[j]
                            ax.add_patch(matplotlib.patches.Rectangle(
                                (xe[a], ye[b]), xe[a + 1] - xe[a], ye[b + 1] - ye[b], fill=False, ec="white", lw=1.2))
                        ax.set_title(f"{title}\n(framed: checked against the full propagator)", loc="right")
                plots.panel_letter(ax, "abcdefgh"[k], x=-0.25)
        fig.suptitle("periodic steady state (period average, no transient)", fontsize=9)
    return fig


def plot_steady_map(ds, path: str | os.PathLike, variable: str = "ergotropy", dpi: int = 150) -> Path:
    """:func:`figure_steady_map` written to ``path`` (format from the suffix) at ``dpi``."""
    return save_figure(figure_steady_map(ds, variable), path, dpi=dpi)
