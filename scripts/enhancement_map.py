"""Ergotropy enhancement of a 2-D sweep: the enhancement dataset (NetCDF) and its heat maps.

Snakemake rule:
    input:  sweep="results/sweeps/{sweep}.nc"     a 2-D sweep
    output: netcdf="....nc"     the enhancement Dataset (qbcat.analysis.ergotropy_enhancement)
            figure="....pdf"    (optional) the heat maps; the PNG with the same stem is written too
  or, figure only (so that a figure option reruns no analysis):
    input:  enhancement="....nc"  an enhancement Dataset written as above
    output: figure="....pdf"
    params (all optional): t_start, t_end (averaging window, default: whole run), late_duration
            (default: last 10 % of the run), ratio_floor (1e-6), x, y (axis names for the map
            axes), dpi (200, PNG resolution)

Outside Snakemake:
    python scripts/enhancement_map.py SWEEP.nc --netcdf enh.nc --figure map.pdf [--t-start 50]
"""

import argparse
import sys

from qbcat import analysis, plots
from qbcat.io import content_id, describe, write_netcdf

OPTIONS = ("t_start", "t_end", "late_duration", "ratio_floor")


def main(sweep, netcdf, figure=None, x=None, y=None, dpi=200, **options):
    options = {k: v for k, v in options.items() if v is not None}
    (ds,) = analysis.open_sweeps([sweep]).values()
    enh = analysis.ergotropy_enhancement(ds, **options)
    if len(analysis.sweep_axes(enh)) != 2:  # refuses a sweep that is not 2-D before any write
        raise ValueError(f"enhancement map needs a 2-D sweep; {analysis.sweep_name(enh)!r} has axes "
                         f"{analysis.sweep_axes(enh)}")
    # its own summary, dates and id; who made it (creator, license) comes with the sweep's attributes
    enh = describe(enh, title=enh.attrs["title"],
                   summary=f"Ergotropy of the catalyzed qubit against its uncatalyzed baseline over the "
                   f"sweep {analysis.sweep_name(enh)}: time average, peak and late-time value, their "
                   "difference and ratio.",
                   history_entry="scripts/enhancement_map.py: enhancement dataset",
                   dataset_id=content_id("enhancement", analysis.sweep_name(enh), ds.attrs.get("id"),
                                         sorted(options.items())))
    fig = plots.figure_enhancement_map(enh, x=x, y=y) if figure else None
    print(f"wrote {write_netcdf(enh, netcdf)}")
    if fig is not None:
        for path in plots.save_figure(fig, figure, dpi=dpi):
            print(f"wrote {path}")


def plot(enhancement, figure, x=None, y=None, dpi=200):
    """The heat maps of an enhancement dataset written by :func:`main`."""
    import xarray as xr

    with xr.open_dataset(enhancement) as enh:
        fig = plots.figure_enhancement_map(enh.load(), x=x, y=y)
    for path in plots.save_figure(fig, figure, dpi=dpi):
        print(f"wrote {path}")


def _cli(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweep", help="2-D sweep NetCDF file")
    ap.add_argument("--netcdf", required=True)
    ap.add_argument("--figure", required=True, help=".pdf; a .png is written alongside")
    ap.add_argument("--x")
    ap.add_argument("--y")
    ap.add_argument("--dpi", type=int, default=200, help="PNG resolution")
    for name in OPTIONS:
        ap.add_argument("--" + name.replace("_", "-"), type=float, default=None)
    a = ap.parse_args(argv)
    try:
        main(a.sweep, a.netcdf, a.figure, x=a.x, y=a.y, dpi=a.dpi, **{k: getattr(a, k) for k in OPTIONS})
    except (ValueError, OSError) as exc:  # bad input: one line, no traceback
        sys.exit(f"{ap.prog}: error: {exc}")


if "snakemake" in globals():
    sm = globals()["snakemake"]
    if getattr(sm, "log", None):
        sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
    if sm.input.get("enhancement"):
        plot(sm.input.enhancement, sm.output.figure, x=sm.params.get("x"), y=sm.params.get("y"),
             dpi=sm.params.get("dpi", 200))
    else:
        main(
            sm.input.get("sweep") or sm.input[0],
            sm.output.netcdf,
            sm.output.get("figure"),
            x=sm.params.get("x"),
            y=sm.params.get("y"),
            dpi=sm.params.get("dpi", 200),
            **{k: sm.params.get(k) for k in OPTIONS},
        )
elif __name__ == "__main__":
    _cli()
