"""Snakemake script (rule backflow_figure): enhancement against backflow for every point, from
the point table (a figure option redraws it without recomputing the statistics)."""

import sys

import pandas as pd

from qbcat.figures import plots

sm = snakemake  # noqa: F821
if getattr(sm, "log", None):
    sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
table = pd.read_csv(sm.input.points, dtype={"point_id": str, "sweep": str})
fig = plots.figure_backflow_scatter(table, enhancement_metric=sm.params.get("enhancement_metric") or "mean_difference")
for path in plots.save_figure(fig, sm.output.figure, dpi=sm.params.get("dpi", 200)):
    print(f"wrote {path}")
