"""Science products of a sweep: ergotropy enhancement, backflow statistics and their correlation.

Every function works on a *sweep dataset* (see the workflow's data contract): dimensions
``(*axes, case, time)`` where ``axes`` are the swept parameters (attribute ``sweep_axes``),
``case`` holds ``"catalyzed"`` and ``"baseline"``, and ``time`` is the output time. Results are
vectorised over all non-time dimensions and carry ``units`` and ``long_name`` on every variable.
Energies are in units of hbar*omega_0, times in units of 1/omega_0 and rates (the heat current
J) in hbar*omega_0^2; all are stored with ``units = "1"`` as in the point datasets.

Windows (all bounds inclusive, in time units):

- the *averaging window* ``[t_start, t_end]`` (default: the whole run) for the time-averaged
  enhancement and for the backflow statistics;
- the *late window* ``[t_last - late_duration, t_last]`` (default ``late_duration``: the final
  ``LATE_FRACTION`` of the run) for the asymptotic values.

Time averages are trapezoid integrals divided by the span of the samples inside the window, so
they do not depend on the grid being uniform.

Sign convention: J < 0 is energy backflow into the battery, so *stronger* backflow means a
*more negative* ``min_heat_current`` and ``integrated_backflow``; a backflow-enhancement link
therefore shows up as a *negative* correlation coefficient with those two metrics.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats
from ..atomic import write_text

CASE = "case"
CATALYZED = "catalyzed"
BASELINE = "baseline"
TIME = "time"

#: The late window is the final LATE_FRACTION of the run unless ``late_duration`` is given.
LATE_FRACTION = 0.1
#: |baseline| at or below this (energy units) makes a ratio NaN instead of huge or infinite.
RATIO_FLOOR = 1e-6
#: J counts as backflow where J < -BACKFLOW_TOLERANCE (rate units): ignores solver round-off.
BACKFLOW_TOLERANCE = 1e-10
#: End of the early window (1/omega_0) of the per-channel columns of :func:`point_table`.
EARLY_T_END = 5.0

ENHANCEMENT_METRICS = ("mean", "peak", "late")
ENHANCEMENT_KINDS = ("difference", "ratio")
BACKFLOW_METRICS = (
    "min_heat_current",
    "time_of_min_heat_current",
    "first_backflow_time",
    "backflow_fraction",
    "integrated_backflow",
    "late_mean_heat_current",
)

_METRIC_TEXT = {
    "mean": "time-averaged ergotropy",
    "peak": "peak ergotropy",
    "late": "late-time (asymptotic) ergotropy",
}
_BACKFLOW_TEXT = {
    "min_heat_current": ("1", "most negative heat current J (minimum of J in the window)"),
    "time_of_min_heat_current": ("1", "time of the most negative heat current"),
    "first_backflow_time": ("1", "first time with J < 0 (NaN if never)"),
    "backflow_fraction": ("1", "fraction of the window's time with J < 0"),
    "integrated_backflow": ("1", "integrated backflow: trapezoid integral of min(J, 0) over the window"),
    "late_mean_heat_current": ("1", "late-time mean heat current J"),
}

#: The heat current's two channels (docs/heat-channels.md): J = J_cat + J_deph.
CHANNELS = {"catalyst": "heat_current_catalyst", "dephasing": "heat_current_dephasing"}
CHANNEL_METRICS = (
    "min_heat_current_catalyst",
    "min_heat_current_dephasing",
    "integrated_backflow_catalyst",
    "integrated_backflow_dephasing",
    "backflow_catalyst_share",
    "backflow_time_catalyst_dominant",
    "window_fraction_catalyst_backflow",
)
#: The channel metrics :func:`correlation_table` correlates with the enhancement.
CHANNEL_CORRELATED = ("integrated_backflow_catalyst", "integrated_backflow_dephasing",
                      "min_heat_current_catalyst", "min_heat_current_dephasing")
_CHANNEL_TEXT = {
    "min_heat_current_catalyst": "most negative catalyst-channel heat current J_cat in the window",
    "min_heat_current_dephasing": "most negative dephasing-channel heat current J_deph in the window",
    "integrated_backflow_catalyst": "trapezoid integral of min(J_cat, 0) over the window",
    "integrated_backflow_dephasing": "trapezoid integral of min(J_deph, 0) over the window",
    "backflow_catalyst_share": "catalyst share of the negative channel contributions while J < 0: "
                               "int_B min(J_cat, 0) dt / int_B [min(J_cat, 0) + min(J_deph, 0)] dt, "
                               "B = {t: J < 0} (NaN if no backflow)",
    "backflow_time_catalyst_dominant": "fraction of the backflow time (J < 0) in which the catalyst channel "
                                       "is the more negative one, J_cat <= J_deph (NaN if no backflow)",
    "window_fraction_catalyst_backflow": "fraction of the window's time with J < 0 and J_cat <= J_deph",
}


TIME_ATTRS = {"units": "1", "long_name": "time", "comment": "in units of 1/omega_0"}


class SweepFormatError(ValueError):
    """A dataset that is not in the sweep format; the message names what is missing."""


# ----------------------------------------------------------------------------------------------
# The sweep format


def sweep_axes(ds: xr.Dataset) -> list[str]:
    """The swept parameter names, in order: attribute ``sweep_axes``, else the non-case/time dims."""
    text = ds.attrs.get("sweep_axes")
    if text is None:
        return [d for d in ds.dims if d not in (CASE, TIME)]
    return str(text).split()


def sweep_name(ds: xr.Dataset, default: str = "sweep") -> str:
    return str(ds.attrs.get("sweep_name", default))


def validate_sweep(ds: xr.Dataset, variables: Iterable[str] = ("ergotropy",)) -> list[str]:
    """Check ``ds`` is a sweep dataset holding ``variables``; return its axes.

    Raises SweepFormatError with a one-line message naming the sweep and what is wrong.
    """
    if not isinstance(ds, xr.Dataset):
        raise SweepFormatError(f"expected an xarray Dataset, got {type(ds).__name__}")
    name = sweep_name(ds)
    if TIME not in ds.dims:
        raise SweepFormatError(f"sweep {name!r}: no 'time' dimension")
    if CASE not in ds.dims:
        raise SweepFormatError(f"sweep {name!r}: no 'case' dimension")
    cases = [str(c) for c in ds[CASE].values]
    for c in (CATALYZED, BASELINE):
        if c not in cases:
            raise SweepFormatError(f"sweep {name!r}: case {c!r} missing (cases: {', '.join(cases)})")
    t = np.asarray(ds[TIME].values, dtype=float)
    if t.size < 2 or not np.all(np.diff(t) > 0):
        raise SweepFormatError(f"sweep {name!r}: 'time' must hold >= 2 strictly increasing values")
    axes = sweep_axes(ds)
    for a in axes:
        if a not in ds.dims:
            raise SweepFormatError(f"sweep {name!r}: axis {a!r} (from sweep_axes) is not a dimension")
    for v in variables:
        if v not in ds.data_vars:
            raise SweepFormatError(f"sweep {name!r}: variable {v!r} missing")
        missing = {CASE, TIME} - set(ds[v].dims)
        if missing:
            raise SweepFormatError(f"sweep {name!r}: variable {v!r} lacks dimension(s) {sorted(missing)}")
    return axes


def build_sweep(
    axes: Mapping[str, Iterable[float]],
    time: Iterable[float],
    catalyzed: Mapping[str, np.ndarray],
    baseline: Mapping[str, np.ndarray],
    name: str = "sweep",
    attrs: Mapping | None = None,
    point_ids: Mapping[str, np.ndarray] | None = None,
) -> xr.Dataset:
    """Assemble a sweep dataset from arrays (used by the tests; documents the format in code).

    ``catalyzed[var]`` and ``baseline[var]`` have shape ``(*axis lengths, n_time)``; a baseline
    array may also have shape ``(n_time,)`` (one baseline shared by all points). A variable
    absent from ``baseline`` (e.g. ``energy_cat``) is NaN there. ``point_ids`` optionally maps
    ``"catalyzed"``/``"baseline"`` to string arrays of shape ``(*axis lengths,)``.
    """
    from ..data.datasets import VARIABLES  # the point datasets' units and long names

    axes = {k: np.asarray(list(v), dtype=float) for k, v in axes.items()}
    time = np.asarray(list(time), dtype=float)
    shape = tuple(len(v) for v in axes.values()) + (len(time),)
    dims = (*axes, CASE, TIME)
    ds = xr.Dataset(coords={**{k: (k, v) for k, v in axes.items()}, CASE: [CATALYZED, BASELINE], TIME: time})
    for var in catalyzed:
        c = np.broadcast_to(np.asarray(catalyzed[var], dtype=float), shape)
        b = baseline.get(var)
        b = np.full(shape, np.nan) if b is None else np.broadcast_to(np.asarray(b, dtype=float), shape)
        ds[var] = (dims, np.stack([c, b], axis=-2))
        units, long_name, comment = VARIABLES.get(var, ("1", var, ""))
        ds[var].attrs.update(units=units, long_name=long_name, comment=comment)
    if point_ids is not None:
        pid = np.stack([np.broadcast_to(np.asarray(point_ids[c], dtype=str), shape[:-1])
                        for c in (CATALYZED, BASELINE)], axis=-1)
        ds["point_id"] = (dims[:-1], pid)
        ds["point_id"].attrs.update(units="1", long_name="point identity (hash of canonical parameters)")
    for k in axes:
        ds[k].attrs.update(units="1", long_name=k)
    ds[TIME].attrs.update(TIME_ATTRS)
    ds[CASE].attrs.update(long_name="catalyzed point or its uncatalyzed baseline")
    ds.attrs.update(dict(attrs or {}))
    ds.attrs.update(sweep_name=name, sweep_axes=" ".join(axes))
    return ds


# ----------------------------------------------------------------------------------------------
# Windows and time averages


def resolve_window(time: np.ndarray, t_start: float | None, t_end: float | None, what: str = "window"):
    """``(t_lo, t_hi)`` of the first and last samples inside ``[t_start, t_end]``; checks the bounds."""
    time = np.asarray(time, dtype=float)
    t0 = time[0] if t_start is None else float(t_start)
    t1 = time[-1] if t_end is None else float(t_end)
    if not t0 < t1:
        raise ValueError(f"{what}: t_start={t0} must be smaller than t_end={t1}")
    inside = time[(time >= t0) & (time <= t1)]
    if inside.size < 2:
        raise ValueError(
            f"{what}: [{t0}, {t1}] holds {inside.size} output time(s) of [{time[0]}, {time[-1]}]; need >= 2"
        )
    return float(inside[0]), float(inside[-1])


def late_window(time: np.ndarray, late_duration: float | None = None):
    """``(t_lo, t_hi)`` of the late window: the final ``late_duration`` (default LATE_FRACTION) of the run."""
    time = np.asarray(time, dtype=float)
    span = time[-1] - time[0]
    d = LATE_FRACTION * span if late_duration is None else float(late_duration)
    if not 0 < d <= span:
        raise ValueError(f"late_duration={d} must be > 0 and <= the run's length {span}")
    return resolve_window(time, time[-1] - d, time[-1], what="late window")


def time_average(da: xr.DataArray, t_lo: float, t_hi: float) -> xr.DataArray:
    """(1/(t_hi - t_lo)) * trapezoid integral of ``da`` over the samples in [t_lo, t_hi]."""
    part = da.sel({TIME: slice(t_lo, t_hi)})
    return part.integrate(TIME) / (t_hi - t_lo)


def _case(da: xr.DataArray, case: str) -> xr.DataArray:
    return da.sel({CASE: case}, drop=True)


def _attrs(units: str, long_name: str, **extra) -> dict:
    return {"units": units, "long_name": long_name, **extra}


def _derived_attrs(ds: xr.Dataset, title: str, made_by: str) -> dict:
    """The sweep's attributes (parameters, versions) for a product derived from it, with its own
    title and one more line of history; the sweep's ``id`` is not carried over."""
    from .. import __version__

    attrs = {k: v for k, v in ds.attrs.items() if k != "id"}
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    line = f"{stamp}: {made_by} (qbcat {__version__})"
    attrs["history"] = f"{attrs['history']}\n{line}" if attrs.get("history") else line
    attrs["title"] = title
    return attrs


