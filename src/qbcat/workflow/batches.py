"""Batches of missing points: cut, planned, run (one job each), with failures kept apart.

The workflow computes, when it builds its DAG, the points that have no file yet and splits only
those into batches (:func:`partition`): one job per batch, whose outputs are exactly its
points' files (docs/architecture.md says why). :func:`run_batch` simulates a batch (every
catalyzed point with its cutoff certificate, qbcat.engine.cutoff) and writes each point atomically as
soon as it is done; a point that fails leaves a marker and does not stop the others.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import remove_stale_temporaries, write_text
from ..engine.params import PARAMETERS, point_id
from .study import FAILED_SUFFIX, POINT_SUFFIX

BATCH_PREFIX = "simulate_batch_"


def batch_name(ids: Sequence[str]) -> str:
    """Stable rule name of a batch: a hash of its (sorted) point ids."""
    digest = hashlib.sha256(" ".join(sorted(ids)).encode()).hexdigest()[:10]
    return BATCH_PREFIX + digest


def partition(ids: Iterable[str], batch_size: int, slots: int = 1) -> dict[str, list[str]]:
    """Split point ids into batches of at most ``batch_size`` points (deterministic).

    The number of batches is ceil(n / batch_size) rounded up to a multiple of ``slots`` (the
    jobs that can run at once), and never more than n: on 2 cores, 442 points with
    batch_size 250 make 2 batches, not 2 and an idle core at the end; 84 points make 2 batches,
    not 1. Sizes differ by at most one. The ids are sorted, so the split does not depend on
    config order; since ids are hashes, a batch is a random mix of the study's points, which
    evens out their costs.
    """
    ids = sorted(set(ids))
    if not ids:
        return {}
    if batch_size < 1 or slots < 1:
        raise ValueError(f"batch_size and slots must be >= 1, got {batch_size}, {slots}")
    n_batches = -(-len(ids) // batch_size)
    n_batches = min(len(ids), slots * -(-n_batches // slots))
    size, extra = divmod(len(ids), n_batches)
    batches, start = {}, 0
    for k in range(n_batches):
        stop = start + size + (1 if k < extra else 0)
        members = ids[start:stop]
        batches[batch_name(members)] = members
        start = stop
    return batches


def write_batch_plan(path: str | os.PathLike, batches: Mapping[str, Sequence[str]]) -> None:
    """Record the batches of a run, so that job steps that re-read the workflow (cluster jobs)
    define the very same batch rules even when other batches' points already exist by then."""
    write_text(json.dumps({"batches": batches}, indent=1, sort_keys=True), path)


def read_batch_plan(path: str | os.PathLike) -> dict[str, list[str]]:
    try:
        with open(path, encoding="utf-8") as fh:
            return dict(json.load(fh)["batches"])
    except FileNotFoundError:
        return {}


def runtime_minutes(n_points: int, resources: Mapping) -> int:
    """Wall-time request of a batch: start-up plus a per-point allowance, in whole minutes."""
    return math.ceil(resources["runtime_base_min"] + n_points * resources["runtime_per_point_min"])


# --------------------------------------------------------------------------------------------
# Running a batch


@dataclass
class PointFailure:
    point_id: str
    params: dict
    error: str

    def describe(self) -> str:
        case = "catalyzed" if self.params.get("catalyst", True) else "baseline"
        changed = ", ".join(f"{k}={v}" for k, v in self.params.items()
                            if k != "catalyst" and v != PARAMETERS[k].default)
        return f"point {self.point_id} ({case}; not default: {changed or 'none'}): {self.error}"


def run_batch(
    points: Sequence[Mapping], outputs: Sequence[str | os.PathLike], log=None,
    sanity_bounds: Mapping | None = None,
) -> list[PointFailure]:
    """Simulate each point and write its file (atomically); a failure does not stop the others.

    Every catalyzed point is run with its cutoff certificate (qbcat.engine.cutoff; n_fock "auto" picks
    its cutoff). Returns the failures (an ``<id>.failed`` marker with the error is left next to
    each, and removed once the point succeeds). ``outputs[k]`` must be the file named after point k's id.
    Each point file is flagged against ``sanity_bounds`` (:func:`qbcat.data.datasets.sanity_attrs`; a
    point that breaks them is still written, and named in the log). Temporaries of interrupted
    writes in the output folder, older than :data:`qbcat.atomic.STALE_AFTER_S`, are deleted first.
    """
    from ..engine.cutoff import describe as describe_certificate
    from ..engine.cutoff import simulate_certified
    from ..data.datasets import write_point  # the engine, only when a batch really runs
    from ..engine.solve import SimulationError
    from .status import progress_line

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if len(points) != len(outputs):
        raise ValueError(f"{len(points)} points but {len(outputs)} output files")
    bounds = dict(sanity_bounds) if sanity_bounds is not None else None
    for folder in sorted({str(Path(out).parent) for out in outputs}):
        remove_stale_temporaries(folder, log=log)
    params_list = [dict(p) for p in points]
    ids = [point_id(p) for p in params_list]
    for pid, out in zip(ids, outputs):
        if Path(out).name != pid + POINT_SUFFIX:
            raise ValueError(f"output {out} is not the file of point {pid}")
    failures = []
    n, done = len(points), 0
    start = last = time.perf_counter()
    for k, result in simulate_certified(params_list):
        done += 1
        pid, out, params = ids[k], outputs[k], params_list[k]
        marker = Path(out).with_suffix(FAILED_SUFFIX)
        try:
            if isinstance(result, SimulationError):
                raise result
            # the content of to_dataset, written with netCDF4 directly (uncompressed)
            attrs = write_point(result, out, sanity_bounds=bounds)
        except Exception as exc:  # noqa: BLE001 - record it, run the others, fail the job at the end
            failure = PointFailure(pid, params, f"{type(exc).__name__}: {exc}")
            failures.append(failure)
            write_text(failure.describe() + "\n", marker)
            log(f"[{done}/{n}] FAILED {failure.describe()}")
            last = time.perf_counter()
            log(progress_line(done - len(failures), n, len(failures), last - start))
            continue
        if marker.exists():
            marker.unlink()
        now = time.perf_counter()
        cutoff = f"; {describe_certificate(result.certificate)}" if result.certificate is not None else ""
        log(f"[{done}/{n}] {pid} written in {now - last:.3f} s (solver {result.wall_time:.3f} s, "
            f"engine {result.params['engine']}; {now - start:.1f} s since the batch started{cutoff})")
        last = now
        if not attrs["sanity_ok"]:
            log(f"[{done}/{n}] SANITY {pid} breaks the bounds: {attrs['sanity_violations']}")
        if result.certificate is not None:
            if not attrs["cutoff_ok"]:  # loud: a number of this point may be truncation error
                log(f"[{done}/{n}] CUTOFF {pid} fails its certificate: {attrs['cutoff_violations']}")
        log(progress_line(done - len(failures), n, len(failures), now - start))
    return failures


def failure_report(failures: Sequence[PointFailure], n_points: int) -> str:
    lines = [f"{len(failures)} of {n_points} points failed (the others were written):"]
    lines += [f"  {f.describe()}" for f in failures]
    return "\n".join(lines)
