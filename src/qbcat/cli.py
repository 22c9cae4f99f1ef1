"""Command line (``qbcat --help`` lists every command):

- ``qbcat simulate``, ``qbcat params``: one point, and the parameter table;
- ``qbcat cutoff``: the smallest photon cutoff n_fock that passes the convergence thresholds at
  one point (qbcat.science.convergence.smallest_passing_cutoff);
- ``qbcat manifest``, ``qbcat verify DIR``, ``qbcat info FILE``, ``qbcat export``: sharing results
  (see qbcat.data.manifest and qbcat.data.share);
- ``qbcat status [RESULTS]``: progress of a run, per sweep, from files only (qbcat.workflow.status);
- ``qbcat install-profile``: the SLURM profile where ``snakemake --profile slurm`` finds it from
  any directory (qbcat.workflow.profile).

Errors are one line naming the offending parameter or file, with exit status 2, and are raised
before any simulation starts; an output file is only ever written whole. ``qbcat verify`` exits
with status 1 and one line per bad file when the folder does not match its manifest.
"""

from __future__ import annotations

import argparse
import os
import sys

import yaml

from .engine.params import PARAMETERS, ParameterError, parse_assignment, validate


def _load_parameter_file(path: str) -> dict:
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ParameterError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
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
    from .engine.cutoff import describe, simulate_certified  # heavy imports only once input is known good
    from .data.datasets import write_point

    # as the workflow stores a point: a catalyzed point with its cutoff certificate
    ((_, traj),) = simulate_certified([params])
    if isinstance(traj, Exception):
        raise traj
    write_point(traj, args.output)
    print(f"wrote {args.output} ({traj.wall_time:.2f} s solver; {describe(traj.certificate)})", file=sys.stderr)
    return 0


def cmd_params(args) -> int:
    width = max(map(len, PARAMETERS))
    for p in PARAMETERS.values():
        extra = f" (one of {', '.join(p.choices)})" if p.choices else (f" [{p.rule}]" if p.rule else "")
        print(f"{p.name:<{width}}  {p.default!s:<10} {p.description}{extra}")
    return 0


def _int_range(text: str) -> list[int]:
    """'4-20' or '4,6,8' -> a list of integers (ParameterError naming --candidates otherwise)."""
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-"))
            return list(range(lo, hi + 1))
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ParameterError(f"candidates: expected LO-HI or a comma-separated list, got {text!r}") from None


def cmd_cutoff(args) -> int:
    params = gather_parameters(args.config, args.set + ["catalyst=true"])
    thresholds = {}
    for text in args.threshold:
        name, sep, value = text.partition("=")
        if not sep:
            raise ParameterError(f"threshold: expected OBSERVABLE=VALUE, got {text!r}")
        thresholds[name] = value
    from .science.convergence import smallest_passing_cutoff, validate_thresholds

    thresholds = validate_thresholds(thresholds)  # one-line error before any simulation
    result = smallest_passing_cutoff(
        params, _int_range(args.candidates), thresholds, relative=args.relative, reference_n_fock=args.reference,
        confirm=args.confirm, min_gap=args.min_gap, progress=lambda msg: print(msg, file=sys.stderr))
    print(result.table[["n_fock", "observable", "max_deviation", "threshold", "passed"]].to_string(index=False),
          file=sys.stderr)
    if result.n_fock is None:
        print(f"qbcat cutoff: no passing cutoff: {result.reason}", file=sys.stderr)
        return 1
    print(f"smallest passing n_fock: {result.n_fock} (against n_fock={result.reference_n_fock}; thresholds "
          + ", ".join(f"{k} {v:g}" for k, v in thresholds.items()) + ")", file=sys.stderr)
    print(result.n_fock)
    return 0


def cmd_manifest(args) -> int:
    from .data.manifest import write_manifest

    path = write_manifest(args.results, include_points=args.include_points, output=args.output)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_verify(args) -> int:
    from .data.manifest import verify

    problems, counts = verify(args.directory,
                              progress=lambda msg: print(f"qbcat verify: {msg}", file=sys.stderr))
    for problem in problems:
        print(problem)
    if problems:
        print(f"qbcat verify: {len(problems)} bad file(s) in {args.directory}", file=sys.stderr)
        return 1
    detail = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
    print(f"OK: {args.directory} matches its manifest ({sum(counts.values())} files: {detail or 'none'})")
    return 0


def cmd_info(args) -> int:
    from .data.manifest import ManifestError
    from .data.share import info_text

    try:
        text = info_text(args.file)
    except Exception as exc:  # not a file, not NetCDF, ...: one line naming the file
        reason = f"{type(exc).__name__}: {exc}"
        raise ManifestError(f"{args.file}: cannot be read as a dataset ({reason})") from None
    print(text)
    return 0


def cmd_export(args) -> int:
    from .data.share import export

    path = export(args.output, args.results, args.config,
                  progress=lambda msg: print(f"qbcat export: {msg}", file=sys.stderr))
    print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_status(args) -> int:
    from .workflow import status

    print(status.format_status(status.collect(args.results)))
    return 0


