"""Snakemake script (rule convergence_summary): the study's convergence table (one row per
point and check, failures first) and the details (every row of every point)."""

import sys

from qbcat.science.convergence import combine, read_table, write_table

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
tables = {pid: read_table(path) for pid, path in zip(snakemake.params.point_ids, snakemake.input.tables)}  # noqa: F821
table, details = combine(tables, dict(snakemake.params.points))  # noqa: F821
write_table(table, snakemake.output.table)  # noqa: F821
write_table(details, snakemake.output.details)  # noqa: F821
failed = table[table["verdict"] == "FAIL"]
print(f"convergence: {len(table) - len(failed)} of {len(table)} checks PASS at {table['point_id'].nunique()} points"
      + (f"; FAIL: {', '.join(failed['label'] + ' ' + failed['check'])}" if len(failed) else ""))
