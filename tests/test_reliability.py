"""Nothing lost, nothing silently wrong: bad configs, failing points, killed runs, damaged files,
concurrent writers and physical sanity, each provoked for real in a throw-away workspace.

Every workflow test runs Snakemake in a temporary copy of the workflow (tests/conftest.py) on a
tiny study (n_fock 3, t_max 10, 101 output times); nothing is written into the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
import yaml

from qbcat.data import aggregate
from qbcat import cli
from qbcat.data import datasets
from qbcat.atomic import STALE_AFTER_S, TEMPORARY, atomic_output, remove_stale_temporaries
from qbcat.atomic import temporaries as atomic_temporaries
from qbcat.engine.params import point_id
from qbcat.workflow.batches import batch_name, partition, read_batch_plan, run_batch
from qbcat.workflow.configuration import ConfigError, load_config
from qbcat.workflow.study import Study, missing_points, point_path

from conftest import (
    NOTHING_TO_DO,
    REPO,
    job_counts,
    make_workspace,
    ran_batches,
    ran_points,
    started_batches,
    read_config,
    simulation_jobs,
    snakemake,
    write_config,
)

SCHEMA = REPO / "config" / "schema.yaml"
BASE = {"n_fock": 3, "t_max": 10.0, "n_t": 101}


def load(config: dict) -> Study:
    return load_config(yaml.safe_load(yaml.safe_dump(config)), SCHEMA)


def points_dir(ws: Path) -> Path:
    return ws / "results" / "points"


def stats(paths) -> dict[str, tuple[int, int]]:
    """name -> (inode, mtime in ns): a file rewritten in any way changes at least one of them."""
    return {Path(p).name: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in paths}


def point_files(ws: Path) -> list[Path]:
    return sorted(points_dir(ws).glob("*.nc"))


def temporaries(ws: Path) -> list[Path]:
    """Hidden files under results/: the temporaries of interrupted atomic writes."""
    return sorted(p for p in (ws / "results").rglob(".*") if p.is_file())


# ------------------------------------------------------------------------------------------
# 1. Bad configs stop the real `snakemake` before any job starts, with one line naming the key


BAD_CONFIGS = {
    # YAML text: a map over the same parameter twice is only visible in the file itself
    "same parameter twice": (
        "sweeps:\n  gg_map:\n    axes:\n      g: {values: [0.1, 0.2]}\n      g: {values: [0.3, 0.4]}\n",
        "sweeps.gg_map.axes.g: given twice in config/config.yaml"),
    "log range through 0": (
        {"sweeps": {"k": {"axes": {"kappa_1": {"range": {"start": 0.0, "stop": 1.0, "num": 3,
                                                         "scale": "log"}}}}}},
        "sweeps.k.axes.kappa_1.range: a log range needs start > 0 and stop > 0"),
    "sanity bound of the wrong sign": (
        {"sanity": {"min_eigenvalue_qb": 1e-8}, "sweeps": {"s": {"axes": {"g": {"values": [0.1]}}}}},
        "sanity.min_eigenvalue_qb: must be <= 0"),
}
# The other bad configs of the brief (typo gama_D, wrong type, negative rate, n_fock < 2,
# t_max <= 0, empty sweep, range num < 1, duplicate axis values, unknown swept parameter, unknown
# method, ...) are checked on load_config, the very call the workflow makes, in
# tests/test_study.py; tests/test_workflow.py runs the gama_D typo through snakemake too.


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_a_bad_config_stops_snakemake_before_any_job(tmp_path, case):
    config, message = BAD_CONFIGS[case]
    ws = make_workspace(tmp_path / "ws", config)
    proc = snakemake(ws, check=False)  # a real run, not -n: nothing may start
    assert proc.returncode != 0
    lines = [line for line in proc.stdout.splitlines() if "bad config" in line]
    assert len(lines) == 1 and lines[0].startswith(f"qbcat: bad config: {message}"), proc.stdout[-2000:]
    assert "Traceback" not in proc.stdout
    assert not (ws / "results").exists() and not (ws / "logs").exists()
    assert not (ws / ".snakemake" / "qbcat" / "batch-plan.json").exists()


def test_sanity_bounds_in_the_config_are_numbers_with_a_sign():
    study = load({"sanity": {"trace_error_max": "1e-7"}})  # YAML reads 1e-7 as text
    assert study.sanity == {**datasets.DEFAULT_SANITY_BOUNDS, "trace_error_max": 1e-7}
    for bad, message in [({"trace_error_max": -1.0}, "sanity.trace_error_max: must be >= 0"),
                         ({"first_law_residual_rel": "small"}, "sanity.first_law_residual_rel: expected a finite number"),
                         ({"first_law_residual_rel": True}, "sanity.first_law_residual_rel: expected"),
                         ({"min_eigenvalue_qb": 0.1}, "sanity.min_eigenvalue_qb: must be <= 0")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            load({"sanity": bad})


def test_default_sanity_bounds_agree_in_code_schema_and_config():
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]["sanity"]["properties"]
    assert {k: float(v["default"]) for k, v in schema.items()} == datasets.DEFAULT_SANITY_BOUNDS
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert {k: float(v) for k, v in config["sanity"].items()} == datasets.DEFAULT_SANITY_BOUNDS


# ------------------------------------------------------------------------------------------
# 2. A failing point fails its job, naming it; every other point finishes and stays


FAILING = {
    "base": BASE,
    "sweeps": {
        # values chosen so that the failing point's batch mate is a point of "stiff" only: a
        # sweep waits for every job that writes one of its points, failed ones included
        "g_scan": {"axes": {"g": {"values": [0.1, 0.4]}}},
        # omega_c = 1e4 is too stiff for 500 steps per output interval: that point fails (its
        # baseline has no catalyst, hence no omega_c, and succeeds)
        "stiff": {"set": {"nsteps": 500}, "axes": {"omega_c": {"values": [0.8, 1.0, 1.2, 10000.0]}}},
    },
    "batch_size": 2,  # 8 points, 4 batches of 2 on 2 cores: the failing point has a good batchmate
}


@pytest.mark.slow
def test_a_failing_point_is_named_the_others_stay_and_a_fixed_config_computes_only_the_rest(tmp_path):
    ws = make_workspace(tmp_path / "ws", FAILING)
    study = load(FAILING)
    bad = point_id({**BASE, "nsteps": 500, "omega_c": 10000.0, "catalyst": True})
    assert bad in study.points and len(study.points) == 8

    run = snakemake(ws, check=False)
    assert run.returncode != 0
    # the run's batches (written when it started): 4 of 2 points, no point in two of them
    batches = read_batch_plan(ws / ".snakemake" / "qbcat" / "batch-plan.json")
    assert sorted(map(len, batches.values())) == [2, 2, 2, 2]
    assert sorted(p for ids in batches.values() for p in ids) == sorted(study.points)
    assert set(batches) == set(started_batches(run.stdout))  # the jobs that ran
    mate = next(p for ids in batches.values() if bad in ids for p in ids if p != bad)
    assert study.membership[mate] == ["stiff"], "premise broken (point ids changed): pick other g_scan values"
    # the job fails naming the point and its parameters (its log is shown at the end)
    assert "1 of 2 points failed (the others were written)" in run.stdout
    report = next(line for line in run.stdout.splitlines() if line.strip().startswith(f"point {bad}"))
    assert "omega_c=10000.0" in report and "nsteps=500" in report and "SimulationError: solver failed" in report
    assert bad in (points_dir(ws) / f"{bad}.failed").read_text()
    # every other point, of the same batch and of the other batches, is on disk
    assert {p.stem for p in point_files(ws)} == set(study.points) - {bad}
    assert (points_dir(ws) / f"{mate}.nc").exists()
    # keep-going: the independent sweep was built; the broken one was not
    assert (ws / "results" / "sweeps" / "g_scan.nc").exists()
    assert not (ws / "results" / "sweeps" / "stiff.nc").exists()
    assert not temporaries(ws)
    # the aggregation refuses the sweep with a hole, naming the missing point and its parameters
    with pytest.raises(aggregate.AggregationError, match=rf"{bad}\.nc is missing .*omega_c=10000\.0"):
        aggregate.write_sweep(study.sweeps["stiff"], point_files(ws), tmp_path / "stiff.nc")
    assert not (tmp_path / "stiff.nc").exists()
    kept = stats(point_files(ws))

    # allow_gaps: nothing is retried, the sweep is built with the gap as NaN and listed
    write_config(ws, {**FAILING, "allow_gaps": True})
    run = snakemake(ws).stdout
    assert simulation_jobs(job_counts(run)) == 0
    with xr.open_dataset(ws / "results" / "sweeps" / "stiff.nc") as ds:
        gap = {"omega_c": 10000.0, "case": "catalyzed"}
        assert ds.attrs["gaps"] == bad and int(ds.missing_point.sel(gap)) == 1
        assert int(ds.missing_point.sum()) == 1
        assert ds.ergotropy.sel(gap).isnull().all() and int(ds.sanity_ok.sel(gap)) == -1
        assert ds.ergotropy.sel(omega_c=[0.8, 1.0, 1.2]).notnull().all()
        assert ds.ergotropy.sel(omega_c=10000.0, case="baseline").notnull().all()
    assert stats(point_files(ws)) == kept

    # fix the config: only the new point is computed; nothing already on disk is touched
    fixed = read_config(ws)
    fixed["allow_gaps"] = False
    fixed["sweeps"]["stiff"]["axes"]["omega_c"]["values"] = [0.8, 1.0, 1.2, 1.4]
    write_config(ws, fixed)
    new = point_id({**BASE, "nsteps": 500, "omega_c": 1.4, "catalyst": True})
    run = snakemake(ws).stdout
    assert ran_points(ws, run) == [new] and simulation_jobs(job_counts(run)) == 1
    assert stats(p for p in point_files(ws) if p.stem != new) == kept
    with xr.open_dataset(ws / "results" / "sweeps" / "stiff.nc") as ds:
        assert ds.ergotropy.notnull().all() and "missing_point" not in ds and "gaps" not in ds.attrs
    assert NOTHING_TO_DO in snakemake(ws, "-n").stdout


# ------------------------------------------------------------------------------------------
# 3. A run killed with SIGKILL: unlock, run again; only the unfinished points are computed


KILLED = {
    "base": BASE,
    "sweeps": {"g_scan": {"axes": {"g": {"range": {"start": 0.0, "stop": 0.5, "num": 24}}}}},
    "batch_size": 8,  # 25 points: 4 batches of 6-7, two at a time
}


def _processes_in(ws: Path) -> list[int]:
    """Processes whose working directory is inside ``ws`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd == str(ws) or cwd.startswith(f"{ws}{os.sep}"):
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_killed_run_resumes_with_only_the_unfinished_points(tmp_path):
    ws = make_workspace(tmp_path / "ws", KILLED).resolve()
    study = load(KILLED)
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=ws,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (points_dir(ws).is_dir() and any(points_dir(ws).glob("*.nc"))):
            assert proc.poll() is None, "snakemake ended before any point was written"
            assert time.monotonic() < deadline, "no point file after 240 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its jobs: one process group
        proc.wait()
    deadline = time.monotonic() + 30
    while _processes_in(ws):  # the jobs die with the group; wait until they are gone
        assert time.monotonic() < deadline, f"processes survived the kill: {_processes_in(ws)}"
        time.sleep(0.1)

    finished = stats(point_files(ws))
    assert 0 < len(finished) < len(study.points)
    for path in point_files(ws):  # whatever the moment of the kill: every point file is whole
        with xr.open_dataset(path) as ds:
            assert ds.attrs["point_id"] == path.stem and ds.ergotropy.notnull().sum() == 101
    # the batches of the killed run (written when it started) never share a point
    plan = read_batch_plan(ws / ".snakemake" / "qbcat" / "batch-plan.json")
    members = [p for ids in plan.values() for p in ids]
    assert sorted(members) == sorted(study.points)
    # A write cut off by a kill leaves a hidden temporary, never a partial point file. Add some
    # as such kills leave them: of a point (one from a kill long ago, one just now, which might
    # as well belong to a live writer sharing results/points) and of the sweep dataset.
    unfinished = sorted(set(study.points) - {Path(n).stem for n in finished})
    partial = (points_dir(ws) / next(iter(finished))).read_bytes()[:1000]
    old_tmp = points_dir(ws) / f".{unfinished[0]}.nc.killed01.tmp"
    new_tmp = points_dir(ws) / f".{unfinished[1]}.nc.killed02.tmp"
    for tmp in (old_tmp, new_tmp):
        tmp.write_bytes(partial)
    two_hours_ago = time.time() - 7200
    os.utime(old_tmp, (two_hours_ago, two_hours_ago))
    (ws / "results" / "sweeps").mkdir(parents=True, exist_ok=True)
    (ws / "results" / "sweeps" / ".g_scan.nc.killed03.tmp").write_bytes(b"\x89HDF\r\n")
    left_by_kill = set(temporaries(ws))

    # Snakemake's lock survived the kill: the next run refuses and says what to do
    locked = snakemake(ws, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout
    snakemake(ws, "--unlock")
    run = snakemake(ws).stdout
    assert ran_points(ws, run) == unfinished  # each unfinished point computed, once

    assert {p.stem for p in point_files(ws)} == set(study.points)
    assert {n: s for n, s in stats(point_files(ws)).items() if n in finished} == finished
    # stale temporaries are deleted (of points: those older than STALE_AFTER_S); the
    # recent ones stay but no reader takes them for a point (every point file was read whole
    # into the sweep dataset below)
    left = set(temporaries(ws))
    assert old_tmp not in left and not list((ws / "results" / "sweeps").glob(".*.tmp"))
    assert new_tmp in left and new_tmp.read_bytes() == partial
    assert left <= left_by_kill and all(t.parent == points_dir(ws) for t in left)
    with xr.open_dataset(ws / "results" / "sweeps" / "g_scan.nc") as ds:
        assert ds.ergotropy.notnull().all() and ds.g.size == 24
    assert NOTHING_TO_DO in snakemake(ws, "-n").stdout


# ------------------------------------------------------------------------------------------
# 4. Damaged point files are named by the aggregation and by `qbcat verify`


SMALL = {"base": BASE, "sweeps": {"s": {"axes": {"g": {"values": [0.1, 0.2, 0.3]}}}}, "batch_size": 10}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """SMALL run once by the workflow (3 catalyzed points, 1 baseline, 2 batches)."""
    ws = make_workspace(tmp_path_factory.mktemp("finished") / "ws", SMALL)
    snakemake(ws)
    return ws


@pytest.fixture
def finished_copy(finished, tmp_path):
    """A private copy of the finished run (results, logs, Snakemake's metadata; times kept)."""
    ws = tmp_path / "ws"
    shutil.copytree(finished, ws, symlinks=True)
    return ws


@pytest.fixture(scope="module")
def small_points(tmp_path_factory):
    """The points of SMALL, computed once: (study, folder)."""
    folder = tmp_path_factory.mktemp("points")
    study = load(SMALL)
    ids = list(study.points)
    assert run_batch([study.points[p] for p in ids], [point_path(folder, p) for p in ids],
                          log=lambda m: None) == []
    return study, folder


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _zero(path: Path) -> None:
    os.truncate(path, 0)


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def _attribute(name, value):
    def alter(path: Path) -> None:
        with netCDF4.Dataset(path, "a") as nc:
            nc.setncattr(name, value)
    return alter


DAMAGE = {
    "truncated": (_truncate, "cannot read point file"),
    "emptied": (_zero, "cannot read point file"),
    "overwritten": (_garbage, "cannot read point file"),
    "parameter edited": (_attribute("g", 0.25), "does not hold the expected point .*g: expected 0.2, file has 0.25"),
    "id edited": (_attribute("point_id", "0123456789abcdef"), "does not hold the expected point .*point_id"),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_the_aggregation_names_a_damaged_point_file(small_points, tmp_path, monkeypatch, kind, threads):
    monkeypatch.setattr(aggregate, "POOL_MIN_FILES", 1)  # threads 2: the headers read by worker processes
    study, source = small_points
    sweep = study.sweeps["s"]
    folder = tmp_path / "points"
    folder.mkdir()
    files = []
    for pid in study.points:
        files.append(folder / f"{pid}.nc")
        files[-1].write_bytes((source / f"{pid}.nc").read_bytes())
    victim = folder / f"{point_id({**BASE, 'g': 0.2, 'catalyst': True})}.nc"
    damage, message = DAMAGE[kind]
    damage(victim)
    with pytest.raises(aggregate.AggregationError) as err:
        aggregate.write_sweep(sweep, files, tmp_path / "s.nc", threads=threads)
    text = str(err.value)
    assert str(victim) in text and re.search(message, text), text
    assert "delete it to have it recomputed" in text
    assert not (tmp_path / "s.nc").exists() and not list(tmp_path.glob(".s.nc.*"))


def test_a_file_damaged_after_its_header_was_checked_is_named_when_read(small_points, tmp_path):
    study, source = small_points
    files = []
    for pid in study.points:
        files.append(tmp_path / f"{pid}.nc")
        files[-1].write_bytes((source / f"{pid}.nc").read_bytes())
    table = aggregate.check_points(study.sweeps["s"], files)
    _truncate(files[0])
    arrays, _ = aggregate.lazy_observables(table)
    with pytest.raises(aggregate.AggregationError, match=rf"cannot read point file {re.escape(str(files[0]))}"):
        arrays["ergotropy"].compute(scheduler="synchronous")
    pool = aggregate._reader_pool(2)  # the same, read by a worker process
    try:
        arrays, _ = aggregate.lazy_observables(table, pool=pool)
        with pytest.raises(aggregate.AggregationError, match=rf"cannot read point file {re.escape(str(files[0]))}"):
            arrays["ergotropy"].compute(scheduler="synchronous")
    finally:
        pool.shutdown()


def _qbcat(capsys, *args: str) -> tuple[int, str]:
    """`qbcat ARGS` in this process: (exit status, stdout)."""
    capsys.readouterr()
    status = cli.main(list(args))
    return status, capsys.readouterr().out


@pytest.mark.slow
def test_damaged_points_in_a_finished_study_are_named_and_recomputed_once_deleted(finished_copy, capsys):
    ws = finished_copy
    results = ws / "results"
    assert _qbcat(capsys, "manifest", "--results", str(results), "--include-points")[0] == 0
    assert _qbcat(capsys, "verify", str(results))[0] == 0
    truncated = points_dir(ws) / f"{point_id({**BASE, 'g': 0.1, 'catalyst': True})}.nc"
    edited = points_dir(ws) / f"{point_id({**BASE, 'g': 0.3, 'catalyst': True})}.nc"
    intact = stats(p for p in point_files(ws) if p not in (truncated, edited))
    _truncate(truncated)
    _attribute("g", 0.35)(edited)

    # qbcat verify names both (size/checksum, and the data contract: unreadable, wrong id)
    status, out = _qbcat(capsys, "verify", str(results))
    assert status == 1
    lines = out.splitlines()
    line = next(l for l in lines if l.startswith(f"points/{truncated.name}:"))
    assert "altered" in line and "cannot be opened" in line
    line = next(l for l in lines if l.startswith(f"points/{edited.name}:"))
    assert "altered" in line and "does not match its parameters" in line

    # the workflow: the aggregation reruns (its inputs changed) and names the damaged file
    run = snakemake(ws, check=False)
    assert run.returncode != 0
    assert f"cannot read point file results/points/{truncated.name}" in run.stdout
    assert "delete it to have it recomputed" in run.stdout
    assert not (results / "sweeps" / "s.nc").exists()  # no stale dataset left to be used
    # as the messages say: delete the damaged files; exactly those are recomputed
    truncated.unlink()
    edited.unlink()
    run = snakemake(ws).stdout
    assert ran_points(ws, run) == sorted([truncated.stem, edited.stem])
    assert stats(p for p in point_files(ws) if p not in (truncated, edited)) == intact
    with xr.open_dataset(results / "sweeps" / "s.nc") as ds, xr.open_dataset(edited) as point:
        assert ds.ergotropy.notnull().all() and point.attrs["g"] == 0.3
        np.testing.assert_array_equal(ds.ergotropy.sel(g=0.3, case="catalyzed"), point.ergotropy)
    assert _qbcat(capsys, "manifest", "--results", str(results), "--include-points")[0] == 0
    assert _qbcat(capsys, "verify", str(results))[0] == 0


# ------------------------------------------------------------------------------------------
# 5. Concurrent jobs never write the same file


@pytest.mark.parametrize("n, batch_size, slots", [(1, 1, 1), (7, 3, 1), (25, 4, 2), (84, 250, 2),
                                                  (1000, 7, 3), (10007, 100, 100)])
def test_every_point_belongs_to_exactly_one_batch(n, batch_size, slots):
    ids = [f"{i * 2654435761 % 2**64:016x}" for i in range(n)]
    batches = partition(ids + ids[: n // 3], batch_size, slots)  # repeated ids count once
    members = [p for b in batches.values() for p in b]
    assert len(members) == len(set(members)) == n and set(members) == set(ids)
    assert len(set(batches)) == len(batches)  # one rule name per batch
    assert all(name == batch_name(b) for name, b in batches.items())
    assert max(map(len, batches.values())) <= batch_size


def test_atomic_writes_use_a_private_temporary_per_writer(small_points, tmp_path, monkeypatch):
    study, source = small_points
    with xr.open_dataset(source / f"{next(iter(study.points))}.nc") as ds:
        ds = ds.load()
    target = tmp_path / "p.nc"
    other = tmp_path / ".p.nc.otherwriter.tmp"  # a concurrent writer's temporary
    other.write_bytes(b"half-written")
    renamed = []
    real_replace = os.replace

    def recording(src, dst):
        renamed.append((Path(src), Path(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording)
    datasets.write_netcdf(ds, target)
    datasets.write_netcdf(ds, target)
    (tmp1, dst1), (tmp2, dst2) = renamed
    assert tmp1 != tmp2 and tmp1 != other and tmp2 != other and dst1 == dst2 == target
    assert all(t.parent == tmp_path and t.name.startswith(".") and not t.name.endswith(".nc")
               for t in (tmp1, tmp2))
    assert other.read_bytes() == b"half-written"  # a writer never touches another's temporary
    # the clean-up of killed runs recognises the temporaries of every atomic writer
    assert all(TEMPORARY.match(t.name)["name"] == "p.nc" for t in (tmp1, tmp2))
    with atomic_output(tmp_path / "q.nc") as tmp:
        assert atomic_temporaries(tmp_path, of="q.nc") == [tmp]
    # and a temporary is never taken for a point file
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    pid = next(iter(study.points))
    (study_dir / f".{pid}.nc.abc.tmp").write_bytes(b"x")
    assert pid in missing_points(study, study_dir)


def test_only_stale_temporaries_are_removed(tmp_path):
    """A batch deletes temporaries nobody has written to for an hour (left by a killed run) and
    leaves recent ones alone (results/points may be shared: another run may be writing them)."""
    old, recent = "0" * 16, "f" * 16
    stale = [f".{old}.nc.a1b2c3d4.tmp", f".{old}.failed.x_9y8z7w.tmp", ".s.nc.k3j4h5g6.nc",
             ".index.csv.qwertyui.tmp"]
    kept = [f".{recent}.nc.abcdefgh.tmp",  # recent: perhaps being written right now
            f"{old}.nc", "s.nc", ".snakemake_timestamp", ".nfs0000000001", ".notes.txt"]  # not ours
    for name in stale + kept:
        (tmp_path / name).write_text("x")
        if name not in kept[:1]:
            long_ago = time.time() - STALE_AFTER_S - 60
            os.utime(tmp_path / name, (long_ago, long_ago))
    assert remove_stale_temporaries(tmp_path / "absent") == 0
    assert remove_stale_temporaries(tmp_path) == len(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    # a sweep dataset belongs to one job: its own temporaries go whatever their age
    (tmp_path / ".s.nc.e5f6g7h8.tmp").write_text("x")
    assert remove_stale_temporaries(tmp_path, older_than_s=0, of="s.nc") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


# ------------------------------------------------------------------------------------------
# 6. Physical sanity: configured bounds, flags in the point and sweep datasets, named in the log


def test_sanity_violations_name_each_broken_bound():
    healthy = {"trace_error_max": 1e-15, "min_eigenvalue_qb": 0.0, "first_law_residual": 1e-5,
               "first_law_residual_rel": 5e-5, "heat_channel_residual": 1e-17}
    assert datasets.sanity_violations(healthy) == []
    assert datasets.sanity_attrs(healthy) == {
        "sanity_ok": 1, "sanity_violations": "none",
        "sanity_bounds": "trace_error_max <= 1e-06, min_eigenvalue_qb >= -1e-08, first_law_residual_rel <= 0.001, "
        "heat_channel_residual <= 1e-09"}
    sick = {**healthy, "trace_error_max": 2e-6, "min_eigenvalue_qb": -1e-3, "first_law_residual_rel": np.nan,
            "heat_channel_residual": 1e-3}
    assert datasets.sanity_violations(sick) == [
        "trace_error_max 2e-06 > 1e-06", "min_eigenvalue_qb -0.001 < -1e-08", "first_law_residual_rel is nan",
        "heat_channel_residual 0.001 > 1e-09"]
    assert datasets.sanity_violations(healthy, {"first_law_residual_rel": 1e-6}) == [
        "first_law_residual_rel 5e-05 > 1e-06"]


def test_a_healthy_point_is_within_the_default_bounds(small_points):
    study, folder = small_points
    for pid in study.points:
        with xr.open_dataset(folder / f"{pid}.nc") as ds:
            assert ds.attrs["sanity_ok"] == 1 and ds.attrs["sanity_violations"] == "none"
            assert ds.attrs["sanity_bounds"] == datasets.describe_bounds()


@pytest.mark.slow
def test_tightened_bounds_flag_points_and_loosening_them_reruns_no_simulation(finished_copy):
    ws = finished_copy
    config = read_config(ws)
    config["sanity"] = {**datasets.DEFAULT_SANITY_BOUNDS, "first_law_residual_rel": 1e-9}  # healthy: ~5e-5
    write_config(ws, config)
    recomputed = points_dir(ws) / f"{point_id({**BASE, 'g': 0.2, 'catalyst': True})}.nc"
    recomputed.unlink()
    kept = stats(p for p in point_files(ws) if p != recomputed)
    run = snakemake(ws).stdout
    assert ran_points(ws, run) == [recomputed.stem]  # the bounds alone recompute nothing
    (batch,) = ran_batches(ws, run)
    assert f"SANITY {recomputed.stem} breaks the bounds" in (ws / "logs" / "simulate" / f"{batch}.log").read_text()
    # the point computed under the tight bounds is flagged in its file...
    with xr.open_dataset(recomputed) as ds:
        assert ds.attrs["sanity_ok"] == 0
        assert ds.attrs["sanity_violations"].startswith("first_law_residual_rel ")
        assert "first_law_residual_rel <= 1e-09" in ds.attrs["sanity_bounds"]
    # ...the others keep the flags of the bounds they were computed with (and say so)
    for path in point_files(ws):
        if path != recomputed:
            with xr.open_dataset(path) as ds:
                assert ds.attrs["sanity_ok"] == 1 and ds.attrs["sanity_bounds"] == datasets.describe_bounds()
    # the sweep dataset re-checks every point with the current bounds, and the log names each
    with xr.open_dataset(ws / "results" / "sweeps" / "s.nc") as ds:
        assert ds.sanity_ok.dims == ("g", "case") and (ds.sanity_ok == 0).all()
        assert ds.sanity_ok.attrs["units"] and ds.sanity_ok.attrs["long_name"]
        assert "first_law_residual_rel <= 1e-09" in ds.attrs["sanity_bounds"]
    log = (ws / "logs" / "aggregate" / "s.log").read_text()
    assert "SANITY: 4 point(s) break the bounds" in log
    for path in point_files(ws):
        assert re.search(rf"point {path.stem} \((catalyzed|baseline), g=0\.\d\): first_law_residual_rel ", log)
    assert stats(p for p in point_files(ws) if p != recomputed) == kept

    config["sanity"] = dict(datasets.DEFAULT_SANITY_BOUNDS)
    write_config(ws, config)
    kept = stats(point_files(ws))
    counts = job_counts(snakemake(ws).stdout)
    assert simulation_jobs(counts) == 0 and counts["aggregate_sweep"] == 1  # bounds go through params
    assert stats(point_files(ws)) == kept
    with xr.open_dataset(ws / "results" / "sweeps" / "s.nc") as ds:
        assert (ds.sanity_ok == 1).all()
    assert "SANITY" not in (ws / "logs" / "aggregate" / "s.log").read_text()
