"""Steady-state map: period-averaged asymptotic observables over a parameter grid (NetCDF).

Snakemake (``script:`` directive):
    params.base     dict of parameter overrides (the parameters that are not swept)
    params.axes     dict name -> list of values (the map's dimensions, in this order)
    params.options  optional dict: method (batched|auto|propagator|krylov|arnoldi), n_period,
                    validation (corners, slowest), cases
    input.sweep     map rule, optional: the sweep dataset whose per-point ``n_fock`` variable gives
                    each cell's cutoff (a sweep run with n_fock: auto); without it, params.base's n_fock
    params.name     optional name of the map (the dataset's title)
    params.share    optional: the config's share: section (creator, publisher, license attributes)
    output[0] or output.dataset   NetCDF file (written atomically, CF/ACDD-described by qbcat.io.describe)
    output.figure   optional figure(s) of the period-averaged ergotropy (one file per suffix, e.g. PDF and PNG)
    input.dataset   figure only: a map written before -> output.figure* at params.dpi (the workflow
                    draws the figure in its own rule, so that plots.dpi redraws it alone)
    input.sweep     comparison: the sweep dataset with the same axes and parameters; then
    output.comparison   CSV comparing each steady period average with the trajectory's mean over
                        its last params.late_periods whole drive periods (fewer if the run is
                        shorter). With input.steady (a map written before) only the comparison runs.
(no ``from __future__`` import here: Snakemake's script directive prepends its own preamble.)

Outside Snakemake:
    python scripts/steady_map.py --axis g=0,0.1,0.2 --axis omega_c=0.8,1,1.2 --set n_fock=10 \\
        -o steady.nc [--figure steady.png] [--method batched] [--n-period 128]
"""

import argparse
import math
import sys

from qbcat.cli import gather_parameters
from qbcat.params import ParameterError, parse_assignment

#: Observables compared with the trajectories' late-time means (energy_cat: catalyzed case only).
COMPARED = ("ergotropy", "energy_qb", "heat_current", "energy_cat")


def plot(dataset: str, figures, dpi: int = 150) -> None:
    """The figure(s) of a map written before (one file per suffix)."""
    import xarray as xr

    from qbcat.plot_checks import plot_steady_map

    with xr.open_dataset(dataset) as ds:
        ds = ds.load()
    for path in [figures] if isinstance(figures, str) else list(figures):
        print(f"wrote {plot_steady_map(ds, path, dpi=dpi)}")


def cell_cutoffs(sweep_path: str, axes: dict, cases=("catalyzed", "baseline")):
    """Per-cell cutoffs from a sweep dataset's ``n_fock`` variable (dims (*axes, case), e.g. a
    sweep run with n_fock: auto), on the map's axis values and cases; None if it has none."""
    import numpy as np
    import xarray as xr

    with xr.open_dataset(sweep_path) as sweep:
        if "n_fock" not in sweep.data_vars:
            return None
        da = sweep["n_fock"].sel({a: list(v) for a, v in axes.items()}, method="nearest")
        for a, values in axes.items():
            if not np.allclose(da[a].values.astype(float), np.asarray(values, dtype=float), rtol=1e-9, atol=0):
                raise ValueError(f"{sweep_path}: the sweep's {a} values do not hold the map's {list(values)}")
        if "case" in da.dims:
            da = da.sel(case=list(cases)).transpose(*axes, "case")
        else:
            da = da.transpose(*axes)
        return da.values


def run(base: dict, axes: dict, options: dict, dataset: str, figure=None, name: str = "",
        share: dict | None = None, n_fock=None) -> None:
    from qbcat.io import content_id, describe, write_netcdf
    from qbcat.params import ENGINE_VERSION
    from qbcat.steady import steady_map

    if n_fock is None and base.get("n_fock") == "auto":
        raise ValueError("n_fock is 'auto': the per-cell cutoffs must come from the sweep dataset (input.sweep)")
    ds = steady_map(base, axes, n_fock=n_fock, **options)
    ds["case"].attrs.setdefault("units", "1")  # the data contract: units on every variable
    what = f" of sweep {name!r}" if name else ""
    ds = describe(ds, title=f"qbcat steady-state map{what}",
                  summary=f"Period-averaged observables of the periodic steady state (no transient){what}, "
                          f"over {' x '.join(axes)}, for the catalyzed qubit and its uncatalyzed baseline.",
                  history_entry="steady-state map (scripts/steady_map.py)",
                  share=share or {},
                  dataset_id=content_id("steady", name or "map", sorted(base.items()), sorted(axes.items()),
                                        sorted((k, v) for k, v in options.items() if k != "workers"), ENGINE_VERSION))
    write_netcdf(ds, dataset)
    if figure:
        from qbcat.plot_checks import plot_steady_map

        for path in [figure] if isinstance(figure, str) else list(figure):
            plot_steady_map(ds, path)
    return ds


