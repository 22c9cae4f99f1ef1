"""Sweep datasets: a sweep's point files stacked lazily (dask) into one compressed NetCDF.

Format (fixed in the project notes): dims ``(*axes, case, time)`` with the swept parameters as
coordinates in config order and ``case`` = ("catalyzed", "baseline"); every observable of the
point datasets (``energy_cat`` NaN for the baseline); ``point_id`` and the four ``sanity_*``
numbers per (*axes, case); global attributes ``sweep_name``, ``sweep_axes`` and every parameter
that is not swept.

How it is built, and why:

1. :func:`check_points` opens every point file's header once (only the attributes it checks), checks that
   the file's parameters are the ones the sweep expects (:func:`qbcat.data.datasets.read_params`), and
   collects ids and sanity numbers. A missing or mismatching point is refused with a message
   naming the file, before anything is written (with ``allow_gaps`` a missing point is a NaN
   gap instead, listed in the variable ``missing_point`` and the attribute ``gaps``).
2. The observables are dask arrays, one chunk per block of grid cells (whole time series,
   about ``chunk_mb`` per variable). One task reads one block: it opens each file of the block
   once and returns all observables, so a file is opened once however many variables there are
   (``xarray.open_mfdataset`` would make one task per file and variable, ~10^5 tasks for a
   10^4-point map, and open every file through xarray's slower machinery).
3. The dataset is written with xarray's netCDF4 engine, zlib-compressed, in chunks equal to the
   dask chunks, to a temporary file renamed into place (:func:`qbcat.data.datasets.write_netcdf`).

Processes: with ``threads`` > 1 and a sweep of at least :data:`POOL_MIN_FILES` point files, the
reads run in worker processes (each with its own netCDF library, so they really run at once):
the headers on all ``threads`` of them, then the blocks on ``threads - 1`` (at least one), a few
blocks ahead of the writer, while this process compresses and writes. Writing is the one part
that cannot be split (one HDF5 file), so the aggregation then costs about its write time.

Thread safety: libnetcdf and HDF5 are not thread-safe and netCDF4-python does not serialise
calls into them; that is why ``open_mfdataset(parallel=True)`` with the netCDF4 engine can
crash. Here every netCDF call — our reads and xarray's chunk writes — holds the same
process-wide locks (xarray's ``NETCDFC_LOCK`` and ``HDF5_LOCK``, which xarray's netCDF4 backend
takes for each write), so dask's threaded scheduler is safe: while one thread is inside the
library, the others decompress nothing but can assemble and hand over arrays. (h5netcdf would
serialise through h5py's global lock, but h5py is not installed here; the netCDF4 engine is.)
Memory stays bounded by a few blocks at a time, whatever the sweep's size: dask's ordering
reads a block, hands its variables to the writer and drops it; netCDF's per-variable chunk
cache (64 MiB each by default, which would hold on to written chunks) is made small while the
file is written, since every chunk is written once, whole.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ..atomic import remove_stale_temporaries
from ..workflow.study import CASES, POINT_SUFFIX, Sweep
from ..engine.cutoff import CERTIFIED, Certificate
from ..engine.params import PARAMETERS, validate

#: The per-point sanity numbers (attributes ``sanity_*`` of a point file).
SANITY = ("trace_error_max", "min_eigenvalue_qb", "first_law_residual", "first_law_residual_rel",
          "heat_channel_residual")

#: The cutoff certificate's numbers (attributes ``cutoff_*`` of a catalyzed point's file,
#: qbcat.engine.cutoff), carried into the sweep as variables of the same names; the chosen cutoff
#: ``cutoff_n_fock`` becomes the variable ``n_fock``.
#: A catalyzed point's certificate thresholds (its own parameters: a sweep may set them).
THRESHOLDS = ("cutoff_tolerance", "cutoff_top_tolerance")

CUTOFF = ("cutoff_n_fock", *(f"cutoff_deviation_{name}" for name in CERTIFIED), "cutoff_top_population")


class AggregationError(RuntimeError):
    """A sweep that cannot be aggregated; the message names the point file and what is wrong."""


def _observables() -> list[str]:
    from .datasets import VARIABLES

    return [name for name in VARIABLES if name != "time"]


def _nc_lock():
    """The locks xarray's netCDF4 backend holds for every read and write, combined
    (:func:`qbcat.data.datasets.netcdf_lock`)."""
    from .datasets import netcdf_lock

    return netcdf_lock()


# --------------------------------------------------------------------------------------------
# 1. Check every point file's header


@dataclass
class PointTable:
    """What the headers of a sweep's point files say, on the sweep's grid (*shape, case)."""

    paths: np.ndarray  # object: file path, or None for a gap
    point_id: np.ndarray  # str
    sanity: dict  # name -> float array
    time: np.ndarray
    cutoff: dict = field(default_factory=dict)  # CUTOFF name -> float array (NaN: baseline, gap)
    thresholds: dict = field(default_factory=dict)  # cutoff_tolerance/_top_population per cell
    gaps: list = field(default_factory=list)  # ids of missing points
    qutip_versions: list = field(default_factory=list)


#: The global attributes of a point file that :func:`check_points` uses: the parameters, the
#: point id, the QuTiP version, the sanity numbers and the cutoff certificate.
HEADER_ATTRS = frozenset({*PARAMETERS, "point_id", "qutip_version", *(f"sanity_{name}" for name in SANITY),
                          *CUTOFF})


def _read_header(path: str) -> tuple[dict, set, int]:
    """A point file's :data:`HEADER_ATTRS` (those it has), its variables and its number of times.
    Only these attributes are read: reading all of them costs ~1 ms a file, a third of the header."""
    import netCDF4

    with _nc_lock():
        with netCDF4.Dataset(path) as nc:
            attrs = {k: nc.getncattr(k) for k in nc.ncattrs() if k in HEADER_ATTRS}
            return attrs, set(nc.variables), len(nc.dimensions["time"])


def _try_read_header(path: str):
    """:func:`_read_header`, or the exception's text (a worker process hands it back)."""
    try:
        return _read_header(path)
    except Exception as exc:  # noqa: BLE001 - reported by check_points, naming the file
        return f"{type(exc).__name__}: {exc}"


