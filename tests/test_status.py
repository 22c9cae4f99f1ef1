"""A cluster user's first hour: the cost estimate, `qbcat status`, the batch progress line, the
one-line console entry of a batch job, and the SLURM profile found as `--profile slurm`."""

from __future__ import annotations

import filecmp
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qbcat.workflow import status
from qbcat.cli import main
from qbcat.engine.params import validate
from qbcat.workflow.profile import ProfileError, differences, install
from qbcat.workflow.configuration import load_config

from conftest import REPO, job_counts, make_workspace, snakemake

# ------------------------------------------------------------------------------------------
# Cost model


def test_the_cost_model_reproduces_the_measured_engine_times():
    # benchmarks/README.md ("Engines"), t_max 300; batched: batches of 64
    measured = {"qutip": {4: 0.13, 12: 0.51, 20: 1.47}, "batched": {4: 0.010, 12: 0.032, 20: 0.082}}
    for engine, times in measured.items():
        for n_fock, seconds in times.items():
            p = {**validate({"n_fock": n_fock}), "engine": engine}
            assert status.run_seconds(p) == pytest.approx(seconds, rel=0.1), (engine, n_fock)


def test_a_catalyzed_point_costs_the_runs_of_its_cutoff_certificate():
    p = validate({"n_fock": 8, "cutoff_gap": 6})
    runs = status.run_seconds(p) + status.run_seconds({**p, "n_fock": 14})
    assert status.estimate_point_seconds(p) == pytest.approx(status.WRITE_S + runs)
    auto = validate({"n_fock": "auto", "n_fock_min": 6, "n_fock_step": 2, "cutoff_gap": 4})
    assert status.certified_cutoffs(auto) == [6, 8, 10, 12, 14]  # rungs 6, 8, 10 and their references
    assert status.estimate_point_seconds(auto) == pytest.approx(
        status.WRITE_S + sum(status.run_seconds({**auto, "n_fock": n}) for n in (6, 8, 10, 12, 14)))


def test_the_cost_grows_with_t_max_and_the_liouvillian_and_defaults_to_the_default_engine():
    p = validate({"n_fock": 8, "engine": "qutip"})
    base = status.estimate_point_seconds(p)
    no_key = {k: v for k, v in p.items() if k != "engine"}
    assert status.DEFAULT_ENGINE == validate({})["engine"]
    assert status.estimate_point_seconds(no_key) == status.estimate_point_seconds(
        {**p, "engine": status.DEFAULT_ENGINE})
    assert status.estimate_point_seconds({**p, "engine": "batched"}) < base / 5
    ten = status.estimate_point_seconds({**p, "t_max": 10 * p["t_max"]})
    assert ten - status.WRITE_S == pytest.approx(10 * (base - status.WRITE_S))
    a, b = status.ENGINE_COST["qutip"]
    assert base == pytest.approx(status.WRITE_S + 2 * a + b * (16**2 + 24**2))  # d = 2 n_fock, and n_fock + 4
    baseline = status.estimate_point_seconds({**p, "catalyst": False})
    assert baseline == pytest.approx(status.WRITE_S + a + b * 4)  # the qubit alone: d = 2


def test_cost_report_counts_points_and_warns_about_an_absurd_t_max():
    sane, absurd = validate({"n_fock": 4, "engine": "qutip"}), validate({"n_fock": 4, "engine": "qutip", "t_max": 1e9})
    points = {"a": sane, "b": absurd, "c": sane}
    lines = status.cost_report(points, ["a", "b"], present=1, batches={"batch_x": ["a", "b"]},
                               runtime_min={"batch_x": 3}, n_sweeps=1)
    assert lines[0].startswith("qbcat: 3 points in 1 sweep: 1 present, 2 to compute in 1 batch; estimated ")
    assert "days of CPU" in lines[0]  # 1e9 / 300 * ~0.13 s: ~5 days
    (point_warning,) = [line for line in lines if "point(s) estimated above" in line]
    assert "1 point(s)" in point_warning and "t_max=1000000000.0" in point_warning
    (batch_warning,) = [line for line in lines if "wall-time request" in line]
    assert "batch_x" in batch_warning and "> 3 min" in batch_warning
    # a sane study: one line, no warning
    lines = status.cost_report(points, ["a"], present=2, batches={"batch_y": ["a"]},
                               runtime_min={"batch_y": 3})
    assert len(lines) == 1 and "WARNING" not in lines[0] and "1 to compute in 1 batch" in lines[0]
    assert status.cost_report(points, [], present=3, batches={}) == ["qbcat: 3 points: 3 present, 0 to compute."]