def compare(steady, sweep_path: str, output: str, late_periods: int = 10) -> None:
    """Steady period average vs the trajectory's late-time mean, one row per cell, case, observable.

    The late-time mean is qbcat.steady.late_time_mean over the last n whole drive periods, n =
    min(late_periods, periods in the run); ``t_max_over_relaxation_time`` says how far the
    trajectory had relaxed (exp(-t_max / tau) is the size of what is left of the transient).
    """
    import itertools
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd
    import xarray as xr

    from qbcat.analysis import write_csv
    from qbcat.steady import late_time_mean

    axes = steady.attrs["sweep_axes"].split()
    rows = []
    with xr.open_dataset(sweep_path) as sweep:
        missing = [a for a in axes if a not in sweep.coords]
        if missing:
            raise ValueError(f"{sweep_path}: sweep has no axis {missing[0]!r}; the steady map's axes are {axes}")
        for index in itertools.product(*(range(steady.sizes[a]) for a in axes)):
            cell = {a: steady[a].values[i] for a, i in zip(axes, index)}
            for case in steady["case"].values:
                traj = sweep.sel(cell, method="nearest").sel(case=case)
                for a in axes:
                    if not np.isclose(float(traj[a]), float(cell[a]), rtol=1e-9, atol=0):
                        raise ValueError(f"{sweep_path}: no {a} = {cell[a]} in the sweep")
                omega_d = float(traj["omega_d"]) if "omega_d" in traj.coords else float(sweep.attrs["omega_d"])
                t = traj["time"].values
                period = 2 * math.pi / omega_d if omega_d > 0 else float("nan")
                n = min(int(late_periods), int((t[-1] - t[0]) / period)) if period == period else 0
                names = [k for k in COMPARED if k in sweep and not (k == "energy_cat" and case == "baseline")]
                late = {}
                if n >= 1:
                    data = {k: traj[k].values for k in names}
                    late = late_time_mean(SimpleNamespace(time=t, data=data, params={}), n_periods=n,
                                          names=names, period=period)
                tau = float(steady["relaxation_time"].sel(cell).sel(case=case))
                for k in names:
                    s = float(steady[k].sel(cell).sel(case=case))
                    m = late.get(k, float("nan"))
                    rows.append({**{a: float(v) for a, v in cell.items()}, "case": str(case), "observable": k,
                                 "steady_period_mean": s, "trajectory_late_mean": m, "difference": m - s,
                                 "late_periods": n, "window_start": t[-1] - n * period if n else float("nan"),
                                 "relaxation_time": tau, "t_max_over_relaxation_time": t[-1] / tau})
    write_csv(pd.DataFrame(rows), output)
    worst = pd.DataFrame(rows).groupby("observable")["difference"].apply(lambda d: np.nanmax(np.abs(d)))
    print("largest |trajectory late mean - steady period mean|: "
          + ", ".join(f"{k} {v:.3g}" for k, v in worst.items()))


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
    parser.add_argument("--method", default="batched", help="batched, auto, propagator, krylov or arnoldi")
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
    if smk.input.get("dataset"):  # figure only: input.dataset (a map written before), output.figure*
        plot(smk.input.dataset, [f for key, f in smk.output.items() if key.startswith("figure")],
             smk.params.get("dpi", 150))
    elif smk.input.get("steady"):  # comparison only: input.steady (a map written before) and input.sweep
        import xarray as xr

        with xr.open_dataset(smk.input.steady) as written:
            compare(written.load(), smk.input.sweep, smk.output.comparison, smk.params.get("late_periods", 10))
    else:
        out = smk.output.get("dataset") or smk.output[0]
        figures = [f for key, f in smk.output.items() if key.startswith("figure")]
        axes = dict(smk.params.axes)
        # n_fock: auto: every cell's cutoff from the sweep dataset (the rule's input.sweep)
        cutoffs = cell_cutoffs(smk.input.sweep, axes) if smk.input.get("sweep") else None
        options = dict(smk.params.get("options", {}) or {})
        if options.get("method", "batched") == "batched":
            options["workers"] = smk.threads  # the cells split over the job's cores
        steady = run(dict(smk.params.base), axes, options,
                     out, figures, smk.params.get("name", ""), dict(smk.params.get("share", {}) or {}), cutoffs)
        if smk.input.get("sweep") and smk.output.get("comparison"):
            compare(steady, smk.input.sweep, smk.output.comparison, smk.params.get("late_periods", 10))
elif __name__ == "__main__":
    sys.exit(main())
