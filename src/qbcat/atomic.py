"""Atomic file output: every file qbcat writes appears whole under its name or not at all.

A temporary file in the destination's folder (so the rename stays on one file system) is written,
then ``os.replace``d onto the destination, which POSIX makes atomic: a crash or kill leaves the
old file or none, never a truncated one, and concurrent writers of one name never mix bytes.
"""

from __future__ import annotations

import os
import tempfile
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