def test_format_duration_picks_a_readable_unit():
    assert [status.format_duration(s) for s in (0.25, 42, 600, 7200, 4 * 86400)] == \
        ["0.25 s", "42 s", "10 min", "2.0 h", "4.0 days"]


# ------------------------------------------------------------------------------------------
# Progress line of a batch


def test_progress_line_gives_done_failed_rate_and_eta_and_parses_back():
    line = status.progress_line(done=11, total=55, failed=1, elapsed_s=6.0)
    assert line == "[12/55] progress: 11 written, 1 failed, 6.0 s elapsed, 0.5 s per point, ETA 22 s"
    assert status.parse_progress_line(line) == {"k": 12, "n": 55, "done": 11, "failed": 1, "elapsed": 6.0}
    assert status.progress_line(2, 2, 0, 1.0).endswith("0.5 s per point, done")
    assert status.progress_line(0, 5, 0, 0.3) == "[0/5] progress: 0 written, 0 failed, 0.3 s elapsed"
    assert status.parse_progress_line("[3/4] abc written in 0.2 s") is None


def test_describe_batch_is_one_line_counting_points_per_sweep():
    membership = {"p1": ["map"], "p2": ["map", "cut"], "p3": ["cut"]}
    text = status.describe_batch(["p1", "p2", "p3"], membership, "logs/simulate/b.log", 75.0)
    assert text == "simulate 3 points (map: 2, cut: 2), ~75 s CPU; progress in logs/simulate/b.log"
    assert "\n" not in text and "{" not in text


# ------------------------------------------------------------------------------------------
# qbcat status on a results folder


def fake_run(tmp_path: Path, running: bool, now: float) -> Path:
    """A results folder in the middle of a run: 2 sweeps, 3 batches; batch A done (3 points
    written 2 s apart), B with 2 of 4 written (4 s apart) and 1 failed in this run, C not started;
    one point present before the run; one failed marker older than the run (being retried)."""
    work = tmp_path / "work"
    points = work / "results" / "points"
    points.mkdir(parents=True)
    started = now - 100
    batches = {"batch_A": ["a1", "a2", "a3"], "batch_B": ["b1", "b2", "b3", "b4"], "batch_C": ["c1", "c2"]}
    sweeps = {"map": ["old", "a1", "a2", "a3", "b1", "b2"], "cut": ["old", "b3", "b4", "c1", "c2"]}
    for pid, t in {"old": started - 5000, "a1": started + 10, "a2": started + 12, "a3": started + 14,
                   "b1": started + 20, "b2": started + 24}.items():
        (points / f"{pid}.nc").write_text("x")
        os.utime(points / f"{pid}.nc", (t, t))
    (points / "b3.failed").write_text("failed now")
    os.utime(points / "b3.failed", (started + 30, started + 30))
    (points / "c1.failed").write_text("failed in an earlier run")
    os.utime(points / "c1.failed", (started - 50, started - 50))
    (points / ".a9.abcdefgh.tmp").write_text("a temporary, not a point")
    estimates = {"batch_A": 1.0, "batch_B": 1.0, "batch_C": 3.0}
    qb = work / ".snakemake" / "qbcat"
    qb.mkdir(parents=True)
    (qb / "run.json").write_text(json.dumps({"started": started, "sweeps": sweeps, "batches": batches,
                                             "estimated_s_per_point": estimates}))
    (qb / "batch-plan.json").write_text(json.dumps({"batches": batches}))
    (work / ".snakemake" / "locks").mkdir()
    if running:
        (work / ".snakemake" / "locks" / "0.input.lock").write_text("")
    return work / "results"


def test_status_of_a_run_in_progress(tmp_path):
    now = time.time()
    st = status.collect(fake_run(tmp_path, running=True, now=now), now=now)
    assert st.running and st.points_present == 6 and st.points_failed == 2
    sweeps = {s.name: (s.done, s.total, s.failed) for s in st.sweeps}
    # c1's marker predates the run, which retries it: pending, not failed
    assert sweeps == {"map": (6, 6, 0), "cut": (1, 5, 1)}
    batches = {b.name: b for b in st.batches}
    assert {n: b.state for n, b in batches.items()} == {"batch_A": "done", "batch_B": "running",
                                                          "batch_C": "waiting"}
    assert batches["batch_A"].s_per_point == pytest.approx(2.0)  # file times 2 s apart
    assert batches["batch_B"].s_per_point == pytest.approx(4.0)
    assert st.s_per_point == pytest.approx(3.0) and "measured on 5 points" in st.s_per_point_source
    # B: 1 point left at 4 s; C: 2 points at the median 3 s; only B runs: 4 + 6 s of work on 1
    assert batches["batch_B"].eta_s == pytest.approx(4.0) and batches["batch_C"].eta_s == pytest.approx(6.0)
    assert st.eta_s == pytest.approx(10.0)
    text = status.format_status(st)
    assert "run in progress" in text and "ETA: ~10 s (3 s per point, measured on 5 points" in text
    assert "batches of the current run: 1 done, 1 running, 1 waiting" in text
    assert "batch_B  3/4 (1 failed), 4 s per point, ~4 s left  [running]" in text
    assert any(line.split() == ["cut", "1", "/", "5", "1"] for line in text.splitlines())


