"""Numerical convergence checks of one point: photon cutoff, solver tolerance, output sampling.

Every check compares trajectories of the same point that differ in one numerical setting against a
reference run, by the maximum over the common output times of the absolute difference,

    max_deviation(X) = max_t |X_setting(t) - X_reference(t)|,

for the observables ``ergotropy``, ``heat_current`` and ``energy_cat`` (``energy_cat`` only for
catalyzed points). A comparison passes when ``max_deviation <= threshold``.

Thresholds are absolute by default, in the observable's own units (energy for ``ergotropy`` and
``energy_cat``, energy per time for ``heat_current``; hbar = omega_0 = 1). With ``relative=True``
the configured number is multiplied by the observable's scale, ``max_t |X_reference(t)|``, which
suits sweeps in which an observable's magnitude changes by orders of magnitude. Absolute is the
default because the late-time ergotropy is an order of magnitude below its transient maximum
(at the default point, docs/conventions.md), so a relative threshold would be loosest exactly
where the catalysis effect is read off.

Checks (one ``check`` value each in the result table):

- ``cutoff``: n_fock over a configured list against the largest value (the reference, which must
  exceed the study's n_fock by ``min_gap``, default 4). Required row: the study's own n_fock.
- ``tolerance``: every (method, rtol, atol) combination against the tightest tolerance run with the
  first listed method. Required rows: the study's own (method, rtol, atol), and every other method at
  the tightest tolerance (independent integrators must agree); looser settings are informative.
- ``sampling``: n_t against 2 n_t - 1 (the same grid plus every midpoint), compared on the common
  times: the output sampling must not change the observables. Required.

Rows that are not required are reported (the figures show them) but do not decide the verdict.
The result is a tidy pandas DataFrame, one row per (check, setting, observable); :func:`summary`
prints it with PASS / FAIL per check, :func:`write_table` writes it as CSV (atomically) and
:func:`raise_if_failed` raises :class:`ConvergenceError` naming the failing check.

The deviations and smallest passing cutoffs this check finds at the default point, and what
each cutoff costs, are measured in benchmarks/README.md (section "Photon cutoff").
"""

from __future__ import annotations

import math
import os
import sys
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from ..engine.params import PARAMETERS, SOLVER_METHODS, ParameterError, point_id, validate
from ..engine.solve import SimulationError, Trajectory, simulate
from ..atomic import atomic_output

#: Observables compared by every check (energy_cat is skipped for the uncatalyzed baseline).
OBSERVABLES = ("ergotropy", "heat_current", "energy_cat")

UNITS = {"ergotropy": "energy", "heat_current": "energy/time", "energy_cat": "energy"}

CHECKS = ("cutoff", "tolerance", "sampling")

#: Default options of :func:`run_checks` (a workflow's config section uses the same keys).
DEFAULT_OPTIONS: dict = {
    "checks": list(CHECKS),
    "n_fock": list(range(2, 17)),
    "reference_n_fock": None,  # None: the largest of n_fock (n_fock auto: and its n_fock + min_gap)
    "n_fock_offsets": [],  # cutoffs relative to the point's own (e.g. -2), added to n_fock
    "min_gap": 4,  # the reference must exceed the point's n_fock by at least this much
    "thresholds": {"ergotropy": 1e-3, "heat_current": 1e-3, "energy_cat": 1e-3},
    "relative": False,
    "tolerances": [[1e-5, 1e-7], [1e-6, 1e-8], [1e-7, 1e-9], [1e-8, 1e-10], [1e-9, 1e-11]],
    "methods": ["adams", "bdf", "dop853"],
    "fail_on_error": True,
}

COLUMNS = [
    "check", "setting", "observable", "max_deviation", "threshold", "scale", "passed", "required",
    "reference", "n_fock", "method", "rtol", "atol", "n_t", "wall_time_s", "note",
]


