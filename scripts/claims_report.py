"""The claims report: each claim of the paper with its verdict and the numbers behind it (Markdown).

Snakemake rule:
    input:  sweeps=[...]                sweep NetCDF files (paper: the omega_c, g, kappa_1, gamma_D sweeps)
            convergence="....csv|json"  (optional) photon-cutoff summary with columns n_fock,
                                        max_deviation; without it claim 6 reads "not checked in this run"
    output: report="....md"
    params (all optional): thresholds={...} (overrides qbcat.claims.DEFAULT_THRESHOLDS), t_start,
            t_end, late_duration, ratio_floor, tolerance (see qbcat.analysis)

Outside Snakemake:
    python scripts/claims_report.py A.nc B.nc --report claims.md [--convergence conv.csv]
           [--threshold catalyst_t_start=100 ...]
"""

import argparse
import sys

import yaml

from qbcat import analysis, claims

OPTIONS = ("t_start", "t_end", "late_duration", "ratio_floor", "tolerance")


def main(sweeps, report, convergence=None, thresholds=None, **options):
    options = {k: v for k, v in options.items() if v is not None}
    claims.check_thresholds(thresholds)  # bad thresholds fail before any file is read
    conv = claims.load_convergence(convergence)
    data = analysis.open_sweeps(sweeps)
    text = claims.claims_report(data, thresholds=thresholds, convergence=conv, **options)
    print(f"wrote {claims.write_report(text, report)}")


def _threshold(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, yaml.safe_load(value)


def _cli(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sweeps", nargs="+")
    ap.add_argument("--report", required=True)
    ap.add_argument("--convergence")
    ap.add_argument("--threshold", type=_threshold, action="append", default=[], metavar="KEY=VALUE")
    for name in OPTIONS:
        ap.add_argument("--" + name.replace("_", "-"), type=float, default=None)
    a = ap.parse_args(argv)
    try:
        main(a.sweeps, a.report, a.convergence, dict(a.threshold), **{k: getattr(a, k) for k in OPTIONS})
    except (ValueError, OSError) as exc:  # bad input: one line, no traceback
        sys.exit(f"{ap.prog}: error: {exc}")


if "snakemake" in globals():
    sm = globals()["snakemake"]
    if getattr(sm, "log", None):
        sys.stdout = sys.stderr = open(sm.log[0], "w", buffering=1)
    main(
        list(sm.input.get("sweeps") or sm.input),
        sm.output.report,
        sm.input.get("convergence"),
        sm.params.get("thresholds"),
        **{k: sm.params.get(k) for k in OPTIONS},
    )
elif __name__ == "__main__":
    _cli()
