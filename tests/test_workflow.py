"""The workflow end to end on a tiny study, in a temporary copy (never in the repository).

One cold run is shared by the module; tests that change the config work on a copy of it and
mostly ask ``snakemake -n`` what would run (its job-stats table and the outputs of the planned
simulation jobs).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from qbcat.data import aggregate
from qbcat.engine.params import point_id
from qbcat.workflow.batches import read_batch_plan, run_batch
from qbcat.workflow.configuration import load_config
from qbcat.workflow.study import point_path

from conftest import (
    NOTHING_TO_DO,
    REPO,
    job_counts,
    make_workspace,
    planned_points,
    read_config,
    simulation_jobs,
    snakemake,
    write_config,
)

TINY = {
    "base": {"n_fock": 3, "t_max": 10.0, "n_t": 101},
    "sweeps": {
        "g_scan": {"axes": {"g": {"values": [0.1, 0.2, 0.3]}}},
        "g_omega_c_map": {
            "axes": {"g": {"values": [0.1, 0.3]}, "omega_c": {"range": {"start": 0.8, "stop": 1.2, "num": 2}}}
        },
    },
    "batch_size": 4,
    "plots": {"dpi": 150},
}
# 3 + 4 catalyzed points and ONE baseline shared by both sweeps (g and omega_c are catalyst-only)
N_POINTS = 8


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """The tiny study run once from scratch: (workspace, snakemake output)."""
    ws = make_workspace(tmp_path_factory.mktemp("cold"), TINY)
    proc = snakemake(ws)
    return ws, proc.stdout


@pytest.fixture
def warm(cold, tmp_path):
    """A private copy of the finished cold run (results, logs and Snakemake's metadata)."""
    ws = tmp_path / "ws"
    shutil.copytree(cold[0], ws, symlinks=True)
    return ws


def dry_run(ws):
    out = snakemake(ws, "-n").stdout
    return job_counts(out), planned_points(ws), out


# ------------------------------------------------------------------------------------------
# The cold run


@pytest.mark.slow
def test_cold_run_uses_the_default_profile_and_batches(cold):
    ws, out = cold
    assert "Using workflow specific profile profiles/default" in out
    counts = job_counts(out)
    assert simulation_jobs(counts) == N_POINTS // TINY["batch_size"]
    assert counts["aggregate_sweep"] == 2 and counts["point_index"] == 1 and counts["all"] == 1
    assert len(list((ws / "results" / "points").glob("*.nc"))) == N_POINTS
    for log in (ws / "logs" / "simulate").glob("*.log"):
        assert log.read_text().count(" written in ") == TINY["batch_size"]


@pytest.mark.slow
def test_sweep_datasets_stack_the_point_datasets(cold):
    ws, _ = cold
    points = ws / "results" / "points"
    # small sweeps (< POOL_MIN_FILES files) take one core (aggregate_threads) and read in-process
    log = (ws / "logs" / "aggregate" / "g_scan.log").read_text()
    assert "g_scan: 4 point files, read and written by this process" in log
    with xr.open_dataset(ws / "results" / "sweeps" / "g_scan.nc") as g_scan, \
            xr.open_dataset(ws / "results" / "sweeps" / "g_omega_c_map.nc") as gmap:
        assert g_scan.ergotropy.dims == ("g", "case", "time")
        assert gmap.heat_current.dims == ("g", "omega_c", "case", "time")
        assert list(g_scan.g.values) == [0.1, 0.2, 0.3]
        assert list(gmap.omega_c.values) == [0.8, 1.2] and list(gmap.g.values) == [0.1, 0.3]
        assert list(g_scan.case.values) == ["catalyzed", "baseline"]
        assert g_scan.time.size == 101 and g_scan.time.values[-1] == 10.0
        assert g_scan.attrs["sweep_name"] == "g_scan" and g_scan.attrs["sweep_axes"] == "g"
        assert gmap.attrs["sweep_axes"] == "g omega_c"
        assert g_scan.attrs["n_fock"] == 3 and g_scan.attrs["omega_c"] == 1.0 and "g" not in g_scan.attrs
        for name in list(gmap.data_vars) + list(gmap.coords):
            assert gmap[name].attrs.get("units") and gmap[name].attrs.get("long_name"), name
        # the baseline is one point, shared by every cell of both sweeps
        base_ids = set(g_scan.point_id.sel(case="baseline").values.ravel())
        base_ids |= set(gmap.point_id.sel(case="baseline").values.ravel())
        assert len(base_ids) == 1
        # every cell holds exactly its point's dataset
        for ds in (g_scan, gmap):
            for index in np.ndindex(*ds.point_id.shape):
                cell = {d: i for d, i in zip(ds.point_id.dims, index)}
                pid = str(ds.point_id[cell].values)
                with xr.open_dataset(points / f"{pid}.nc") as point:
                    for name in point.data_vars:
                        np.testing.assert_array_equal(ds[name][cell].values, point[name].values)
                    if "energy_cat" not in point:
                        assert np.isnan(ds.energy_cat[cell].values).all()
                    assert ds.sanity_trace_error_max[cell] == point.attrs["sanity_trace_error_max"]
                    assert point.attrs["catalyst"] == (cell["case"] == 0)
                    if cell["case"] == 0:  # the catalyzed point has the cell's parameter values
                        for axis in ds.point_id.dims[:-1]:
                            assert point.attrs[axis] == ds[axis][cell[axis]].item()
        assert g_scan.ergotropy.encoding["zlib"] and g_scan.ergotropy.encoding["chunksizes"][-1] == 101


@pytest.mark.slow
def test_point_index_lists_every_point(cold):
    ws, _ = cold
    import csv

    with open(ws / "results" / "points" / "index.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N_POINTS
    files = {p.stem for p in (ws / "results" / "points").glob("*.nc")}
    assert {r["point_id"] for r in rows} == files
    baseline = [r for r in rows if r["catalyst"] == "False"]
    assert len(baseline) == 1 and set(baseline[0]["sweeps"].split()) == {"g_scan", "g_omega_c_map"}
    assert baseline[0]["g"] == "" and baseline[0]["n_fock"] == ""
    assert (ws / "logs" / "point_index.log").read_text().endswith(f": {N_POINTS} points\n")


# ------------------------------------------------------------------------------------------
# Incremental behaviour


@pytest.mark.slow
def test_a_rerun_with_nothing_changed_runs_nothing(cold):
    out = snakemake(cold[0], "-n").stdout
    assert NOTHING_TO_DO in out and job_counts(out) == {}


@pytest.mark.slow
def test_adding_a_value_runs_only_the_new_point_and_its_sweep(warm):
    config = read_config(warm)
    config["sweeps"]["g_scan"]["axes"]["g"]["values"].append(0.4)
    write_config(warm, config)
    counts, planned, out = dry_run(warm)
    expected = point_id({**TINY["base"], "g": 0.4, "catalyst": True})
    assert planned == [expected]
    assert simulation_jobs(counts) == 1
    assert counts["aggregate_sweep"] == 1 and "aggregate sweep g_scan into results/sweeps/g_scan.nc" in out
    assert set(counts) - {r for r in counts if r.startswith("simulate_batch_")} == {
        "aggregate_sweep", "point_index", "all"}
    # and it really is so: run it, then nothing is left to do
    run = snakemake(warm).stdout
    assert simulation_jobs(job_counts(run)) == 1
    with xr.open_dataset(warm / "results" / "sweeps" / "g_scan.nc") as ds:
        assert list(ds.g.values) == [0.1, 0.2, 0.3, 0.4]
    assert NOTHING_TO_DO in snakemake(warm, "-n").stdout


@pytest.mark.slow
def test_a_plot_option_reruns_nothing(warm):
    config = read_config(warm)
    config["plots"]["dpi"] = 300
    write_config(warm, config)
    counts, planned, _ = dry_run(warm)
    assert counts == {} and planned == []


@pytest.mark.slow
def test_a_solver_tolerance_reruns_every_point(warm):
    config = read_config(warm)
    config["base"]["rtol"] = 1e-6
    write_config(warm, config)
    counts, planned, _ = dry_run(warm)
    study = load_config(read_config(warm), REPO / "config" / "schema.yaml")
    assert len(planned) == N_POINTS and set(planned) == set(study.points)
    assert simulation_jobs(counts) == 2 and counts["aggregate_sweep"] == 2


@pytest.mark.slow
def test_a_catalyst_parameter_reruns_the_catalyzed_points_only(warm):
    config = read_config(warm)
    config["base"]["kappa_1"] = 0.1
    write_config(warm, config)
    counts, planned, _ = dry_run(warm)
    assert len(planned) == N_POINTS - 1  # every catalyzed point; the shared baseline is unchanged
    with xr.open_dataset(warm / "results" / "sweeps" / "g_scan.nc") as ds:
        old_baseline = str(ds.point_id.sel(case="baseline").values[0])
    assert old_baseline not in planned


@pytest.mark.slow
def test_a_sweep_override_reruns_that_sweep_only(warm):
    config = read_config(warm)
    config["sweeps"]["g_omega_c_map"]["set"] = {"gamma_D": 0.1}
    write_config(warm, config)
    counts, planned, out = dry_run(warm)
    assert len(planned) == 4 + 1  # the map's catalyzed points and its (new) baseline
    assert counts["aggregate_sweep"] == 1 and "aggregate sweep g_omega_c_map into results/sweeps/g_omega_c_map.nc" in out


# ------------------------------------------------------------------------------------------
# Bad config, failures, cluster job steps


@pytest.mark.slow
def test_a_bad_config_stops_snakemake_with_one_line(tmp_path):
    config = {**TINY, "sweeps": {"g_scan": {"axes": {"gama_D": {"values": [0.1, 0.2]}}}}}
    ws = make_workspace(tmp_path / "bad", config)
    proc = snakemake(ws, "-n", check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stdout.splitlines() if "gama_D" in line]
    assert lines == [lines[0]] and lines[0].startswith(
        "qbcat: bad config: sweeps.g_scan.axes.gama_D: unknown parameter")
    assert "Traceback" not in proc.stdout
    assert not (ws / "results").exists()


@pytest.mark.slow
def test_a_failed_point_keeps_the_others_and_allow_gaps_leaves_a_gap(tmp_path):
    config = {
        "base": TINY["base"],
        "sweeps": {"g_scan": {"axes": {"g": {"values": [0.1, 0.2]}}},
                   # with steps of at most 0.01 (outputs 0.1 apart), nsteps=1 fails
                   "fragile": {"set": {"max_step": 0.01}, "axes": {"nsteps": {"values": [1, 100000]}}}},
        "batch_size": 10,  # one batch (on one core): good and failing points together
    }
    ws = make_workspace(tmp_path / "fail", config)
    bad = [point_id({**TINY["base"], "max_step": 0.01, "nsteps": 1, "catalyst": c}) for c in (True, False)]
    proc = snakemake(ws, "--cores", "1", check=False)
    assert proc.returncode != 0
    # 7 points: g_scan's 2 and its baseline; fragile's 2 and their 2 baselines (max_step is theirs)
    assert "2 of 7 points failed (the others were written)" in proc.stdout  # the job's log, shown
    assert all(pid in proc.stdout for pid in bad) and "nsteps=1" in proc.stdout
    points = ws / "results" / "points"
    assert len(list(points.glob("*.nc"))) == 5  # keep-incomplete: the good points survived
    assert {p.stem for p in points.glob("*.failed")} == set(bad)
    # the next run retries exactly the failed points
    out = snakemake(ws, "-n", "--cores", "1").stdout
    assert planned_points(ws, "--cores", "1") == sorted(bad) and simulation_jobs(job_counts(out)) == 1
    # allow_gaps: the failed points are not retried and become a listed NaN gap
    write_config(ws, {**config, "allow_gaps": True})
    snakemake(ws, "--cores", "1")
    with xr.open_dataset(ws / "results" / "sweeps" / "fragile.nc") as ds:
        assert ds.missing_point.sel(nsteps=1).values.tolist() == [1, 1]
        assert ds.missing_point.sel(nsteps=100000).values.tolist() == [0, 0]
        assert set(ds.attrs["gaps"].split()) == set(bad)
        assert ds.ergotropy.sel(nsteps=1).isnull().all()
        assert ds.ergotropy.sel(nsteps=100000).notnull().all()
    with xr.open_dataset(ws / "results" / "sweeps" / "g_scan.nc") as ds:
        assert ds.ergotropy.notnull().all()


@pytest.mark.slow
def test_a_job_step_defines_the_batches_of_the_run_that_submitted_it(warm):
    """A cluster job re-reads the workflow (--mode remote) while other batches' points may
    already exist; it must still find its own batch rule, with the same outputs."""
    plan = read_batch_plan(warm / ".snakemake" / "qbcat" / "batch-plan.json")
    assert len(plan) == 2
    (mine, my_points), (_, other_points) = sorted(plan.items())
    points = warm / "results" / "points"
    for pid in my_points + other_points[:1]:  # the other batch is still running: half done
        (points / f"{pid}.nc").unlink()
    args = ["--mode", "remote", "--target-jobs", f"{mine}:", "--allowed-rules", mine,
            "--cores", "1", "--force", "--no-hooks", "--nolock", "--ignore-incomplete",
            "--workflow-profile", "none"]
    snakemake(warm, *args)
    assert all((points / f"{pid}.nc").exists() for pid in my_points)
    # without the plan, the batches would be re-cut from what is missing now: no such rule
    (warm / ".snakemake" / "qbcat" / "batch-plan.json").unlink()
    for pid in my_points:
        (points / f"{pid}.nc").unlink()
    assert snakemake(warm, *args, check=False).returncode != 0


# ------------------------------------------------------------------------------------------
# Style


@pytest.mark.slow
def test_lint_and_snakefmt_are_clean(tmp_path):
    ws = make_workspace(tmp_path / "lint")  # the repository's own config
    out = snakemake(ws, "--lint").stdout
    assert "Congratulations, your workflow is in a good condition!" in out and "Lints for" not in out
    files = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *map(str, files)],
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


# ------------------------------------------------------------------------------------------
# The aggregation library, without Snakemake


def _study_points(tmp_path, config):
    study = load_config(config, REPO / "config" / "schema.yaml")
    ids = list(study.points)
    outputs = [point_path(tmp_path, p) for p in ids]
    assert run_batch([study.points[p] for p in ids], outputs, log=lambda m: None) == []
    return study, outputs


def test_aggregation_refuses_a_missing_or_mismatching_point(tmp_path):
    config = {"base": {"n_fock": 3, "t_max": 5.0, "n_t": 51},
              "sweeps": {"s": {"axes": {"g": {"values": [0.1, 0.2]}}}}}
    study, files = _study_points(tmp_path, config)
    sweep = study.sweeps["s"]
    cat1, cat2 = (pair["catalyzed"][0] for _, pair in sweep.cells())
    lacking = [f for f in files if cat2 not in f]
    with pytest.raises(aggregate.AggregationError, match=rf"point file .*{cat2}\.nc is missing"):
        aggregate.write_sweep(sweep, lacking, tmp_path / "s.nc")
    shutil.copy(tmp_path / f"{cat1}.nc", tmp_path / f"{cat2}.nc")  # the wrong point under cat2's name
    with pytest.raises(aggregate.AggregationError, match=rf"point file .*{cat2}\.nc does not hold .*g: expected 0.2"):
        aggregate.write_sweep(sweep, files, tmp_path / "s.nc")
    assert not (tmp_path / "s.nc").exists()
    (tmp_path / f"{cat2}.nc").unlink()
    aggregate.write_sweep(sweep, lacking, tmp_path / "s.nc", allow_gaps=True)
    with xr.open_dataset(tmp_path / "s.nc") as ds:
        assert ds.attrs["gaps"] == cat2
        assert ds.missing_point.values.tolist() == [[0, 0], [1, 0]]
        assert ds.power.sel(g=0.2, case="catalyzed").isnull().all()
        assert ds.power.sel(g=0.2, case="baseline").notnull().all()


def test_reading_in_worker_processes_writes_the_same_sweep(tmp_path, monkeypatch):
    """threads > 1 on a large enough sweep: headers and blocks read by worker processes, blocks
    a few ahead of the writer, whatever order it asks for them in; the dataset is the same."""
    config = {"base": {"n_fock": 3, "t_max": 5.0, "n_t": 51},
              "sweeps": {"s": {"axes": {"g": {"values": [0.1, 0.2, 0.3]}, "omega_c": {"values": [0.9, 1.1]}}}}}
    study, files = _study_points(tmp_path, config)
    sweep = study.sweeps["s"]
    monkeypatch.setattr(aggregate, "POOL_MIN_FILES", 1)
    asked = []
    call = aggregate._BlockReader.__call__
    monkeypatch.setattr(aggregate._BlockReader, "__call__", lambda self, k: asked.append(k) or call(self, k))
    aggregate.write_sweep(sweep, files, tmp_path / "one.nc", threads=1, chunk_mb=0.001)
    assert asked == []  # one thread: read here
    aggregate.write_sweep(sweep, files, tmp_path / "pool.nc", threads=2, chunk_mb=0.001)
    assert sorted(asked) == list(range(6))  # one block per grid cell at this chunk size
    with xr.open_dataset(tmp_path / "one.nc") as one, xr.open_dataset(tmp_path / "pool.nc") as pool:
        xr.testing.assert_identical(one.drop_attrs(), pool.drop_attrs())
        assert {k: v for k, v in one.attrs.items() if "date" not in k and k != "history"} == \
            {k: v for k, v in pool.attrs.items() if "date" not in k and k != "history"}


def test_block_shape_keeps_whole_time_series_near_the_target_size():
    # 100 x 100 map, 3001 times: 4 MiB per variable chunk -> 87 cells -> 2 blocks of 50 per row
    assert aggregate.block_shape((100, 100), 3001, 4) == (1, 50)
    assert aggregate.block_shape((5,), 3001, 4) == (5,)
    assert aggregate.block_shape((6, 6), 101, 4) == (6, 6)
    assert aggregate.block_shape((10, 10, 10), 1001, 0.2) == (1, 1, 10)  # 13 cells
    assert aggregate.block_shape((10, 10, 10), 1001, 0.35) == (1, 2, 10)  # 22 cells
    assert aggregate.block_shape((7,), 100_000, 0.001) == (1,)


def test_lazy_observables_read_each_file_once_per_block(tmp_path, monkeypatch):
    config = {"base": {"n_fock": 3, "t_max": 5.0, "n_t": 51},
              "sweeps": {"m": {"axes": {"g": {"values": [0.1, 0.2, 0.3]},
                                        "omega_c": {"values": [0.9, 1.1]}}}}}
    study, files = _study_points(tmp_path, config)
    table = aggregate.check_points(study.sweeps["m"], files)
    opened = []
    real = aggregate._read_block

    def counting(paths, names, n_time):
        opened.append(len({p for p in paths.flat if p is not None}))
        return real(paths, names, n_time)

    monkeypatch.setattr(aggregate, "_read_block", counting)
    arrays, chunks = aggregate.lazy_observables(table, chunk_mb=2 * 2 * 51 * 8 / 2**20)  # 2 cells
    assert chunks == (1, 2, 2, 51)
    import dask

    # one graph for all variables, as when the dataset is written: each block is read once
    values = dict(zip(arrays, dask.compute(*arrays.values(), scheduler="threads")))
    assert opened == [3, 3, 3]  # 3 blocks of 2 cells: 2 catalyzed files + the shared baseline
    for index in np.ndindex(*table.point_id.shape):  # blocks joined in the right places
        with xr.open_dataset(tmp_path / f"{table.point_id[index]}.nc") as point:
            np.testing.assert_array_equal(values["ergotropy"][index], point.ergotropy.values)
            np.testing.assert_array_equal(values["bloch_y"][index], point.bloch_y.values)