#: The least point files a sweep needs before its reads go to worker processes: a worker
#: costs a process and the pickling of every block it reads, which only pays on large sweeps.
POOL_MIN_FILES = 200


def _reader_pool(workers: int):
    """Worker processes for the reads, or None for reading here.

    "fork", started at once: "spawn" would import the caller's main module again in every
    worker, and a Snakemake script is a main module without a ``__main__`` guard. The workers are
    forked before this process opens any netCDF file or starts a thread, so they inherit no
    open file and no lock held by another thread."""
    if workers < 1:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    for future in [pool.submit(os.getpid) for _ in range(workers)]:
        future.result()
    return pool


@contextlib.contextmanager
def _readers(workers: int):
    """:func:`_reader_pool` for a ``with`` block (None for 0 workers), shut down at its end."""
    pool = _reader_pool(workers)
    try:
        yield pool
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _read_time(path: str) -> np.ndarray:
    import netCDF4

    with _nc_lock():
        with netCDF4.Dataset(path) as nc:
            nc.set_auto_mask(False)
            return np.asarray(nc.variables["time"][:], dtype=float)


def _files_by_id(files: Iterable[str | os.PathLike]) -> dict[str, str]:
    out = {}
    for f in files:
        name = Path(f).name
        if name.endswith(POINT_SUFFIX):
            out[name[: -len(POINT_SUFFIX)]] = str(f)
    return out


def _mismatch(expected: Mapping, found: Mapping) -> list[str]:
    keys = sorted(set(expected) | set(found))
    return [f"{k}: expected {expected.get(k)!r}, file has {found.get(k)!r}"
            for k in keys if expected.get(k) != found.get(k)]


