"""Snakemake script (rule convergence_gate): fail the run when a check failed and
convergence.fail_on_error is true; otherwise write the verdict (one line per failing check)."""

import sys

import pandas as pd

from qbcat.atomic import write_text
from qbcat.science.convergence import gate

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821
table = pd.read_csv(snakemake.input.table, dtype={"point_id": str, "label": str})  # noqa: F821
verdict = gate(table, bool(snakemake.params.fail_on_error))  # noqa: F821
print(verdict, end="")
write_text(verdict, snakemake.output.verdict)  # noqa: F821