def test_status_after_the_run_says_what_is_missing_and_gives_no_eta(tmp_path):
    now = time.time()
    st = status.collect(fake_run(tmp_path, running=False, now=now), now=now)
    assert not st.running and st.eta_s is None
    assert {s.name: s.failed for s in st.sweeps} == {"map": 0, "cut": 2}  # both markers count now
    assert {b.name: b.state for b in st.batches} == {"batch_A": "done", "batch_B": "incomplete",
                                                      "batch_C": "incomplete"}
    text = status.format_status(st)
    assert "no run in progress" in text and "ETA" not in text and "`snakemake` computes them" in text


def test_status_before_anything_is_measured_uses_the_estimate(tmp_path):
    now = time.time()
    results = fake_run(tmp_path, running=True, now=now)
    for f in [*(results / "points").glob("[ab]*.nc"), results / "points" / "b3.failed"]:
        f.unlink()
    st = status.collect(results, now=now)
    assert st.s_per_point == pytest.approx(1.0) and st.s_per_point_source.startswith("estimated")
    # nothing started yet: all 3 batches assumed to run at once; the slowest is C (2 x 3 s,
    # its own estimate), A and B need 3 x 1 s and 4 x 1 s
    assert st.eta_s == pytest.approx(max(6.0, (3 + 3 + 6) / 3))


def test_status_of_an_empty_or_missing_folder_and_from_the_point_index(tmp_path, capsys):
    for folder in (tmp_path / "missing" / "results", tmp_path / "results"):
        if folder.parent == tmp_path:
            folder.mkdir()
        st = status.collect(folder)
        assert st.points_present == 0 and not st.sweeps and not st.batches and not st.running
        assert "no point computed yet" in status.format_status(st)
    # no run summary (e.g. written before qbcat status existed): the sweeps from index.csv
    points = tmp_path / "results" / "points"
    points.mkdir()
    (points / "index.csv").write_text("point_id,catalyst,sweeps,file\np1,True,map cut,x\np2,False,map,x\n")
    (points / "p1.nc").write_text("x")
    assert main(["status", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "1 point file, 0 failed points" in out and "no run in progress" in out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:]}
    assert lines == {"map": ["1", "/", "2", "0"], "cut": ["1", "/", "1", "0"]}


# ------------------------------------------------------------------------------------------
# The workflow: the dry-run estimate, and one console line per batch job


TINY = {
    "base": {"n_fock": 3, "t_max": 10.0, "n_t": 101},
    "sweeps": {"g_scan": {"axes": {"g": {"values": [0.1, 0.2, 0.3]}}},
               "cut": {"axes": {"n_fock": {"values": [3, 4]}}}},
    "batch_size": 2,
}