class ConvergenceError(RuntimeError):
    """A required convergence check failed; the message names the check and the worst deviation."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


Progress = Callable[[str], None] | None


# ----------------------------------------------------------------------------- option checking


def _bad(key: str, message: str) -> ParameterError:
    return ParameterError(f"{key}: {message}")


def validate_thresholds(thresholds: dict | None) -> dict[str, float]:
    """Default thresholds updated by ``thresholds``; one-line error on an unknown observable or a
    threshold that is not a positive number."""
    out = dict(DEFAULT_OPTIONS["thresholds"])
    for name, value in (thresholds or {}).items():
        if name not in OBSERVABLES:
            raise _bad(f"thresholds.{name}", f"unknown observable (known: {', '.join(OBSERVABLES)})")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise _bad(f"thresholds.{name}", f"expected a positive number, got {value!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise _bad(f"thresholds.{name}", f"expected a positive number, got {value!r}")
        out[name] = value
    return out


def _int_list(key: str, values, minimum: int) -> list[int]:
    if not isinstance(values, (list, tuple)) or not values:
        raise _bad(key, f"expected a non-empty list of integers, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, bool) or not (isinstance(v, int) or (isinstance(v, float) and v.is_integer())):
            raise _bad(key, f"expected integers, got {v!r}")
        if v < minimum:
            raise _bad(key, f"values must be >= {minimum}, got {v!r}")
        out.append(int(v))
    return sorted(set(out))


def _tolerance_list(values) -> list[tuple[float, float]]:
    if not isinstance(values, (list, tuple)) or not values:
        raise _bad("tolerances", f"expected a non-empty list of [rtol, atol] pairs, got {values!r}")
    out = []
    for pair in values:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise _bad("tolerances", f"expected [rtol, atol] pairs, got {pair!r}")
        try:
            rtol, atol = float(pair[0]), float(pair[1])
        except (TypeError, ValueError):
            raise _bad("tolerances", f"expected numbers in {pair!r}") from None
        if not (rtol > 0 and atol > 0):
            raise _bad("tolerances", f"rtol and atol must be > 0, got {pair!r}")
        out.append((rtol, atol))
    return sorted(set(out), reverse=True)  # loosest first


def validate_options(options: dict | None, base_params: dict | None = None) -> dict:
    """:data:`DEFAULT_OPTIONS` updated by ``options``, checked; ParameterError (one line naming the
    key) on anything wrong, before any simulation starts. With ``base_params`` the point itself is
    validated too, and the cutoff reference must exceed the point's n_fock."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise _bad(unknown[0], f"unknown convergence option (known: {', '.join(DEFAULT_OPTIONS)})")
    out = {**DEFAULT_OPTIONS, **options}
    checks = out["checks"]
    if isinstance(checks, str) or not isinstance(checks, (list, tuple)):
        raise _bad("checks", f"expected a list drawn from {', '.join(CHECKS)}, got {checks!r}")
    for c in checks:
        if c not in CHECKS:
            raise _bad("checks", f"unknown check {c!r} (known: {', '.join(CHECKS)})")
    out["checks"] = list(dict.fromkeys(checks))
    out["n_fock"] = _int_list("n_fock", out["n_fock"], 2)
    offsets = out["n_fock_offsets"]
    if isinstance(offsets, (str, bool)) or not isinstance(offsets, (list, tuple)) or not all(
            isinstance(k, int) and not isinstance(k, bool) for k in offsets):
        raise _bad("n_fock_offsets", f"expected a list of integers, got {offsets!r}")
    out["n_fock_offsets"] = list(offsets)
    if out["reference_n_fock"] is not None:
        out["reference_n_fock"] = _int_list("reference_n_fock", [out["reference_n_fock"]], 2)[0]
    out["thresholds"] = validate_thresholds(out["thresholds"])
    if isinstance(out["min_gap"], bool) or not isinstance(out["min_gap"], int) or out["min_gap"] < 1:
        raise _bad("min_gap", f"expected an integer >= 1, got {out['min_gap']!r}")
    for key in ("relative", "fail_on_error"):
        if not isinstance(out[key], bool):
            raise _bad(key, f"expected true or false, got {out[key]!r}")
    out["tolerances"] = _tolerance_list(out["tolerances"])
    methods = out["methods"]
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)) or not methods:
        raise _bad("methods", f"expected a non-empty list drawn from {', '.join(SOLVER_METHODS)}")
    for m in methods:
        if m not in SOLVER_METHODS:
            raise _bad("methods", f"unknown method {m!r} (known: {', '.join(SOLVER_METHODS)})")
    out["methods"] = list(dict.fromkeys(methods))
    if base_params is not None:
        p = validate(base_params)
        if "cutoff" in out["checks"]:
            if not p["catalyst"]:
                raise _bad("catalyst", "the cutoff check needs a catalyzed point (catalyst=true)")
            if p["n_fock"] == "auto":  # its cutoff is chosen when the checks run
                return out
            ref = out["reference_n_fock"] or max(out["n_fock"])
            if ref < p["n_fock"] + out["min_gap"]:
                raise _bad("n_fock", f"the reference cutoff {ref} must exceed the point's n_fock "
                           f"{p['n_fock']} by at least min_gap={out['min_gap']}; add larger values to "
                           "the n_fock list")
    return out