# ----------------------------------------------------------------------------------------------
# Ergotropy enhancement


def guarded_ratio(num: xr.DataArray, den: xr.DataArray, floor: float = RATIO_FLOOR) -> tuple[xr.DataArray, str]:
    """``num/den`` with NaN where ``|den| <= floor``; returns the ratio and a note saying how many."""
    small = np.abs(den) <= floor
    ratio = (num / den.where(~small)).where(~small)
    n_bad = int(small.sum())
    note = (f"NaN where |baseline| <= {floor:g} ({n_bad} of {int(small.size)} points)"
            if n_bad else f"baseline above {floor:g} everywhere")
    return ratio, note


def with_certificates(out: xr.Dataset, ds: xr.Dataset, case: str | None = None) -> xr.Dataset:
    """``out`` with the sweep's cutoff flag ``cutoff_ok`` and chosen cutoff ``n_fock`` (of ``case``,
    or per case), and the attribute ``uncertified_points``: how many of its points fail their
    cutoff certificate (qbcat.engine.cutoff). A product made from such points says so."""
    if "cutoff_ok" not in ds.data_vars:
        return out
    for name in ("cutoff_ok", "n_fock"):
        if name in ds.data_vars:
            da = ds[name] if case is None else _case(ds[name], case)
            out[name] = da.reset_coords(drop=True)
    failed = (out["cutoff_ok"] == 0).values
    ids = (out["point_id"].values[failed] if "point_id" in out.coords else np.array([], dtype=str))
    out.attrs["uncertified_points"] = int(failed.sum())
    out.attrs["uncertified_point_ids"] = " ".join(sorted({str(i) for i in np.ravel(ids)}))
    return out


