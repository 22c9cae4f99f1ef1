"""What a run will cost, and how far it has got, from files only (no scheduler, no Snakemake).

Three things, for the workflow and for ``qbcat status``:

- **Cost model** (:func:`estimate_point_seconds`): the CPU seconds one point takes, so that
  ``snakemake -n`` can say what a run will cost before it starts (:func:`cost_report`).
- **Progress line** of a simulation batch (:func:`progress_line`): what the batch runner logs
  after each point; ``qbcat status`` reports the same numbers per sweep and per batch.
- **Status of a results folder** (:func:`collect`, :func:`format_status`): points done / total
  per sweep, failed points, the batches of the run in progress, and an ETA.

Where the status comes from, and why. A run writes, when its jobs start (``onstart``,
workflow/rules/simulate.smk), two small files under ``.snakemake/qbcat/``: the batch plan
(``batch-plan.json``: batch -> its point ids, qbcat.workflow.batches) and the run's summary (``run.json``,
:func:`write_run_info`: start time, each sweep's point ids, the estimated seconds per point of
each batch). Everything else is read from ``results/points``: one directory listing says which
points exist and which failed (``<id>.failed`` markers), and the modification times of the
points written since the run started measure the speed. A batch writes its points one after
another, each as soon as it is done, so the gaps between the file times of one batch are the
wall time per point (start-up and queue wait excluded). One ``stat`` per point written in this
run is cheap (10^4 stats take well under a second even on NFS), unlike opening 10^4 NetCDF
headers for their ``solver_wall_time_s`` attribute, and it needs nothing from the batch runner
(its log format, or a sidecar per point). A run in progress is recognised by Snakemake's lock
(``.snakemake/locks``), so this works the same during a local and a SLURM run.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_text
from ..engine.params import DEFAULTS

# --------------------------------------------------------------------------------------------
# Cost model

#: Seconds per point at t_max = REFERENCE_T_MAX: ``a + b * d**2``, d the Hilbert-space dimension
#: (2 n_fock for a catalyzed point, 2 for its qubit-only baseline), so d**2 is the dimension of
#: the Liouvillian the solver propagates. Fitted (least squares in relative error, within 7 %)
#: to the measured engine times at the default point (t_max 300, n_t 3001, adams, atol 1e-9,
#: rtol 1e-7): ``qutip`` 0.13 / 0.51 / 1.47 s at n_fock 4 / 12 / 20; ``batched`` 10 / 32 /
#: 82 ms per point in batches of 64 (benchmarks/README.md, "Engines").
ENGINE_COST = {
    "qutip": (0.077, 8.1e-4),
    "batched": (7.0e-3, 4.7e-5),
}
#: Seconds per point that do not grow with t_max or n_fock: the point's dataset built and
#: written (qbcat.data.datasets.write_point, n_t 3001: ~0.009 s measured, benchmarks/bench_io.py).
WRITE_S = 0.009
#: The engine a point without an ``engine`` parameter runs on.
DEFAULT_ENGINE = "batched"
REFERENCE_T_MAX = 300.0

#: A point estimated above this many seconds is named in a warning before the run starts.
POINT_WARN_S = 3600.0


#: n_fock auto: the estimate assumes the ladder stops at this rung (the default point stops at
#: 10, the third rung of 6, 8, 10, ...; weakly damped points climb further).
AUTO_RUNGS = 3


def hilbert_dimension(params: Mapping) -> int:
    """2 n_fock with the catalyst (qubit x oscillator), 2 for the qubit alone (the baseline)."""
    return 2 * int(params["n_fock"]) if params.get("catalyst", True) else 2


def certified_cutoffs(params: Mapping) -> list[int]:
    """The cutoffs a catalyzed point is run at (qbcat.engine.cutoff): its n_fock and n_fock + cutoff_gap;
    with n_fock auto, every rung up to :data:`AUTO_RUNGS` and their references."""
    p = {**DEFAULTS, **params}
    gap = int(p["cutoff_gap"])
    if p["n_fock"] == "auto":  # the ladder of qbcat.engine.cutoff.ladder, its first AUTO_RUNGS rungs
        rungs = list(range(int(p["n_fock_min"]), int(p["n_fock_max"]) + 1, int(p["n_fock_step"])))[:AUTO_RUNGS]
        return sorted({*rungs, *(n + gap for n in rungs)})
    return [int(p["n_fock"]), int(p["n_fock"]) + gap]


def estimate_point_seconds(params: Mapping) -> float:
    """Estimated CPU seconds of one point: ``WRITE_S + (t_max / 300) * sum (a + b * d**2)``,
    summed over the runs of its cutoff certificate (:func:`certified_cutoffs`).

    The solver's work grows with the simulated time ``t_max`` (its steps are bounded by the
    dynamics, not by the ``n_t`` output samples, whose cost is small) and, per step, with the
    size d**2 of the Liouvillian (d = :func:`hilbert_dimension`). ``a`` and ``b`` are per engine
    (:data:`ENGINE_COST`, the ``engine`` parameter; :data:`DEFAULT_ENGINE` if absent). Stiff
    points, other methods or tolerances can differ by a factor of a few: this is the order of
    magnitude a user should expect, and what makes an unintended ``t_max: 1e9`` visible.
    :data:`WRITE_S` is the fixed cost of writing the point's file.
    """
    runs = ([{**params, "n_fock": n} for n in certified_cutoffs(params)] if params.get("catalyst", True)
            else [params])
    return WRITE_S + sum(run_seconds(run) for run in runs)


def run_seconds(params: Mapping) -> float:
    """Estimated CPU seconds of one integration at an integer cutoff: ``(t_max / 300) * (a + b d**2)``."""
    engine = params.get("engine", DEFAULT_ENGINE)
    a, b = ENGINE_COST.get(engine, ENGINE_COST[DEFAULT_ENGINE])
    return float(params["t_max"]) / REFERENCE_T_MAX * (a + b * hilbert_dimension(params) ** 2)


def format_duration(seconds: float) -> str:
    """45 s, 12 min, 3.4 h, 2.1 days: the unit a person reads at a glance."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.2g} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _cost_params(params: Mapping, keys: Sequence[str] = ("n_fock", "t_max", "engine")) -> str:
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params)


