"""Snakemake script (rule convergence_point): the convergence checks of one point.

params.base (the point), params.options (qbcat.science.convergence options) -> output.table (CSV, one row
per check, setting and observable) and output.summary (PASS/FAIL per check). Every bad option is
refused before any simulation; the summary goes to the rule's log.
"""

import sys

from qbcat.science.convergence import raise_if_failed, run_checks, summary, validate_options, write_table

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
base, options = dict(snakemake.params.base), dict(snakemake.params.options or {})  # noqa: F821
options = validate_options(options, base)
result = run_checks(base, options)
write_table(result, snakemake.output.table)  # noqa: F821
from qbcat.figures.checks import write_summary  # noqa: E402 - matplotlib only once there is a result

write_summary(result, snakemake.output.summary)  # noqa: F821
print(summary(result))
raise_if_failed(result, options["fail_on_error"])
