"""Atomic file output: every file qbcat writes appears whole under its name or not at all.

A temporary file in the destination's folder (so the rename stays on one file system) is written,
then ``os.replace``d onto the destination, which POSIX makes atomic: a crash or kill leaves the
old file or none, never a truncated one, and concurrent writers of one name never mix bytes.
A killed writer leaves its temporary behind: :func:`remove_stale_temporaries` finds those by the
name :func:`atomic_output` gives them. Every layer of the package writes through this module.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on normal exit rename it onto ``path``.

    ``suffix`` of the temporary name (default: the destination's own, so that writers that pick
    a format from the suffix, like matplotlib, see the right one). On any exception the
    temporary file is removed and the destination is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


#: A temporary file of an atomic write (:func:`atomic_output`) that has not been modified for
#: this long has no live writer: a point file is written in one call, in seconds at most. So it
#: was left by a killed run. Younger ones are left alone, since results/points may be shared by
#: several runs (README, shared storage) and one of them may be writing it right now.
STALE_AFTER_S = 3600.0


#: The name tempfile.mkstemp gives the temporary of an atomic write of NAME (:func:`atomic_output`):
#: hidden, NAME, 8 random characters, then ``.tmp`` or NAME's own suffix.
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)$")


def temporaries(folder: str | os.PathLike, of: str | None = None) -> list[Path]:
    """Temporary files of atomic writes in ``folder`` (of the file named ``of`` only, if given).
    No reader takes them for results: they are hidden (and a point file's does not end in .nc
    unless :func:`atomic_output`'s default suffix is used; its name still is not ``<point_id>.nc``)."""
    found = []
    try:
        entries = [entry.name for entry in os.scandir(folder)]
    except FileNotFoundError:
        entries = []
    for entry in entries:
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