def cost_report(points: Mapping[str, Mapping], to_compute: Sequence[str], present: int,
                batches: Mapping[str, Sequence[str]], runtime_min: Mapping[str, float] | None = None,
                n_sweeps: int | None = None, gaps: int = 0) -> list[str]:
    """Lines printed before a run starts: points present and to compute, the estimated CPU
    time, and warnings for out-of-proportion points or batches.

    ``points``: point id -> parameters (the study's); ``to_compute``: the ids without a file
    (the batches' points); ``present``: how many of the study's points have a file;
    ``runtime_min``: batch name -> its wall-time request in minutes (a batch estimated above
    it would be killed by SLURM); ``gaps``: points left out as gaps (allow_gaps).
    """
    seconds = {pid: estimate_point_seconds(points[pid]) for pid in to_compute}
    total = sum(seconds.values())
    engines = sorted({points[pid].get("engine", DEFAULT_ENGINE) for pid in to_compute})
    sweeps = f" in {n_sweeps} sweep{'s' if n_sweeps != 1 else ''}" if n_sweeps is not None else ""
    head = f"qbcat: {len(points)} points{sweeps}: {present} present, "
    head += f"{gaps} failed earlier left as gaps, " if gaps else ""
    head += f"{len(to_compute)} to compute"
    if not to_compute:
        return [head + "."]
    lines = [f"{head} in {len(batches)} batch{'es' if len(batches) != 1 else ''}; estimated "
             f"{format_duration(total)} of CPU ({', '.join(engines)} engine, "
             f"{format_duration(total / len(to_compute))} per point on average; the cost model is "
             f"qbcat.workflow.status.estimate_point_seconds)"]
    slow = [pid for pid in to_compute if seconds[pid] > POINT_WARN_S]
    if slow:
        worst = max(slow, key=seconds.get)
        lines.append(f"qbcat: WARNING: {len(slow)} point(s) estimated above "
                     f"{format_duration(POINT_WARN_S)} each, the slowest {format_duration(seconds[worst])} "
                     f"({_cost_params(points[worst])}): check t_max and n_fock before running")
    over = []
    for name, ids in batches.items():
        limit = (runtime_min or {}).get(name)
        batch_s = sum(seconds.get(pid, 0.0) for pid in ids)
        if limit is not None and batch_s > 60 * limit:
            over.append((name, batch_s, limit))
    if over:
        name, batch_s, limit = max(over, key=lambda item: item[1] / item[2])
        lines.append(f"qbcat: WARNING: {len(over)} batch(es) estimated above their wall-time "
                     f"request, e.g. {name}: {format_duration(batch_s)} > {limit:g} min; on a "
                     "cluster they would be killed (resources.simulate in config/config.yaml)")
    return lines


