"""Snakemake script (rule convergence_point_figure): one point's checks drawn from its table
(so that a figure option redraws it without rerunning the checks)."""

import sys

from qbcat.science.convergence import read_table
from qbcat.figures.checks import plot_checks

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
table = read_table(snakemake.input.table)  # noqa: F821
print(f"wrote {plot_checks(table, snakemake.output.figure, dpi=snakemake.params.dpi)}")  # noqa: F821
