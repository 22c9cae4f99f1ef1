"""Point files written by the fast path (qbcat.data.datasets.write_point, netCDF4 directly) hold
exactly what ``write_netcdf(to_dataset(traj))`` (through xarray) holds, and every reader takes them
(issue 10): the aggregation, ``qbcat verify``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import xarray as xr

from qbcat.atomic import temporaries
from qbcat.data import aggregate, datasets
from qbcat import cli
from qbcat.data.manifest import check_dataset, verify, write_manifest
from qbcat.engine.cutoff import simulate_certified
from qbcat.engine.params import point_id
from qbcat.workflow.configuration import load_config
from qbcat.workflow.study import point_path

from conftest import REPO

TINY = {"n_fock": "auto", "n_fock_min": 3, "n_fock_max": 6, "t_max": 5.0, "n_t": 51}
#: The attributes that differ between two writes of one point: when and by which checkout.
STAMPS = ("date_created", "date_modified", "date_metadata_modified", "history")


@pytest.fixture(scope="module")
def trajectories():
    """A catalyzed point with its cutoff certificate and its baseline (no certificate)."""
    points = [{**TINY, "g": 0.2}, {**TINY, "catalyst": False}]
    out = dict(simulate_certified(points))
    catalyzed, baseline = out[0], out[1]
    assert catalyzed.certificate is not None and baseline.certificate is None
    return {"catalyzed": catalyzed, "baseline": baseline}


def _open(path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    return ds


@pytest.mark.parametrize("case", ["catalyzed", "baseline"])
def test_write_point_holds_exactly_what_to_dataset_written_by_xarray_holds(trajectories, tmp_path, case):
    traj = trajectories[case]
    fast = datasets.write_point(traj, tmp_path / "fast.nc")
    datasets.write_netcdf(datasets.to_dataset(traj), tmp_path / "xarray.nc", compress=False)
    a, b = _open(tmp_path / "fast.nc"), _open(tmp_path / "xarray.nc")
    for name in STAMPS:
        assert a.attrs.pop(name) and b.attrs.pop(name)
    xr.testing.assert_identical(a, b)
    # beyond assert_identical: attribute order and types, variable order, dtypes, fill values
    assert list(a.attrs) == list(b.attrs)
    assert [type(v) for v in a.attrs.values()] == [type(v) for v in b.attrs.values()]
    assert list(a.variables) == list(b.variables)
    for name in a.variables:
        assert a[name].dtype == b[name].dtype == np.float64
        assert list(a[name].attrs) == list(b[name].attrs)
        assert str(a[name].encoding.get("_FillValue")) == str(b[name].encoding.get("_FillValue"))
    assert "_FillValue" not in a["time"].encoding  # CF 2.5.1: a coordinate has none
    assert np.isnan(a["ergotropy"].encoding["_FillValue"])
    assert not a["ergotropy"].encoding["zlib"]
    # the content is the trajectory's, and the returned attributes are the file's
    for name, values in traj.data.items():
        np.testing.assert_array_equal(a[name].values, values)
    assert fast["point_id"] == a.attrs["point_id"] == point_id(traj.params)
    assert fast["sanity_ok"] == a.attrs["sanity_ok"] == 1
    assert ("cutoff_n_fock" in a.attrs) == (case == "catalyzed")
    if case == "catalyzed":
        assert a.attrs["cutoff_n_fock"] == traj.certificate.n_fock and fast["cutoff_ok"] == a.attrs["cutoff_ok"]
    else:
        assert "energy_cat" not in a.variables


def test_to_dataset_is_the_point_content(trajectories):
    """to_dataset and write_point share one definition (point_content): same attributes, same
    variables, and the describe() of the other datasets gives variables the same attributes."""
    traj = trajectories["catalyzed"]
    content = datasets.point_content(traj)
    ds = datasets.to_dataset(traj)
    assert {k: v for k, v in ds.attrs.items() if k not in STAMPS} == \
        {k: v for k, v in content.attrs.items() if k not in STAMPS}
    assert list(ds.data_vars) == list(content.variables)
    redescribed = datasets.describe(ds.drop_attrs(deep=True), title="t", summary="s")
    for name in ds.variables:
        assert ds[name].attrs == redescribed[name].attrs
    assert ds["time"].attrs["coverage_content_type"] == "coordinate"
    assert ds["trace"].attrs["coverage_content_type"] == "qualityInformation"


def test_a_failed_write_point_leaves_neither_the_file_nor_a_temporary(trajectories, tmp_path, monkeypatch):
    target = tmp_path / "points" / "p.nc"
    calls = []

    def failing(obj, attrs):
        calls.append(1)
        if len(calls) == 3:  # inside the file, after the first variables are defined
            raise OSError("disk full")
        return set_attrs(obj, attrs)

    set_attrs = datasets._set_attrs
    monkeypatch.setattr(datasets, "_set_attrs", failing)
    with pytest.raises(OSError, match="disk full"):
        datasets.write_point(trajectories["catalyzed"], target)
    assert not target.exists() and temporaries(target.parent) == []


def test_fast_point_files_aggregate_and_verify(tmp_path, capsys):
    """Point files of the batch runner (write_point) go through the aggregation's checks and
    reads, and through `qbcat verify` (manifest checksums and the data contract)."""
    from qbcat.workflow.batches import run_batch

    config = {"base": {"n_fock": 3, "t_max": 5.0, "n_t": 51},
              "sweeps": {"g": {"axes": {"g": {"values": [0.0, 0.2]}}}}}
    study = load_config(copy.deepcopy(config), REPO / "config" / "schema.yaml")
    ids = list(study.points)
    files = [point_path(tmp_path / "points", pid) for pid in ids]
    assert run_batch([study.points[pid] for pid in ids], files, log=lambda m: None) == []
    out = aggregate.write_sweep(study.sweeps["g"], files, tmp_path / "sweeps" / "g.nc", log=lambda m: None)
    sweep = _open(out)
    for pid, path in zip(ids, files):
        point = _open(path)
        where = np.argwhere(sweep["point_id"].values == pid)[0]
        cell = sweep.isel(g=where[0], case=where[1])
        for name in point.data_vars:
            np.testing.assert_array_equal(cell[name].values, point[name].values)
    for path in files:
        assert check_dataset(path, "point") == []
    write_manifest(tmp_path, include_points=True)  # the point files too, checked against the contract
    problems, counts = verify(tmp_path)
    assert problems == [] and counts["point"] == len(ids)
    assert cli.main(["verify", str(tmp_path)]) == 0
