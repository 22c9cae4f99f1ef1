"""Self-describing datasets, the manifest, verification, export and re-use (issue 6).

A small results folder is built in tmp_path from three tiny simulated points (two catalyzed at
g = 0.1 and 0.3, and their shared baseline) and a sweep dataset assembled from them by hand in
the agreed sweep format.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr

from qbcat import cli
from qbcat.data import datasets
from qbcat.data.manifest import (
    MANIFEST_NAME,
    ManifestError,
    build_manifest,
    check_dataset,
    contract_violations,
    verify,
    write_manifest,
)
from qbcat.engine.params import PARAMETERS
from qbcat.data.share import ChecksumError, open_sweep

REPO = Path(__file__).resolve().parents[1]
TINY = {"n_fock": 3, "t_max": 5.0, "n_t": 51}
G_VALUES = (0.1, 0.3)
TIMESTAMPED_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: .+")


@pytest.fixture(scope="module")
def trajectories():
    """{g: catalyzed trajectory} and the baseline trajectory."""
    from qbcat.engine.solve import simulate

    catalyzed = {g: simulate({**TINY, "g": g}) for g in G_VALUES}
    baseline = simulate({**TINY, "catalyst": False})
    return catalyzed, baseline


def build_sweep(catalyzed: dict, baseline) -> xr.Dataset:
    """The g sweep in the agreed format: dims (g, case, time), per-point ids and sanity numbers."""
    gs = sorted(catalyzed)
    cases = ("catalyzed", "baseline")
    time = baseline.time
    shape = (len(gs), len(cases))
    data = {}
    for name in datasets.VARIABLES:
        if name == "time":
            continue
        values = np.full(shape + (time.size,), np.nan)
        for i, g in enumerate(gs):
            for j, traj in enumerate((catalyzed[g], baseline)):
                if name in traj.data:
                    values[i, j] = traj.data[name]
        data[name] = (("g", "case", "time"), values)
    ids = np.empty(shape, dtype=object)
    for i, g in enumerate(gs):
        ids[i] = [datasets.point_id(catalyzed[g].params), datasets.point_id(baseline.params)]
    data["point_id"] = (("g", "case"), ids)
    for key in baseline.sanity:
        data[f"sanity_{key}"] = (("g", "case"), np.array(
            [[catalyzed[g].sanity[key], baseline.sanity[key]] for g in gs]))
    ds = xr.Dataset(data, coords={"g": list(gs), "case": list(cases), "time": time})
    fixed = catalyzed[gs[0]].params
    ds.attrs.update({n: v for n, v in fixed.items() if n not in ("g", "catalyst")})
    ds.attrs.update(sweep_name="g", sweep_axes="g")
    return datasets.describe(ds, title="qbcat sweep g", summary="Ergotropy and energy flows versus g.",
                       history_entry="tests: hand-built sweep", share={},
                       dataset_id=datasets.content_id("sweep", "g", *ids.ravel()))


def late_ergotropy(sweep: xr.Dataset) -> xr.Dataset:
    """An analysis dataset without time: the final ergotropy per (g, case)."""
    final = sweep["ergotropy"].isel(time=-1).drop_vars("time")
    ds = xr.Dataset({"final_ergotropy": final})
    ds["final_ergotropy"].attrs = {"units": "1", "long_name": "qubit ergotropy at t_max"}
    return datasets.describe(ds, title="final ergotropy versus g", summary="Ergotropy at t_max.",
                       history_entry="tests: analysis", share=sweep.attrs,
                       dataset_id=datasets.content_id("final-ergotropy", "g", sweep.attrs["id"]))


def plot_ergotropy(sweep: xr.Dataset, path: Path) -> Path:
    """The figure a study would show: ergotropy versus time for each g and case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for g in sweep["g"].values:
        for case in sweep["case"].values:
            curve = sweep["ergotropy"].sel(g=g, case=case)
            ax.plot(sweep["time"], curve, label=f"g={g:g}, {case}")
    ax.set_xlabel(f"time [{sweep['time'].attrs['units']}]")
    ax.set_ylabel(f"ergotropy [{sweep['ergotropy'].attrs['units']}]")
    ax.legend()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