def describe_batch(ids: Sequence[str], membership: Mapping[str, Sequence[str]], log: str,
                   cpu_s: float | None = None) -> str:
    """One line saying what a batch job is, e.g.
    ``simulate 56 points (map21: 55, base: 1), ~8 s CPU; progress in logs/simulate/X.log``;
    a point in several sweeps counts in each. (It is a Snakemake ``message:``, whose braces
    would be read as placeholders: sweep names and paths here have none.)"""
    per_sweep: dict[str, int] = {}
    for pid in ids:
        for name in membership.get(pid, ()):
            per_sweep[name] = per_sweep.get(name, 0) + 1
    sweeps = ", ".join(f"{name}: {n}" for name, n in per_sweep.items())
    cost = f", ~{format_duration(cpu_s)} CPU" if cpu_s is not None else ""
    return f"simulate {len(ids)} point{'s' if len(ids) != 1 else ''} ({sweeps}){cost}; progress in {log}"


# --------------------------------------------------------------------------------------------
# The progress line of a batch

PROGRESS = re.compile(r"^\[(?P<k>\d+)/(?P<n>\d+)\] progress: (?P<done>\d+) written, "
                      r"(?P<failed>\d+) failed, (?P<elapsed>[0-9.]+) s elapsed")


def progress_line(done: int, total: int, failed: int, elapsed_s: float) -> str:
    """The line a batch logs after each point, e.g.
    ``[12/55] progress: 11 written, 1 failed, 6.2 s elapsed, 0.52 s per point, ETA 22 s``.

    ``done``: points written so far, ``failed``: points that failed, ``total``: the batch's
    points, ``elapsed_s``: seconds since the batch started. ETA = seconds per point (elapsed
    over points finished, written or failed) times the points left, the same arithmetic as
    ``qbcat status`` applies to a batch.
    """
    finished = done + failed
    head = (f"[{finished}/{total}] progress: {done} written, {failed} failed, "
            f"{elapsed_s:.1f} s elapsed")
    if finished == 0:
        return head
    per_point = elapsed_s / finished
    left = total - finished
    eta = "done" if left <= 0 else f"ETA {format_duration(per_point * left)}"
    return f"{head}, {per_point:.3g} s per point, {eta}"


def parse_progress_line(line: str) -> dict | None:
    """(k, n, done, failed, elapsed) of a :func:`progress_line`, or None for any other line."""
    match = PROGRESS.match(line.strip())
    if not match:
        return None
    out = {key: int(value) for key, value in match.groupdict().items() if key != "elapsed"}
    out["elapsed"] = float(match["elapsed"])
    return out


# --------------------------------------------------------------------------------------------
# The run's summary file

RUN_FILE = Path(".snakemake", "qbcat", "run.json")
PLAN_FILE = Path(".snakemake", "qbcat", "batch-plan.json")  # written by qbcat.workflow.batches.write_batch_plan


def write_run_info(path: str | os.PathLike, sweeps: Mapping[str, Sequence[str]],
                   batches: Mapping[str, Sequence[str]], points: Mapping[str, Mapping],
                   started: float | None = None) -> None:
    """Record, when a run's jobs start, what ``qbcat status`` needs and cannot cheaply get
    otherwise: the start time, each sweep's point ids, and each batch's estimated seconds per
    point (the ETA before any point is done). Written atomically."""
    estimate = {name: (sum(estimate_point_seconds(points[p]) for p in ids) / len(ids) if ids else 0.0)
                for name, ids in batches.items()}
    info = {"started": time.time() if started is None else started,
            "sweeps": {name: list(ids) for name, ids in sweeps.items()},
            "batches": {name: list(ids) for name, ids in batches.items()},
            "estimated_s_per_point": estimate}
    write_text(json.dumps(info, indent=None, sort_keys=True), path)


