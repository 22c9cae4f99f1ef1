"""Snakemake script (rule steady_compare): each cell's steady period average against its
trajectory's mean over the last params.late_periods whole drive periods (CSV)."""

import sys

import numpy as np
import xarray as xr

from qbcat.science.analysis import write_csv
from qbcat.science.steady import compare_with_trajectories

sm = snakemake  # noqa: F821
sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
with xr.open_dataset(sm.input.steady) as steady, xr.open_dataset(sm.input.sweep) as sweep:
    table = compare_with_trajectories(steady.load(), sweep, sm.params.late_periods)
write_csv(table, sm.output.comparison)
worst = table.groupby("observable")["difference"].apply(lambda d: np.nanmax(np.abs(d)))
print("largest |trajectory late mean - steady period mean|: " + ", ".join(f"{k} {v:.3g}" for k, v in worst.items()))
