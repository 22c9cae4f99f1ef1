"""The study model: named sweeps -> grid cells -> content-addressed points, and their files.

A *sweep* varies one or more parameters (its *axes*, each an explicit list of values or a
linear/log range) around the base parameters, possibly overriding some of them (``set``).
Every grid cell holds two *points*: the catalyzed one and its uncatalyzed baseline (same
parameters, catalyst=false). A point is identified by :func:`qbcat.engine.params.point_id`, so a point
shared by several sweeps (the common baseline, the base point) is one file, computed once
(:func:`point_path`); the point index lists them all (:func:`write_index`).

The config becomes a Study in :mod:`qbcat.workflow.configuration`; the missing points are cut into
batches and run in :mod:`qbcat.workflow.batches`. This module is imported when the workflow is parsed,
so it imports neither QuTiP nor xarray.
"""

from __future__ import annotations

import csv
import math
import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..engine.params import PARAMETERS, canonical, canonical_id

CASES = ("catalyzed", "baseline")

POINT_SUFFIX = ".nc"
FAILED_SUFFIX = ".failed"  # marker next to a point file that could not be computed

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
        """(index, {case: (point_id, canonical params)}) for every grid cell, in C order.

        The baseline depends only on the parameters that are not the catalyst's, so cells that
        differ only in those (e.g. every cell of a g x omega_c map) share it: it is validated
        once per distinct baseline, not once per cell."""
        baselines: dict = {}
        for index in np.ndindex(*self.shape):
            p = self.cell_params(index)
            catalyzed = canonical(p)
            key = tuple((k, v) for k, v in p.items() if not PARAMETERS[k].catalyst_only)
            if key not in baselines:
                baseline = canonical({**p, "catalyst": False})
                baselines[key] = (canonical_id(baseline), baseline)
            bid, baseline = baselines[key]
            yield index, {CASES[0]: (canonical_id(catalyzed), catalyzed), CASES[1]: (bid, dict(baseline))}

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
# Points on disk


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
