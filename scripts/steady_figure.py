"""Snakemake script (rule steady_figure): the figure of a steady-state map written before (one
file per output, so that plots.dpi redraws it alone)."""

import sys

import xarray as xr

from qbcat.figures.checks import plot_steady_map

sm = snakemake  # noqa: F821
sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
with xr.open_dataset(sm.input.dataset) as ds:
    ds = ds.load()
for path in sm.output:
    print(f"wrote {plot_steady_map(ds, path, dpi=sm.params.dpi)}")