@pytest.fixture
def results(tmp_path, trajectories):
    """A results folder: points, one sweep, one analysis dataset and table, a figure, claims."""
    catalyzed, baseline = trajectories
    root = tmp_path / "results"
    for traj in [*catalyzed.values(), baseline]:
        datasets.write_point(traj, root / "points" / f"{datasets.point_id(traj.params)}.nc")  # as the workflow
    sweep = build_sweep(catalyzed, baseline)
    datasets.write_netcdf(sweep, root / "sweeps" / "g.nc")
    analysis = late_ergotropy(sweep)
    datasets.write_netcdf(analysis, root / "analysis" / "final_ergotropy.nc")
    analysis.to_dataframe().to_csv(root / "analysis" / "final_ergotropy.csv")
    (root / "figures").mkdir()
    plot_ergotropy(sweep, root / "figures" / "g_ergotropy.png")
    (root / "claims.md").write_text("# Claims\n\n- catalysis raises the ergotropy: see figures/\n")
    config = tmp_path / "config" / "config.yaml"
    config.parent.mkdir()
    config.write_text("sweeps:\n  g:\n    g: [0.1, 0.3]\nn_fock: 3\nt_max: 5\nn_t: 51\n")
    return root


def run_cli(args, capsys) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return status, out.out, out.err


# ---------------------------------------------------------------------------------------------
# Self-describing NetCDF


def test_point_dataset_is_self_describing(trajectories):
    import qutip

    ds = datasets.to_dataset(trajectories[0][0.1])
    for attr in datasets.REQUIRED_GLOBAL_ATTRS:
        assert attr in ds.attrs, attr
    assert "CF-1.10" in ds.attrs["Conventions"] and "ACDD-1.3" in ds.attrs["Conventions"]
    assert "arXiv:2512.07906" in ds.attrs["references"]
    assert f"QuTiP {qutip.__version__}" in ds.attrs["source"]
    assert ds.attrs["dephasing_convention"].startswith("drho/dt")
    assert all(TIMESTAMPED_LINE.match(line) for line in ds.attrs["history"].splitlines())
    for name in ds.variables:
        assert ds[name].attrs["units"] and ds[name].attrs["long_name"], name
    assert contract_violations(ds) == []


def test_git_commit_is_the_checkout_head_or_unknown(trajectories):
    ds = datasets.to_dataset(trajectories[0][0.1])
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    in_checkout = head.returncode == 0 and (REPO / "src" / "qbcat" / "data" / "datasets.py").is_file()
    expected = head.stdout.strip() if in_checkout else "unknown"
    assert ds.attrs["qbcat_git_commit"] == expected


def test_git_commit_outside_a_qbcat_checkout_is_unknown(tmp_path):
    assert datasets.git_commit(tmp_path / "src" / "qbcat") == ("unknown", "unknown")
    if shutil.which("git"):  # a qbcat copy inside some other repository is not a checkout of qbcat
        other = tmp_path / "other"
        (other / "lib" / "qbcat").mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(other)], check=True)
        assert datasets.git_commit(other / "lib" / "qbcat") == ("unknown", "unknown")


