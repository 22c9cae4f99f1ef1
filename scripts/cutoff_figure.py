"""Snakemake script (rule cutoff_figure): the photon-cutoff certificate of every catalyzed point
of every sweep, in one figure. input.sweeps -> output.figure (the PNG alongside), params.dpi."""

import sys

from qbcat.science import analysis
from qbcat.data import aggregate
from qbcat.figures import plots

VARIABLES = (*(name for name in aggregate.CUTOFF if name != "cutoff_n_fock"), "n_fock", "cutoff_ok")


def main(sweeps, figure, dpi=200):
    data = analysis.open_sweeps(sweeps, variables=VARIABLES)
    for path in plots.save_figure(plots.figure_cutoff_certificates(data), figure, dpi=dpi):
        print(f"wrote {path}")


sm = snakemake  # noqa: F821
sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
main(list(sm.input.sweeps), sm.output.figure, sm.params.dpi)