def uncertified(ds: xr.Dataset) -> int:
    """How many points of a product fail their cutoff certificate (0 when it has no flags)."""
    return int(ds.attrs.get("uncertified_points", 0))


def ergotropy_enhancement(
    ds: xr.Dataset,
    *,
    t_start: float | None = None,
    t_end: float | None = None,
    late_duration: float | None = None,
    ratio_floor: float = RATIO_FLOOR,
    variable: str = "ergotropy",
) -> xr.Dataset:
    """Enhancement of ``variable`` (catalyzed vs baseline) for every point of a sweep.

    For each metric m of
      mean: (1/T) int_{t_start}^{t_end} E(t) dt,
      peak: max_t E(t) over the whole run,
      late: mean of E(t) over the late window,
    the result holds ``m_catalyzed``, ``m_baseline``, ``m_difference`` = catalyzed - baseline and
    ``m_ratio`` = catalyzed / baseline (NaN, with a ``note`` attribute, where |baseline| <= ratio_floor).
    Dims: the sweep axes; the catalyzed ``point_id`` is kept as a coordinate when present.
    """
    validate_sweep(ds, [variable])
    time = ds[TIME].values
    lo, hi = resolve_window(time, t_start, t_end, what="averaging window")
    late_lo, late_hi = late_window(time, late_duration)
    da = ds[variable]
    units = da.attrs.get("units", "1")
    what = da.attrs.get("long_name", variable)

    values = {
        "mean": time_average(da, lo, hi),
        "peak": da.max(TIME),
        "late": time_average(da, late_lo, late_hi),
    }
    out = xr.Dataset()
    notes = []
    for m, v in values.items():
        cat, base = _case(v, CATALYZED), _case(v, BASELINE)
        desc = _METRIC_TEXT[m] if variable == "ergotropy" else f"{m} {what}"
        out[f"{m}_catalyzed"] = cat.assign_attrs(_attrs(units, f"{desc}, catalyzed"))
        out[f"{m}_baseline"] = base.assign_attrs(_attrs(units, f"{desc}, uncatalyzed baseline"))
        out[f"{m}_difference"] = (cat - base).assign_attrs(
            _attrs(units, f"{desc} enhancement: catalyzed - baseline"))
        ratio, note = guarded_ratio(cat, base, ratio_floor)
        out[f"{m}_ratio"] = ratio.assign_attrs(_attrs("1", f"{desc} ratio: catalyzed / baseline", note=note))
        notes.append(f"{m}_ratio: {note}")
    if "point_id" in ds.data_vars or "point_id" in ds.coords:
        pid = _case(ds["point_id"], CATALYZED)
        out = out.assign_coords(point_id=pid.assign_attrs(_attrs("1", "catalyzed point identity")))
    out = with_certificates(out, ds, CATALYZED)
    out.attrs.update(_derived_attrs(ds, f"ergotropy enhancement of sweep {sweep_name(ds)}",
                                    "qbcat.science.analysis.ergotropy_enhancement"))
    out.attrs.update(
        variable=variable,
        window_start=lo, window_end=hi, late_start=late_lo, late_end=late_hi,
        ratio_floor=ratio_floor,
        ratio_notes="; ".join(notes),
    )
    return out


