"""Sharing results: one verifiable archive (``qbcat export``), lazy re-use of a shared sweep
(:func:`open_sweep`) and a readable summary of any dataset (``qbcat info``).

An exported archive holds one folder named after the archive with the sweep datasets, analysis
products, figures, claims report, the exact config, the repository metadata ``datacite.json``
and ``zenodo.json`` (:mod:`qbcat.data.citation`, from the config's ``share:`` keys) and a fresh
``manifest.json`` of exactly those files, so that ``qbcat verify`` passes on it once unpacked and
every figure or analysis can be rebuilt from it without simulating. Point datasets stay out:
every number in them is in the sweeps.
"""

from __future__ import annotations

import io as _io
import json
import os
import hashlib
import tarfile
import time
import warnings
from pathlib import Path
from typing import Callable

from ..atomic import atomic_output
from .manifest import (
    MANIFEST_NAME,
    ManifestError,
    infer_kind,
    manifest_for_files,
    read_manifest,
    sha256_file,
    shared_files,
)

#: Provenance attributes of the datasets that the bundle's metadata reports.
SOFTWARE_ATTRS = ("qbcat_version", "qbcat_git_commit", "qbcat_git_state", "qutip_version")

ARCHIVE_SUFFIX = ".tar.gz"
DEFAULT_CONFIG = Path("config") / "config.yaml"


class ChecksumError(ManifestError):
    """A file whose sha256 differs from the one its manifest lists."""


def _archive_root_name(output: Path) -> str:
    name = output.name
    return name[: -len(ARCHIVE_SUFFIX)] if name.endswith(ARCHIVE_SUFFIX) else output.stem


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No user or group names in the archive: it is shared, and ownership means nothing elsewhere."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def _share_section(config: Path) -> dict:
    """The ``share:`` section of a config file ({} if it has none); ManifestError if unreadable."""
    import yaml

    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{config}: cannot read the config ({' '.join(str(exc).split())})") from None
    share = data.get("share") if isinstance(data, dict) else None
    if share is None:
        return {}
    if not isinstance(share, dict):
        raise ManifestError(f"{config}: share: expected a mapping, got {share!r}")
    return share


def _software(files: list[tuple[Path, str, str]]) -> list[dict]:
    """The distinct (qbcat version, git commit, state, QuTiP version) of the bundle's datasets."""
    import xarray as xr

    found = []
    for path, _, kind in files:
        if path.suffix != ".nc":
            continue
        try:
            with xr.open_dataset(path) as ds:
                entry = {k: str(ds.attrs[k]) for k in SOFTWARE_ATTRS if k in ds.attrs}
        except Exception:  # a damaged dataset is reported by qbcat verify, not here
            continue
        if entry and entry not in found:
            found.append(entry)
    return found


def _payload_entry(rel: str, kind: str, payload: bytes) -> dict:
    return {"path": rel, "kind": kind, "size": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
            "rule": None}