# ----------------------------------------------------------------------------- comparisons


def common_time_indices(t_a: np.ndarray, t_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) with t_a[i] == t_b[j] up to 1e-9 of the time span: the shared output times."""
    t_a, t_b = np.asarray(t_a, float), np.asarray(t_b, float)
    span = max(abs(t_a[-1] - t_a[0]), abs(t_b[-1] - t_b[0]), 1.0)
    j = np.clip(np.searchsorted(t_b, t_a), 0, t_b.size - 1)
    j_left = np.clip(j - 1, 0, t_b.size - 1)
    j = np.where(np.abs(t_b[j_left] - t_a) < np.abs(t_b[j] - t_a), j_left, j)
    match = np.abs(t_b[j] - t_a) <= 1e-9 * span
    return np.flatnonzero(match), j[match]


def max_deviations(a: Trajectory, b: Trajectory, observables: Iterable[str] = OBSERVABLES) -> dict:
    """max_t |X_a(t) - X_b(t)| on the common output times, per observable both trajectories hold."""
    i, j = common_time_indices(a.time, b.time)
    if i.size == 0:
        raise ValueError("the two trajectories share no output time")
    out = {}
    for name in observables:
        if name in a.data and name in b.data:
            out[name] = float(np.max(np.abs(a.data[name][i] - b.data[name][j])))
    return out


def _scale(traj: Trajectory, name: str) -> float:
    return float(np.max(np.abs(traj.data[name])))


def _threshold(name: str, thresholds: dict, relative: bool, scale: float) -> float:
    """Absolute threshold; in relative mode thresholds[name] * scale (the absolute number itself
    when the observable is identically zero in the reference)."""
    if relative and scale > 0:
        return thresholds[name] * scale
    return thresholds[name]


class _Runs:
    """Memoised simulations keyed by point id, so a run shared by two checks is done once."""

    def __init__(self, progress: Progress):
        self.cache: dict[str, Trajectory] = {}
        self.progress = progress

    def get(self, params: dict, label: str) -> Trajectory:
        key = point_id(params)
        if key not in self.cache:
            start = _time.perf_counter()
            traj = simulate(params)
            traj.total_time = _time.perf_counter() - start
            if self.progress:
                self.progress(f"  {label}: {traj.total_time:.2f} s")
            self.cache[key] = traj
        return self.cache[key]


def _rows(check: str, setting: str, reference: str, traj: Trajectory | None, ref: Trajectory,
          thresholds: dict, relative: bool, required: bool, extra: dict, note: str = "") -> list[dict]:
    """One row per observable comparing ``traj`` with ``ref`` (NaN deviation and a failed row when
    ``traj`` is None, i.e. the run itself failed)."""
    names = [n for n in OBSERVABLES if n in ref.data]
    dev = max_deviations(traj, ref, names) if traj is not None else {}
    rows = []
    for name in names:
        scale = _scale(ref, name)
        thr = _threshold(name, thresholds, relative, scale)
        d = dev.get(name, float("nan"))
        rows.append({
            "check": check, "setting": setting, "observable": name, "max_deviation": d,
            "threshold": thr, "scale": scale, "passed": bool(d <= thr), "required": required,
            "reference": reference, "n_fock": np.nan, "method": "", "rtol": np.nan, "atol": np.nan,
            "n_t": np.nan,
            "wall_time_s": getattr(traj, "total_time", np.nan) if traj is not None else np.nan,
            "note": note, **extra,
        })
    return rows


def _table(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"passed": bool, "required": bool})


# ----------------------------------------------------------------------------- the checks


def cutoff_check(params: dict, n_focks: Iterable[int], thresholds: dict | None = None, *,
                 relative: bool = False, reference_n_fock: int | None = None, min_gap: int = 4,
                 progress: Progress = _stderr, _runs: _Runs | None = None) -> pd.DataFrame:
    """Photon-cutoff check: each n_fock of ``n_focks`` (plus the point's own) against the reference
    cutoff (default: the largest of ``n_focks``), which must exceed the point's n_fock by at least
    ``min_gap`` (a reference just above the cutoff would agree with it for the wrong reason).

    The point's own n_fock is the required row; the others show how the error falls with n_fock.
    """
    p = validate(params)
    thresholds = validate_thresholds(thresholds)
    n_list = _int_list("n_fock", list(n_focks), 2)
    ref_n = reference_n_fock or max(n_list)
    if not p["catalyst"]:
        raise _bad("catalyst", "the cutoff check needs a catalyzed point (catalyst=true)")
    if ref_n < p["n_fock"] + min_gap:
        raise _bad("n_fock", f"the reference cutoff {ref_n} must exceed the point's n_fock {p['n_fock']} "
                   f"by at least min_gap={min_gap}")
    runs = _runs or _Runs(progress)
    if progress:
        progress(f"cutoff check: n_fock {sorted(set(n_list) | {p['n_fock']})} against n_fock={ref_n}")
    ref = runs.get({**p, "n_fock": ref_n}, f"n_fock={ref_n} (reference)")
    rows = []
    for n in sorted((set(n_list) | {p["n_fock"]}) - {ref_n}):
        if n > ref_n:
            continue
        traj = runs.get({**p, "n_fock": n}, f"n_fock={n}")
        rows += _rows("cutoff", f"n_fock={n}", f"n_fock={ref_n}", traj, ref, thresholds, relative,
                      required=(n == p["n_fock"]), extra={"n_fock": n})
    return _table(rows)


def _passes(rows: pd.DataFrame) -> bool:
    return bool(rows["passed"].all())


@dataclass
class CutoffSearch:
    """Result of :func:`smallest_passing_cutoff`.

    ``n_fock`` is None when no candidate far enough below the reference passed (``reason`` says
    why); ``table`` holds the comparisons made (cutoff-check rows); ``evaluated`` the cutoffs run.
    """

    n_fock: int | None
    reference_n_fock: int
    table: pd.DataFrame
    evaluated: list[int] = field(default_factory=list)
    reason: str = ""


def smallest_passing_cutoff(params: dict, candidates: Iterable[int], thresholds: dict | None = None, *,
                            relative: bool = False, reference_n_fock: int | None = None,
                            confirm: int = 2, min_gap: int = 4,
                            progress: Progress = _stderr) -> CutoffSearch:
    """The smallest n_fock of ``candidates`` whose trajectory matches a clearly larger cutoff.

    Criterion: the reference is run first at ``reference_n_fock`` (default: the largest candidate).
    Candidates are then tried in ascending order, each compared with the reference (all of
    ergotropy, heat_current, energy_cat within their thresholds). A candidate n is accepted when it
    and the next ``confirm`` candidates all pass, and the scan stops there (the candidates between
    the accepted one + confirm and the reference are never run). The confirmation guards against a
    false early pass: at tiny cutoffs the deviation is not monotone in n_fock (at the default point
    energy_cat deviates by 3.9e-2 at n_fock = 5 but 8.1e-2 at 6), so one curve can cross the
    reference by accident. The accepted n must also lie at least ``min_gap`` below the reference,
    so that "agrees with the reference" is not just "is almost the reference". When no candidate
    qualifies, ``n_fock`` is None and ``reason`` says what to extend.
    """
    p = validate(params)
    thresholds = validate_thresholds(thresholds)
    cands = _int_list("candidates", list(candidates), 2)
    ref_n = reference_n_fock or max(cands)
    if not p["catalyst"]:
        raise _bad("catalyst", "the cutoff search needs a catalyzed point (catalyst=true)")
    if confirm < 0 or min_gap < 1:
        raise ValueError(f"confirm must be >= 0 and min_gap >= 1, got {confirm}, {min_gap}")
    below = [n for n in cands if n < ref_n]
    if not below or below[0] > ref_n - min_gap:
        raise _bad("candidates", f"need candidates at least {min_gap} below the reference n_fock "
                   f"{ref_n}, got {cands}")
    runs = _Runs(progress)
    if progress:
        progress(f"cutoff search: candidates {below} against n_fock={ref_n} "
                 f"(confirm={confirm}, min_gap={min_gap})")
    ref = runs.get({**p, "n_fock": ref_n}, f"n_fock={ref_n} (reference)")
    frames, passed = [], {}
    for k, n in enumerate(below):
        first = k - confirm  # the candidate that n would confirm
        if first >= 0 and below[first] > ref_n - min_gap:
            break  # nothing from here on lies far enough below the reference
        traj = runs.get({**p, "n_fock": n}, f"n_fock={n}")
        rows = _table(_rows("cutoff", f"n_fock={n}", f"n_fock={ref_n}", traj, ref, thresholds, relative,
                            required=False, extra={"n_fock": n}))
        frames.append(rows)
        passed[n] = _passes(rows)
        if first >= 0 and all(passed[m] for m in below[first:k + 1]):
            table = pd.concat(frames, ignore_index=True)
            table.loc[table["n_fock"] == below[first], "required"] = True
            return CutoffSearch(below[first], ref_n, table, sorted(passed) + [ref_n])
    table = pd.concat(frames, ignore_index=True)
    reason = (f"no candidate <= {ref_n - min_gap} passed together with the next {confirm} candidates "
              f"against n_fock={ref_n}; add larger candidates and a larger reference_n_fock")
    return CutoffSearch(None, ref_n, table, sorted(passed) + [ref_n], reason)


def tolerance_check(params: dict, tolerances: Iterable, methods: Iterable[str],
                    thresholds: dict | None = None, *, relative: bool = False,
                    progress: Progress = _stderr, _runs: _Runs | None = None) -> pd.DataFrame:
    """Solver check: every (method, rtol, atol) against the tightest (rtol, atol) with methods[0].

    Methods are QuTiP's (engine qutip); a point of the batched engine adds "batched" at every
    tolerance, so qbcat's engine is checked against QuTiP's. Required rows: the point's own
    setting and each solver at the tightest tolerance. A run that fails (SimulationError) gives NaN deviations, passed=False and the error
    in ``note``.
    """
    p = validate(params)
    thresholds = validate_thresholds(thresholds)
    tols = _tolerance_list([list(t) for t in tolerances])
    methods = list(dict.fromkeys(methods))
    for m in methods:
        if m not in SOLVER_METHODS:
            raise _bad("methods", f"unknown method {m!r} (known: {', '.join(SOLVER_METHODS)})")
    tight = min(tols)  # smallest rtol, then smallest atol
    ref_setting = {"engine": "qutip", "method": methods[0], "rtol": tight[0], "atol": tight[1]}
    ref_label = f"method={methods[0]} rtol={tight[0]:g} atol={tight[1]:g}"
    runs = _runs or _Runs(progress)
    # a solver is a QuTiP method, or "batched" (qbcat's own engine, checked at every tolerance
    # when the point uses it, against the QuTiP reference: an independent integrator)
    solvers = list(methods) + (["batched"] if p["engine"] == "batched" else [])
    if progress:
        progress(f"tolerance check: {len(solvers)} solvers x {len(tols)} tolerances against {ref_label}")
    ref = runs.get({**p, **ref_setting}, ref_label + " (reference)")
    own = ("batched" if p["engine"] == "batched" else p["method"], p["rtol"], p["atol"])
    settings = [(m, r, a) for m in solvers for (r, a) in tols]
    if own not in settings:
        settings.append(own)
    rows = []
    for m, r, a in settings:
        if (m, r, a) == (methods[0], *tight):
            continue
        if m == "batched":
            label, setting = f"engine=batched rtol={r:g} atol={a:g}", {"engine": "batched"}
        else:
            label, setting = f"method={m} rtol={r:g} atol={a:g}", {"engine": "qutip", "method": m}
        required = (m, r, a) == own or (r, a) == tight
        try:
            traj, note = runs.get({**p, **setting, "rtol": r, "atol": a}, label), ""
        except SimulationError as exc:
            traj, note = None, str(exc).split(";")[0]
            if progress:
                progress(f"  {label}: FAILED ({note})")
        rows += _rows("tolerance", label, ref_label, traj, ref, thresholds, relative, required,
                      {"method": m, "rtol": r, "atol": a}, note)
    return _table(rows)


def sampling_check(params: dict, thresholds: dict | None = None, *, relative: bool = False,
                   progress: Progress = _stderr, _runs: _Runs | None = None) -> pd.DataFrame:
    """Output-sampling check: n_t against 2 n_t - 1 on the common times (the n_t grid). Required."""
    p = validate(params)
    thresholds = validate_thresholds(thresholds)
    fine_n = 2 * p["n_t"] - 1
    runs = _runs or _Runs(progress)
    if progress:
        progress(f"sampling check: n_t={p['n_t']} against n_t={fine_n}")
    ref = runs.get({**p, "n_t": fine_n}, f"n_t={fine_n} (reference)")
    traj = runs.get(p, f"n_t={p['n_t']}")
    return _table(_rows("sampling", f"n_t={p['n_t']}", f"n_t={fine_n}", traj, ref, thresholds, relative,
                        True, {"n_t": p["n_t"]}))


def resolve_auto(p: dict, progress: Progress = _stderr) -> dict:
    """A point with n_fock "auto" at the cutoff its ladder picks (qbcat.engine.cutoff.resolve; the checks
    then run at that cutoff, as the study's point does); any other point as it is."""
    from ..engine.cutoff import resolve

    return resolve(p, progress)


def run_checks(base_params: dict, options: dict | None = None, progress: Progress = _stderr) -> pd.DataFrame:
    """All configured checks of one point, in one table (see the module docstring).

    ``base_params``: the point (overrides of qbcat.engine.params.DEFAULTS); ``options``: keys of
    :data:`DEFAULT_OPTIONS`. Both are validated before any simulation. Runs shared by two checks
    (e.g. the point itself) are done once. A point with n_fock "auto" is checked at the cutoff
    its ladder picks (:func:`resolve_auto`); the cutoff list then follows from n_fock_offsets.
    """
    opts = validate_options(options, base_params)
    given = validate(base_params)
    p = resolve_auto(given, progress)
    runs = _Runs(progress)
    frames = []
    if "cutoff" in opts["checks"]:
        n_list = {*opts["n_fock"], *(p["n_fock"] + k for k in opts["n_fock_offsets"])}
        if given["n_fock"] == "auto":  # the reference follows the chosen cutoff
            n_list.add(p["n_fock"] + opts["min_gap"])
        reference = opts["reference_n_fock"] or max(n_list)
        frames.append(cutoff_check(p, sorted(n for n in n_list if 2 <= n <= reference), opts["thresholds"],
                                   relative=opts["relative"], reference_n_fock=reference,
                                   min_gap=opts["min_gap"], progress=progress, _runs=runs))
    if "tolerance" in opts["checks"]:
        frames.append(tolerance_check(p, opts["tolerances"], opts["methods"], opts["thresholds"],
                                      relative=opts["relative"], progress=progress, _runs=runs))
    if "sampling" in opts["checks"]:
        frames.append(sampling_check(p, opts["thresholds"], relative=opts["relative"],
                                     progress=progress, _runs=runs))
    table = pd.concat(frames, ignore_index=True) if frames else _table([])
    table.attrs["point_id"] = point_id(p)
    table.attrs["params"] = {k: p[k] for k in PARAMETERS}
    return table


# ----------------------------------------------------------------------------- verdicts and reports


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per check: passed (all required rows passed), the worst required row, the number of
    failing informative rows."""
    out = []
    for check in dict.fromkeys(table["check"]):
        rows = table[table["check"] == check]
        req = rows[rows["required"]]
        failing = req[~req["passed"]]
        ratio = (req["max_deviation"] / req["threshold"]).fillna(np.inf)
        worst = req.loc[ratio.idxmax()] if len(req) else None
        out.append({
            "check": check,
            "passed": bool(len(req) > 0 and failing.empty),
            "n_required": int(len(req)),
            "n_failed": int(len(failing)),
            "worst_setting": worst["setting"] if worst is not None else "",
            "worst_observable": worst["observable"] if worst is not None else "",
            "worst_deviation": float(worst["max_deviation"]) if worst is not None else np.nan,
            "worst_threshold": float(worst["threshold"]) if worst is not None else np.nan,
            "informative_failures": int((~rows["passed"] & ~rows["required"]).sum()),
        })
    return pd.DataFrame(out)


def smallest_passing_in_table(table: pd.DataFrame) -> int | None:
    """Smallest n_fock of a cutoff table from which every listed larger cutoff passes too."""
    rows = table[table["check"] == "cutoff"]
    ok = rows.groupby("n_fock")["passed"].all().sort_index()
    passing = None
    for n, good in ok[::-1].items():
        if not good:
            break
        passing = int(n)
    return passing


def summary(table: pd.DataFrame) -> str:
    """Human-readable report: PASS / FAIL per check (FAIL in capitals, with the failing rows)."""
    v = verdicts(table)
    overall = bool(v["passed"].all()) if len(v) else False
    lines = [f"convergence checks: {'PASS' if overall else 'FAIL'}"
             + (f" (point {table.attrs['point_id']})" if "point_id" in table.attrs else "")]
    for _, r in v.iterrows():
        status = "PASS" if r["passed"] else "FAIL"
        lines.append(f"  [{status}] {r['check']}: worst required {r['worst_setting']} "
                     f"{r['worst_observable']} max deviation {r['worst_deviation']:.3g} "
                     f"(threshold {r['worst_threshold']:.3g})")
        if not r["passed"]:
            bad = table[(table["check"] == r["check"]) & table["required"] & ~table["passed"]]
            for _, b in bad.iterrows():
                note = f" [{b['note']}]" if b["note"] else ""
                lines.append(f"      FAIL {b['setting']} {b['observable']}: {b['max_deviation']:.3g} "
                             f"> {b['threshold']:.3g} (against {b['reference']}){note}")
        if r["check"] == "cutoff":
            n = smallest_passing_in_table(table)
            lines.append(f"      smallest passing n_fock in the list: {n if n is not None else 'none'}")
        if r["informative_failures"]:
            lines.append(f"      ({r['informative_failures']} informative rows above threshold; not required)")
    return "\n".join(lines)


def failed_checks(table: pd.DataFrame) -> list[str]:
    v = verdicts(table)
    return list(v.loc[~v["passed"], "check"])


def raise_if_failed(result: pd.DataFrame, fail_on_error: bool) -> None:
    """Raise ConvergenceError naming every failing check (with the summary) if ``fail_on_error``;
    otherwise print the FAIL summary to stderr and return. Nothing happens when all checks pass."""
    failed = failed_checks(result)
    if not failed:
        return
    text = summary(result)
    if fail_on_error:
        raise ConvergenceError(f"convergence check FAILED: {', '.join(failed)}\n{text}")
    _stderr(f"WARNING: convergence check FAILED: {', '.join(failed)} (fail_on_error is false)\n{text}")


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The tidy table as CSV, written atomically (temporary file in the same folder, renamed)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return path


# ----------------------------------------------------------------------------- the checks of a study

#: Parameters shown in the combined table (every parameter of a point is in the details).
TABLE_PARAMETERS = ("omega_a", "omega_c", "g", "Omega", "omega_d", "kappa_1", "gamma_D", "n_fock", "t_max", "n_t",
                    "method", "rtol", "atol")


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A per-point table written by :func:`write_table`, read back with its column types."""
    text = {name: str for name in ("setting", "observable", "reference", "method", "note")}
    table = pd.read_csv(path, dtype=text)
    for column in ("method", "note"):
        table[column] = table[column].fillna("")
    return table.astype({"passed": bool, "required": bool})


def combine(tables: dict, points: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's pass/fail table (one row per point and check, failures first) and every row
    of every point (with point_id and label).

    ``tables``: point_id -> per-point table (DataFrame); ``points``: point_id -> {"label",
    "params"}. The margin is threshold / worst deviation of the check's required rows (< 1: FAIL).
    """
    rows, details = [], []
    for pid, table in tables.items():
        label, params = points[pid]["label"], dict(points[pid]["params"])
        if params.get("n_fock") == "auto":  # show the cutoff the ladder chose: the required cutoff row's
            own = table.loc[(table["check"] == "cutoff") & table["required"], "n_fock"]
            params["n_fock"] = f"auto ({int(own.iloc[0])})" if len(own) else "auto"
        details.append(table.assign(point_id=pid, label=label))
        for v in verdicts(table).to_dict("records"):
            smallest = smallest_passing_in_table(table) if v["check"] == "cutoff" else None
            margin = v["worst_threshold"] / v["worst_deviation"] if v["worst_deviation"] > 0 else float("inf")
            rows.append({
                "verdict": "PASS" if v["passed"] else "FAIL", "label": label, "point_id": pid,
                "check": v["check"], "failed_rows": v["n_failed"], "required_rows": v["n_required"],
                "worst_setting": v["worst_setting"], "worst_observable": v["worst_observable"],
                "worst_deviation": v["worst_deviation"], "threshold": v["worst_threshold"],
                "margin": margin if v["worst_deviation"] == v["worst_deviation"] else float("nan"),
                "smallest_passing_n_fock": smallest if smallest is not None else "",
                **{name: params.get(name) for name in TABLE_PARAMETERS},
            })
    out = pd.DataFrame(rows)
    if out.empty:
        raise ValueError("no convergence table to combine")
    out = out.sort_values(["verdict", "label", "check"], key=lambda c: c.map({"FAIL": 0, "PASS": 1})
                          if c.name == "verdict" else c, kind="stable")
    return out, pd.concat(details, ignore_index=True)


def gate(table: pd.DataFrame, fail_on_error: bool) -> str:
    """The verdict text of a combined table (:func:`combine`): a head line, then one line per
    failing check; raises ConvergenceError naming them when one failed and ``fail_on_error``."""
    failed = table[table["verdict"] == "FAIL"]
    lines = [f"FAIL {r.label} [{r.check}]: {r.worst_setting} {r.worst_observable} max deviation "
             f"{r.worst_deviation:.3g} > threshold {r.threshold:.3g} (point {r.point_id})"
             for r in failed.itertuples()]
    if lines and fail_on_error:
        raise ConvergenceError(f"convergence check FAILED for {len(lines)} of {len(table)} checks "
                               "(convergence.fail_on_error is true; see results/analysis/convergence.csv):\n"
                               + "\n".join(lines))
    head = (f"FAIL: {len(lines)} of {len(table)} convergence checks failed (fail_on_error is false)" if lines
            else f"PASS: all {len(table)} convergence checks at {table['point_id'].nunique()} points passed")
    return "\n".join([head, *lines]) + "\n"

