"""Snakemake script (rule steady_map): the periodic steady state of every cell of a map (NetCDF).

params.base (the parameters not swept), params.axes (name -> values, the map's dimensions),
params.options (method, n_period, validation: qbcat.science.steady.steady_map), params.name, params.share
-> output.dataset (written atomically, CF/ACDD-described). input.sweep, when the study runs
n_fock: auto: the sweep dataset whose ``n_fock`` variable gives each cell's cutoff. With method
batched the cells are split over the job's threads.
"""

import sys

import xarray as xr

from qbcat.data.datasets import content_id, describe, write_netcdf
from qbcat.engine.params import ENGINE_VERSION
from qbcat.science.steady import cell_cutoffs, steady_map

sm = snakemake  # noqa: F821
sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
base, axes, name = dict(sm.params.base), dict(sm.params.axes), sm.params.name
options = dict(sm.params.options or {})
if options.get("method", "batched") == "batched":
    options["workers"] = sm.threads  # the cells split over the job's cores
cutoffs = None
if sm.input.get("sweep"):
    with xr.open_dataset(sm.input.sweep) as sweep:
        cutoffs = cell_cutoffs(sweep, axes)
if cutoffs is None and base.get("n_fock") == "auto":
    sys.exit("qbcat: n_fock is 'auto': the per-cell cutoffs must come from the sweep dataset (input.sweep)")
ds = steady_map(base, axes, n_fock=cutoffs, **options)
ds["case"].attrs.setdefault("units", "1")  # the data contract: units on every variable
ds = describe(ds, title=f"qbcat steady-state map of sweep {name!r}",
              summary=f"Period-averaged observables of the periodic steady state (no transient) of sweep "
              f"{name!r}, over {' x '.join(axes)}, for the catalyzed qubit and its uncatalyzed baseline.",
              history_entry="steady-state map (scripts/steady_map.py)", share=dict(sm.params.share or {}),
              dataset_id=content_id("steady", name, sorted(base.items()), sorted(axes.items()),
                                    sorted((k, v) for k, v in options.items() if k != "workers"), ENGINE_VERSION))
print(f"wrote {write_netcdf(ds, sm.output.dataset)}")
