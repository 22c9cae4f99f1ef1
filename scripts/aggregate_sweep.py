"""Snakemake script: stack one sweep's point files into results/sweeps/{sweep}.nc (dask)."""

import sys

from qbcat.data import aggregate
from qbcat.workflow.study import Sweep

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
try:
    aggregate.write_sweep(
        Sweep.from_spec(snakemake.params.sweep),  # noqa: F821
        snakemake.input.points,  # noqa: F821
        snakemake.output[0],  # noqa: F821
        allow_gaps=snakemake.params.allow_gaps,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        chunk_mb=snakemake.params.chunk_mb,  # noqa: F821
        sanity_bounds=snakemake.params.sanity,  # noqa: F821
        share=snakemake.params.share,  # noqa: F821
        fail_on_cutoff=snakemake.params.fail_on_cutoff,  # noqa: F821
    )
except aggregate.AggregationError as exc:
    sys.exit(f"qbcat: {exc}")
