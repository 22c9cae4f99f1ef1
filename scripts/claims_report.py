"""Snakemake script (rule claims): the paper's claims with their verdicts and numbers (Markdown).

input.sweeps (the study's sweep files), input.convergence (optional: the photon-cutoff rows of
the convergence checks; without it claim 6 reads NOT CHECKED), input.convergence_table
(optional: the run's combined pass/fail table, shown near the top, loudly if a check failed)
-> output.report. params: thresholds (qbcat.science.claims.DEFAULT_THRESHOLDS overrides, checked before
any file is read), t_start, t_end, late_duration, ratio_floor, tolerance (qbcat.science.analysis).
"""

import sys

import pandas as pd

from qbcat.science import analysis
from qbcat.science import claims

OPTIONS = ("t_start", "t_end", "late_duration", "ratio_floor", "tolerance")

sm = snakemake  # noqa: F821
if getattr(sm, "log", None):
    sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
thresholds = sm.params.get("thresholds")
claims.check_thresholds(thresholds)  # a bad threshold fails before any file is read
options = {k: sm.params.get(k) for k in OPTIONS if sm.params.get(k) is not None}
table = sm.input.get("convergence_table")
text = claims.claims_report(
    analysis.open_sweeps(list(sm.input.sweeps)), thresholds=thresholds,
    convergence=claims.load_cutoff_summary(sm.input.get("convergence")),
    convergence_table=pd.read_csv(table, dtype={"point_id": str, "label": str}) if table else None, **options)
print(f"wrote {claims.write_report(text, sm.output.report)}")
