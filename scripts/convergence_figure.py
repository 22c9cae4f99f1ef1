"""Snakemake script (rule convergence_figure): every check of every point as one bar."""

import sys

import pandas as pd

from qbcat.figures.checks import figure_convergence_overview
from qbcat.figures.plots import save_figure

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
table = pd.read_csv(snakemake.input.table, dtype={"point_id": str, "label": str})  # noqa: F821
figure = figure_convergence_overview(table)
for path in save_figure(figure, snakemake.output.figure, dpi=snakemake.params.dpi):  # noqa: F821
    print(f"wrote {path}")
