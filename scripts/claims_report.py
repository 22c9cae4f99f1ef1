"""The claims report: each claim of the paper with its verdict and the numbers behind it (Markdown).

Snakemake rule:
    input:  sweeps=[...]                sweep NetCDF files (paper: the omega_c, g, kappa_1, gamma_D sweeps)
            convergence="....csv|json"  (optional) photon-cutoff summary with columns n_fock,
                                        max_deviation; without it claim 6 reads "not checked in this run".
                                        A table of several points (a point_id column, e.g. the
                                        workflow's convergence_details.csv) is reduced to the cutoffs
                                        checked at every point, each judged by its worst point.
            convergence_table="....csv" (optional) the workflow's combined pass/fail table (one row per
                                        point and check, column verdict): shown near the top of the
                                        report, with a loud warning if any check failed
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


def load_cutoff_summary(path):
    """Claim 6's cutoff summary from ``path``; a table of several points (point_id column) keeps only
    the cutoffs checked at every point, so that each n_fock is judged at the same points (its worst)."""
    if not path:
        return None
    import pandas as pd

    table = pd.read_csv(path, dtype={"point_id": str}) if str(path).endswith(".csv") else None
    if table is None or "point_id" not in table.columns:
        return claims.load_convergence(path)
    cutoff = table[(table["check"] == "cutoff") & table["n_fock"].notna()]
    if cutoff.empty:
        return None
    common = set.intersection(*(set(g["n_fock"]) for _, g in cutoff.groupby("point_id")))
    return claims.normalise_convergence(cutoff[cutoff["n_fock"].isin(common)])


def convergence_section(table_path) -> str:
    """Markdown: the verdict of every convergence check of this run, failures first and loud."""
    import pandas as pd

    table = pd.read_csv(table_path, dtype={"point_id": str, "label": str})
    failed = table[table["verdict"] == "FAIL"]
    n, points = len(table), table["point_id"].nunique()
    if len(failed):
        head = [f"## Numerical convergence of this run: **FAIL** ({len(failed)} of {n} checks)", "",
                f"> **WARNING: {len(failed)} of {n} convergence checks FAILED.** At the points below the "
                "numbers of this run may be artefacts of the photon cutoff, the solver or the output "
                "sampling; the verdicts on this page that rest on them are not to be trusted until the "
                "failing settings are fixed (see results/analysis/convergence.csv).", ""]
    else:
        head = [f"## Numerical convergence of this run: **PASS** (all {n} checks at {points} points)", ""]
    head.append("Each check compares the point's trajectories with a reference run that differs in one "
                "numerical setting (photon cutoff, solver tolerance and method, output sampling); a check "
                "passes when every required comparison stays within its threshold (margin = threshold / "
                "worst deviation, > 1 passes). Claim (6) below judges each cutoff checked at every point by "
                "its worst point; the last column is the smallest passing cutoff among those checked at the point.")
    head.append("")
    smallest = table["smallest_passing_n_fock"] if "smallest_passing_n_fock" in table else ""
    rows = table.assign(**{"worst deviation": table["worst_deviation"].map(claims.fmt),
                           "threshold ": table["threshold"].map(claims.fmt),
                           "margin ": table["margin"].map(lambda m: "inf" if m == float("inf") else claims.fmt(m)),
                           "verdict ": "**" + table["verdict"] + "**",
                           "smallest": pd.Series(smallest, index=table.index).map(
                               lambda n: "" if pd.isna(n) or n == "" else str(int(float(n))))})
    cols = {"verdict ": "verdict", "label": "point", "check": "check", "worst_setting": "worst setting",
            "worst_observable": "observable", "worst deviation": "max deviation", "threshold ": "threshold",
            "margin ": "margin", "n_fock": "n_fock", "smallest": "smallest passing n_fock"}
    shown = rows[list(cols)].rename(columns=cols).astype(str)
    return "\n".join(head + [claims._md_table(shown), "", ""])


def main(sweeps, report, convergence=None, thresholds=None, convergence_table=None, **options):
    options = {k: v for k, v in options.items() if v is not None}
    claims.check_thresholds(thresholds)  # bad thresholds fail before any file is read
    conv = load_cutoff_summary(convergence)
    data = analysis.open_sweeps(sweeps)
    text = claims.claims_report(data, thresholds=thresholds, convergence=conv, **options)
    if convergence_table:
        before, sep, after = text.partition("\n## Summary\n")
        text = before + "\n" + convergence_section(convergence_table) + sep.lstrip("\n") + after
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
        sm.input.get("convergence_table"),
        **{k: sm.params.get(k) for k in OPTIONS},
    )
elif __name__ == "__main__":
    _cli()
