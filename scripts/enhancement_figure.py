"""Snakemake script (rule enhancement_figure): the heat maps of an enhancement dataset (a figure
option redraws them without recomputing the enhancement). params: dpi, x and y (map axes)."""

import sys

import xarray as xr

from qbcat.figures import plots

sm = snakemake  # noqa: F821
if getattr(sm, "log", None):
    sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
with xr.open_dataset(sm.input.enhancement) as enh:
    fig = plots.figure_enhancement_map(enh.load(), x=sm.params.get("x"), y=sm.params.get("y"))
for path in plots.save_figure(fig, sm.output.figure, dpi=sm.params.get("dpi", 200)):
    print(f"wrote {path}")
