"""Backflow statistics and their correlation with the ergotropy enhancement, over all sweeps.

Snakemake rule:
    input:  sweeps=[...]          sweep NetCDF files (any dimensionality)
    output: points="....csv"      one row per catalyzed point: enhancement and backflow metrics, and
                                  per heat-current channel when the sweeps hold them (which
                                  channel carries J < 0; qbcat.analysis.channel_statistics)
            correlations="....csv"  Pearson/Spearman of each backflow metric (also each channel's
                                    backflow) vs each enhancement metric, per sweep and pooled ("all")
            figure="....pdf"      (optional) scatter of enhancement vs backflow; PNG alongside
    params (all optional): t_start, t_end, late_duration, ratio_floor, tolerance (see
            qbcat.analysis), enhancement_metric ("mean_difference", for the scatter), dpi (200, PNG)
  or, figure only (so that a figure option reruns no analysis):
    input:  points="....csv"      a point table written as above
    output: figure="....pdf"

Outside Snakemake:
    python scripts/backflow_stats.py A.nc B.nc --points p.csv --correlations c.csv [--figure s.pdf]
"""

import argparse
import sys

from qbcat import analysis

OPTIONS = ("t_start", "t_end", "late_duration", "ratio_floor", "tolerance")


def main(sweeps, points, correlations, figure=None, enhancement_metric="mean_difference", dpi=200,
         **options):
    options = {k: v for k, v in options.items() if v is not None}
    data = analysis.open_sweeps(sweeps)
    table = analysis.point_table(data, **options)
    print(f"wrote {analysis.write_csv(table, points)}")
    print(f"wrote {analysis.write_csv(analysis.correlation_table(table), correlations)}")
    if figure:
        from qbcat import plots

        fig = plots.figure_backflow_scatter(table, enhancement_metric=enhancement_metric)
        for path in plots.save_figure(fig, figure, dpi=dpi):
            print(f"wrote {path}")


def plot(points, figure, enhancement_metric="mean_difference", dpi=200):
    """The scatter figure from a point table written by :func:`main`."""
    import pandas as pd

    from qbcat import plots

    table = pd.read_csv(points, dtype={"point_id": str, "sweep": str})
    fig = plots.figure_backflow_scatter(table, enhancement_metric=enhancement_metric)
    for path in plots.save_figure(fig, figure, dpi=dpi):
        print(f"wrote {path}")


def _cli(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweeps", nargs="+")
    ap.add_argument("--points", required=True)
    ap.add_argument("--correlations", required=True)
    ap.add_argument("--figure")
    ap.add_argument("--enhancement-metric", default="mean_difference")
    ap.add_argument("--dpi", type=int, default=200, help="PNG resolution")
    for name in OPTIONS:
        ap.add_argument("--" + name.replace("_", "-"), type=float, default=None)
    a = ap.parse_args(argv)
    try:
        main(a.sweeps, a.points, a.correlations, a.figure, a.enhancement_metric, a.dpi,
             **{k: getattr(a, k) for k in OPTIONS})
    except (ValueError, OSError) as exc:  # bad input: one line, no traceback
        sys.exit(f"{ap.prog}: error: {exc}")


if "snakemake" in globals():
    sm = globals()["snakemake"]
    if getattr(sm, "log", None):
        sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
    if sm.input.get("points"):
        plot(sm.input.points, sm.output.figure, sm.params.get("enhancement_metric") or "mean_difference",
             sm.params.get("dpi", 200))
    else:
        main(
            list(sm.input.get("sweeps") or sm.input),
            sm.output.points,
            sm.output.correlations,
            sm.output.get("figure"),
            sm.params.get("enhancement_metric") or "mean_difference",
            sm.params.get("dpi", 200),
            **{k: sm.params.get(k) for k in OPTIONS},
        )
elif __name__ == "__main__":
    _cli()
