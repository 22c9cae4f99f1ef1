"""Fig. 2 (ergotropy) and Fig. 3 (heat current) of the paper from 1-D sweeps, one per panel.

Snakemake rule:
    input:  sweeps=[...]       one 1-D sweep NetCDF per panel, in panel order (paper: omega_c, g,
                               kappa_1, gamma_D)
    output: fig2="....pdf", fig3="....pdf"   the PNG with the same stem is written next to each
            fig3_channels="....pdf"   (optional) Fig. 3 by channel, J_cat and J_deph (early window)
    params: zoom_t_end=5.0     end of the zoomed early-transient row of Fig. 3 (1/omega_0)
            catalyst_axis="twin"   E_cat on a right-hand axis ("twin") or the ergotropy axis ("same")
            ergotropy_curves="period_mean"   Fig. 2 curves: running mean over one drive period,
                                   "raw", or "both" (mean over the faint raw curve)
            dpi=200                PNG resolution

Outside Snakemake:
    python scripts/figure_paper.py OMEGA_C.nc G.nc KAPPA_1.nc GAMMA_D.nc --fig2 fig2.pdf --fig3 fig3.pdf
"""

import argparse
import sys

from qbcat import analysis, plots


def main(sweeps, fig2, fig3, zoom_t_end=5.0, catalyst_axis="twin", dpi=200, fig3_channels=None,
         ergotropy_curves="period_mean"):
    data = list(analysis.open_sweeps(sweeps).values())
    fig = plots.figure_ergotropy(data, catalyst_axis=catalyst_axis, curves=ergotropy_curves)
    written = plots.save_figure(fig, fig2, dpi=dpi)
    fig = plots.figure_heat_current(data, zoom_t_end=zoom_t_end)
    written += plots.save_figure(fig, fig3, dpi=dpi)
    if fig3_channels:
        fig = plots.figure_heat_current_channels(data, t_end=zoom_t_end)
        written += plots.save_figure(fig, fig3_channels, dpi=dpi)
    for path in written:
        print(f"wrote {path}")


def _cli(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweeps", nargs="+", help="1-D sweep NetCDF files, one per panel")
    ap.add_argument("--fig2", required=True, help="Fig. 2 output (.pdf; a .png is written alongside)")
    ap.add_argument("--fig3", required=True, help="Fig. 3 output (.pdf; a .png is written alongside)")
    ap.add_argument("--zoom-t-end", type=float, default=5.0)
    ap.add_argument("--fig3-channels", help="Fig. 3 by channel (.pdf; a .png is written alongside)")
    ap.add_argument("--catalyst-axis", choices=("twin", "same"), default="twin")
    ap.add_argument("--ergotropy-curves", choices=plots.CURVES, default="period_mean")
    ap.add_argument("--dpi", type=int, default=200, help="PNG resolution")
    a = ap.parse_args(argv)
    try:
        main(a.sweeps, a.fig2, a.fig3, zoom_t_end=a.zoom_t_end, catalyst_axis=a.catalyst_axis, dpi=a.dpi,
             fig3_channels=a.fig3_channels, ergotropy_curves=a.ergotropy_curves)
    except (ValueError, OSError) as exc:  # bad input: one line, no traceback
        sys.exit(f"{ap.prog}: error: {exc}")


if "snakemake" in globals():
    sm = globals()["snakemake"]
    if getattr(sm, "log", None):
        sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
    main(
        list(sm.input.get("sweeps") or sm.input),
        sm.output.fig2,
        sm.output.fig3,
        zoom_t_end=sm.params.get("zoom_t_end", 5.0),
        catalyst_axis=sm.params.get("catalyst_axis", "twin"),
        dpi=sm.params.get("dpi", 200),
        fig3_channels=sm.output.get("fig3_channels"),
        ergotropy_curves=sm.params.get("ergotropy_curves", "period_mean"),
    )
elif __name__ == "__main__":
    _cli()
