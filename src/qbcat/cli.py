"""Command line: ``qbcat simulate``, ``qbcat params`` (``qbcat --help`` lists every command).

Errors are one line naming the offending parameter or file, with exit status 2, and are raised
before any simulation starts; an output file is only ever written whole.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from .params import PARAMETERS, ParameterError, parse_assignment, validate


def _load_parameter_file(path: str) -> dict:
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"{path}: expected a mapping of parameter names to values")
    return data


def gather_parameters(config: str | None, assignments: list[str]) -> dict:
    """Parameters from a YAML file, then ``NAME=VALUE`` assignments on top, validated."""
    overrides = _load_parameter_file(config) if config else {}
    for text in assignments:
        name, value = parse_assignment(text)
        overrides[name] = value
    return validate(overrides)


def cmd_simulate(args) -> int:
    params = gather_parameters(args.config, args.set)
    from .io import to_dataset, write_netcdf  # heavy imports only once input is known good
    from .solve import simulate

    traj = simulate(params)
    write_netcdf(to_dataset(traj), args.output)
    print(f"wrote {args.output} ({traj.wall_time:.2f} s solver)", file=sys.stderr)
    return 0


def cmd_params(args) -> int:
    width = max(map(len, PARAMETERS))
    for p in PARAMETERS.values():
        extra = f" (one of {', '.join(p.choices)})" if p.choices else (f" [{p.rule}]" if p.rule else "")
        print(f"{p.name:<{width}}  {p.default!s:<10} {p.description}{extra}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qbcat", description="Catalysis-enhanced qubit quantum battery (SPEC.md conventions)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = sub.add_parser("simulate", help="simulate one parameter point and write its NetCDF dataset")
    sim.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="set a parameter (repeatable); see 'qbcat params'")
    sim.add_argument("--config", metavar="FILE.yaml", help="YAML mapping of parameter names to values")
    sim.add_argument("-o", "--output", required=True, metavar="FILE.nc", help="output NetCDF4 file")
    sim.set_defaults(func=cmd_simulate)

    par = sub.add_parser("params", help="list every parameter with its default and rule")
    par.set_defaults(func=cmd_params)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ParameterError as exc:
        print(f"qbcat: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # SimulationError and I/O errors: one line, no traceback
        from .solve import SimulationError

        if isinstance(exc, (SimulationError, OSError)):
            print(f"qbcat: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
