"""The photon-cutoff certificate of every catalyzed point of every sweep, in one figure.

Snakemake rule:
    input:  sweeps=[...]    the study's sweep NetCDF files
    output: figure="....pdf"  (the PNG with the same stem is written too)
    params: dpi             PNG resolution

Outside Snakemake:
    python scripts/cutoff_figure.py SWEEP.nc [SWEEP.nc ...] --figure cutoff.pdf
"""

import argparse
import sys

from qbcat import analysis, aggregate, plots

VARIABLES = (*(name for name in aggregate.CUTOFF if name != "cutoff_n_fock"), "n_fock", "cutoff_ok")


def main(sweeps, figure, dpi=200):
    data = analysis.open_sweeps(sweeps, variables=VARIABLES)
    for path in plots.save_figure(plots.figure_cutoff_certificates(data), figure, dpi=dpi):
        print(f"wrote {path}")


def _cli(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweeps", nargs="+", help="sweep NetCDF files")
    ap.add_argument("--figure", required=True, help=".pdf; a .png is written alongside")
    ap.add_argument("--dpi", type=int, default=200, help="PNG resolution")
    a = ap.parse_args(argv)
    try:
        main(a.sweeps, a.figure, a.dpi)
    except (ValueError, OSError) as exc:  # bad input: one line, no traceback
        sys.exit(f"{ap.prog}: error: {exc}")


if "snakemake" in globals():
    sm = globals()["snakemake"]
    sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
    main(list(sm.input.sweeps), sm.output.figure, sm.params.dpi)
elif __name__ == "__main__":
    _cli()
