"""The study: config -> named sweeps -> content-addressed points -> batches of missing points.

A *sweep* varies one or more parameters (its *axes*, each an explicit list of values or a
linear/log range) around the base parameters, possibly overriding some of them (``set``).
Every grid cell holds two *points*: the catalyzed one and its uncatalyzed baseline (same
parameters, catalyst=false). A point is identified by :func:`qbcat.params.point_id`, so a point
shared by several sweeps (the common baseline, the base point) is one file, computed once.

The workflow computes, when it builds its DAG, the points that have no file yet and splits only
those into batches (:func:`partition`): one job per batch, whose outputs are exactly its
points' files. A bad config is refused before any job starts with one :class:`ConfigError` line
that names the config path, e.g. ``sweeps.g_scan.axes.gama_D: unknown parameter``.

This module is imported when the workflow is parsed, so it imports neither QuTiP nor xarray
(``run_batch`` imports the engine only when called).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .atomic import write_text
from .params import PARAMETERS, ParameterError, canonical, point_id, validate

CASES = ("catalyzed", "baseline")

#: Parameters a sweep may not vary or override, and why.
FORBIDDEN = {
    "catalyst": "not a sweep parameter: every catalyzed point is paired with its uncatalyzed baseline "
    "(the 'case' dimension)",
}
#: Parameters a sweep may override (``set``) but not vary: a sweep dataset has one time axis.
NOT_SWEEPABLE = {
    "t_max": "cannot be an axis: all points of a sweep share one time axis (set it with 'set:' instead)",
    "n_t": "cannot be an axis: all points of a sweep share one time axis (set it with 'set:' instead)",
}

SWEEP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

#: Range values are rounded to this many significant digits, so that a point's id does not
#: depend on the last bit of numpy's linspace/geomspace (which can differ between versions).
SIGNIFICANT_DIGITS = 12

POINT_SUFFIX = ".nc"
FAILED_SUFFIX = ".failed"  # marker next to a point file that could not be computed
BATCH_PREFIX = "simulate_batch_"


class ConfigError(ValueError):
    """A config that breaks a rule; one line naming the config path, e.g. ``base.n_fock: must be >= 2``."""


# --------------------------------------------------------------------------------------------
# Sweeps


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple


@dataclass(frozen=True)
class Sweep:
    """One named sweep: its axes (in config order) and the parameters it does not vary."""

    name: str
    axes: tuple[Axis, ...]
    fixed: dict  # validated parameters (catalyst included) without the swept ones
    description: str = ""

    @property
    def axis_names(self) -> list[str]:
        return [a.name for a in self.axes]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def cell_params(self, index: tuple[int, ...]) -> dict:
        """Full parameters (catalyzed) of the grid cell at ``index`` (one index per axis)."""
        values = {a.name: a.values[i] for a, i in zip(self.axes, index)}
        return {**self.fixed, **values, "catalyst": True}

    def cells(self) -> Iterator[tuple[tuple[int, ...], dict[str, tuple[str, dict]]]]:
        """(index, {case: (point_id, canonical params)}) for every grid cell, in C order."""
        for index in np.ndindex(*self.shape):
            p = self.cell_params(index)
            pair = {}
            for case, catalyst in zip(CASES, (True, False)):
                params = canonical({**p, "catalyst": catalyst})
                pair[case] = (point_id(params), params)
            yield index, pair

    def to_spec(self) -> dict:
        """A plain, JSON-able description (rule params; its repr is what Snakemake compares)."""
        return {
            "name": self.name,
            "description": self.description,
            "axes": {a.name: list(a.values) for a in self.axes},
            "fixed": {k: self.fixed[k] for k in PARAMETERS if k in self.fixed},  # a stable order
        }

    @classmethod
    def from_spec(cls, spec: Mapping) -> Sweep:
        axes = tuple(Axis(name, tuple(values)) for name, values in spec["axes"].items())
        return cls(spec["name"], axes, dict(spec["fixed"]), spec.get("description", ""))


@dataclass
class Study:
    """The expanded config: sweeps, their points, and the workflow settings."""

    sweeps: dict[str, Sweep]
    batch_size: int = 1
    allow_gaps: bool = False
    resources: dict = field(default_factory=dict)
    sanity: dict = field(default_factory=dict)  # bounds on the per-point sanity numbers
    points: dict[str, dict] = field(default_factory=dict)  # point_id -> canonical params
    membership: dict[str, list[str]] = field(default_factory=dict)  # point_id -> sweep names
    sweep_points: dict[str, list[str]] = field(default_factory=dict)  # sweep -> its point ids

    def __post_init__(self):
        if not self.points:
            self._collect_points()

    def _collect_points(self) -> None:
        for name, sweep in self.sweeps.items():
            ids = []
            for _, pair in sweep.cells():
                for pid, params in pair.values():
                    if pid not in self.points:
                        self.points[pid] = params
                        self.membership[pid] = []
                    if name not in self.membership[pid]:
                        self.membership[pid].append(name)
                    ids.append(pid)
            self.sweep_points[name] = list(dict.fromkeys(ids))

    def to_spec(self) -> dict:
        return {"sweeps": {name: s.to_spec() for name, s in self.sweeps.items()}}

    @classmethod
    def from_spec(cls, spec: Mapping) -> Study:
        return cls({name: Sweep.from_spec(s) for name, s in spec["sweeps"].items()})


# --------------------------------------------------------------------------------------------
# Config -> Study


def load_config(
    config: dict, schema_path: str | os.PathLike, config_files: Iterable[str | os.PathLike] = ()
) -> Study:
    """What the workflow runs on its config: every check, then :func:`expand_config`.

    1. duplicate keys in the YAML files (YAML would silently keep the last one);
    2. the JSON schema (``config/schema.yaml``) through ``snakemake.utils.validate``, which also
       fills in the schema's defaults (``config`` is updated in place);
    3. the semantic checks of :func:`expand_config`.
    Raises ConfigError with one line naming the config path and the rule it broke.
    """
    for path in config_files:
        check_duplicate_keys(path)
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate as snakemake_validate

    try:
        snakemake_validate(config, str(schema_path))
    except WorkflowError as exc:
        raise ConfigError(_schema_message(exc)) from None
    return expand_config(config)


def expand_config(config: Mapping) -> Study:
    """The Study of a schema-checked config (defaults filled in), after the semantic checks."""
    base = dict(config.get("base") or {})
    if "catalyst" in base:
        raise ConfigError(f"base.catalyst: {FORBIDDEN['catalyst']}")
    fixed = _validate_params(base, "base")
    sweeps = {}
    for name, raw in (config.get("sweeps") or {}).items():
        sweeps[name] = _expand_sweep(str(name), raw or {}, fixed)
    study = Study(
        sweeps,
        batch_size=_require(config, "batch_size"),
        allow_gaps=bool(_require(config, "allow_gaps")),
        resources=dict(_require(config, "resources")),
        sanity=_sanity_bounds(_require(config, "sanity")),
    )
    return study


def _require(config: Mapping, key: str) -> Any:
    if key not in config:
        raise ConfigError(f"{key}: missing (load the config with load_config, which fills in the "
                          "schema defaults)")
    return config[key]


#: Bounds on the sanity numbers (qbcat.io.SANITY_BOUNDS): names and the sign each must have.
SANITY_SIGNS = {"trace_error_max": ">= 0", "min_eigenvalue_qb": "<= 0", "first_law_residual_rel": ">= 0"}


def _sanity_bounds(raw: Mapping) -> dict:
    """The ``sanity`` section as floats (YAML reads 1e-6 as text), each with its sign checked."""
    bounds = {}
    for name, value in raw.items():
        path = f"sanity.{name}"
        if name not in SANITY_SIGNS:  # the schema refuses these first
            raise ConfigError(f"{path}: unknown key (allowed here: {', '.join(SANITY_SIGNS)})")
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        if (number < 0) if SANITY_SIGNS[name] == ">= 0" else (number > 0):
            raise ConfigError(f"{path}: must be {SANITY_SIGNS[name]}, got {value!r}")
        bounds[name] = number
    return bounds


def _validate_params(overrides: Mapping, path: str, base: Mapping | None = None) -> dict:
    """``validate({**base, **overrides})``, with its one-line message moved under ``path``."""
    try:
        return validate({**(base or {}), **overrides})
    except ParameterError as exc:
        raise ConfigError(_under(path, str(exc))) from None


def _under(path: str, message: str) -> str:
    """'g: must be >= 0' under 'sweeps.s.set' -> 'sweeps.s.set.g: must be >= 0'."""
    name, sep, rest = message.partition(": ")
    if sep and " " not in name:
        return f"{path}.{name}: {rest}"
    return f"{path}: {message}"


def _expand_sweep(name: str, raw: Mapping, base: dict) -> Sweep:
    path = f"sweeps.{name}"
    if not SWEEP_NAME.match(name):
        raise ConfigError(f"{path}: a sweep name must start with a letter and hold only letters, "
                          "digits, '_' and '-' (it names results/sweeps/NAME.nc)")
    overrides = dict(raw.get("set") or {})
    if "catalyst" in overrides:
        raise ConfigError(f"{path}.set.catalyst: {FORBIDDEN['catalyst']}")
    fixed = _validate_params(overrides, f"{path}.set", base)
    axes_raw = raw.get("axes") or {}
    if not axes_raw:
        raise ConfigError(f"{path}.axes: empty sweep: give at least one axis "
                          "(e.g. axes: {g: {values: [0.1, 0.2]}})")
    axes = []
    for pname, spec in axes_raw.items():
        apath = f"{path}.axes.{pname}"
        if pname not in PARAMETERS:
            raise ConfigError(f"{apath}: unknown parameter (known: {', '.join(PARAMETERS)})")
        if pname in FORBIDDEN:
            raise ConfigError(f"{apath}: {FORBIDDEN[pname]}")
        if pname in NOT_SWEEPABLE:
            raise ConfigError(f"{apath}: {NOT_SWEEPABLE[pname]}")
        if pname in overrides:
            raise ConfigError(f"{path}.set.{pname}: {pname} is also an axis of this sweep; "
                              "remove it from 'set'")
        axes.append(Axis(pname, _axis_values(pname, spec or {}, apath, fixed)))
    fixed = {k: v for k, v in fixed.items() if k not in axes_raw}
    return Sweep(name, tuple(axes), fixed, str(raw.get("description") or ""))


def _axis_values(pname: str, spec: Mapping, path: str, fixed: dict) -> tuple:
    values, rng = spec.get("values"), spec.get("range")
    if (values is None) == (rng is None):
        raise ConfigError(f"{path}: give exactly one of 'values: [...]' or "
                          "'range: {start, stop, num, scale}'")
    if values is not None:
        where = f"{path}.values"
        if not isinstance(values, list):
            raise ConfigError(f"{where}: expected a list, got {values!r}")
        if not values:
            raise ConfigError(f"{where}: empty list: give at least one value")
        raw = [(f"{where}[{i}]", v) for i, v in enumerate(values)]
    else:
        where = f"{path}.range"
        raw = [(where, v) for v in _range_values(pname, rng, where)]
    coerced = []
    for vpath, value in raw:
        try:
            coerced.append(validate({**fixed, pname: value})[pname])
        except ParameterError as exc:
            _, _, rest = str(exc).partition(": ")
            raise ConfigError(f"{vpath}: {rest}") from None
    seen = set()
    for value in coerced:
        if value in seen:
            raise ConfigError(f"{where}: duplicate value {value!r} (each value is one grid line)")
        seen.add(value)
    return tuple(coerced)


def _range_values(pname: str, rng: Mapping, path: str) -> list:
    if PARAMETERS[pname].kind not in (int, float):
        raise ConfigError(f"{path}: a range needs a numeric parameter; use 'values: [...]' for {pname}")
    for key in ("start", "stop", "num"):
        if rng.get(key) is None:
            raise ConfigError(f"{path}.{key}: required")
    start, stop, num = rng["start"], rng["stop"], rng["num"]
    scale = rng.get("scale") or "linear"
    for key, value in (("start", start), ("stop", stop)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{path}.{key}: expected a finite number, got {value!r}")
    if isinstance(num, bool) or not isinstance(num, int):
        raise ConfigError(f"{path}.num: expected an integer, got {num!r}")
    if num < 1:
        raise ConfigError(f"{path}.num: must be >= 1, got {num}")
    if scale == "log":
        if not (start > 0 and stop > 0):
            raise ConfigError(f"{path}: a log range needs start > 0 and stop > 0, "
                              f"got start={start}, stop={stop}")
        grid = np.geomspace(start, stop, num)
    elif scale == "linear":
        grid = np.linspace(start, stop, num)
    else:
        raise ConfigError(f"{path}.scale: must be linear or log, got {scale!r}")
    return [float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in grid]


# --------------------------------------------------------------------------------------------
# Errors from the YAML files and the schema, as one line naming the path


def check_duplicate_keys(path: str | os.PathLike) -> None:
    """Refuse a YAML mapping that repeats a key (YAML loaders keep the last silently)."""
    try:
        with open(path, encoding="utf-8") as fh:
            root = yaml.compose(fh, Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return  # Snakemake reports unreadable or invalid files itself
    stack = [(root, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, value_node in node.value:
                key = key_node.value
                here = f"{where}.{key}" if where else str(key)
                if key in seen:
                    raise ConfigError(f"{here}: given twice in {path} (YAML keeps only the last; "
                                      "a map over the same parameter twice is not a 2-D map)")
                seen.add(key)
                stack.append((value_node, here))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node.value))


def _schema_message(exc: Exception) -> str:
    """One line from snakemake.utils.validate's WorkflowError (which wraps jsonschema's error)."""
    import jsonschema

    err = exc  # snakemake raises WorkflowError from within jsonschema's error: its __context__
    while err is not None and not isinstance(err, jsonschema.ValidationError):
        err = err.__cause__ or err.__context__
    if err is None:
        return " ".join(str(exc).split())
    path = _dotted(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed), key=str)
        key = f"{path}.{extra[0]}" if path else str(extra[0])
        return f"{key}: unknown key (allowed here: {', '.join(allowed)})"
    if err.validator == "type":
        kinds = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        expected = " or ".join(_JSON_TYPES.get(k, k) for k in kinds if k != "null")
        return f"{path or 'config'}: expected {expected}, got {err.instance!r}"
    if err.validator == "minimum":
        return f"{path}: must be >= {err.validator_value}, got {err.instance!r}"
    if err.validator == "exclusiveMinimum":
        return f"{path}: must be > {err.validator_value}, got {err.instance!r}"
    if err.validator == "enum":
        return f"{path}: must be one of {', '.join(map(str, err.validator_value))}, got {err.instance!r}"
    if err.validator == "required":
        return f"{path}: {err.message}"
    return f"{path or 'config'}: {err.message}"


_JSON_TYPES = {"array": "a list", "object": "a mapping", "integer": "an integer", "number": "a number",
               "string": "text", "boolean": "true or false"}


def _dotted(parts: Iterable) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------------------------------
# Points on disk and batches


def point_path(point_dir: str | os.PathLike, pid: str) -> str:
    return os.path.join(point_dir, pid + POINT_SUFFIX)


def _listing(point_dir: str | os.PathLike) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(point_dir)}
    except FileNotFoundError:
        return set()


def missing_points(study: Study, point_dir: str | os.PathLike) -> list[str]:
    """Ids of the study's points without a file in ``point_dir`` (one directory listing)."""
    names = _listing(point_dir)
    return [pid for pid in study.points if pid + POINT_SUFFIX not in names]


