"""Convergence checks of one point: a pass/fail table (CSV), a figure and a text summary.

Snakemake (``script:`` directive):
    params.base     dict of parameter overrides (the study's base point)
    params.options  dict of qbcat.convergence options (keys of DEFAULT_OPTIONS, incl. fail_on_error)
    output.table    CSV (one row per check, setting and observable)
    output.figure   optional figure (PNG/PDF/SVG by suffix; the workflow draws it in the
                    "point_figure" step instead, so that plots.dpi redraws it alone)
    output.summary  optional text summary (PASS/FAIL per check)
A failing required check raises (and fails the job) when options.fail_on_error is true (the
default); the summary naming the failing check is printed to stderr (the job's log) first.

The workflow (workflow/rules/products.smk) also runs the steps that combine the per-point
tables, chosen by ``params.step``:
    "summary"  input.tables (one per point), params.points {point_id: {label, params}} ->
               output.table (one row per point and check: verdict PASS/FAIL, worst deviation,
               margin, the point's parameters; failures first) and output.details (every row of
               every point, with point_id and label)
    "figure"   input.table -> output.figure (PDF; the PNG alongside), params.dpi
    "point_figure"  input.table (one point's) -> output.figure (format by suffix), params.dpi
    "gate"     input.table, params.fail_on_error -> output.verdict (one line per failing check);
               with fail_on_error true a failing check fails this job, and so the run, without
               touching the table and figures, which show the failure
(no ``from __future__`` import here: Snakemake's script directive prepends its own preamble.)

Outside Snakemake:
    python scripts/convergence_check.py --set g=0.2 [--config base.yaml] [--options checks.yaml] \\
        --table convergence.csv --figure convergence.png [--summary convergence.txt] [--no-fail]
"""

import argparse
import sys

import yaml

from qbcat.cli import gather_parameters
from qbcat.convergence import raise_if_failed, run_checks, summary, validate_options, write_table
from qbcat.params import ParameterError


