"""``qbcat install-profile``: put the SLURM profile where ``snakemake --profile slurm`` finds it.

Snakemake 9 resolves ``--profile NAME`` (snakemake.cli.get_profile_dir) as a path first: if
``NAME`` exists relative to the current directory, that directory is the profile (this is why
``snakemake --profile slurm`` works as typed in the repository root, where ``slurm`` is a link
to ``profiles/slurm``). Otherwise it looks for ``NAME/config.yaml`` in the current directory,
then in the user's config directory (``$XDG_CONFIG_HOME/snakemake``, by default
``~/.config/snakemake``) and the site's (``/etc/xdg/snakemake``). This module installs a copy of
``profiles/slurm`` into the user's directory, so that ``--profile slurm`` works from any
directory. It never replaces a different profile of the same name unless told to (``force``),
and then keeps the old one as a backup.
"""

from __future__ import annotations

import difflib
import filecmp
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml

import qbcat


class ProfileError(Exception):
    """The profile cannot be installed (one line saying why and what to do)."""


def user_profile_dir() -> Path:
    """Where Snakemake looks for a user's profiles: the directory of
    ``snakemake.common.get_appdirs().user_config_dir`` (platformdirs: ``$XDG_CONFIG_HOME/snakemake``
    or ``~/.config/snakemake`` on Linux)."""
    from snakemake.common import get_appdirs  # what snakemake.cli.get_profile_dir searches

    return Path(get_appdirs().user_config_dir)


def default_source() -> Path:
    """``profiles/slurm`` of the current directory if there is one (a clone's root), else of
    the repository qbcat is installed from (``pip install -e .``)."""
    here = Path("profiles", "slurm")
    if (here / "config.yaml").is_file():
        return here
    repo = Path(qbcat.__file__).resolve().parents[2] / "profiles" / "slurm"
    if (repo / "config.yaml").is_file():
        return repo
    raise ProfileError("no profiles/slurm/config.yaml here or in qbcat's repository: run this in "
                       "the root of a qbcat clone, or give the profile with --from DIR")


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


def _key_differences(installed: Path, ours: Path) -> list[str] | None:
    """Key by key, what differs between two YAML profiles (None if either is not a mapping)."""
    try:
        theirs_map, ours_map = (yaml.safe_load(p.read_text()) for p in (installed, ours))
    except yaml.YAMLError:
        return None
    if not isinstance(theirs_map, dict) or not isinstance(ours_map, dict):
        return None
    out = []
    for key in list(theirs_map) + [k for k in ours_map if k not in theirs_map]:
        if key not in ours_map:
            out.append(f"{key}: {theirs_map[key]!r} in yours, not in qbcat's")
        elif key not in theirs_map:
            out.append(f"{key}: not in yours, {ours_map[key]!r} in qbcat's")
        elif theirs_map[key] != ours_map[key]:
            out.append(f"{key}: {theirs_map[key]!r} in yours, {ours_map[key]!r} in qbcat's")
    return out


def differences(source: Path, target: Path, max_lines: int = 30) -> list[str]:
    """What differs between two profile directories: files only in one of them, and for each
    file that differs its keys that differ (a YAML mapping) or a unified diff of at most
    ``max_lines`` lines. Empty if they are equal."""
    ours, theirs = _files(source), _files(target)
    out = [f"only in {target}: {name}" for name in theirs if name not in ours]
    out += [f"only in {source}: {name}" for name in ours if name not in theirs]
    for name in ours:
        if name not in theirs or filecmp.cmp(source / name, target / name, shallow=False):
            continue
        try:
            a = (target / name).read_text().splitlines()
            b = (source / name).read_text().splitlines()
        except UnicodeDecodeError:
            out.append(f"{name}: differs (binary)")
            continue
        keys = _key_differences(target / name, source / name)
        if keys is not None:
            out += [f"{name}: {line}" for line in keys] or [f"{name}: same keys and values, other comments"]
            continue
        diff = list(difflib.unified_diff(a, b, f"{target / name} (installed)", f"{source / name} (qbcat)",
                                         n=0, lineterm=""))
        if len(diff) > max_lines:
            diff = diff[:max_lines] + [f"... ({len(diff) - max_lines} more diff lines)"]
        out += diff
    return out


def install(source: Path | None = None, name: str = "slurm", force: bool = False,
            target_root: Path | None = None) -> tuple[Path, str]:
    """Copy the profile ``source`` to ``<user profile dir>/<name>``; return (path, what happened).

    An existing profile equal to ``source`` is left alone. A different one is replaced only with
    ``force``, after being renamed to ``<name>.backup-<time>``; without it, ProfileError lists
    what differs. The copy is made in a temporary directory next to the target and renamed into
    place, so the target is never half-written.
    """
    source = Path(source) if source is not None else default_source()
    if not (source / "config.yaml").is_file():
        raise ProfileError(f"{source}: not a Snakemake profile (no config.yaml)")
    if not name or "/" in name or name.startswith("."):
        raise ProfileError(f"--name: expected a plain directory name, got {name!r}")
    root = Path(target_root) if target_root is not None else user_profile_dir()
    target = root / name
    backup = None
    if target.exists() or target.is_symlink():
        if target.is_dir() and not differences(source, target):
            return target, f"{target} is already this profile (identical), nothing to do"
        if not force:
            diff = differences(source, target) if target.is_dir() else [f"{target} is not a directory"]
            raise ProfileError(
                f"{target} exists and differs from {source}; not replaced:\n  " + "\n  ".join(diff)
                + f"\nKeep yours, install under another name (--name qbcat-slurm, then "
                f"`snakemake --profile qbcat-slurm`), or replace it with --force (yours is kept as "
                f"{name}.backup-<time>).")
        backup = root / f"{name}.backup-{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        shutil.copytree(source, staging / name, ignore=shutil.ignore_patterns("__pycache__"))
        if backup is not None:
            os.replace(target, backup)
        os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    done = f"installed {source} as {target}"
    if backup is not None:
        done += f" (the profile that was there is now {backup})"
    return target, done