def failed_points(point_dir: str | os.PathLike) -> set[str]:
    """Ids whose last attempt failed (a ``<id>.failed`` marker and no point file)."""
    names = _listing(point_dir)
    return {
        n[: -len(FAILED_SUFFIX)]
        for n in names
        if n.endswith(FAILED_SUFFIX) and n[: -len(FAILED_SUFFIX)] + POINT_SUFFIX not in names
    }


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


#: A temporary file of an atomic write (qbcat.io.write_netcdf) that has not been modified for
#: this long has no live writer: a point file is written in one call, in seconds at most. So it
#: was left by a killed run. Younger ones are left alone, since results/points may be shared by
#: several runs (README, shared storage) and one of them may be writing it right now.
STALE_AFTER_S = 3600.0


#: The name tempfile.mkstemp gives the temporary of an atomic write of NAME (qbcat.io,
#: qbcat.atomic): hidden, NAME, 8 random characters, then ``.tmp`` or NAME's own suffix.
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)$")


def temporaries(folder: str | os.PathLike, of: str | None = None) -> list[Path]:
    """Temporary files of atomic writes in ``folder`` (of the file named ``of`` only, if given).
    No reader takes them for results: they are hidden (and a point file's does not end in .nc
    unless qbcat.atomic's default suffix is used; its name still is not ``<point_id>.nc``)."""
    found = []
    for entry in _listing(folder):
        match = TEMPORARY.match(entry)
        if not match or (of is not None and match["name"] != of):
            continue
        if match["suffix"] in (".tmp", Path(match["name"]).suffix):
            found.append(Path(folder, entry))
    return sorted(found)