def cmd_install_profile(args) -> int:
    from pathlib import Path

    from .workflow.profile import ProfileError, install

    try:
        target, done = install(Path(args.source) if args.source else None, args.name, args.force)
    except ProfileError as exc:
        print(f"qbcat install-profile: {exc}", file=sys.stderr)
        return 1
    print(done, file=sys.stderr)
    print(f"`snakemake --profile {args.name}` now finds it from any directory (a directory holding "
          f"its own `{args.name}`, such as a qbcat clone's root, uses that one first).", file=sys.stderr)
    if "CHANGE_ME" in (target / "config.yaml").read_text():
        print(f"Set slurm_account and slurm_partition in {target / 'config.yaml'} (CHANGE_ME there).",
              file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qbcat", description="Catalysis-enhanced qubit quantum battery (docs/conventions.md conventions)."
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

    cut = sub.add_parser("cutoff", help="print the smallest photon cutoff n_fock whose trajectory matches a "
                         "larger one (ergotropy, heat current, catalyst energy within the thresholds)")
    cut.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="a parameter of the point (repeatable); catalyst is always true")
    cut.add_argument("--config", metavar="FILE.yaml", help="YAML mapping of parameter names to values")
    cut.add_argument("--candidates", default="4-20", metavar="LO-HI|N,N,...",
                     help="cutoffs to try, smallest first (default 4-20)")
    cut.add_argument("--reference", type=int, default=24, metavar="N",
                     help="reference cutoff (default 24); must exceed the answer by --min-gap")
    cut.add_argument("--threshold", action="append", default=[], metavar="OBSERVABLE=VALUE",
                     help="max deviation allowed for ergotropy, heat_current or energy_cat (default 1e-3 each)")
    cut.add_argument("--relative", action="store_true", help="thresholds relative to each observable's scale")
    cut.add_argument("--confirm", type=int, default=2, metavar="K",
                     help="the next K candidates must pass too (default 2)")
    cut.add_argument("--min-gap", type=int, default=4, metavar="K",
                     help="the answer must lie at least K below the reference (default 4)")
    cut.set_defaults(func=cmd_cutoff)

    man = sub.add_parser("manifest", help="write DIR/manifest.json: checksums, sizes, dimensions and "
                         "parameter ranges of every shared file")
    man.add_argument("--results", default="results", metavar="DIR", help="results folder (default: results)")
    man.add_argument("--include-points", action="store_true",
                     help="also checksum (and later verify) every point dataset, not only list it")
    man.add_argument("-o", "--output", metavar="FILE", help="manifest path (default: DIR/manifest.json)")
    man.set_defaults(func=cmd_manifest)

    ver = sub.add_parser("verify", help="check DIR against DIR/manifest.json and the data contract; "
                         "one line per missing, altered or malformed file")
    ver.add_argument("directory", metavar="DIR", help="a results folder or an unpacked export")
    ver.set_defaults(func=cmd_verify)

    inf = sub.add_parser("info", help="readable summary of a dataset: parameters, dimensions, "
                         "variables, provenance, sanity numbers")
    inf.add_argument("file", metavar="FILE", help="a point, sweep or analysis NetCDF file")
    inf.set_defaults(func=cmd_info)

    exp = sub.add_parser("export", help="bundle sweeps, analyses, figures, claims, config and a "
                         "manifest into one .tar.gz")
    exp.add_argument("--results", default="results", metavar="DIR", help="results folder (default: results)")
    exp.add_argument("--config", metavar="FILE", help="the study's config (default: config/config.yaml)")
    exp.add_argument("-o", "--output", required=True, metavar="ARCHIVE.tar.gz", help="archive to write")
    exp.set_defaults(func=cmd_export)

    sta = sub.add_parser("status", help="progress of a run (local or SLURM) from files only: points done / "
                         "total per sweep, failed points, running batches, ETA")
    sta.add_argument("results", nargs="?", default="results", metavar="RESULTS",
                     help="the workflow's results folder (default: results); .snakemake is read next to it")
    sta.set_defaults(func=cmd_status)

    ins = sub.add_parser("install-profile", help="copy profiles/slurm to Snakemake's user profile "
                         "directory, so that `snakemake --profile slurm` works from any directory")
    ins.add_argument("--from", dest="source", metavar="DIR",
                     help="the profile to install (default: profiles/slurm of this clone)")
    ins.add_argument("--name", default="slurm", help="profile name (default: slurm)")
    ins.add_argument("--force", action="store_true",
                     help="replace a different profile of that name (it is kept as NAME.backup-<time>)")
    ins.set_defaults(func=cmd_install_profile)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .data.manifest import ManifestError

    try:
        return args.func(args)
    except (ParameterError, ManifestError) as exc:
        print(f"qbcat: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # SimulationError and I/O errors: one line, no traceback
        from .engine.solve import SimulationError

        if isinstance(exc, (SimulationError, OSError)):
            print(f"qbcat: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