def check_points(sweep: Sweep, files: Iterable[str | os.PathLike], allow_gaps: bool = False,
                 log=None, pool=None) -> PointTable:
    """Check that every point of ``sweep`` has a matching file among ``files``.

    A point file must be named ``<point_id>.nc`` and hold that point's parameters; a missing one
    raises AggregationError naming the expected file (or, with ``allow_gaps``, becomes a gap).
    ``pool`` (:func:`_reader_pool`), if given, reads the headers; the checks are the same.
    """
    from .datasets import read_params

    log = log or _stderr
    by_id = _files_by_id(files)
    read = {}  # path -> header, or the text of the error reading it
    if pool is not None:  # the files given are the sweep's (the workflow's input): read them all
        wanted = [path for path in by_id.values() if os.path.exists(path)]
        read = dict(zip(wanted, pool.map(_try_read_header, wanted, chunksize=max(1, len(wanted) // 64))))
    shape = sweep.shape + (len(CASES),)
    paths = np.full(shape, None, dtype=object)
    ids = np.full(shape, "", dtype=object)
    sanity = {name: np.full(shape, np.nan) for name in SANITY}
    cutoff = {name: np.full(shape, np.nan) for name in CUTOFF}
    thresholds = {name: np.full(shape, np.nan) for name in THRESHOLDS}
    gaps, versions, n_time, headers = [], set(), None, {}
    expected_vars = set(_observables())
    last = time.monotonic()
    for n, (index, pair) in enumerate(sweep.cells(), start=1):
        for c, case in enumerate(CASES):
            pid, params = pair[case]
            ids[index + (c,)] = pid
            path = by_id.get(pid)
            if path is None or not os.path.exists(path):
                where = path or f"<point dir>/{pid}{POINT_SUFFIX}"
                if not allow_gaps:
                    raise AggregationError(
                        f"sweep {sweep.name}: point file {where} is missing ({case} point "
                        f"{_describe(params, sweep)}); run the simulations first, or set "
                        "allow_gaps: true to leave it as a NaN gap")
                if pid not in gaps:
                    gaps.append(pid)
                continue
            if pid not in headers:
                header = read[path] if path in read else _try_read_header(path)
                if isinstance(header, str):  # truncated, overwritten, not NetCDF...
                    raise AggregationError(
                        f"sweep {sweep.name}: cannot read point file {path} ({header}); it is "
                        "damaged: delete it to have it recomputed")
                attrs, variables, nt = header
                found = read_params(SimpleNamespace(attrs=attrs))
                wrong = _mismatch(params, found)
                if wrong or attrs.get("point_id") != pid:
                    raise AggregationError(
                        f"sweep {sweep.name}: point file {path} does not hold the expected point "
                        f"({'; '.join(wrong) or 'point_id ' + repr(attrs.get('point_id'))}); "
                        "delete it to have it recomputed")
                want = expected_vars - ({"energy_cat"} if case == "baseline" else set())
                if want - variables:
                    raise AggregationError(f"sweep {sweep.name}: point file {path} lacks "
                                           f"{', '.join(sorted(want - variables))} (written by an older "
                                           "qbcat?): delete it to have it recomputed")
                if n_time is None:
                    n_time = nt
                elif nt != n_time:
                    raise AggregationError(f"sweep {sweep.name}: point file {path} has {nt} times, "
                                           f"other points {n_time}")
                versions.add(str(attrs.get("qutip_version", "unknown")))
                if case == "catalyzed" and "cutoff_n_fock" not in attrs:
                    raise AggregationError(f"sweep {sweep.name}: point file {path} has no cutoff "
                                           "certificate (written by an older qbcat?): delete it to "
                                           "have it recomputed")
                headers[pid] = {**{name: float(attrs.get(f"sanity_{name}", np.nan)) for name in SANITY},
                                **{name: float(attrs.get(name, np.nan)) for name in CUTOFF}}
            paths[index + (c,)] = path
            for name in SANITY:
                sanity[name][index + (c,)] = headers[pid][name]
            for name in CUTOFF:
                cutoff[name][index + (c,)] = headers[pid][name]
            if case == "catalyzed":  # the sweep's thresholds (a fixed cutoff's point drops them)
                full = validate(sweep.cell_params(index))
                for name in THRESHOLDS:
                    thresholds[name][index + (c,)] = full[name]
        if time.monotonic() - last > 10:
            log(f"aggregate {sweep.name}: checked {n}/{sweep.size} grid cells")
            last = time.monotonic()
    present = [p for p in paths.flat if p is not None]
    if not present:
        raise AggregationError(f"sweep {sweep.name}: no point file at all")
    return PointTable(paths, ids.astype(str), sanity, _read_time(present[0]), cutoff=cutoff,
                      thresholds=thresholds, gaps=gaps, qutip_versions=sorted(versions))


def sanity_flags(table: PointTable, bounds: Mapping | None = None) -> tuple[np.ndarray, dict]:
    """``sanity_ok`` on the grid (*shape, case): 1 within ``bounds``, 0 broken, -1 missing point;
    and {point_id: violations (text)} of the points that break them."""
    from .datasets import sanity_violations

    ok = np.ones(table.point_id.shape, dtype=np.int8)
    broken = {}
    for index in np.ndindex(*ok.shape):
        if table.paths[index] is None:
            ok[index] = -1
            continue
        found = sanity_violations({name: table.sanity[name][index] for name in SANITY}, bounds)
        if found:
            ok[index] = 0
            broken[str(table.point_id[index])] = "; ".join(found)
    return ok, broken


def cutoff_flags(table: PointTable) -> tuple[np.ndarray, dict]:
    """``cutoff_ok`` on the grid (*shape, case): 1 certified, 0 certificate failed, -1 none (the
    baseline has no cutoff; or a missing point); and {point_id: violations (text)} of the failed,
    judged at each point's own thresholds (qbcat.engine.cutoff.Certificate.violations)."""
    ok = np.full(table.point_id.shape, -1, dtype=np.int8)
    broken = {}
    for index in np.ndindex(*ok.shape):
        if table.paths[index] is None or not np.isfinite(table.cutoff["cutoff_n_fock"][index]):
            continue
        n_fock = int(table.cutoff["cutoff_n_fock"][index])
        cert = Certificate(n_fock, -1, {name: table.cutoff[f"cutoff_deviation_{name}"][index] for name in CERTIFIED},
                           table.cutoff["cutoff_top_population"][index])
        found = cert.violations({name: table.thresholds[name][index] for name in THRESHOLDS})
        ok[index] = 0 if found else 1
        if found:
            broken[str(table.point_id[index])] = f"n_fock {n_fock}: " + "; ".join(found)
    return ok, broken


def _cell_text(sweep: Sweep, index: tuple) -> str:
    """'catalyzed, g=0.1, omega_c=0.8' for a grid index (*axes, case)."""
    values = ", ".join(f"{a.name}={a.values[i]}" for a, i in zip(sweep.axes, index[:-1]))
    return f"{CASES[index[-1]]}, {values}"


def _describe(params: Mapping, sweep: Sweep) -> str:
    return ", ".join(f"{k}={params[k]}" for k in sweep.axis_names if k in params) or "base point"


# --------------------------------------------------------------------------------------------
# 2. Lazy observables


def _read_block(paths: np.ndarray, names: Sequence[str], n_time: int) -> np.ndarray:
    """All observables of a block of points: shape (len(names), *paths.shape, n_time), NaN for
    gaps and for variables a point does not have (energy_cat of a baseline)."""
    import netCDF4

    out = np.full((len(names),) + paths.shape + (n_time,), np.nan)
    cache: dict[str, dict] = {}  # a block often holds the same baseline many times
    for index in np.ndindex(*paths.shape):
        path = paths[index]
        if path is None:
            continue
        if path not in cache:
            try:
                with _nc_lock():
                    with netCDF4.Dataset(path) as nc:
                        nc.set_auto_maskandscale(False)  # plain arrays, as stored (NaN stays NaN)
                        variables = nc.variables
                        cache[path] = {v: variables[v][:] for v in names if v in variables}
            except Exception as exc:  # noqa: BLE001 - e.g. damaged after its header was checked
                raise AggregationError(
                    f"cannot read point file {path} ({type(exc).__name__}: {exc}); it is damaged: "
                    "delete it to have it recomputed") from None
        for k, name in enumerate(names):
            if name in cache[path]:
                out[(k,) + index] = cache[path][name]
    return out


def block_shape(shape: Sequence[int], n_time: int, chunk_mb: float) -> tuple[int, ...]:
    """Grid cells per chunk along each axis: whole time series and both cases in a chunk of about
    ``chunk_mb`` MiB per variable, filled from the last axis backwards, split evenly."""
    cells = max(1, int(chunk_mb * 2**20 // (len(CASES) * n_time * 8)))
    out = []
    for size in reversed(shape):
        take = min(size, cells)
        take = -(-size // -(-size // take))  # even split: ceil(size / n_blocks)
        out.append(take)
        cells = max(1, cells // size) if take == size else 1
    return tuple(reversed(out))


class _BlockReader:
    """Blocks read by worker processes, ``ahead`` blocks in advance of the one asked for, so
    that reading overlaps writing while at most ``ahead`` + 1 blocks are in flight.

    Which blocks come next is guessed from the last two asked for (dask's ordering of the write
    asks for them one after the other, from the last to the first in practice): a wrong guess
    costs a wasted read, never a wrong result."""

    def __init__(self, pool, blocks: list, names: Sequence[str], n_time: int, ahead: int):
        self.pool, self.blocks, self.names, self.n_time, self.ahead = pool, blocks, names, n_time, ahead
        self.futures: dict = {}
        self.last: int | None = None

    def _submit(self, k: int) -> None:
        if 0 <= k < len(self.blocks) and k not in self.futures:
            self.futures[k] = self.pool.submit(_read_block, self.blocks[k], self.names, self.n_time)

    def __call__(self, k: int) -> np.ndarray:
        if self.last is None:
            step = -1 if k == len(self.blocks) - 1 else 1
        else:
            step = k - self.last or 1
        self.last = k
        for j in range(self.ahead + 1):
            self._submit(k + j * step)
        result = self.futures.pop(k).result()
        for stale in [j for j in self.futures if (j - k) * step < 0]:  # behind us: not needed
            self.futures.pop(stale).cancel()
        return result


def lazy_observables(table: PointTable, chunk_mb: float = 4.0, pool=None, ahead: int = 2) -> tuple[dict, tuple]:
    """name -> dask array (*shape, case, time), one read task per block; and the chunk shape.
    With ``pool`` (:func:`_reader_pool`) the blocks are read there, ``ahead`` in advance."""
    import dask
    import dask.array as da

    names = _observables()
    grid_shape = table.paths.shape[:-1]
    n_time = len(table.time)
    bshape = block_shape(grid_shape, n_time, chunk_mb)
    n_blocks = [-(-s // b) for s, b in zip(grid_shape, bshape)]
    pieces = {name: np.empty(n_blocks, dtype=object) for name in names}
    order = list(np.ndindex(*n_blocks))
    slices = [tuple(slice(i * b, min((i + 1) * b, s)) for i, b, s in zip(bindex, bshape, grid_shape))
              for bindex in order]
    reader = None
    if pool is not None:
        reader = _BlockReader(pool, [table.paths[sl] for sl in slices], names, n_time, ahead)
    for k, (bindex, sl) in enumerate(zip(order, slices)):
        block_paths = table.paths[sl]
        if reader is None:
            block = dask.delayed(_read_block, pure=True)(block_paths, names, n_time)
        else:
            block = dask.delayed(reader, pure=False)(k)
        shape = block_paths.shape + (n_time,)
        for k, name in enumerate(names):
            pieces[name][bindex] = da.from_delayed(block[k], shape=shape, dtype=float)
    arrays = {name: _concatenate(pieces[name]) for name in names}
    return arrays, bshape + (len(CASES), n_time)


def _concatenate(blocks: np.ndarray, axis: int = 0):
    """Join an N-d grid of dask arrays along their first N axes (da.block would join along
    the last ones)."""
    import dask.array as da

    if blocks.ndim == 1:
        return da.concatenate(list(blocks), axis=axis)
    return da.concatenate([_concatenate(sub, axis + 1) for sub in blocks], axis=axis)


# --------------------------------------------------------------------------------------------
# 3. The dataset and its file


def sweep_dataset(sweep: Sweep, table: PointTable, chunk_mb: float = 4.0, allow_gaps: bool = False,
                  sanity_bounds: Mapping | None = None, share: Mapping | None = None, pool=None):
    """The (lazy) sweep dataset of checked points, flagged against ``sanity_bounds``; ``share``
    (the config's ``share:`` section) says who made it (:func:`qbcat.data.datasets.share_attrs`). Its ACDD
    ``id`` is ``qbcat-sweep-<name>-<hash of its point ids>``."""
    import xarray as xr

    from .datasets import AGGREGATE_VARIABLES, VARIABLES, content_id, describe, describe_bounds

    dims = (*sweep.axis_names, "case")
    coords = {a.name: (a.name, np.asarray(a.values)) for a in sweep.axes}
    coords["case"] = ("case", np.array(CASES, dtype=object))
    coords["time"] = ("time", table.time, dict(zip(("units", "long_name", "comment"), VARIABLES["time"])))
    ds = xr.Dataset(coords=coords)
    arrays, chunks = lazy_observables(table, chunk_mb, pool)
    for name, array in arrays.items():
        units, long_name, comment = VARIABLES[name]
        ds[name] = ((*dims, "time"), array, {"units": units, "long_name": long_name, "comment": comment})
        ds[name].encoding = {"zlib": True, "complevel": 1, "shuffle": True, "chunksizes": chunks}
    ds["point_id"] = (dims, table.point_id.astype(object))
    for name in SANITY:
        ds[f"sanity_{name}"] = (dims, table.sanity[name])
    ok, _ = sanity_flags(table, sanity_bounds)
    ds["sanity_ok"] = (dims, ok, {"flag_values": np.array([-1, 0, 1], dtype=np.int8),
                                  "flag_meanings": "missing_point bounds_broken within_bounds"})
    for name in CUTOFF:
        target = "n_fock" if name == "cutoff_n_fock" else name
        if target in ds.coords:  # n_fock swept: the coordinate is the cutoff
            continue
        units, long_name, comment = AGGREGATE_VARIABLES[target]
        ds[target] = (dims, table.cutoff[name], {"units": units, "long_name": long_name, "comment": comment})
    cut_ok, _ = cutoff_flags(table)
    ds["cutoff_ok"] = (dims, cut_ok, {"flag_values": np.array([-1, 0, 1], dtype=np.int8),
                                      "flag_meanings": "no_certificate certificate_failed certified",
                                      **dict(zip(("units", "long_name", "comment"),
                                                 AGGREGATE_VARIABLES["cutoff_ok"]))})
    if allow_gaps:
        gap = np.isin(table.point_id, table.gaps) if table.gaps else np.zeros(table.point_id.shape, bool)
        ds["missing_point"] = (dims, gap.astype(np.int8), {
            "units": "1", "long_name": "point file missing (data NaN)",
            "comment": "1: this point failed and allow_gaps was true; its observables are NaN"})
    attrs = {"sweep_name": sweep.name, "sweep_axes": " ".join(sweep.axis_names)}
    for name, value in sweep.fixed.items():
        if name != "catalyst":
            attrs[name] = int(value) if PARAMETERS[name].kind is bool else value
    if sweep.description:
        attrs["sweep_description"] = sweep.description
    attrs["point_qutip_versions"] = " ".join(table.qutip_versions)
    attrs["sanity_bounds"] = describe_bounds(None if sanity_bounds is None else dict(sanity_bounds))
    if allow_gaps:
        attrs["gaps"] = " ".join(table.gaps)
    ds.attrs.update(attrs)
    axes = " x ".join(f"{a.name} ({len(a.values)})" for a in sweep.axes)
    return describe(
        ds,
        title=f"qbcat sweep {sweep.name}: {axes}",
        summary=(f"Time series of the driven qubit battery's observables over the sweep "
                 f"{sweep.name} ({sweep.description or axes}), each grid point catalyzed and as "
                 "its uncatalyzed baseline, stacked from the per-point datasets."),
        history_entry=f"qbcat.data.aggregate: stacked {table.paths.size - len(table.gaps)} point files "
        f"of sweep {sweep.name}",
        share=dict(share) if share is not None else {},
        dataset_id=content_id("sweep", sweep.name, *np.asarray(table.point_id).ravel()),
    )


def write_sweep(
    sweep: Sweep,
    files: Iterable[str | os.PathLike],
    output: str | os.PathLike,
    allow_gaps: bool = False,
    threads: int = 1,
    chunk_mb: float = 4.0,
    log=None,
    sanity_bounds: Mapping | None = None,
    share: Mapping | None = None,
    fail_on_cutoff: bool = False,
) -> Path:
    """Check the sweep's point files, stack them lazily and write ``output`` atomically.

    Points that break ``sanity_bounds`` (default :data:`qbcat.data.datasets.DEFAULT_SANITY_BOUNDS`) are
    flagged in the variable ``sanity_ok`` and named in the log; so are the points whose cutoff
    certificate fails (variable ``cutoff_ok``), and with ``fail_on_cutoff`` the aggregation then
    stops before writing. Temporaries of an interrupted write of ``output`` are deleted first.
    """
    import dask

    from .datasets import write_netcdf

    log = log or _stderr
    start = time.perf_counter()
    bounds = dict(sanity_bounds) if sanity_bounds is not None else None
    # the sweep file belongs to this job alone (one job per sweep, Snakemake's lock): any
    # temporary of it was left by an interrupted aggregation, whatever its age
    remove_stale_temporaries(Path(output).parent, older_than_s=0, of=Path(output).name, log=log)
    files = list(files)
    workers = threads if threads > 1 and len(files) >= POOL_MIN_FILES else 0
    log(f"aggregate {sweep.name}: {len(files)} point files, read "
        + (f"by {workers} worker processes while this one writes" if workers else "and written by this process"))
    with _readers(workers) as pool:
        table = check_points(sweep, files, allow_gaps, log, pool)
        if table.gaps:
            log(f"aggregate {sweep.name}: {len(table.gaps)} missing point(s) left as NaN: "
                f"{' '.join(table.gaps)}")
        _log_sanity(sweep, table, bounds, log)
        failed = _log_cutoff(sweep, table, log)
        if failed and fail_on_cutoff:
            raise AggregationError(f"sweep {sweep.name}: {failed} point(s) fail their cutoff certificate (listed "
                                   "above) and fail_on_cutoff is true; their point files are kept: raise n_fock "
                                   "(or n_fock_max with n_fock: auto), or set fail_on_cutoff: false to flag them")
        ds = sweep_dataset(sweep, table, chunk_mb, allow_gaps, bounds, share, pool)
        log(f"aggregate {sweep.name}: {sweep.size} grid cells checked in "
            f"{time.perf_counter() - start:.1f} s; writing {output}")
        if pool is None and threads > 1:
            scheduler = {"scheduler": "threads", "num_workers": threads}
        else:  # one thread; with a pool, the reads run in its processes
            scheduler = {"scheduler": "synchronous"}
        with dask.config.set(**scheduler), _Progress(log, sweep.name), _small_chunk_cache():
            # compress=False: the encodings (zlib, chunks) are set on the variables themselves
            path = write_netcdf(ds, output, compress=False)
    log(f"aggregate {sweep.name}: wrote {output} in {time.perf_counter() - start:.1f} s")
    return path


def _log_sanity(sweep: Sweep, table: PointTable, bounds: Mapping | None, log, most: int = 100) -> None:
    """Name every point that breaks the sanity bounds (the first ``most`` of them in full)."""
    from .datasets import describe_bounds

    ok, broken = sanity_flags(table, bounds)
    if not broken:
        return
    log(f"aggregate {sweep.name}: SANITY: {len(broken)} point(s) break the bounds "
        f"({describe_bounds(bounds)}); kept, flagged sanity_ok = 0:")
    shown = set()
    for index in zip(*np.nonzero(ok == 0)):
        pid = str(table.point_id[index])
        if pid in shown:
            continue
        shown.add(pid)
        if len(shown) > most:
            log(f"  ... and {len(broken) - most} more (see the variable sanity_ok)")
            break
        log(f"  point {pid} ({_cell_text(sweep, tuple(int(i) for i in index))}): {broken[pid]}")


def _log_cutoff(sweep: Sweep, table: PointTable, log, most: int = 100) -> int:
    """Name every catalyzed point whose cutoff certificate fails (the first ``most`` in full), and
    one line on the chosen cutoffs; returns how many fail."""
    ok, broken = cutoff_flags(table)
    n_fock = table.cutoff["cutoff_n_fock"][ok >= 0]
    if n_fock.size:
        log(f"aggregate {sweep.name}: cutoff certificates: {int((ok == 1).sum())} of {int((ok >= 0).sum())} "
            f"catalyzed points certified; n_fock {int(n_fock.min())}-{int(n_fock.max())}")
    if not broken:
        return 0
    log(f"aggregate {sweep.name}: CUTOFF: {len(broken)} point(s) FAIL their cutoff certificate; kept, "
        "flagged cutoff_ok = 0 (and in every product made from this sweep):")
    for k, index in enumerate(zip(*np.nonzero(ok == 0))):
        if k >= most:
            log(f"  ... and {len(broken) - most} more (see the variable cutoff_ok)")
            break
        pid = str(table.point_id[index])
        log(f"  point {pid} ({_cell_text(sweep, tuple(int(i) for i in index))}): {broken[pid]}")
    return len(broken)


@contextlib.contextmanager
def _small_chunk_cache(size: int = 2**20):
    """netCDF keeps a chunk cache per variable (64 MiB by default), so memory would grow with
    the file up to ~11 x 64 MiB while it is written. Each chunk is written exactly once, whole,
    so the cache buys nothing: chunks larger than ``size`` bypass it."""
    import netCDF4

    old = netCDF4.get_chunk_cache()
    netCDF4.set_chunk_cache(size, old[1], old[2])
    try:
        yield
    finally:
        netCDF4.set_chunk_cache(*old)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class _Progress:
    """Log the share of finished dask tasks every few seconds (long aggregations show progress)."""

    def __init__(self, log, name: str, every_s: float = 5.0):
        from dask.callbacks import Callback

        state = {"total": 0, "done": 0, "last": time.monotonic()}

        def start_state(dsk, _state):
            state["total"] = len(dsk)

        def posttask(key, result, dsk, _state, worker_id):
            state["done"] += 1
            if time.monotonic() - state["last"] >= every_s:
                state["last"] = time.monotonic()
                log(f"aggregate {name}: {100 * state['done'] // max(state['total'], 1)}% "
                    f"of {state['total']} tasks")

        self.callback = Callback(start_state=start_state, posttask=posttask)

    def __enter__(self):
        self.callback.__enter__()
        return self

    def __exit__(self, *exc):
        return self.callback.__exit__(*exc)
