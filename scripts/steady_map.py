"""Steady-state map: period-averaged asymptotic observables over a parameter grid (NetCDF).

Snakemake (``script:`` directive):
    params.base     dict of parameter overrides (the parameters that are not swept)
    params.axes     dict name -> list of values (the map's dimensions, in this order)
    params.options  optional dict: method (auto|propagator|krylov|arnoldi), n_period, cases
    output[0] or output.dataset   NetCDF file (written atomically)
    output.figure   optional figure of the period-averaged ergotropy

Outside Snakemake:
    python scripts/steady_map.py --axis g=0,0.1,0.2 --axis omega_c=0.8,1,1.2 --set n_fock=10 \\
        -o steady.nc [--figure steady.png] [--method auto] [--n-period 128]
"""

from __future__ import annotations

import argparse
import sys

from qbcat.cli import gather_parameters
from qbcat.params import ParameterError, parse_assignment


def run(base: dict, axes: dict, options: dict, dataset: str, figure: str | None = None) -> None:
    from qbcat.io import write_netcdf
    from qbcat.steady import steady_map

    ds = steady_map(base, axes, **options)
    write_netcdf(ds, dataset)
    if figure:
        from qbcat.plot_checks import plot_steady_map

        plot_steady_map(ds, figure)


def parse_axis(text: str) -> tuple[str, list]:
    """``NAME=v1,v2,...`` -> (NAME, [v1, v2, ...]) with each value read as in ``--set``."""
    name, raw = parse_assignment(text)
    if not isinstance(raw, str):
        raw = str(raw)
    values = [parse_assignment(f"{name}={v}")[1] for v in raw.split(",") if v.strip()]
    if not values:
        raise ParameterError(f"{name}: expected NAME=v1,v2,... with at least one value")
    return name, values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--axis", action="append", required=True, metavar="NAME=V1,V2,...", help="a swept parameter")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a fixed parameter")
    parser.add_argument("--config", help="YAML mapping of fixed parameters")
    parser.add_argument("--method", default="auto", help="auto, propagator, krylov or arnoldi")
    parser.add_argument("--n-period", type=int, default=128, help="output times per drive period")
    parser.add_argument("-o", "--output", required=True, help="output NetCDF file")
    parser.add_argument("--figure", help="output figure of the ergotropy map")
    args = parser.parse_args(argv)
    try:
        base = gather_parameters(args.config, args.set)
        axes = dict(parse_axis(a) for a in args.axis)
        run(base, axes, {"method": args.method, "n_period": args.n_period}, args.output, args.figure)
    except ParameterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if "snakemake" in globals():
    smk = globals()["snakemake"]
    if getattr(smk, "log", None):  # progress and the PASS/FAIL summary go to the rule's log
        sys.stdout = sys.stderr = open(smk.log[0], "w", buffering=1)
    out = smk.output.get("dataset") or smk.output[0]
    run(dict(smk.params.base), dict(smk.params.axes), dict(smk.params.get("options", {}) or {}), out,
        smk.output.get("figure"))
elif __name__ == "__main__":
    sys.exit(main())