def test_describe_appends_history_and_labels_parameter_coordinates():
    raw = xr.Dataset({"ergotropy": (("g", "time"), np.zeros((2, 3)))},
                     coords={"g": [0.1, 0.2], "time": [0.0, 1.0, 2.0]},
                     attrs={"history": "2020-01-01T00:00:00Z: made by hand"})
    once = datasets.describe(raw, title="t", summary="s", config_hash="abc123", history_entry="first",
                       share={"creator_name": "A. Tester", "include_points": True})
    twice = datasets.describe(once, title="t", summary="s", history_entry="second")
    lines = twice.attrs["history"].splitlines()
    assert lines[0] == "2020-01-01T00:00:00Z: made by hand"
    assert [line.split(": ", 1)[1].split(" (")[0] for line in lines[1:]] == ["first", "second"]
    assert twice["g"].attrs["units"] == "1"
    assert twice["g"].attrs["long_name"] == PARAMETERS["g"].description
    assert twice["ergotropy"].attrs["units"] == datasets.VARIABLES["ergotropy"][0]
    assert once.attrs["config_hash"] == "abc123" and once.attrs["creator_name"] == "A. Tester"
    assert once.attrs["institution"] == datasets.UNSET  # a share key not set: its default
    assert once.attrs["publisher_name"] == "A. Tester"  # no publisher: the creator
    assert "creator_name" not in datasets.describe(raw, title="t", summary="s").attrs  # no share: no creator
    assert raw["g"].attrs == {} and "title" not in raw.attrs  # the input is left unchanged


def test_describe_refuses_a_variable_it_cannot_label():
    ds = xr.Dataset({"mystery": ("time", np.zeros(3))}, coords={"time": [0.0, 1.0, 2.0]})
    with pytest.raises(ValueError, match="mystery: variable has no units or long_name"):
        datasets.describe(ds, title="t", summary="s")


def test_written_coordinates_have_no_fill_value(results):
    """CF 2.5.1: coordinate variables must not carry _FillValue (xarray adds one by default)."""
    import netCDF4

    with netCDF4.Dataset(results / "sweeps" / "g.nc") as nc:
        for name in ("g", "time"):
            assert "_FillValue" not in nc.variables[name].ncattrs()


# ---------------------------------------------------------------------------------------------
# Manifest


def test_manifest_lists_shared_files_with_checksums_ranges_and_rules(results, monkeypatch):
    monkeypatch.chdir(results.parent)  # Snakemake names files relative to the working directory
    manifest = build_manifest(results, {"results/sweeps/g.nc": "aggregate_sweep",
                                        "figures/g_ergotropy.png": "plot_sweep"})
    entries = {e["path"]: e for e in manifest["files"]}
    assert sorted(entries) == ["analysis/final_ergotropy.csv", "analysis/final_ergotropy.nc",
                               "claims.md", "figures/g_ergotropy.png", "sweeps/g.nc"]
    sweep = entries["sweeps/g.nc"]
    data = (results / "sweeps" / "g.nc").read_bytes()
    assert sweep["sha256"] == hashlib.sha256(data).hexdigest() and sweep["size"] == len(data)
    assert sweep["rule"] == "aggregate_sweep" and entries["figures/g_ergotropy.png"]["rule"] == "plot_sweep"
    assert entries["claims.md"]["rule"] is None
    assert sweep["netcdf"]["dimensions"] == {"g": 2, "case": 2, "time": 51}
    assert sweep["netcdf"]["parameter_ranges"] == {"g": {"min": 0.1, "max": 0.3}}
    points = manifest["points"]  # one compact entry, not one entry per point
    assert points["count"] == 3 and len(points["sizes"]) == 3 and "sha256" not in points
    assert points["total_size"] == sum(f.stat().st_size for f in (results / "points").iterdir())