# ----------------------------------------------------------------------------------------------
# Backflow statistics


def backflow_statistics(
    ds: xr.Dataset,
    *,
    t_start: float | None = None,
    t_end: float | None = None,
    late_duration: float | None = None,
    tolerance: float = BACKFLOW_TOLERANCE,
) -> xr.Dataset:
    """Backflow statistics of J(t) = ``heat_current`` per point and case (dims ``(*axes, case)``).

    Inside the window [t_start, t_end]: the most negative J and its time, the first time with
    J < -tolerance (NaN if never), the time fraction with J < -tolerance (trapezoid integral of
    the indicator over the window length) and the integrated backflow int min(J, 0) dt (<= 0).
    Over the late window: the mean of J.
    """
    validate_sweep(ds, ["heat_current"])
    time = ds[TIME].values
    lo, hi = resolve_window(time, t_start, t_end, what="backflow window")
    late_lo, late_hi = late_window(time, late_duration)
    J = ds["heat_current"]
    Jw = J.sel({TIME: slice(lo, hi)})
    backflow = Jw < -tolerance

    out = xr.Dataset()
    out["min_heat_current"] = Jw.min(TIME)
    out["time_of_min_heat_current"] = Jw[TIME].isel({TIME: Jw.fillna(np.inf).argmin(TIME)}).drop_vars(TIME)
    out["first_backflow_time"] = Jw[TIME].where(backflow).min(TIME)
    out["backflow_fraction"] = backflow.astype(float).integrate(TIME) / (hi - lo)
    out["integrated_backflow"] = Jw.clip(max=0.0).integrate(TIME)
    out["late_mean_heat_current"] = time_average(J, late_lo, late_hi)
    out = out.where(Jw.notnull().any(TIME))  # a missing point (NaN gap of the sweep): NaN throughout
    for name, (units, long_name) in _BACKFLOW_TEXT.items():
        out[name].attrs = _attrs(units, long_name)
    out["time_of_min_heat_current"].attrs["comment"] = "in units of 1/omega_0"
    out["first_backflow_time"].attrs["comment"] = f"J < -{tolerance:g} counts as backflow"
    out["integrated_backflow"].attrs["comment"] = "energy, hbar*omega_0; more negative = more backflow"
    if "point_id" in ds.data_vars or "point_id" in ds.coords:
        out = out.assign_coords(point_id=ds["point_id"].assign_attrs(_attrs("1", "point identity")))
    out = with_certificates(out, ds)
    out.attrs.update(_derived_attrs(ds, f"backflow statistics of sweep {sweep_name(ds)}",
                                    "qbcat.science.analysis.backflow_statistics"))
    out.attrs.update(window_start=lo, window_end=hi, late_start=late_lo, late_end=late_hi,
                     backflow_tolerance=tolerance)
    return out


