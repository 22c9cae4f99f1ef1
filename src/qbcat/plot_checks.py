"""Figures of the convergence checks (qbcat.convergence) and of steady-state maps (qbcat.steady).

Units: hbar = omega_0 = 1, so energies are in hbar omega_0, times in 1/omega_0, and the heat
current in hbar omega_0^2. Figures are written atomically (temporary file, then renamed).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .convergence import OBSERVABLES, summary, verdicts  # noqa: E402
from .atomic import atomic_output, write_text

FONT = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9}
COLORS = {"ergotropy": "C0", "heat_current": "C1", "energy_cat": "C2"}
LABELS = {
    "ergotropy": r"ergotropy $\mathcal{E}$ [$\hbar\omega_0$]",
    "heat_current": r"heat current $J$ [$\hbar\omega_0^2$]",
    "energy_cat": r"catalyst energy $E_\mathrm{cat}$ [$\hbar\omega_0$]",
}
FREQUENCY_LIKE = {"omega_a", "omega_c", "g", "Omega", "omega_d", "kappa_1", "gamma_D"}
METHOD_MARKERS = {"adams": "o", "bdf": "s", "dop853": "^", "lsoda": "v", "vern7": "D", "vern9": "P", "tsit5": "X"}
FLOOR = 1e-16  # exact agreement (deviation 0) is drawn here on a log axis


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Save ``fig`` to ``path`` atomically (format from the suffix) and close it."""
    path = Path(path)
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def axis_label(name: str) -> str:
    """A swept parameter's axis label with its unit (frequencies and rates in omega_0)."""
    if name in FREQUENCY_LIKE:
        return f"{name} [$\\omega_0$]"
    if name == "t_max":
        return f"{name} [$1/\\omega_0$]"
    return name


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
        ax.semilogy(r["n_fock"], np.maximum(r["max_deviation"], FLOOR), "o-", color=c, label=name)
        if not same_threshold:
            ax.semilogy(r["n_fock"], r["threshold"], "--", color=c, lw=1, label=f"{name} threshold")
    if same_threshold:
        ax.axhline(rows["threshold"].iloc[0], color="k", ls="--", lw=1, label="threshold (all)")
    study = rows.loc[rows["required"], "n_fock"].unique()
    for n in study:
        ax.axvline(n, color="0.4", ls=":", lw=1.2, label=f"study n_fock = {int(n)}")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel(r"photon cutoff $n_\mathrm{fock}$ (levels 0 .. $n_\mathrm{fock}-1$)")
    ax.set_ylabel(r"max$_t$ |X - X$_\mathrm{ref}$|  [$\hbar\omega_0$; $\hbar\omega_0^2$ for J]")
    ax.set_title(f"photon cutoff, against {rows['reference'].iloc[0]}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(ncol=2)
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
                      label=method)
        if not r.empty:
            ax.axhline(r["threshold"].iloc[0], color="k", ls="--", lw=1, label="threshold")
            ax.set_title(f"{name}\nagainst {r['reference'].iloc[0]}", fontsize=10)
        ax.set_xlabel("relative tolerance rtol (atol as configured)")
        ax.set_ylabel(r"max$_t$ |X - X$_\mathrm{ref}$|  [" + LABELS[name].split("[")[1])
        ax.grid(True, which="major", alpha=0.3)
        ax.legend()
    return axes


def plot_checks(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """One figure: the cutoff panel on top, the tolerance panels below, the verdicts as a caption."""
    with plt.rc_context(FONT):
        fig = plt.figure(figsize=(13, 8.5), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.1, 1])
        plot_cutoff(table, top.subplots(1, 1))
        names = [o for o in OBSERVABLES if o in set(table.loc[table["check"] == "tolerance", "observable"])]
        plot_tolerance(table, bottom.subplots(1, max(len(names), 1), squeeze=False)[0])
        v = verdicts(table)
        status = "PASS" if len(v) and v["passed"].all() else "FAIL"
        fig.suptitle(f"convergence checks: {status}  (" + ", ".join(
            f"{r.check} {'PASS' if r.passed else 'FAIL'}" for r in v.itertuples()) + ")",
            color="k" if status == "PASS" else "red", fontweight="bold")
    return save_figure(fig, path)


def write_summary(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The text summary (qbcat.convergence.summary) written atomically next to the figure."""
    return write_text(summary(table) + "\n", path)


def plot_steady_map(ds, path: str | os.PathLike, variable: str = "ergotropy") -> Path:
    """Period-averaged asymptotic ``variable`` of a steady map: lines per case over a 1-D axis, or
    one colour map per case over the first two axes (other axes at their first value)."""
    axes = ds.attrs["sweep_axes"].split()
    da = ds[variable]
    unit = {"heat_current": r"$\hbar\omega_0^2$", "power": r"$\hbar\omega_0^2$",
            "net_flux": r"$\hbar\omega_0^2$", "relaxation_time": r"$1/\omega_0$"}.get(variable, r"$\hbar\omega_0$")
    if variable.startswith("bloch") or variable.startswith("n_") or variable.startswith("sanity"):
        unit = "1"
    label = f"{da.attrs.get('long_name', variable)} [{unit}]"
    with plt.rc_context(FONT):
        if len(axes) == 1:
            fig, ax = plt.subplots(figsize=(6, 4.2), layout="constrained")
            x = ds[axes[0]].values
            for case in ds["case"].values:
                ax.plot(x, da.sel(case=case).values, "o-", label=str(case))
            ax.set_xlabel(axis_label(axes[0]))
            ax.set_ylabel(label)
            ax.grid(True, alpha=0.3)
            ax.legend(title="case")
        else:
            extra = {a: 0 for a in axes[2:]}
            cases = list(ds["case"].values)
            fig, axs = plt.subplots(1, len(cases), figsize=(5.2 * len(cases), 4.2), layout="constrained",
                                    squeeze=False)
            sub = da.isel(extra) if extra else da
            vmin, vmax = float(np.nanmin(sub.values)), float(np.nanmax(sub.values))
            for ax, case in zip(axs[0], cases):
                z = sub.sel(case=case).transpose(axes[1], axes[0]).values
                mesh = ax.pcolormesh(ds[axes[0]].values, ds[axes[1]].values, z, shading="nearest",
                                     vmin=vmin, vmax=vmax)
                ax.set_xlabel(axis_label(axes[0]))
                ax.set_ylabel(axis_label(axes[1]))
                ax.set_title(str(case))
            fig.colorbar(mesh, ax=axs[0].tolist(), label=label)
        fig.suptitle(f"steady state (period average, no transient): {variable}")
    return save_figure(fig, path)
