"""The workflow on a real SLURM cluster, through profiles/slurm, as a user runs it.

A one-node cluster (tests/slurm/slurm-up.sh: Debian's slurm, munge, slurmdbd and MariaDB, with
all state in a temporary directory; the packages are installed with apt when missing) is started
once for this module and always stopped at the end (tests/slurm/slurm-down.sh). The tests copy
the workflow and its profiles into a temporary workspace, write the cluster's account and
partition into the copy of profiles/slurm/config.yaml (the one place a user edits), and run
``snakemake --profile slurm`` (``slurm`` links to profiles/slurm) under ``timeout -k``. Without root (or without the
packages and apt) the module is skipped, with the reason, except in CI (CI set), where it fails.

Only two options are added on the command line, both for this 2-CPU cluster: ``--jobs 2`` (the
number of batches the missing points are cut into is a multiple of ``jobs``), and a first status
query after 5 s instead of 40 s.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from qbcat.engine.params import point_id

from conftest import (
    NOTHING_TO_DO,
    REPO,
    job_counts,
    make_workspace,
    planned_points,
    ran_points,
    read_config,
    simulation_jobs,
    write_config,
)

pytestmark = pytest.mark.slurm

SLURM_UP = REPO / "tests" / "slurm" / "slurm-up.sh"
SLURM_DOWN = REPO / "tests" / "slurm" / "slurm-down.sh"
UP_TIMEOUT = 300  # seconds: includes the apt install on a fresh machine (~30 s measured)
RUN_TIMEOUT = 240  # seconds per snakemake run (a run here takes 20-50 s)

# 3 catalyzed points and their shared baseline: 4 points, 2 batches of 2 with --jobs 2
TINY = {
    "base": {"n_fock": 3, "t_max": 10.0, "n_t": 101},
    "sweeps": {"g_scan": {"axes": {"g": {"values": [0.1, 0.2, 0.3]}}}},
    "batch_size": 2,
}
# The first status query 5 s after a submission. The plugin then waits 10 s longer for each
# query that finds no job finished (5, 20, 45 s), and a job here takes 8-20 s (two Python
# start-ups, slower on a busy machine): most waves of jobs are seen done after 20 s. (After a
# failed job, Snakemake still sleeps until the next query is due before it exits.)
CLUSTER_ARGS = ("--jobs", "2", "--slurm-init-seconds-before-status-checks", "5")


# ------------------------------------------------------------------------------------------
# The cluster and its clients (also used by benchmarks/bench_slurm.py)


class ClusterUnavailable(RuntimeError):
    """The test cluster cannot run here (no root, no packages and no apt, ...)."""


def client_env(directory: Path) -> dict[str, str]:
    """os.environ with DIR/env.sh applied (SLURM_CONF, the client wrappers first in PATH, and
    SLURM_TEST_ACCOUNT / SLURM_TEST_PARTITION), for the subprocesses that talk to the cluster."""
    out = subprocess.run(["bash", "-c", f'. "{directory}/env.sh" && env -0'],
                         capture_output=True, text=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


@contextlib.contextmanager
def cluster_env(directory: Path):
    """Start the test cluster in ``directory`` and yield its client environment; stop it on the
    way out, whatever happened. Raises ClusterUnavailable (with the reason) if it cannot start."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        raise ClusterUnavailable("the test cluster needs root on Linux (it installs Debian's slurm "
                                 "packages and runs the daemons as root)")
    try:
        try:
            up = subprocess.run([str(SLURM_UP), str(directory)], capture_output=True, text=True,
                                timeout=UP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ClusterUnavailable(f"slurm-up.sh did not finish within {UP_TIMEOUT} s") from None
        if up.returncode != 0:
            tail = "\n".join(up.stderr.strip().splitlines()[-15:])
            raise ClusterUnavailable(f"slurm-up.sh could not start the cluster:\n{tail}")
        yield client_env(directory)
    finally:
        subprocess.run([str(SLURM_DOWN), str(directory)], capture_output=True, timeout=120)


def set_account_and_partition(workspace: Path, account: str, partition: str) -> None:
    """Edit the workspace's profiles/slurm/config.yaml as the user does: its two placeholders."""
    profile = workspace / "profiles" / "slurm" / "config.yaml"
    text = profile.read_text()
    for key, value in (("slurm_account", account), ("slurm_partition", partition)):
        text, n = re.subn(rf'^(\s*{key}: )"CHANGE_ME"', rf'\g<1>"{value}"', text, count=1, flags=re.M)
        assert n == 1, f"no '{key}: \"CHANGE_ME\"' line in {profile}"
    profile.write_text(text)


def run_on_cluster(workspace: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """``snakemake --profile slurm ARGS`` (as a user types it in the repository root, where
    ``slurm`` links to profiles/slurm) under ``timeout -k``; a run that had to be
    killed leaves Snakemake's lock behind, which is removed (``--unlock``) either way."""
    cmd = ["timeout", "-k", "10", str(RUN_TIMEOUT), sys.executable, "-m", "snakemake",
           "--profile", "slurm", *CLUSTER_ARGS, *args]
    try:
        return subprocess.run(cmd, cwd=workspace, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT + 30)
    finally:
        if any((workspace / ".snakemake" / "locks").glob("*")):
            subprocess.run([sys.executable, "-m", "snakemake", "--unlock"], cwd=workspace,
                           env=env, capture_output=True, timeout=120)


def sacct_jobs(output: str, env: dict) -> dict[str, dict[str, str]]:
    """SLURM job id -> {State, Account, Partition} of every job of the Snakemake run whose
    output this is (the plugin names each job after the run's id)."""
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    fields = ["JobID", "State", "Account", "Partition"]
    out = subprocess.run(["sacct", "-X", "-n", "-P", "--starttime", "2000-01-01", "--name", run_id,
                          "--format", ",".join(fields)],
                         env=env, capture_output=True, text=True, check=True).stdout
    rows = [dict(zip(fields, line.split("|"))) for line in out.splitlines() if line]
    return {row.pop("JobID"): row for row in rows}


def submitted(output: str) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (rule, SLURM log path), from Snakemake's 'submitted' lines."""
    found = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+/rule_(\w+)/\S+\.log)\)", output)
    return {jobid: (rule, log) for jobid, log, rule in found}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The client environment of a running test cluster (stopped after the module)."""
    directory, own = tmp_path_factory.mktemp("slurm"), None
    if len(str(directory.resolve())) > 60:  # unix socket paths (munge, MariaDB) are <= 107 bytes
        directory = own = Path(tempfile.mkdtemp(prefix="qbcat-slurm-"))
    try:
        with cluster_env(directory) as env:
            yield env
    except ClusterUnavailable as exc:
        # CI must show the profile working against a real cluster: there a missing cluster fails.
        if os.environ.get("CI"):
            pytest.fail(f"no SLURM test cluster in CI: {exc}")
        pytest.skip(f"no SLURM test cluster: {exc}")
    finally:
        if own:
            shutil.rmtree(own, ignore_errors=True)


@pytest.fixture(scope="module")
def local_run_started(tmp_path_factory):
    """The same study run locally (profiles/default, --cores 2), started in the background
    before the cluster, so that it runs while slurm-up.sh waits for the daemons."""
    ws = make_workspace(tmp_path_factory.mktemp("local"), TINY)
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=ws,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield ws, proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def local_run(local_run_started):
    ws, proc = local_run_started
    out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, out[-6000:]
    return ws


@pytest.fixture(scope="module")
def slurm_run(local_run_started, cluster, local_run, tmp_path_factory):
    """The tiny study run through profiles/slurm, once the local run is done (a busy machine
    slows the jobs down): (workspace, output)."""
    ws = make_workspace(tmp_path_factory.mktemp("cluster"), TINY)
    set_account_and_partition(ws, cluster["SLURM_TEST_ACCOUNT"], cluster["SLURM_TEST_PARTITION"])
    proc = run_on_cluster(ws, cluster)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return ws, proc.stdout


# ------------------------------------------------------------------------------------------
# Tests


def test_the_study_runs_as_two_batch_jobs_with_the_profile_account_and_partition(slurm_run, cluster):
    ws, out = slurm_run
    counts = job_counts(out)
    assert simulation_jobs(counts) == 2 and counts["aggregate_sweep"] == 1
    jobs = submitted(out)
    rules = sorted(rule for rule, _ in jobs.values())
    assert len(rules) == 3 and rules[0] == "aggregate_sweep"
    assert all(r.startswith("simulate_batch_") for r in rules[1:])  # point_index and all ran locally
    assert re.search(r"SLURM run ID: qbcat_\S+", out)  # the profile's job name prefix
    accounted = sacct_jobs(out, cluster)
    assert set(accounted) == set(jobs)
    for row in accounted.values():
        assert row == {"State": "COMPLETED", "Account": cluster["SLURM_TEST_ACCOUNT"],
                       "Partition": cluster["SLURM_TEST_PARTITION"]}
    for log in (ws / "logs" / "simulate").glob("*.log"):
        assert log.read_text().count(" written in ") == 2
    assert not any((ws / ".snakemake" / "locks").glob("*"))
    assert NOTHING_TO_DO in run_on_cluster(ws, cluster, "-n").stdout


def test_the_cluster_results_equal_a_local_run(slurm_run, local_run):
    ws, _ = slurm_run
    with xr.open_dataset(ws / "results" / "sweeps" / "g_scan.nc") as cl, \
            xr.open_dataset(local_run / "results" / "sweeps" / "g_scan.nc") as lo:
        assert cl.ergotropy.dims == ("g", "case", "time") and cl.g.values.tolist() == [0.1, 0.2, 0.3]
        assert set(cl.data_vars) == set(lo.data_vars) and len(cl.data_vars) > 10
        np.testing.assert_array_equal(cl.point_id.values, lo.point_id.values)
        for name in cl.coords:
            np.testing.assert_array_equal(cl[name].values, lo[name].values)
        for name, var in cl.data_vars.items():
            if var.dtype.kind == "f":
                np.testing.assert_allclose(var.values, lo[name].values, rtol=0, atol=1e-12, err_msg=name)
        assert np.isfinite(cl.ergotropy.values).all() and cl.ergotropy.values.max() > 0
    assert (ws / "results" / "points" / "index.csv").read_text() == \
        (local_run / "results" / "points" / "index.csv").read_text()


def test_a_failed_point_names_its_slurm_job_and_a_rerun_submits_only_what_failed(
        slurm_run, cluster, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(slurm_run[0], ws, symlinks=True)
    # one batch holding two good points (nsteps 50000) and two that fail (nsteps 1)
    config = read_config(ws)
    # steps of at most 0.01 between outputs 0.1 apart: nsteps=1 fails
    config["sweeps"]["fragile"] = {"set": {"max_step": 0.01}, "axes": {"nsteps": {"values": [1, 50000]}}}
    config["batch_size"] = 4
    write_config(ws, config)
    ids = {n: [point_id({**TINY["base"], "max_step": 0.01, "nsteps": n, "catalyst": c}) for c in (True, False)]
           for n in (1, 50000, 1000)}
    proc = run_on_cluster(ws, cluster, "--jobs", "1")
    out = proc.stdout
    assert proc.returncode != 0
    assert ran_points(ws, out) == sorted(ids[1] + ids[50000])  # the g_scan points are done
    (jobid, (rule, slurm_log)), = submitted(out).items()  # the only job: the aggregations wait
    assert f"Error in rule {rule}:" in out and f"SLURM-job '{jobid}' failed" in out
    assert f"log: logs/simulate/{rule}.log, {slurm_log}" in out and Path(slurm_log).is_file()
    assert "2 of 4 points failed (the others were written)" in out  # the job's log, shown
    assert all(pid in out for pid in ids[1]) and "nsteps=1, max_step=0.01)" in out
    assert sacct_jobs(out, cluster)[jobid]["State"] == "FAILED"
    points = ws / "results" / "points"
    assert all((points / f"{pid}.nc").is_file() for pid in ids[50000])  # keep-incomplete
    assert not any((points / f"{pid}.nc").exists() for pid in ids[1])
    assert all((points / f"{pid}.failed").is_file() for pid in ids[1])
    # unchanged, a re-run would submit exactly the failed points again
    assert planned_points(ws, "--jobs", "1") == sorted(ids[1])
    # with the config fixed, only their replacements would be submitted (a dry run builds the
    # DAG the real run would submit; running it would add ~45 s of job polling to this module)
    config["sweeps"]["fragile"]["axes"]["nsteps"]["values"] = [1000, 50000]
    write_config(ws, config)
    out = run_on_cluster(ws, cluster, "--jobs", "1", "-n").stdout
    counts = job_counts(out)
    assert planned_points(ws, "--jobs", "1") == sorted(ids[1000]) and simulation_jobs(counts) == 1
    assert counts["aggregate_sweep"] == 1 and "aggregate sweep fragile into results/sweeps/fragile.nc" in out