def has_channels(ds: xr.Dataset) -> bool:
    """True when the sweep holds both channels of the heat current (qbcat >= the channel split)."""
    return all(v in ds.data_vars for v in CHANNELS.values())


def channel_statistics(
    ds: xr.Dataset,
    *,
    t_start: float | None = None,
    t_end: float | None = None,
    tolerance: float = BACKFLOW_TOLERANCE,
) -> xr.Dataset:
    """Which channel carries the backflow, per point and case (dims ``(*axes, case)``).

    J = J_cat + J_deph (``heat_current_catalyst``, ``heat_current_dephasing``). Inside the window
    [t_start, t_end], with B the backflow times (J < -tolerance):

    - ``min_heat_current_<channel>``, ``integrated_backflow_<channel>`` = int min(J_channel, 0) dt;
    - ``backflow_catalyst_share`` = int_B min(J_cat, 0) dt / int_B [min(J_cat, 0) + min(J_deph, 0)] dt:
      the catalyst's part of the negative contributions while the battery receives energy (1: all
      of it comes through H_int; 0: all through dephasing);
    - ``backflow_time_catalyst_dominant``: the fraction of B in which J_cat <= J_deph (the catalyst
      channel is the more negative one, so J < 0 "comes from" it);
    - ``window_fraction_catalyst_backflow``: the fraction of the whole window with J < -tolerance and
      J_cat <= J_deph.

    Time fractions are trapezoid integrals of indicators divided by the window length (or by the
    trapezoid measure of B). A point without backflow has NaN shares.
    """
    validate_sweep(ds, ["heat_current", *CHANNELS.values()])
    lo, hi = resolve_window(ds[TIME].values, t_start, t_end, what="channel window")
    sel = {TIME: slice(lo, hi)}
    J = ds["heat_current"].sel(sel)
    Jc = ds[CHANNELS["catalyst"]].sel(sel)
    Jd = ds[CHANNELS["dephasing"]].sel(sel)
    backflow = J < -tolerance
    dominant = backflow & (Jc <= Jd)
    neg_c, neg_d = Jc.clip(max=0.0), Jd.clip(max=0.0)
    out = xr.Dataset()
    out["min_heat_current_catalyst"] = Jc.min(TIME)
    out["min_heat_current_dephasing"] = Jd.min(TIME)
    out["integrated_backflow_catalyst"] = neg_c.integrate(TIME)
    out["integrated_backflow_dephasing"] = neg_d.integrate(TIME)
    in_b_c = neg_c.where(backflow, 0.0).integrate(TIME)
    in_b_all = (neg_c + neg_d).where(backflow, 0.0).integrate(TIME)
    out["backflow_catalyst_share"] = (in_b_c / in_b_all).where(in_b_all < 0)
    t_b = backflow.astype(float).integrate(TIME)
    out["backflow_time_catalyst_dominant"] = (dominant.astype(float).integrate(TIME) / t_b).where(t_b > 0)
    out["window_fraction_catalyst_backflow"] = dominant.astype(float).integrate(TIME) / (hi - lo)
    out = out.where(J.notnull().any(TIME))  # a missing point: NaN throughout
    for name, long_name in _CHANNEL_TEXT.items():  # energies, rates and fractions: all "1" (hbar = omega_0 = 1)
        out[name].attrs = _attrs("1", long_name)
    out["integrated_backflow_catalyst"].attrs["comment"] = "energy, hbar*omega_0; more negative = more backflow"
    out["integrated_backflow_dephasing"].attrs["comment"] = "energy, hbar*omega_0; more negative = more backflow"
    if "point_id" in ds.data_vars or "point_id" in ds.coords:
        out = out.assign_coords(point_id=ds["point_id"].assign_attrs(_attrs("1", "point identity")))
    out.attrs.update(_derived_attrs(ds, f"heat-current channel statistics of sweep {sweep_name(ds)}",
                                    "qbcat.science.analysis.channel_statistics"))
    out.attrs.update(window_start=lo, window_end=hi, backflow_tolerance=tolerance)
    return out


