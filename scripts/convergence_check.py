"""Convergence checks of one point: a pass/fail table (CSV), a figure and a text summary.

Snakemake (``script:`` directive):
    params.base     dict of parameter overrides (the study's base point)
    params.options  dict of qbcat.convergence options (keys of DEFAULT_OPTIONS, incl. fail_on_error)
    output.table    CSV (one row per check, setting and observable)
    output.figure   figure (PNG/PDF/SVG by suffix)
    output.summary  optional text summary (PASS/FAIL per check)
A failing required check raises (and fails the job) when options.fail_on_error is true (the
default); the summary naming the failing check is printed to stderr (the job's log) first.

Outside Snakemake:
    python scripts/convergence_check.py --set g=0.2 [--config base.yaml] [--options checks.yaml] \\
        --table convergence.csv --figure convergence.png [--summary convergence.txt] [--no-fail]
"""

from __future__ import annotations

import argparse
import sys

import yaml

from qbcat.cli import gather_parameters
from qbcat.convergence import raise_if_failed, run_checks, summary, validate_options, write_table
from qbcat.params import ParameterError


def run(base: dict, options: dict, table: str, figure: str, summary_path: str | None = None) -> None:
    options = validate_options(options, base)  # every bad key is refused before any simulation
    result = run_checks(base, options)
    write_table(result, table)
    from qbcat.plot_checks import plot_checks, write_summary  # matplotlib only once there is a result

    plot_checks(result, figure)
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


if "snakemake" in globals():
    smk = globals()["snakemake"]
    if getattr(smk, "log", None):  # progress and the PASS/FAIL summary go to the rule's log
        sys.stdout = sys.stderr = open(smk.log[0], "w", buffering=1)
    run(dict(smk.params.base), dict(smk.params.get("options", {}) or {}), smk.output.table, smk.output.figure,
        smk.output.get("summary"))
elif __name__ == "__main__":
    sys.exit(main())
