"""Snakemake script (rule enhancement): the ergotropy enhancement of a 2-D sweep (NetCDF).

input.sweep -> output.netcdf (qbcat.science.analysis.ergotropy_enhancement: time average, peak and
late-time value, catalyzed against baseline, difference and ratio), with the averaging windows
of params (t_start, t_end, late_duration, ratio_floor; None: the defaults).
"""

import sys

from qbcat.science import analysis
from qbcat.data.datasets import content_id, describe, write_netcdf

OPTIONS = ("t_start", "t_end", "late_duration", "ratio_floor")

sm = snakemake  # noqa: F821
if getattr(sm, "log", None):
    sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
options = {k: sm.params.get(k) for k in OPTIONS if sm.params.get(k) is not None}
(ds,) = analysis.open_sweeps([sm.input.sweep]).values()
enh = analysis.ergotropy_enhancement(ds, **options)
name = analysis.sweep_name(enh)
if len(analysis.sweep_axes(enh)) != 2:  # refused before any write
    sys.exit(f"qbcat: enhancement map needs a 2-D sweep; {name!r} has axes {analysis.sweep_axes(enh)}")
# its own summary, dates and id; who made it (creator, license) comes with the sweep's attributes
enh = describe(enh, title=enh.attrs["title"],
               summary=f"Ergotropy of the catalyzed qubit against its uncatalyzed baseline over the sweep {name}: "
               "time average, peak and late-time value, their difference and ratio.",
               history_entry="scripts/enhancement.py: enhancement dataset",
               dataset_id=content_id("enhancement", name, ds.attrs.get("id"), sorted(options.items())))
print(f"wrote {write_netcdf(enh, sm.output.netcdf)}")