# ----------------------------------------------------------------------------------------------
# Tables and correlations


def point_table(
    sweeps: Mapping[str, xr.Dataset] | Iterable[xr.Dataset],
    *,
    t_start: float | None = None,
    t_end: float | None = None,
    late_duration: float | None = None,
    ratio_floor: float = RATIO_FLOOR,
    tolerance: float = BACKFLOW_TOLERANCE,
    early_t_end: float = EARLY_T_END,
) -> pd.DataFrame:
    """One row per catalyzed point of every sweep: axis values, enhancement and backflow metrics.

    Columns: ``sweep``, ``point_id`` (if known), one column per swept parameter (NaN where a
    sweep does not vary it), ``{mean,peak,late}_{difference,ratio,catalyzed,baseline}``, the
    catalyzed backflow metrics under their names and the baseline's as ``baseline_<metric>``;
    when the sweeps hold the heat current's channels, the catalyzed :func:`channel_statistics`
    over the averaging window under their names (:data:`CHANNEL_METRICS`) and over the early
    window [first time, ``early_t_end``] as ``early_<metric>``.
    """
    rows = []
    for name, ds in _named(sweeps):
        axes = validate_sweep(ds, ["ergotropy", "heat_current"])
        enh = ergotropy_enhancement(ds, t_start=t_start, t_end=t_end, late_duration=late_duration,
                                    ratio_floor=ratio_floor)
        bf = backflow_statistics(ds, t_start=t_start, t_end=t_end, late_duration=late_duration,
                                 tolerance=tolerance)
        cat = _case(bf.reset_coords(drop=True), CATALYZED)
        base = _case(bf.reset_coords(drop=True), BASELINE).rename({m: f"baseline_{m}" for m in BACKFLOW_METRICS})
        parts = [enh.reset_coords(drop=True), cat, base]
        if has_channels(ds):
            time = ds[TIME].values
            for prefix, window in (("", (t_start, t_end)), ("early_", (time[0], min(early_t_end, time[-1])))):
                ch = channel_statistics(ds, t_start=window[0], t_end=window[1], tolerance=tolerance)
                parts.append(_case(ch.reset_coords(drop=True), CATALYZED).rename(
                    {m: f"{prefix}{m}" for m in CHANNEL_METRICS}))
        merged = xr.merge(parts, compat="override")
        if "point_id" in enh.coords:
            merged["point_id"] = enh["point_id"]
        df = merged.to_dataframe().reset_index() if axes else pd.DataFrame([{
            k: merged[k].item() for k in merged.data_vars}])
        df.insert(0, "sweep", name)
        rows.append(df)
    if not rows:
        raise ValueError("point_table: no sweeps given")
    return pd.concat(rows, ignore_index=True, sort=False)