def remove_stale_temporaries(folder: str | os.PathLike, older_than_s: float = STALE_AFTER_S,
                             of: str | None = None, log=None) -> int:
    """Delete the temporaries in ``folder`` (see :func:`temporaries`) not modified for
    ``older_than_s`` seconds, i.e. left by interrupted writes; return how many."""
    removed, now = 0, time.time()
    for tmp in temporaries(folder, of):
        try:
            if now - tmp.stat().st_mtime < older_than_s:
                continue
            tmp.unlink()
        except FileNotFoundError:  # removed meanwhile by another batch
            continue
        removed += 1
        if log:
            log(f"removed {tmp.name}, left by an interrupted write")
    return removed


def run_batch(
    points: Sequence[Mapping], outputs: Sequence[str | os.PathLike], log=None,
    sanity_bounds: Mapping | None = None,
) -> list[PointFailure]:
    """Simulate each point and write its file (atomically); a failure does not stop the others.

    Every catalyzed point is run with its cutoff certificate (qbcat.cutoff; n_fock "auto" picks
    its cutoff). Returns the failures (an ``<id>.failed`` marker with the error is left next to
    each, and removed once the point succeeds). ``outputs[k]`` must be the file named after point k's id.
    Each point file is flagged against ``sanity_bounds`` (:func:`qbcat.io.sanity_attrs`; a
    point that breaks them is still written, and named in the log). Temporaries of interrupted
    writes in the output folder, older than :data:`STALE_AFTER_S`, are deleted first.
    """
    from .cutoff import describe as describe_certificate
    from .cutoff import simulate_certified
    from .io import to_dataset, write_netcdf  # the engine, only when a batch really runs
    from .solve import SimulationError
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
            ds = to_dataset(result, sanity_bounds=bounds)
            # uncompressed: zlib saves ~15% of a point file and costs more than the physics
            write_netcdf(ds, out, compress=False)
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
        if not ds.attrs["sanity_ok"]:
            log(f"[{done}/{n}] SANITY {pid} breaks the bounds: {ds.attrs['sanity_violations']}")
        if result.certificate is not None:
            if not ds.attrs["cutoff_ok"]:  # loud: a number of this point may be truncation error
                log(f"[{done}/{n}] CUTOFF {pid} fails its certificate: {ds.attrs['cutoff_violations']}")
        log(progress_line(done - len(failures), n, len(failures), now - start))
    return failures


