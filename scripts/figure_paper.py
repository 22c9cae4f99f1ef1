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
"""

import sys

from qbcat.science import analysis
from qbcat.figures import plots


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