def test_write_manifest_is_atomic_and_refuses_unknown_products(results):
    path = write_manifest(results)
    assert json.loads(path.read_text())["manifest_version"] == 1
    assert [p.name for p in results.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(ManifestError, match="sweeps/nope.nc: produced_by names a file"):
        write_manifest(results, {str(results / "sweeps" / "nope.nc"): "aggregate_sweep"})


def test_snakemake_entry_script_maps_named_inputs_to_rules(results, monkeypatch):
    monkeypatch.chdir(results.parent)

    class Inputs(list):
        def items(self):
            return [("aggregate_sweep", ["results/sweeps/g.nc"]), ("claims", "results/claims.md")]

    smk = SimpleNamespace(input=Inputs(), output=["results/manifest.json"], params=SimpleNamespace())
    runpy.run_path(str(REPO / "scripts" / "write_manifest.py"), init_globals={"snakemake": smk})
    entries = {e["path"]: e for e in json.loads((results / MANIFEST_NAME).read_text())["files"]}
    assert entries["sweeps/g.nc"]["rule"] == "aggregate_sweep"
    assert entries["claims.md"]["rule"] == "claims"


# ---------------------------------------------------------------------------------------------
# Verification


def test_verify_passes_on_an_intact_results_folder(results, capsys):
    write_manifest(results)
    status, out, _ = run_cli(["verify", results], capsys)
    assert status == 0
    assert out.startswith("OK:") and len(out.strip().splitlines()) == 1
    assert "3 point" in out and "1 sweep" in out


def test_verify_cli_names_each_missing_altered_and_malformed_file(results, trajectories):
    catalyzed, baseline = trajectories
    broken = build_sweep(catalyzed, baseline)
    del broken["ergotropy"].attrs["units"]
    datasets.write_netcdf(broken, results / "sweeps" / "no_units.nc")
    no_param = build_sweep(catalyzed, baseline)
    del no_param.attrs["gamma_D"]
    datasets.write_netcdf(no_param, results / "sweeps" / "no_gamma.nc")
    write_manifest(results)

    sweep = results / "sweeps" / "g.nc"
    data = bytearray(sweep.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    sweep.write_bytes(bytes(data))
    (results / "figures" / "g_ergotropy.png").unlink()

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "qbcat.cli", "verify", str(results)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = {line.split(": ", 1)[0]: line for line in proc.stdout.strip().splitlines()}
    assert set(lines) == {"sweeps/g.nc", "figures/g_ergotropy.png", "sweeps/no_units.nc",
                          "sweeps/no_gamma.nc"}
    assert "altered (sha256 differs" in lines["sweeps/g.nc"]
    assert lines["figures/g_ergotropy.png"] == "figures/g_ergotropy.png: missing (listed in manifest.json)"
    assert "malformed: variable 'ergotropy' has no units" in lines["sweeps/no_units.nc"]
    assert "malformed: parameter 'gamma_D' missing" in lines["sweeps/no_gamma.nc"]
    assert "4 bad file(s)" in proc.stderr


def test_verify_names_missing_and_extra_point_files_and_a_missing_manifest(results, trajectories):
    problems, _ = verify(results)
    assert [str(p) for p in problems] == ["manifest.json: missing (run 'qbcat manifest' or the "
                                          "workflow first)"]
    write_manifest(results)
    victim = results / "points" / f"{datasets.point_id(trajectories[1].params)}.nc"
    victim.rename(results / "points" / "0000000000000000.nc")
    problems, _ = verify(results)
    assert sorted(str(p) for p in problems) == sorted([
        f"points/{victim.name}: missing (listed in manifest.json)",
        "points/0000000000000000.nc: not listed in manifest.json",
    ])


def test_contract_catches_a_point_whose_parameters_were_edited(results, trajectories):
    ds = datasets.to_dataset(trajectories[0][0.3])
    ds.attrs["g"] = 0.25  # the parameters no longer hash to the file's point id
    path = datasets.write_netcdf(ds, results / "edited.nc")
    reasons = check_dataset(path)
    assert len(reasons) == 1 and "does not match its parameters" in reasons[0]


# ---------------------------------------------------------------------------------------------
# Export and re-use


def test_export_unpack_verify_and_rebuild_a_figure_without_simulating(results, trajectories,
                                                                      tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(results.parent)
    write_manifest(results, {"results/sweeps/g.nc": "aggregate_sweep"})
    archive = tmp_path / "share" / "qbcat-study.tar.gz"
    status, _, err = run_cli(["export", "--results", results, "--config",
                              results.parent / "config" / "config.yaml", "-o", archive], capsys)
    assert status == 0 and "adding sweeps/g.nc" in err

    elsewhere = tmp_path / "elsewhere"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        tar.extractall(elsewhere, filter="data")
    assert all(n.startswith("qbcat-study/") for n in names)
    assert not any("/points/" in n for n in names)
    unpacked = elsewhere / "qbcat-study"
    assert (unpacked / "config" / "config.yaml").read_bytes() == \
        (results.parent / "config" / "config.yaml").read_bytes()
    manifest = json.loads((unpacked / MANIFEST_NAME).read_text())
    assert {e["path"]: e["rule"] for e in manifest["files"]}["sweeps/g.nc"] == "aggregate_sweep"

    status, out, _ = run_cli(["verify", unpacked], capsys)
    assert status == 0 and out.startswith("OK:")

    # Rebuild the figure from the shared data alone: open lazily, check it is the simulated data.
    sweep = open_sweep(unpacked)  # verifies the checksum against the unpacked manifest
    assert sweep["ergotropy"].chunks is not None  # dask-backed, nothing loaded yet
    catalyzed, baseline = trajectories
    np.testing.assert_array_equal(sweep["ergotropy"].sel(g=0.3, case="catalyzed").values,
                                  catalyzed[0.3].data["ergotropy"])
    np.testing.assert_array_equal(sweep["ergotropy"].sel(g=0.1, case="baseline").values,
                                  baseline.data["ergotropy"])
    import matplotlib.image

    png = plot_ergotropy(sweep, tmp_path / "rebuilt.png")
    assert matplotlib.image.imread(png).shape[:2] == (280, 400)  # 5 x 3.5 in at 80 dpi
    sweep.close()


def test_export_refuses_a_missing_config(results, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "config")  # no config/config.yaml below the working directory
    with pytest.raises(ManifestError, match="pass --config FILE"):
        from qbcat.data.share import export

        export(tmp_path / "out.tar.gz", results)
    assert not (tmp_path / "out.tar.gz").exists()


def test_open_sweep_refuses_a_replaced_file_and_asks_which_sweep(results, trajectories):
    import qbcat

    write_manifest(results)
    assert qbcat.open_sweep is open_sweep  # the lazy package-level accessor
    ds = xr.open_dataset(results / "sweeps" / "g.nc").load()
    ds["ergotropy"][0, 0, -1] = 99.0  # a valid dataset, but not the one the manifest lists
    datasets.write_netcdf(ds, results / "sweeps" / "g.nc")
    with pytest.raises(ChecksumError, match="sha256 differs"):
        open_sweep(results / "sweeps" / "g.nc")
    with open_sweep(results, "g", verify=False) as unchecked:
        assert float(unchecked["ergotropy"][0, 0, -1]) == 99.0
    datasets.write_netcdf(ds, results / "sweeps" / "omega_c.nc")
    with pytest.raises(ManifestError, match=r"several sweeps \(available: g, omega_c\)"):
        open_sweep(results)


# ---------------------------------------------------------------------------------------------
# qbcat info


def test_info_prints_parameters_dimensions_and_provenance(results, capsys, trajectories):
    status, out, _ = run_cli(["info", results / "sweeps" / "g.nc"], capsys)
    assert status == 0
    assert "sweep 'g' (axes: g)" in out
    assert re.search(r"^\s+g\s+2\s+0\.1 \.\. 0\.3$", out, re.M)
    assert re.search(r"^\s+case\s+2\s+catalyzed, baseline$", out, re.M)
    assert re.search(r"^\s+time\s+51\s+0 \.\. 5$", out, re.M)
    assert re.search(r"^\s+gamma_D\s+= 0\.05$", out, re.M)
    assert re.search(r"^\s+ergotropy\s+\(g, case, time\)\s+\[1\]\s+qubit ergotropy$", out, re.M)
    assert "tests: hand-built sweep" in out and "QuTiP" in out
    assert re.search(r"trace_error_max\s+max \|\.\| \S+ over 4 points", out)

    point = next((results / "points").glob("*.nc"))
    status, out, _ = run_cli(["info", point], capsys)
    assert status == 0 and f"point {point.stem}" in out
    assert re.search(r"^\s+n_t\s+= 51$", out, re.M)
    assert "first_law_residual" in out

    status, _, err = run_cli(["info", results / "claims.md"], capsys)
    assert status == 2 and "claims.md: cannot be read as a dataset" in err
