"""qbcat: catalysis-enhanced qubit quantum battery, simulated with QuTiP 5 (see docs/conventions.md)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qbcat")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    """Lazy ``qbcat.open_sweep``: xarray and dask are imported on first use, not with the package."""
    if name == "open_sweep":
        from .data.share import open_sweep

        return open_sweep
    raise AttributeError(f"module 'qbcat' has no attribute {name!r}")