def test_a_dry_run_prints_the_cost_and_one_line_per_batch_job(tmp_path):
    ws = make_workspace(tmp_path / "ws", TINY)
    study = load_config(json.loads(json.dumps(TINY)), REPO / "config" / "schema.yaml")
    assert len(study.points) == 5  # g_scan's 3 cells, cut's n_fock 4 cell, the shared baseline
    out = snakemake(ws, "-n").stdout
    assert "qbcat: 5 points in 2 sweeps: 0 present, 5 to compute in 4 batches; estimated " in out
    assert "WARNING" not in out
    jobs = [line for line in out.splitlines() if line.startswith("Job ") and ": simulate " in line]
    assert len(jobs) == 4 == sum(n for r, n in job_counts(out).items() if r.startswith("simulate_batch_"))
    # each says how many points of which sweep: 5 points, g_scan's 4 and cut's 3 (2 shared)
    counts = {"points": 0, "g_scan": 0, "cut": 0}
    for line in jobs:
        match = re.fullmatch(r"Job \d+: simulate (\d+) points? \(([^)]*)\), ~\S+ s CPU; "
                             r"progress in logs/simulate/simulate_batch_\w+\.log", line)
        assert match, line
        counts["points"] += int(match[1])
        for item in match[2].split(", "):
            name, n = item.split(": ")
            counts[name] += int(n)
    assert counts == {"points": 5, "g_scan": 4, "cut": 3}
    # no point file is listed anywhere in the console, nor "Shell command: None"
    assert not any(pid in out for pid in study.points)
    assert "Shell command" not in out
    assert "aggregate sweep g_scan into results/sweeps/g_scan.nc" in out
    assert "aggregate sweep cut into results/sweeps/cut.nc" in out
    # an absurd t_max is named before anything runs
    absurd = {**TINY, "base": {**TINY["base"], "t_max": 1e10}}
    (ws / "config" / "config.yaml").write_text(json.dumps(absurd))
    out = snakemake(ws, "-n").stdout
    assert "qbcat: WARNING: 5 point(s) estimated above 60 min each" in out and "t_max=10000000000.0" in out
    assert "qbcat: WARNING: 4 batch(es) estimated above their wall-time request" in out


# ------------------------------------------------------------------------------------------
# The SLURM profile: as typed in the repository root, and installed for any directory


def fresh_home_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    return {**env, "HOME": str(home)}


RESOLVE = ("import sys; from snakemake.cli import get_profile_dir; "
           "print(get_profile_dir(sys.argv[1])[1].resolve())")


def resolved_profile(name: str, cwd: Path, env: dict) -> Path:
    out = subprocess.run([sys.executable, "-c", RESOLVE, name], cwd=cwd, env=env,
                         capture_output=True, text=True, check=True).stdout
    return Path(out.strip())


def test_profile_slurm_works_as_typed_in_the_repository_root_from_a_fresh_home(tmp_path):
    assert (REPO / "slurm").is_symlink() and (REPO / "slurm").resolve() == (REPO / "profiles" / "slurm").resolve()
    ws = make_workspace(tmp_path / "ws", TINY)
    env = fresh_home_env(tmp_path / "home")
    assert resolved_profile("slurm", ws, env) == (ws / "profiles" / "slurm" / "config.yaml").resolve()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm", "-n"], cwd=ws, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "qbcat: 5 points in 2 sweeps" in proc.stdout and "This was a dry-run" in proc.stdout
    # the profile's keys were read: its account placeholder, and its jobs (8), which cut the 5
    # points into 5 batches (a local run on 2 cores makes 4)
    assert "slurm_account=CHANGE_ME" in proc.stdout
    assert sum(n for r, n in job_counts(proc.stdout).items() if r.startswith("simulate_batch_")) == 5


def test_install_profile_into_a_fresh_home_equals_profiles_slurm_and_resolves_anywhere(tmp_path, monkeypatch):
    home = tmp_path / "home"
    env = fresh_home_env(home)
    monkeypatch.setenv("HOME", str(home))
    for key in [k for k in os.environ if k.startswith("XDG_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(REPO)
    assert main(["install-profile"]) == 0
    target = home / ".config" / "snakemake" / "slurm"
    cmp = filecmp.dircmp(REPO / "profiles" / "slurm", target)
    assert cmp.left_only == cmp.right_only == cmp.diff_files == [] and cmp.same_files == ["config.yaml"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert resolved_profile("slurm", elsewhere, env) == target / "config.yaml"
    # again: identical, nothing to do
    assert install(REPO / "profiles" / "slurm")[1].endswith("already this profile (identical), nothing to do")
    # a user's own, different profile is never replaced without --force, and the refusal says why
    (target / "config.yaml").write_text("executor: slurm\njobs: 100\n")
    with pytest.raises(ProfileError, match="exists and differs") as err:
        install(REPO / "profiles" / "slurm")
    message = str(err.value)
    assert "config.yaml: jobs: 100 in yours, 8 in qbcat's" in message and "--force" in message
    assert "config.yaml: keep-going: not in yours, True in qbcat's" in message
    assert (target / "config.yaml").read_text() == "executor: slurm\njobs: 100\n"
    assert main(["install-profile"]) == 1
    assert main(["install-profile", "--force"]) == 0
    assert not differences(REPO / "profiles" / "slurm", target)
    (backup,) = (home / ".config" / "snakemake").glob("slurm.backup-*")
    assert (backup / "config.yaml").read_text() == "executor: slurm\njobs: 100\n"
