"""Snakemake script: simulate one batch of points in this process and write each point file.

A point that fails does not stop the others; the job then exits non-zero naming the failed
point(s). The points written stay (profile: keep-incomplete), so only the failed ones rerun.
"""

import sys

from qbcat.workflow.batches import failure_report, run_batch

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
failures = run_batch(
    snakemake.params.points,  # noqa: F821
    list(snakemake.output),  # noqa: F821
    sanity_bounds=snakemake.params.sanity,  # noqa: F821
)
if failures:
    sys.exit(failure_report(failures, len(snakemake.output)))  # noqa: F821