#: Up to this many points, p-values come from the exact permutation distribution (all n! orderings);
#: beyond, from the usual asymptotic (t-distribution) formulas.
EXACT_P_MAX_N = 8


def correlate(x: Iterable[float], y: Iterable[float]) -> dict:
    """Pearson and Spearman correlation of paired values, NaN pairs dropped.

    Returns n, pearson_r, pearson_p, spearman_r, spearman_p, p_method and a note. With fewer than
    3 pairs or a constant variable the coefficients are NaN and the note says why. For n <=
    EXACT_P_MAX_N the two-sided p-values are exact permutation p-values (the asymptotic formulas
    are badly off there: a perfect rank correlation of 3 points has p = 1/3, not 0).
    """
    x = np.asarray(list(x), dtype=float)
    y = np.asarray(list(y), dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    out = {"n": int(x.size), "pearson_r": np.nan, "pearson_p": np.nan,
           "spearman_r": np.nan, "spearman_p": np.nan, "p_method": "", "note": ""}
    if x.size < 3:
        out["note"] = f"only {x.size} point(s) with finite values; need >= 3"
        return out
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        out["note"] = "a variable is constant across the points"
        return out
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-constant input: scipy warns, we report numbers
        if x.size <= EXACT_P_MAX_N:
            method = stats.PermutationMethod(n_resamples=math.factorial(x.size))
            p = stats.pearsonr(x, y, method=method)
            s = stats.pearsonr(rx, ry, method=method)  # Spearman rho = Pearson r of the ranks
            out["p_method"] = "exact permutation"
        else:
            p = stats.pearsonr(x, y)
            s = stats.spearmanr(x, y)
            out["p_method"] = "asymptotic"
    out.update(pearson_r=float(p.statistic), pearson_p=float(p.pvalue),
               spearman_r=float(s.statistic), spearman_p=float(s.pvalue))
    return out


def correlation_table(
    points: pd.DataFrame,
    *,
    backflow_metrics: Iterable[str] | None = None,
    enhancement_metrics: Iterable[str] | None = None,
    pooled: bool = True,
) -> pd.DataFrame:
    """Correlation of each backflow metric with each enhancement metric, per sweep and pooled.

    ``points`` is a :func:`point_table`. The pooled rows (``sweep = "all"``) use every catalyzed
    point once (points shared by several sweeps, same ``point_id``, are counted once).
    Columns: sweep, backflow_metric, enhancement_metric, n, pearson_r, pearson_p, spearman_r,
    spearman_p, p_method, note. Remember: stronger backflow = more negative J metrics.
    ``backflow_metrics`` defaults to :data:`BACKFLOW_METRICS` and, when the table has them, the
    per-channel :data:`CHANNEL_CORRELATED` (the backflow of each channel against the enhancement).
    """
    if backflow_metrics is None:
        backflow_metrics = [*BACKFLOW_METRICS, *(m for m in CHANNEL_CORRELATED if m in points.columns)]
    if enhancement_metrics is None:
        enhancement_metrics = [f"{m}_{k}" for m in ENHANCEMENT_METRICS for k in ENHANCEMENT_KINDS]
    backflow_metrics, enhancement_metrics = list(backflow_metrics), list(enhancement_metrics)
    for col in backflow_metrics + enhancement_metrics:
        if col not in points.columns:
            raise ValueError(f"correlation_table: column {col!r} not in the point table")
    groups = [(str(s), g) for s, g in points.groupby("sweep", sort=False)]
    if pooled:
        all_points = points.drop_duplicates("point_id") if "point_id" in points.columns else points
        groups.append(("all", all_points))
    rows = []
    for sweep, g in groups:
        for b in backflow_metrics:
            for e in enhancement_metrics:
                rows.append({"sweep": sweep, "backflow_metric": b, "enhancement_metric": e,
                             **correlate(g[b], g[e])})
    return pd.DataFrame(rows, columns=["sweep", "backflow_metric", "enhancement_metric", "n", "pearson_r",
                                       "pearson_p", "spearman_r", "spearman_p", "p_method", "note"])


# ----------------------------------------------------------------------------------------------
# Input and output helpers


def _named(sweeps) -> list[tuple[str, xr.Dataset]]:
    if isinstance(sweeps, xr.Dataset):
        sweeps = [sweeps]
    if isinstance(sweeps, Mapping):
        return [(str(k), v) for k, v in sweeps.items()]
    out, seen = [], {}
    for ds in sweeps:
        name = sweep_name(ds)
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}_{seen[name]}", ds))
    return out


#: What the science products read from a sweep file (the rest is left on disk).
PRODUCT_VARIABLES = ("ergotropy", "heat_current", "heat_current_catalyst", "heat_current_dephasing",
                     "energy_cat", "point_id", "cutoff_ok", "n_fock")


def open_sweeps(paths: Iterable[str | os.PathLike],
                variables: Iterable[str] | None = PRODUCT_VARIABLES) -> dict[str, xr.Dataset]:
    """Open sweep files keyed by ``sweep_name`` (else the file stem), loading only ``variables``
    (those present; None: all) into memory: a large map's other observables stay on disk."""
    out = {}
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"sweep file {path} does not exist")
    for path in paths:
        with xr.open_dataset(path) as ds:
            if variables is not None:
                ds = ds[[v for v in variables if v in ds.data_vars]]
            ds = ds.load()
        name = str(ds.attrs.get("sweep_name", path.stem))
        if name in out:
            raise ValueError(f"two sweep files are named {name!r} ({path})")
        out[name] = ds
    return out


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table as CSV atomically (full float precision, no index)."""
    return write_text(df.to_csv(index=False, float_format="%.10g"), path)
