"""Datasets and sharing: point datasets and their attributes (``datasets``), sweep datasets
(``aggregate``), the manifest and ``qbcat verify`` (``manifest``), the export bundle and
``open_sweep`` (``share``), its citation metadata (``citation``), atomic writes (``atomic``).
See docs/architecture.md and, for the data contract, docs/conventions.md.
"""