def export(
    output: str | os.PathLike,
    results_dir: str | os.PathLike = "results",
    config: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Bundle the shared products of ``results_dir`` and ``config`` into ``output`` (.tar.gz).

    ``config`` defaults to ``config/config.yaml`` of the working directory (the workflow's);
    it is stored as ``config/<its name>``, and its ``share:`` keys make the bundle's
    ``datacite.json`` and ``zenodo.json`` (:mod:`qbcat.data.citation`); the keys still at their
    default ("unknown") are named in a note (through ``progress``, else a warning). The rule of
    each file is taken from ``results_dir/manifest.json`` if there is one; checksums are always
    recomputed. The archive is written to a temporary file next to ``output`` and renamed into
    place.
    """
    from .citation import DATACITE_NAME, ZENODO_NAME, records, unset_keys

    root = Path(results_dir)
    output = Path(output)
    if not root.is_dir():
        raise ManifestError(f"{results_dir}: not a directory")
    if not output.name.endswith(ARCHIVE_SUFFIX):
        raise ManifestError(f"{output}: the archive name must end in {ARCHIVE_SUFFIX}")
    if config is None:
        if not DEFAULT_CONFIG.is_file():
            raise ManifestError(f"no config given and {DEFAULT_CONFIG} not found; pass --config FILE")
        config = DEFAULT_CONFIG
    config = Path(config)
    if not config.is_file():
        raise ManifestError(f"{config}: config file not found")
    share = _share_section(config)

    files = [(root / rel, rel, kind) for rel, kind in shared_files(root)
             if kind not in ("config", "metadata")]
    if not files:
        raise ManifestError(f"{results_dir}: nothing to export (no sweeps/, analysis/, figures/ "
                            "or claims.md)")
    files.append((config, f"config/{config.name}", "config"))
    rules = {}
    if (root / MANIFEST_NAME).is_file():
        rules = {e["path"]: e.get("rule") for e in read_manifest(root / MANIFEST_NAME)["files"]}
    if progress:
        progress(f"hashing {len(files)} files")
    manifest = manifest_for_files(files, rules)
    manifest["config"] = f"config/{config.name}"
    top = _archive_root_name(output)
    counts = {}
    for _, _, kind in files:
        counts[kind] = counts.get(kind, 0) + 1
    try:
        datacite, zenodo = records(share, name=top, counts=counts, software=_software(files))
    except ValueError as exc:
        raise ManifestError(f"{config}: {exc}") from None
    extra = {name: json.dumps(record, indent=1).encode() + b"\n"
             for name, record in ((DATACITE_NAME, datacite), (ZENODO_NAME, zenodo))}
    manifest["files"].extend(_payload_entry(rel, "metadata", data) for rel, data in extra.items())
    extra[MANIFEST_NAME] = json.dumps(manifest, indent=1).encode() + b"\n"
    unset = unset_keys(share)
    if unset:
        note = (f"note: {', '.join('share.' + k for k in unset)} still have their default value "
                f"('unknown') in {config}; they are in the bundle's datasets and {DATACITE_NAME}/"
                f"{ZENODO_NAME}. Set them (config/README.md, section share) and rerun the workflow "
                "before publishing.")
        if progress:
            progress(note)
        else:
            warnings.warn(note, stacklevel=2)

    with atomic_output(output, suffix=".tmp") as tmp:
        # dereference: outputs restored from Snakemake's cache are symlinks; ship the data.
        with tarfile.open(tmp, "w:gz", dereference=True, format=tarfile.PAX_FORMAT) as tar:
            for path, rel, _ in files:
                if progress:
                    progress(f"adding {rel} ({path.stat().st_size / 1e6:.1f} MB)")
                tar.add(path, arcname=f"{top}/{rel}", recursive=False, filter=_normalise)
            for rel, payload in extra.items():
                info = _normalise(tarfile.TarInfo(f"{top}/{rel}"))
                info.size, info.mtime = len(payload), int(time.time())
                tar.addfile(info, _io.BytesIO(payload))
    return output


# ---------------------------------------------------------------------------------------------
# Re-use


def _locate_sweep(path: Path, name: str | None) -> Path:
    """The sweep file meant by a file path, or by a results/sweeps folder and an optional name."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise ManifestError(f"{path}: no such file or directory")
    folders = [f for f in (path / "sweeps", path) if f.is_dir()]
    if name is not None:
        for folder in folders:
            if (folder / f"{name}.nc").is_file():
                return folder / f"{name}.nc"
    available = sorted({f.stem for folder in folders for f in folder.glob("*.nc")
                        if not f.name.startswith(".")})
    if name is None and len(available) == 1:
        return next(f for folder in folders for f in [folder / f"{available[0]}.nc"] if f.is_file())
    what = f"no sweep {name!r}" if name is not None else "several sweeps" if available else "no sweeps"
    raise ManifestError(f"{path}: {what} (available: {', '.join(available) or 'none'}); "
                        + ("pass name=" if name is None and available else "check the path"))


def _manifest_entry(path: Path) -> tuple[Path, dict] | None:
    """The nearest manifest.json in the file's folder or up to two above it that lists the file.

    The path is not resolved: a sweep restored from Snakemake's output cache is a symlink into
    the cache, but the manifest that lists it sits in the results folder.
    """
    absolute = Path(os.path.abspath(path))
    for folder in list(absolute.parents)[:3]:
        candidate = folder / MANIFEST_NAME
        if candidate.is_file():
            rel = absolute.relative_to(folder).as_posix()
            for entry in read_manifest(candidate)["files"]:
                if entry.get("path") == rel:
                    return candidate, entry
    return None


def check_against_manifest(path: str | os.PathLike, required: bool = False) -> bool:
    """Compare a file's sha256 with the manifest next to it; True if checked, False if no manifest
    lists it (ManifestError then if ``required``). ChecksumError on a mismatch."""
    path = Path(path)
    found = _manifest_entry(path)
    if found is None:
        if required:
            raise ManifestError(f"{path}: no manifest.json next to it lists this file")
        return False
    manifest_path, entry = found
    if sha256_file(path) != entry.get("sha256"):
        raise ChecksumError(f"{path}: sha256 differs from {manifest_path} (altered or replaced)")
    return True


def open_sweep(path_or_dir: str | os.PathLike, name: str | None = None, chunks="auto",
               verify: bool | None = None):
    """A shared sweep dataset, opened lazily (dask arrays) with plain xarray.

    ``path_or_dir`` is the sweep file, or a results (or unpacked archive) folder, or its
    ``sweeps/`` folder, with ``name`` choosing the sweep when there are several. ``verify``:
    None checks the sha256 against a manifest.json next to it when one lists the file; True
    requires that; False skips it (hashing reads the whole file once).
    """
    import xarray as xr

    path = _locate_sweep(Path(path_or_dir), name)
    if verify is not False:
        check_against_manifest(path, required=bool(verify))
    return xr.open_dataset(path, chunks=chunks)


# ---------------------------------------------------------------------------------------------
# qbcat info


def _fmt(value) -> str:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _coordinate_range(da) -> str:
    values = da.values
    if values.size == 0:
        return "(empty)"
    if values.dtype.kind in "OUS":
        shown = [str(v) for v in values[:6]]
        return ", ".join(shown) + (", ..." if values.size > 6 else "")
    return f"{_fmt(values.min())} .. {_fmt(values.max())}"


def _sanity_lines(ds, kind: str) -> list[str]:
    """Worst sanity numbers: from the attributes of a point, over all points of a sweep."""
    lines = []
    if kind == "point":
        for key, value in ds.attrs.items():
            if key.startswith("sanity_"):
                lines.append(f"  {key[7:]:<28} {_fmt(value)}")
    else:
        for name in ds.data_vars:
            if name.startswith("sanity_"):
                values = ds[name].values
                worst = values.min() if name.endswith("min_eigenvalue_qb") else abs(values).max()
                label = "min" if name.endswith("min_eigenvalue_qb") else "max |.|"
                lines.append(f"  {name[7:]:<28} {label} {_fmt(worst)} over {values.size} points")
    return lines


def info_text(path: str | os.PathLike) -> str:
    """A readable summary of a dataset: what it is, parameters, dimensions with ranges, variables
    with units, provenance and sanity numbers."""
    import xarray as xr

    from ..engine.params import PARAMETERS

    path = Path(path)
    with xr.open_dataset(path) as ds:
        a = ds.attrs
        kind = infer_kind(a)
        ident = {"sweep": f"sweep '{a.get('sweep_name')}' (axes: {a.get('sweep_axes', '?')})",
                 "point": f"point {a.get('point_id')}"}.get(kind, "analysis dataset")
        out = [f"{path}  ({path.stat().st_size / 1e6:.2f} MB)",
               f"title:    {a.get('title', '(none)')}",
               f"what:     {ident}"]
        if "summary" in a:
            out.append(f"summary:  {a['summary']}")
        out.append("dimensions:")
        for dim, size in ds.sizes.items():
            rng = _coordinate_range(ds[dim]) if dim in ds.coords else "(no coordinate)"
            out.append(f"  {dim:<14} {size:>6}   {rng}")
        params = [n for n in PARAMETERS if n in a]
        out.append("parameters" + (" (fixed; swept ones are dimensions above):" if kind == "sweep" else ":"))
        for n in params:
            out.append(f"  {n:<14} = {_fmt(a[n])}")
        out.append("variables:")
        for name in ds.data_vars:
            v = ds[name]
            out.append(f"  {name:<30} ({', '.join(v.dims)})  [{v.attrs.get('units', '?')}]  "
                       f"{v.attrs.get('long_name', '')}")
        out.append("provenance:")
        out.append(f"  qbcat {a.get('qbcat_version', '?')}, git {a.get('qbcat_git_commit', '?')} "
                   f"({a.get('qbcat_git_state', '?')}), QuTiP {a.get('qutip_version', '?')}, "
                   f"engine {a.get('engine_version', '?')}")
        for key in ("id", "date_created", "config_hash", "creator_name", "institution", "license",
                    "references"):
            if key in a:
                out.append(f"  {key}: {a[key]}")
        if "history" in a:
            out.append("  history:")
            out.extend(f"    {line}" for line in str(a["history"]).splitlines())
        sanity = _sanity_lines(ds, kind)
        if sanity:
            out.append("sanity:")
            out.extend(sanity)
    return "\n".join(out)
