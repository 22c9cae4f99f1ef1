"""Study and workflow glue: the config -> the Study (``configuration``), its sweeps and
content-addressed points (``study``), batches of missing points (``batches``), the product plan
(``plan``), progress and cost (``status``), the SLURM profile (``profile``).

These modules are imported on every Snakemake parse (also in every cluster job), so none imports
QuTiP or xarray at module level. See docs/architecture.md.
"""
