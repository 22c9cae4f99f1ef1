"""qbcat: catalysis-enhanced qubit quantum battery, simulated with QuTiP 5 (see SPEC.md)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qbcat")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