def read_run_info(path: str | os.PathLike) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# --------------------------------------------------------------------------------------------
# Status of a results folder

POINT_SUFFIX, FAILED_SUFFIX = ".nc", ".failed"  # as qbcat.workflow.study (not imported: no numpy/yaml)


@dataclass
class SweepStatus:
    name: str
    total: int
    done: int
    failed: int


@dataclass
class BatchStatus:
    name: str
    total: int
    done: int
    failed: int
    state: str  # done, failed, running, waiting (queued or starting), incomplete (no run)
    s_per_point: float | None = None  # measured from file times, if two points are done
    eta_s: float | None = None


@dataclass
class Status:
    results: str
    points_present: int = 0
    points_failed: int = 0
    sweeps: list[SweepStatus] = field(default_factory=list)
    batches: list[BatchStatus] = field(default_factory=list)
    running: bool = False  # a Snakemake run holds the lock of this folder
    started: float | None = None
    s_per_point: float | None = None
    s_per_point_source: str = ""  # "measured on N points" or "estimated"
    eta_s: float | None = None
    source: str = ""  # where the sweeps came from


def _scan(point_dir: Path) -> dict[str, os.DirEntry]:
    try:
        with os.scandir(point_dir) as it:
            return {entry.name: entry for entry in it}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _index_sweeps(index: Path) -> dict[str, list[str]]:
    """Sweep -> point ids from results/points/index.csv (written at the end of a run)."""
    import csv

    sweeps: dict[str, list[str]] = {}
    try:
        with open(index, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                for name in (row.get("sweeps") or "").split():
                    sweeps.setdefault(name, []).append(row["point_id"])
    except FileNotFoundError:
        pass
    return sweeps


def _mtime(entry: os.DirEntry | None) -> float | None:
    if entry is None:
        return None
    try:
        return entry.stat().st_mtime
    except FileNotFoundError:
        return None


def collect(results: str | os.PathLike = "results", workdir: str | os.PathLike | None = None,
            now: float | None = None) -> Status:
    """The status of ``results`` (the workflow's results folder; ``workdir``, default its
    parent, holds ``.snakemake``). Reads only files; an empty or missing folder is a status too."""
    results = Path(results)
    workdir = Path(workdir) if workdir is not None else results.resolve().parent
    now = time.time() if now is None else now
    names = _scan(results / "points")
    present = {n[: -len(POINT_SUFFIX)] for n in names if n.endswith(POINT_SUFFIX) and not n.startswith(".")}
    failed_markers = {n[: -len(FAILED_SUFFIX)] for n in names if n.endswith(FAILED_SUFFIX)} - present
    status = Status(str(results), points_present=len(present), points_failed=len(failed_markers))
    status.running = any((workdir / ".snakemake" / "locks").glob("*"))

    info = read_run_info(workdir / RUN_FILE)
    if info is not None:
        sweeps, batches = info.get("sweeps", {}), info.get("batches", {})
        status.started = info.get("started")
        status.source = str(RUN_FILE)
    else:
        sweeps, batches = _index_sweeps(results / "points" / "index.csv"), {}
        status.source = "results/points/index.csv" if sweeps else ""
    started = status.started or 0.0
    in_plan = {pid for ids in batches.values() for pid in ids}

    def failed_now(pid: str) -> bool:
        """A failed marker counts, except one older than the run in progress that retries it."""
        if pid not in failed_markers:
            return False
        if status.running and pid in in_plan:
            marker = _mtime(names.get(pid + FAILED_SUFFIX))
            return marker is not None and marker >= started
        return True

    for name, ids in sweeps.items():
        status.sweeps.append(SweepStatus(name, len(ids), sum(p in present for p in ids),
                                         sum(failed_now(p) for p in ids)))

    # batches of the run: done / failed / running, and the time per point from file times
    measured = []
    estimates = info.get("estimated_s_per_point", {}) if info else {}
    for name, ids in batches.items():
        done_ids = [p for p in ids if p in present]
        failed = sum(failed_now(p) for p in ids)
        times = sorted(t for t in (_mtime(names.get(p + POINT_SUFFIX)) for p in done_ids)
                       if t is not None and t >= started)
        per_point = (times[-1] - times[0]) / (len(times) - 1) if len(times) >= 2 else None
        if per_point is not None:
            measured.append((per_point, len(times)))
        finished = len(done_ids) + failed
        if finished == len(ids):
            state = "failed" if failed else "done"
        elif not status.running:
            state = "incomplete"
        else:
            state = "running" if finished else "waiting"
        status.batches.append(BatchStatus(name, len(ids), len(done_ids), failed, state, per_point))

    if measured:
        status.s_per_point = statistics.median(t for t, _ in measured)
        status.s_per_point_source = f"measured on {sum(n for _, n in measured)} points' file times"
    elif estimates:
        status.s_per_point = statistics.median(estimates.values())
        status.s_per_point_source = "estimated (cost model; nothing measured yet)"

    if status.running and status.s_per_point is not None:
        status.eta_s = _eta(status, estimates)
    return status


def _eta(status: Status, estimates: Mapping[str, float]) -> float | None:
    """Seconds until the batches of the run in progress are all finished.

    Each batch still to run needs (points left) x (its seconds per point: measured on it, else
    the run's measured median, else its estimate). Batches run side by side, as many at once as have started
    (or all of them if none has): the run ends no sooner than its slowest batch, nor before the
    remaining work divided among the batches running at once.
    """
    open_batches = [b for b in status.batches if b.state in ("running", "waiting")]
    if not open_batches:
        return 0.0
    work = []
    for b in open_batches:
        measured = status.s_per_point if status.s_per_point_source.startswith("measured") else None
        per_point = b.s_per_point or measured or estimates.get(b.name) or status.s_per_point
        b.eta_s = (b.total - b.done - b.failed) * per_point
        work.append(b.eta_s)
    parallel = sum(b.state == "running" for b in open_batches) or len(open_batches)
    return max(max(work), sum(work) / parallel)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_status(status: Status) -> str:
    """A few lines a person reads: the run, each sweep, the open batches, the ETA."""
    lines = []
    if status.points_present == 0 and not status.sweeps and not status.batches:
        lines.append(f"{status.results}: no point computed yet "
                     f"({'a run is starting' if status.running else 'run snakemake to start'})")
        return "\n".join(lines)
    lines.append(f"{status.results}: {_n(status.points_present, 'point file')}, "
                 f"{_n(status.points_failed, 'failed point')}")
    if status.running:
        since = (f", started {time.strftime('%H:%M:%S', time.localtime(status.started))}"
                 if status.started else "")
        lines.append(f"run in progress (Snakemake holds the lock{since})")
    else:
        lines.append("no run in progress")
    if status.sweeps:
        width = max(5, *(len(s.name) for s in status.sweeps))
        lines.append(f"  {'sweep':<{width}}  {'done':>7} / {'total':<7} {'failed':>6}")
        for s in status.sweeps:
            lines.append(f"  {s.name:<{width}}  {s.done:>7} / {s.total:<7} {s.failed:>6}")
    elif not status.source:
        lines.append("  (no run plan or point index yet: per-sweep counts appear once a run starts)")
    if status.batches:
        counts = {}
        for b in status.batches:
            counts[b.state] = counts.get(b.state, 0) + 1
        order = ["done", "failed", "running", "waiting", "incomplete"]
        lines.append(f"batches of the {'current' if status.running else 'last'} run: "
                     + ", ".join(f"{counts[s]} {s}" for s in order if s in counts))
        for b in status.batches:
            if b.state in ("running", "waiting"):
                rate = f", {b.s_per_point:.3g} s per point" if b.s_per_point else ""
                eta = f", ~{format_duration(b.eta_s)} left" if b.eta_s is not None else ""
                lines.append(f"  {b.name}  {b.done + b.failed}/{b.total} ({b.failed} failed){rate}{eta}"
                             f"  [{b.state}]")
    open_batches = any(b.state in ("running", "waiting") for b in status.batches)
    if status.running and status.batches and not open_batches:
        lines.append("every batch of this run has ended; Snakemake is aggregating or making products")
    elif status.running and status.eta_s is not None:
        lines.append(f"ETA: ~{format_duration(status.eta_s)} ({status.s_per_point:.3g} s per point, "
                     f"{status.s_per_point_source})")
    elif not status.running and any(b.state == "incomplete" for b in status.batches):
        lines.append("some points of the last run are missing: `snakemake` computes them")
    return "\n".join(lines)
