"""Snakemake script (rule backflow_stats): backflow statistics and their correlation with the
ergotropy enhancement, over all sweeps.

input.sweeps -> output.points (one row per catalyzed point: enhancement and backflow metrics,
also per heat-current channel; qbcat.science.analysis.point_table) and output.correlations (Pearson and
Spearman of each backflow metric against each enhancement metric, per sweep and pooled "all";
qbcat.science.analysis.correlation_table). params: t_start, t_end, late_duration, ratio_floor, tolerance.
"""

import sys

from qbcat.science import analysis

OPTIONS = ("t_start", "t_end", "late_duration", "ratio_floor", "tolerance")

sm = snakemake  # noqa: F821
if getattr(sm, "log", None):
    sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
options = {k: sm.params.get(k) for k in OPTIONS if sm.params.get(k) is not None}
table = analysis.point_table(analysis.open_sweeps(list(sm.input.sweeps)), **options)
print(f"wrote {analysis.write_csv(table, sm.output.points)}")
print(f"wrote {analysis.write_csv(analysis.correlation_table(table), sm.output.correlations)}")
