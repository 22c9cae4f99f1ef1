"""The results manifest (``manifest.json``) and verification of a results folder against it.

The manifest lists every shared product of a results folder -- sweep datasets (``sweeps/``),
analysis datasets and tables (``analysis/``), figures (``figures/``), the claims report
(``claims.md``) and, in an exported archive, the exact config (``config/``) and the repository
metadata (``datacite.json``, ``zenodo.json``; :mod:`qbcat.data.citation`) -- with its path
relative to the folder, size, sha256, the workflow rule that made it, and for NetCDF files the
dimensions and the range of every coordinate that is a parameter.

Point datasets (``points/``) are one compact index entry, ``{count, total_size, sizes: {name:
size}}``, not one entry each: a study has ~10^4 of them, they are intermediate (every number in
them is in the sweep datasets, which carry each point's id), they are content-addressed by file
name (the point id is a hash of the parameters) and they are not byte-reproducible anyway
(creation time, solver wall time), so hashing and opening each would make the manifest slow for
little gain. Listing them costs one ``stat`` per file, yet verification still names each missing,
extra or resized point file. ``include_points=True`` adds a sha256 per point file and a full
contract check of each, for archiving the points themselves.

:func:`verify` recomputes the checksums and checks every NetCDF against the data contract
(:func:`check_dataset`); it returns one :class:`Problem` per bad file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from .. import __version__
from ..atomic import write_text

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
POINTS_DIR = "points"

#: Top-level entries of a results folder that are shared, and the kind each file gets.
SHARED = {
    "sweeps": "sweep",
    "analysis": "analysis",
    "figures": "figure",
    "claims.md": "report",
    "config": "config",
    "datacite.json": "metadata",  # repository metadata of an exported bundle (qbcat.data.citation)
    "zenodo.json": "metadata",
}

#: Dataset kinds that must have a ``time`` coordinate and carry every parameter.
TIME_SERIES_KINDS = ("point", "sweep")
DATASET_KINDS = ("point", "sweep", "analysis")

_MAX_REASONS = 6  # per file line; the rest are counted
_LARGE = 50_000_000  # bytes: verify reports progress on files this large


class ManifestError(Exception):
    """A manifest that cannot be built, read or used; the message names the file and the reason."""


@dataclass
class Problem:
    """One bad file: its path (relative to the checked folder) and every reason found."""

    path: str
    reasons: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        shown = self.reasons[:_MAX_REASONS]
        more = len(self.reasons) - len(shown)
        return f"{self.path}: " + "; ".join(shown) + (f"; and {more} more" if more > 0 else "")


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (memory stays flat for large sweeps)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(obj, path: str | os.PathLike) -> Path:
    """Write ``obj`` as JSON to a temporary file next to ``path``, then rename it into place."""
    return write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n", path)


def _visible_files(folder: Path) -> Iterable[Path]:
    """Files under ``folder``, skipping hidden names (temporary files of atomic writes start with '.')."""
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


def shared_files(results_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """(relative posix path, kind) of every shared file under ``results_dir``, sorted by path."""
    root = Path(results_dir)
    out = []
    for top, kind in SHARED.items():
        target = root / top
        if target.is_file() and not target.name.startswith("."):
            out.append((top, kind))
        elif target.is_dir():
            out.extend((f.relative_to(root).as_posix(), kind) for f in _visible_files(target))
    return sorted(out)


def _json_number(value):
    value = value.item() if hasattr(value, "item") else value
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def netcdf_summary(path: str | os.PathLike) -> dict:
    """Title, dimensions and the [min, max] of every coordinate that is a parameter."""
    import xarray as xr

    from ..engine.params import PARAMETERS

    with xr.open_dataset(path) as ds:
        ranges = {}
        for name in ds.coords:
            if name in PARAMETERS and ds[name].size:
                values = ds[name].values
                ranges[name] = {"min": _json_number(values.min()), "max": _json_number(values.max())}
        summary = {
            "title": str(ds.attrs.get("title", "")),
            "dimensions": {name: int(size) for name, size in ds.sizes.items()},
            "parameter_ranges": ranges,
        }
        for key in ("sweep_name", "point_id"):
            if key in ds.attrs:
                summary[key] = str(ds.attrs[key])
    return summary


def file_entry(path: Path, rel: str, kind: str, rule: str | None) -> dict:
    """The manifest entry of one file (NetCDF files also get :func:`netcdf_summary`)."""
    entry = {"path": rel, "kind": kind, "size": path.stat().st_size, "sha256": sha256_file(path),
             "rule": rule}
    if path.suffix == ".nc":
        try:
            entry["netcdf"] = netcdf_summary(path)
        except Exception as exc:  # a broken dataset is listed; verify reports it as malformed
            entry["netcdf"] = {"error": f"{type(exc).__name__}: {exc}"}
    return entry


def points_index(results_dir: str | os.PathLike, include_points: bool = False) -> dict | None:
    """The compact index of ``points/*.nc`` (see module docstring), or None without that folder."""
    folder = Path(results_dir) / POINTS_DIR
    if not folder.is_dir():
        return None
    sizes = {}
    with os.scandir(folder) as it:
        for e in it:
            if e.name.endswith(".nc") and not e.name.startswith(".") and e.is_file():
                sizes[e.name] = e.stat().st_size
    sizes = dict(sorted(sizes.items()))
    index = {"path": POINTS_DIR, "count": len(sizes), "total_size": sum(sizes.values()), "sizes": sizes}
    if include_points:
        index["sha256"] = {name: sha256_file(folder / name) for name in sizes}
    return index


def _relative_key(results_dir: Path, key: str | os.PathLike) -> str:
    """A produced_by key (absolute, relative to the working directory, or to results_dir) as a
    posix path relative to results_dir.

    Symlinks are not followed at first: ``points/`` may link to shared storage and a file restored
    from Snakemake's output cache is a link into the cache, yet both still belong to results_dir.
    """
    p = Path(key)
    for candidate in ([p] if p.is_absolute() else [Path.cwd() / p, results_dir / p]):
        for path, root in [(Path(os.path.abspath(candidate)), Path(os.path.abspath(results_dir))),
                           (candidate.parent.resolve() / candidate.name, results_dir.resolve())]:
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                continue
    raise ManifestError(f"{key}: produced_by names a file outside {results_dir}")


def manifest_for_files(
    files: list[tuple[Path, str, str]],
    rules: dict[str, str] | None = None,
    points: dict | None = None,
) -> dict:
    """A manifest of ``files`` = [(path on disk, path in the manifest, kind)]; ``rules`` maps
    manifest paths to the rule that made each file."""
    from .datasets import git_commit

    rules = rules or {}
    entries = [file_entry(path, rel, kind, rules.get(rel)) for path, rel, kind in files]
    return {
        "manifest_version": MANIFEST_VERSION,
        "generator": f"qbcat {__version__}",
        "qbcat_git_commit": git_commit()[0],
        "created": _utc_now(),
        "files": entries,
        "points": points,
    }


def build_manifest(
    results_dir: str | os.PathLike,
    produced_by: dict[str, str] | None = None,
    *,
    include_points: bool = False,
) -> dict:
    """The manifest of ``results_dir``: every shared file (:func:`shared_files`) and the points index.

    ``produced_by`` maps file paths (absolute, relative to the working directory as Snakemake
    names them, or relative to ``results_dir``) to the rule that made them; a listed file that
    does not exist is an error (ManifestError), since the manifest would then misstate the results.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ManifestError(f"{results_dir}: not a directory")
    rules = {_relative_key(root, k): v for k, v in (produced_by or {}).items()}
    files = shared_files(root)
    listed = {rel for rel, _ in files}
    point_rules = set()
    for rel, rule in rules.items():
        if rel.startswith(POINTS_DIR + "/") and (root / rel).is_file():
            point_rules.add(rule)
        elif rel not in listed:
            raise ManifestError(f"{rel}: produced_by names a file that is not in {results_dir} "
                                f"(or is not a shared product)")
    points = points_index(root, include_points)
    if points is not None:
        points["rule"] = ", ".join(sorted(point_rules)) or None
    return manifest_for_files([(root / rel, rel, kind) for rel, kind in files], rules, points)


def write_manifest(
    results_dir: str | os.PathLike,
    produced_by: dict[str, str] | None = None,
    *,
    include_points: bool = False,
    output: str | os.PathLike | None = None,
) -> Path:
    """Build the manifest of ``results_dir`` and write it atomically to ``results_dir/manifest.json``
    (or ``output``)."""
    manifest = build_manifest(results_dir, produced_by, include_points=include_points)
    return write_json_atomic(manifest, output or Path(results_dir) / MANIFEST_NAME)


def read_manifest(path: str | os.PathLike) -> dict:
    """A manifest read back; ManifestError naming the file if it is unreadable or not a manifest."""
    try:
        with open(path) as fh:
            manifest = json.load(fh)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise ManifestError(f"{path}: not a qbcat manifest (no 'files' list)")
    return manifest


# ---------------------------------------------------------------------------------------------
# The data contract


def infer_kind(attrs: dict) -> str:
    """'sweep', 'point' or 'analysis', from a dataset's global attributes."""
    if "sweep_name" in attrs:
        return "sweep"
    if isinstance(attrs.get("point_id"), str):
        return "point"
    return "analysis"


def expected_parameters(ds, kind: str) -> list[str]:
    """Parameters a dataset of ``kind`` must carry as a global attribute or coordinate.

    A point carries its canonical parameters (the baseline drops the catalyst-only ones, the
    batched engine ``method``, a fixed n_fock the ladder and thresholds of n_fock auto); a sweep
    carries all of them, except ``catalyst`` when its ``case`` coordinate stands for it (and the
    same cutoff-policy ones with a fixed n_fock).
    """
    from ..engine.params import PARAMETERS

    # the cutoff policy's ladder and thresholds are part of a point only with n_fock auto
    auto = str(ds.attrs.get("n_fock", "auto")) == "auto" or "n_fock" in ds.coords
    if kind == "point":
        catalyzed = bool(ds.attrs.get("catalyst", 1))
        qutip_engine = ds.attrs.get("engine", "qutip") == "qutip"  # only QuTiP has a method
        return [n for n, p in PARAMETERS.items()
                if (catalyzed or not p.catalyst_only) and (qutip_engine or n != "method")
                and (auto or not p.auto_only)]
    if kind == "sweep":
        return [n for n, p in PARAMETERS.items() if not (n == "catalyst" and "case" in ds.coords)
                and (auto or not p.auto_only)]
    return []


def contract_violations(ds, kind: str | None = None) -> list[str]:
    """Every way an open dataset breaks the data contract (empty if none)."""
    from .datasets import CONVENTIONS_ATTR, REQUIRED_GLOBAL_ATTRS, SHARE_ATTRS, read_params
    from ..engine.params import ENGINE_VERSION, ParameterError, point_id

    kind = kind or infer_kind(ds.attrs)
    reasons = []
    if kind in TIME_SERIES_KINDS and "time" not in ds.coords:
        reasons.append("no 'time' coordinate")
    elif "time" in ds.dims and "time" not in ds.coords:
        reasons.append("dimension 'time' has no coordinate")
    for name in ds.variables:
        for attr in ("units", "long_name"):
            if attr not in ds[name].attrs:
                reasons.append(f"variable '{name}' has no {attr}")
    # shared datasets say who made them and carry an id; a point (content-addressed, possibly
    # shared between studies) has its id but no creator
    required = (*REQUIRED_GLOBAL_ATTRS, "id", *(SHARE_ATTRS if kind in ("sweep", "analysis") else ()))
    for attr in required:
        if attr not in ds.attrs:
            reasons.append(f"global attribute '{attr}' missing")
    conventions = str(ds.attrs.get("Conventions", ""))
    if "Conventions" in ds.attrs and not ("CF-1." in conventions and "ACDD-1.3" in conventions):
        reasons.append(f"Conventions is {conventions!r}, expected {CONVENTIONS_ATTR!r}")
    missing = [n for n in expected_parameters(ds, kind) if n not in ds.attrs and n not in ds.coords]
    reasons.extend(f"parameter '{n}' missing (neither a global attribute nor a coordinate)"
                   for n in missing)
    if kind == "sweep":
        axes = str(ds.attrs.get("sweep_axes", "")).split()
        if not axes:
            reasons.append("global attribute 'sweep_axes' missing or empty")
        reasons.extend(f"sweep axis '{a}' is not a coordinate" for a in axes if a not in ds.coords)
    if kind == "point" and not missing:
        try:
            params = read_params(ds)
            if ds.attrs.get("engine_version") == ENGINE_VERSION and point_id(params) != ds.attrs["point_id"]:
                reasons.append(f"point_id {ds.attrs['point_id']} does not match its parameters "
                               f"(they hash to {point_id(params)})")
        except (ParameterError, ValueError, TypeError) as exc:
            reasons.append(f"invalid parameter: {exc}")
    return reasons


def check_dataset(path: str | os.PathLike, kind: str | None = None) -> list[str]:
    """Every data-contract violation of the NetCDF file at ``path`` (empty if none).

    The file must open with plain ``xarray.open_dataset``; points and sweeps need a ``time``
    coordinate and every parameter (as a global attribute or coordinate); every variable needs
    ``units`` and ``long_name``; the global attributes of :data:`qbcat.data.datasets.REQUIRED_GLOBAL_ATTRS`
    and ``id`` must be present, and on sweeps and analysis datasets those of
    :data:`qbcat.data.datasets.SHARE_ATTRS` (creator, publisher, institution, license) too. Analysis datasets need no ``time`` (they may be reductions over it).
    """
    import xarray as xr

    try:
        ds = xr.open_dataset(path)
    except Exception as exc:
        return [f"cannot be opened with xarray.open_dataset ({type(exc).__name__}: {exc})"]
    with ds:
        return contract_violations(ds, kind)


# ---------------------------------------------------------------------------------------------
# Verification


def _check_points(root: Path, index: dict, problems: list[Problem], progress=None) -> int:
    """Compare ``points/`` with the manifest's points index; return how many point files it checked."""
    folder = root / index.get("path", POINTS_DIR)
    if not folder.is_dir():
        problems.append(Problem(f"{index.get('path', POINTS_DIR)}/",
                                [f"missing (the manifest lists {index.get('count', 0)} point files)"]))
        return 0
    current = points_index(root)["sizes"]
    listed = index.get("sizes", {})
    checksums = index.get("sha256", {})
    rel = index.get("path", POINTS_DIR)
    for i, (name, size) in enumerate(listed.items(), 1):
        if progress and checksums and i % 1000 == 0:
            progress(f"checked {i}/{len(listed)} point files")
        if name not in current:
            problems.append(Problem(f"{rel}/{name}", ["missing (listed in manifest.json)"]))
            continue
        reasons = []
        if current[name] != size:
            reasons.append(f"altered (size {current[name]} bytes, manifest says {size})")
        elif name in checksums and sha256_file(folder / name) != checksums[name]:
            reasons.append("altered (sha256 differs from manifest.json)")
        if checksums:
            reasons.extend(f"malformed: {r}" for r in check_dataset(folder / name, "point"))
        if reasons:
            problems.append(Problem(f"{rel}/{name}", reasons))
    for name in current.keys() - listed.keys():
        problems.append(Problem(f"{rel}/{name}", ["not listed in manifest.json"]))
    return len(listed)


def verify(directory: str | os.PathLike, progress: Callable[[str], None] | None = None
           ) -> tuple[list[Problem], dict]:
    """Check ``directory`` against its ``manifest.json``: (problems, counts by kind).

    A file is *missing* (listed, absent; or, in an exported bundle, its repository metadata not
    listed at all), *altered* (size or sha256 differs), *malformed* (a NetCDF that breaks the data
    contract, :func:`check_dataset`, or repository metadata that is incomplete,
    :func:`qbcat.data.citation.check_metadata`) or *unlisted* (a shared file the manifest does not
    know, so the manifest is stale). Each bad file is one Problem.
    """
    root = Path(directory)
    if not root.is_dir():
        raise ManifestError(f"{directory}: not a directory")
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        return [Problem(MANIFEST_NAME, ["missing (run 'qbcat manifest' or the workflow first)"])], {}
    try:
        manifest = read_manifest(manifest_path)
    except ManifestError as exc:
        return [Problem(MANIFEST_NAME, [str(exc).split(": ", 1)[1]])], {}
    problems: list[Problem] = []
    counts: dict[str, int] = {}
    listed = set()
    for entry in manifest["files"]:
        rel, kind = entry.get("path"), entry.get("kind", "?")
        if not rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
            problems.append(Problem(str(rel), ["invalid path in manifest.json"]))
            continue
        listed.add(rel)
        path = root / rel
        if not path.is_file():
            problems.append(Problem(rel, ["missing (listed in manifest.json)"]))
            continue
        reasons = []
        size = path.stat().st_size
        if progress and size > _LARGE:
            progress(f"checking {rel} ({size / 1e6:.0f} MB)")
        if size != entry.get("size"):
            reasons.append(f"altered (size {size} bytes, manifest says {entry.get('size')})")
        elif sha256_file(path) != entry.get("sha256"):
            reasons.append("altered (sha256 differs from manifest.json)")
        if path.suffix == ".nc":
            dataset_kind = kind if kind in DATASET_KINDS else None
            reasons.extend(f"malformed: {r}" for r in check_dataset(path, dataset_kind))
        elif kind == "metadata":
            from .citation import check_metadata

            reasons.extend(f"malformed: {r}" for r in check_metadata(path))
        if reasons:
            problems.append(Problem(rel, reasons))
        counts[kind] = counts.get(kind, 0) + 1
    for rel, _ in shared_files(root):
        if rel not in listed:
            problems.append(Problem(rel, ["not listed in manifest.json (stale manifest?)"]))
    if manifest.get("config"):  # an exported bundle: it must carry its repository metadata
        from .citation import METADATA_FILES

        for name in METADATA_FILES:
            if name not in listed:
                problems.append(Problem(name, ["missing (an exported bundle carries it; export again "
                                               "with qbcat export)"]))
    if manifest.get("points"):
        counts["point"] = _check_points(root, manifest["points"], problems, progress)
    return problems, counts