def failure_report(failures: Sequence[PointFailure], n_points: int) -> str:
    lines = [f"{len(failures)} of {n_points} points failed (the others were written):"]
    lines += [f"  {f.describe()}" for f in failures]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The point index


INDEX_COLUMNS = ["point_id", "catalyst", "sweeps", "file", *[p for p in PARAMETERS if p != "catalyst"]]


def index_rows(study: Study, point_dir: str | os.PathLike = "results/points") -> list[dict]:
    """One row per point of the study: id, case, the sweeps using it, its file, its parameters
    (blank where a parameter does not apply, e.g. the catalyst's for a baseline)."""
    rows = []
    for pid, params in study.points.items():
        row = {"point_id": pid, "catalyst": params["catalyst"],
               "sweeps": " ".join(study.membership[pid]), "file": point_path(point_dir, pid)}
        row.update({k: v for k, v in params.items() if k != "catalyst"})
        rows.append(row)
    return rows


def write_index(study: Study, path: str | os.PathLike, point_dir: str | os.PathLike = "results/points",
                log: str | os.PathLike | None = None) -> int:
    """Write the point index as CSV (atomically) and, if given, one line to ``log``; returns the
    number of points."""
    rows = index_rows(study, point_dir)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=INDEX_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(buf.getvalue(), path)
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(f"{path}: {len(rows)} points\n")
    return len(rows)