def run(base: dict, options: dict, table: str, figure: str | None, summary_path: str | None = None,
        dpi: int = 150) -> None:
    options = validate_options(options, base)  # every bad key is refused before any simulation
    result = run_checks(base, options)
    write_table(result, table)
    from qbcat.plot_checks import plot_checks, write_summary  # matplotlib only once there is a result

    if figure:
        plot_checks(result, figure, dpi=dpi)
    if summary_path:
        write_summary(result, summary_path)
    print(summary(result), file=sys.stderr)
    raise_if_failed(result, options["fail_on_error"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a parameter of the point")
    parser.add_argument("--config", help="YAML mapping of parameters of the point")
    parser.add_argument("--options", help="YAML mapping of convergence options (qbcat.convergence.DEFAULT_OPTIONS)")
    parser.add_argument("--table", required=True, help="output CSV")
    parser.add_argument("--figure", required=True, help="output figure")
    parser.add_argument("--summary", help="output text summary")
    parser.add_argument("--no-fail", action="store_true", help="report a failing check without an error status")
    args = parser.parse_args(argv)
    try:
        base = gather_parameters(args.config, args.set)
        options = {}
        if args.options:
            with open(args.options) as fh:
                options = yaml.safe_load(fh) or {}
            if not isinstance(options, dict):
                raise ParameterError(f"{args.options}: expected a mapping of convergence options")
        if args.no_fail:
            options["fail_on_error"] = False
        run(base, options, args.table, args.figure, args.summary)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # ConvergenceError: the summary has been printed already
        print(f"error: {exc}".split("\n")[0], file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- the combined checks

#: Parameters shown in the combined table (every parameter of a point is in the details' point files).
TABLE_PARAMETERS = ("omega_a", "omega_c", "g", "Omega", "omega_d", "kappa_1", "gamma_D", "n_fock", "t_max", "n_t",
                    "method", "rtol", "atol")


def read_point_table(path):
    """A per-point table written by :func:`run` (qbcat.convergence.write_table), read back."""
    import pandas as pd

    table = pd.read_csv(path, dtype={"setting": str, "observable": str, "reference": str})
    for column in ("method", "note"):
        table[column] = table[column].fillna("").astype(str)
    return table.astype({"passed": bool, "required": bool})


def summarize(tables: dict, points: dict, table_out: str, details_out: str):
    """The combined pass/fail table (one row per point and check) and every row of every point.

    ``tables``: point_id -> per-point CSV; ``points``: point_id -> {"label", "params"}. The margin is
    threshold / worst deviation of the check's required rows (< 1: FAIL); failing rows come first.
    """
    import pandas as pd

    from qbcat.convergence import smallest_passing_in_table, verdicts, write_table

    rows, details = [], []
    for pid, path in tables.items():
        table = read_point_table(path)
        label, params = points[pid]["label"], points[pid]["params"]
        details.append(table.assign(point_id=pid, label=label))
        for v in verdicts(table).to_dict("records"):
            smallest = smallest_passing_in_table(table) if v["check"] == "cutoff" else None
            margin = v["worst_threshold"] / v["worst_deviation"] if v["worst_deviation"] > 0 else float("inf")
            rows.append({
                "verdict": "PASS" if v["passed"] else "FAIL", "label": label, "point_id": pid,
                "check": v["check"], "failed_rows": v["n_failed"], "required_rows": v["n_required"],
                "worst_setting": v["worst_setting"], "worst_observable": v["worst_observable"],
                "worst_deviation": v["worst_deviation"], "threshold": v["worst_threshold"],
                "margin": margin if v["worst_deviation"] == v["worst_deviation"] else float("nan"),
                "smallest_passing_n_fock": smallest if smallest is not None else "",
                **{name: params.get(name) for name in TABLE_PARAMETERS},
            })
    out = pd.DataFrame(rows)
    if out.empty:
        raise ValueError("no convergence table to combine")
    out = out.sort_values(["verdict", "label", "check"], key=lambda c: c.map({"FAIL": 0, "PASS": 1})
                          if c.name == "verdict" else c, kind="stable")
    write_table(out, table_out)
    write_table(pd.concat(details, ignore_index=True), details_out)
    failed = out[out["verdict"] == "FAIL"]
    print(f"convergence: {len(out) - len(failed)} of {len(out)} checks PASS at {out['point_id'].nunique()} points"
          + (f"; FAIL: {', '.join(failed['label'] + ' ' + failed['check'])}" if len(failed) else ""))


def plot_overview(table_csv: str, figure: str, dpi: int = 150):
    """Every check of every point as one bar (qbcat.plot_checks.figure_convergence_overview)."""
    import pandas as pd

    from qbcat import plots
    from qbcat.plot_checks import figure_convergence_overview

    fig = figure_convergence_overview(pd.read_csv(table_csv, dtype={"point_id": str, "label": str}))
    for path in plots.save_figure(fig, figure, dpi=dpi):
        print(f"wrote {path}")


def plot_point(table_csv: str, figure: str, dpi: int = 150):
    """The figure of one point's checks from its table (redrawn without rerunning the checks)."""
    import pandas as pd

    from qbcat.plot_checks import plot_checks

    print(f"wrote {plot_checks(pd.read_csv(table_csv), figure, dpi=dpi)}")


def gate(table_csv: str, verdict_out: str, fail_on_error: bool):
    """Fail (ConvergenceError) when a check failed and ``fail_on_error``; else write the verdict."""
    import pandas as pd

    from qbcat.atomic import write_text
    from qbcat.convergence import ConvergenceError

    table = pd.read_csv(table_csv, dtype={"point_id": str, "label": str})
    failed = table[table["verdict"] == "FAIL"]
    lines = [f"FAIL {r.label} [{r.check}]: {r.worst_setting} {r.worst_observable} max deviation "
             f"{r.worst_deviation:.3g} > threshold {r.threshold:.3g} (point {r.point_id})"
             for r in failed.itertuples()]
    if lines and fail_on_error:
        raise ConvergenceError(f"convergence check FAILED for {len(lines)} of {len(table)} checks "
                               "(convergence.fail_on_error is true; see results/analysis/convergence.csv):\n"
                               + "\n".join(lines))
    head = (f"FAIL: {len(lines)} of {len(table)} convergence checks failed (fail_on_error is false)" if lines
            else f"PASS: all {len(table)} convergence checks at {table['point_id'].nunique()} points passed")
    print(head)
    write_text("\n".join([head, *lines]) + "\n", verdict_out)


if "snakemake" in globals():
    smk = globals()["snakemake"]
    if getattr(smk, "log", None):  # progress and the PASS/FAIL summary go to the rule's log
        sys.stdout = sys.stderr = open(smk.log[0], "w", buffering=1)
    step = smk.params.get("step", "point")
    if step == "summary":
        summarize(dict(zip(smk.params.point_ids, smk.input.tables)), dict(smk.params.points), smk.output.table,
                  smk.output.details)
    elif step == "figure":
        plot_overview(smk.input.table, smk.output.figure, smk.params.get("dpi", 150))
    elif step == "point_figure":
        plot_point(smk.input.table, smk.output.figure, smk.params.get("dpi", 150))
    elif step == "gate":
        gate(smk.input.table, smk.output.verdict, bool(smk.params.fail_on_error))
    else:
        run(dict(smk.params.base), dict(smk.params.get("options", {}) or {}), smk.output.table,
            smk.output.get("figure"), smk.output.get("summary"), smk.params.get("dpi", 150))
elif __name__ == "__main__":
    sys.exit(main())
