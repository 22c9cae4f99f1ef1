"""The study: config checks (one line naming the config path), sweeps -> points, batches (qbcat.workflow.configuration, qbcat.workflow.study, qbcat.workflow.batches)."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import yaml


from qbcat.engine.params import DEFAULTS, PARAMETERS, point_id
from qbcat.workflow.batches import (
    failure_report,
    partition,
    read_batch_plan,
    run_batch,
    runtime_minutes,
    write_batch_plan,
)
from qbcat.workflow.configuration import ConfigError, load_config
from qbcat.workflow.study import Study, Sweep, failed_points, index_rows, missing_points, point_path

from conftest import REPO

SCHEMA = REPO / "config" / "schema.yaml"

GOOD = {
    "base": {"n_fock": 3, "t_max": 10.0, "n_t": 101},
    "sweeps": {
        "g_scan": {"axes": {"g": {"values": [0.1, 0.2]}}},
        "k_map": {
            "axes": {
                "kappa_1": {"range": {"start": 0.01, "stop": 1.0, "num": 3, "scale": "log"}},
                "gamma_D": {"values": [0.01, 0.1]},
            }
        },
    },
}


def load(config: dict, files=()) -> Study:
    """What the workflow calls on its config (common.smk)."""
    return load_config(copy.deepcopy(config), SCHEMA, files)


def changed(path: str, value, delete: bool = False) -> dict:
    """GOOD with the dotted ``path`` set to ``value`` (or deleted)."""
    config = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    if delete:
        del node[last]
    else:
        node[last] = value
    return config


BAD = [
    # unknown keys (typos)
    ("base.gama_D", 0.1, "base.gama_D: unknown parameter"),
    ("sweeps.g_scan.axes.gama_D", {"values": [0.1]}, "sweeps.g_scan.axes.gama_D: unknown parameter"),
    ("sweeps.g_scan.set.gama_D", 0.1, "sweeps.g_scan.set.gama_D: unknown parameter"),
    ("batchsize", 3, "batchsize: unknown key"),
    ("sweeps.g_scan.axis", {}, "sweeps.g_scan.axis: unknown key"),
    ("sweeps.k_map.axes.kappa_1.range.step", 2, "sweeps.k_map.axes.kappa_1.range.step: unknown key"),
    ("plots.dpii", 100, "plots.dpii: unknown key"),
    # wrong types
    ("base.n_fock", "ten", "base.n_fock: expected an integer"),
    ("base.g", "strong", "base.g: expected a number"),
    ("sweeps.g_scan.axes.g.values", ["x"], "sweeps.g_scan.axes.g.values[0]: expected a number"),
    ("sweeps.g_scan.axes.g.values", 0.1, "sweeps.g_scan.axes.g.values: expected a list, got 0.1"),
    ("batch_size", "many", "batch_size: expected an integer"),
    ("allow_gaps", "yes", "allow_gaps: expected true or false"),
    ("sweeps.g_scan", None, "sweeps.g_scan: expected a mapping, got None"),
    ("sweeps.n_scan", {"axes": {"n_fock": {"range": {"start": 3, "stop": 4, "num": 3}}}},
     "sweeps.n_scan.axes.n_fock.range: expected an integer, got 3.5"),
    # broken rules
    ("base.gamma_D", -0.1, "base.gamma_D: must be >= 0"),
    ("sweeps.g_scan.axes.kappa_1", {"values": [0.1, -0.1]}, "sweeps.g_scan.axes.kappa_1.values[1]: must be >= 0"),
    ("sweeps.g_scan.set.kappa_1", -1.0, "sweeps.g_scan.set.kappa_1: must be >= 0"),
    ("base.n_fock", 1, "base.n_fock: must be >= 2"),
    ("base.t_max", 0, "base.t_max: must be > 0"),
    ("sweeps.g_scan.set.t_max", -5, "sweeps.g_scan.set.t_max: must be > 0"),
    ("base.method", "rk4", "base.method: must be one of adams"),
    ("sweeps.g_scan.set.method", "euler", "sweeps.g_scan.set.method: must be one of adams"),
    ("batch_size", 0, "batch_size: must be >= 1"),
    ("plots.dpi", 0, "plots.dpi: must be >= 1"),
    # sweeps
    ("sweeps.g_scan.axes", {}, "sweeps.g_scan.axes: empty sweep"),
    ("sweeps.empty", {"description": "nothing varied"}, "sweeps.empty.axes: empty sweep"),
    ("sweeps.g_scan.axes.g.values", [], "sweeps.g_scan.axes.g.values: empty list"),
    ("sweeps.k_map.axes.kappa_1.range.num", 0, "sweeps.k_map.axes.kappa_1.range.num: must be >= 1"),
    ("sweeps.k_map.axes.kappa_1.range.start", 0.0, "sweeps.k_map.axes.kappa_1.range: a log range needs start > 0"),
    ("sweeps.k_map.axes.kappa_1.range.start", -0.1, "sweeps.k_map.axes.kappa_1.range: a log range needs start > 0"),
    ("sweeps.k_map.axes.kappa_1.range.scale", "logarithmic",
     "sweeps.k_map.axes.kappa_1.range.scale: must be one of linear, log"),
    ("sweeps.k_map.axes.kappa_1.range", {"start": 0.1, "num": 3}, "'stop' is a required property"),
    ("sweeps.g_scan.axes.g.values", [0.1, 0.2, 0.1], "sweeps.g_scan.axes.g.values: duplicate value 0.1"),
    ("sweeps.g_scan.axes.g.values", [1, 1.0], "sweeps.g_scan.axes.g.values: duplicate value 1.0"),
    ("sweeps.g_scan.axes.g", {"range": {"start": 0.2, "stop": 0.2, "num": 3}},
     "sweeps.g_scan.axes.g.range: duplicate value 0.2"),
    ("sweeps.g_scan.axes.g", {"values": [0.1], "range": {"start": 0.1, "stop": 0.2, "num": 2}},
     "sweeps.g_scan.axes.g: give exactly one of"),
    ("sweeps.g_scan.axes.g", {}, "sweeps.g_scan.axes.g: give exactly one of"),
    ("sweeps.g_scan.axes.method", {"range": {"start": 1, "stop": 2, "num": 2}},
     "sweeps.g_scan.axes.method.range: a range needs a numeric parameter"),
    ("sweeps.g_scan.axes.catalyst", {"values": [True, False]}, "sweeps.g_scan.axes.catalyst: not a sweep parameter"),
    ("base.catalyst", False, "base.catalyst: not a sweep parameter"),
    ("sweeps.g_scan.set.catalyst", False, "sweeps.g_scan.set.catalyst: not a sweep parameter"),
    ("sweeps.g_scan.axes.t_max", {"values": [10, 20]}, "sweeps.g_scan.axes.t_max: cannot be an axis"),
    ("sweeps.g_scan.set.g", 0.3, "sweeps.g_scan.set.g: g is also an axis of this sweep"),
    ("sweeps.g scan", {"axes": {"g": {"values": [0.1]}}}, "sweeps.g scan: a sweep name must start with a letter"),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[f"{p}={v!r}"[:60] for p, v, _ in BAD])
def test_bad_config_is_refused_with_one_line_naming_the_key(path, value, message):
    with pytest.raises(ConfigError) as err:
        load(changed(path, value))
    text = str(err.value)
    assert message in text
    assert "\n" not in text and len(text) < 400


def test_missing_required_range_key_is_refused():
    config = changed("sweeps.k_map.axes.kappa_1.range.num", None, delete=True)
    with pytest.raises(ConfigError, match=r"sweeps\.k_map\.axes\.kappa_1\.range: 'num' is a required"):
        load(config)


def test_a_map_over_the_same_parameter_twice_is_refused(tmp_path):
    """YAML would keep only the last of two equal keys, so the check reads the file itself."""
    text = """
sweeps:
  gg_map:
    axes:
      g: {values: [0.1, 0.2]}
      g: {values: [0.3, 0.4]}
"""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"^sweeps\.gg_map\.axes\.g: given twice in .*config\.yaml"):
        load(yaml.safe_load(text), [path])


def test_the_default_study_loads_and_fills_the_schema_defaults(repo):
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    del config["batch_size"], config["resources"]
    study = load_config(config, SCHEMA, [repo / "config" / "config.yaml"])
    assert config["batch_size"] >= 1 and config["resources"]["simulate"]["mem_mb"] > 0  # defaults filled
    assert {"omega_c_scan", "g_scan", "kappa_1_scan", "gamma_D_scan"} <= set(study.sweeps)
    for name in ("omega_c_scan", "g_scan", "kappa_1_scan", "gamma_D_scan"):
        assert len(study.sweeps[name].axes) == 1 and 3 <= study.sweeps[name].size <= 5
    maps = [s for s in study.sweeps.values() if len(s.axes) == 2]
    assert {tuple(s.axis_names) for s in maps} == {("g", "omega_c"), ("kappa_1", "gamma_D")}
    kg = next(s for s in maps if s.axis_names == ["kappa_1", "gamma_D"])
    for axis in kg.axes:  # log axes: constant ratio
        ratios = np.diff(np.log(axis.values))
        assert np.allclose(ratios, ratios[0])


def test_points_are_shared_between_sweeps_and_with_the_baseline():
    study = load(GOOD)
    g_scan, k_map = study.sweeps["g_scan"], study.sweeps["k_map"]
    assert g_scan.shape == (2,) and k_map.shape == (3, 2)
    # g_scan: 2 catalyzed points and ONE baseline (g is a catalyst-only parameter)
    cells = list(g_scan.cells())
    baselines = {pair["baseline"][0] for _, pair in cells}
    assert len(baselines) == 1
    # k_map: the baseline changes with gamma_D but not with kappa_1 (catalyst-only)
    k_baselines = {(k_map.axes[1].values[i[1]], pair["baseline"][0]) for i, pair in k_map.cells()}
    assert len({pid for _, pid in k_baselines}) == 2
    # counted by hand: 2 + 1 (g_scan) + 6 + 2 (k_map); the map's gamma_D=0.01 baseline differs
    # from g_scan's (gamma_D=0.05), so nothing else is shared
    assert len(study.points) == 11
    assert sum(p["catalyst"] for p in study.points.values()) == 8
    # every point id is the engine's id of its parameters, and baselines drop catalyst parameters
    for pid, params in study.points.items():
        assert point_id(params) == pid
        if not params["catalyst"]:
            assert not any(PARAMETERS[k].catalyst_only for k in params)


def test_a_point_in_two_sweeps_is_one_point():
    config = copy.deepcopy(GOOD)
    config["sweeps"]["g_again"] = {"axes": {"g": {"values": [0.2, 0.3]}}}
    study = load(config)
    assert len(study.points) == 11 + 1  # only g=0.3 is new; g=0.2 and the baseline are shared
    shared = study.sweep_points["g_scan"][1]  # g=0.2? find by params instead:
    pid = next(p for p in study.sweep_points["g_again"] if study.points[p].get("g") == 0.2)
    assert study.membership[pid] == ["g_scan", "g_again"]
    assert shared in study.points


def test_range_values():
    config = changed("sweeps.lin", {"axes": {"omega_c": {"range": {"start": 0.5, "stop": 1.5, "num": 6}}}})
    study = load(config)
    assert study.sweeps["lin"].axes[0].values == (0.5, 0.7, 0.9, 1.1, 1.3, 1.5)  # rounded: no 0.7000000000000001
    assert study.sweeps["k_map"].axes[0].values == (0.01, 0.1, 1.0)
    one = load(changed("sweeps.one", {"axes": {"g": {"range": {"start": 0.3, "stop": 0.9, "num": 1}}}}))
    assert one.sweeps["one"].axes[0].values == (0.3,)
    ints = load(changed("sweeps.n", {"axes": {"n_fock": {"range": {"start": 3, "stop": 7, "num": 3}}}}))
    assert ints.sweeps["n"].axes[0].values == (3, 5, 7)
    assert all(type(v) is int for v in ints.sweeps["n"].axes[0].values)


def test_sweep_spec_round_trip_and_set_overrides():
    config = changed("sweeps.g_scan.set", {"gamma_D": 0.1, "atol": "1e-10"})  # YAML reads 1e-10 as text
    study = load(config)
    sweep = study.sweeps["g_scan"]
    assert sweep.fixed["gamma_D"] == 0.1 and sweep.fixed["atol"] == 1e-10
    assert "g" not in sweep.fixed
    again = Sweep.from_spec(sweep.to_spec())
    assert again == sweep
    assert [c for c in again.cells()] == [c for c in sweep.cells()]
    assert Study.from_spec(study.to_spec()).points == study.points


def test_partition_is_balanced_deterministic_and_bounded():
    ids = [f"{i:016x}" for i in range(103)]
    batches = partition(reversed(ids), 10)
    sizes = sorted(len(b) for b in batches.values())
    assert len(batches) == math.ceil(103 / 10) == 11
    assert sizes[-1] <= 10 and sizes[-1] - sizes[0] <= 1  # 103 = 4 x 9 + 7 x 10
    assert sorted(p for b in batches.values() for p in b) == ids
    assert partition(ids, 10) == batches  # order of the input does not matter
    assert all(re.fullmatch(r"simulate_batch_[0-9a-f]{10}", name) for name in batches)
    assert partition([], 10) == {}
    assert list(partition(ids[:3], 50).values()) == [ids[:3]]


@pytest.mark.parametrize("n, batch_size, slots, n_batches", [
    (442, 250, 2, 2),  # not 2 batches and an idle core, not 1
    (442, 150, 2, 4),  # 3 batches would leave a core idle half the time: rounded up to 4
    (84, 250, 2, 2),   # a small study still uses both cores
    (5, 10, 4, 4),
    (1, 10, 4, 1),     # never more batches than points
    (1000, 100, 1, 10),
])
def test_partition_uses_every_slot(n, batch_size, slots, n_batches):
    batches = partition([f"{i:016x}" for i in range(n)], batch_size, slots)
    assert len(batches) == n_batches
    assert max(map(len, batches.values())) <= batch_size


def test_missing_and_failed_points(tmp_path):
    study = load(GOOD)
    ids = list(study.points)
    assert missing_points(study, tmp_path / "absent") == ids
    (tmp_path / f"{ids[0]}.nc").write_text("x")
    (tmp_path / f"{ids[1]}.failed").write_text("boom")
    (tmp_path / f"{ids[0]}.failed").write_text("old failure, since fixed")
    assert missing_points(study, tmp_path) == ids[1:]
    assert failed_points(tmp_path) == {ids[1]}


def test_batch_plan_round_trip(tmp_path):
    batches = partition([f"{i:016x}" for i in range(7)], 3)
    write_batch_plan(tmp_path / "plan" / "p.json", batches)
    assert read_batch_plan(tmp_path / "plan" / "p.json") == batches
    assert read_batch_plan(tmp_path / "none.json") == {}


def test_runtime_scales_with_batch_size():
    res = {"runtime_base_min": 2, "runtime_per_point_min": 0.25}
    assert runtime_minutes(1, res) == 3 and runtime_minutes(40, res) == 12


def test_run_batch_writes_the_good_points_and_reports_the_failed_one(tmp_path):
    good = {"n_fock": 3, "t_max": 5.0, "n_t": 51, "catalyst": True}
    bad = {**good, "nsteps": 1, "max_step": 0.01}  # 10 steps needed between outputs, 1 allowed
    points = [bad, good]
    outputs = [point_path(tmp_path, point_id(p)) for p in points]
    messages = []
    failures = run_batch(points, outputs, log=messages.append)
    assert [f.point_id for f in failures] == [point_id(bad)]
    assert not (tmp_path / f"{point_id(bad)}.nc").exists()
    assert (tmp_path / f"{point_id(good)}.nc").exists()
    marker = tmp_path / f"{point_id(bad)}.failed"
    assert point_id(bad) in marker.read_text()
    report = failure_report(failures, len(points))
    assert report.startswith("1 of 2 points failed") and point_id(bad) in report and "nsteps=1" in report
    # one line per point, then progress; a point whose cutoff certificate fails (n_fock 3 is far
    # too small) is named once more, loudly
    cutoff_lines = [m for m in messages if "] CUTOFF " in m]
    assert len(cutoff_lines) == 1 and point_id(good) in cutoff_lines[0] and "top Fock level" in cutoff_lines[0]
    points_lines = [m for m in messages if " progress: " not in m and m not in cutoff_lines]
    assert len(points_lines) == 2 and "FAILED" in points_lines[0]
    assert messages[-1].startswith("[2/2] progress: 1 written, 1 failed")
    with pytest.raises(ValueError, match="is not the file of point"):
        run_batch([good], [tmp_path / "wrong.nc"])


def test_index_rows():
    study = load(GOOD)
    rows = index_rows(study, "results/points")
    assert [r["point_id"] for r in rows] == list(study.points)
    base = next(r for r in rows if not r["catalyst"])
    assert "g" not in base and base["gamma_D"] == 0.05 and "g_scan" in base["sweeps"].split()
    assert base["file"] == f"results/points/{base['point_id']}.nc"


def _schema_keys(node, path=""):
    """(dotted path, schema) of every property in the schema."""
    for name, sub in (node.get("properties") or {}).items():
        here = f"{path}.{name}" if path else name
        yield here, sub
        yield from _schema_keys(sub, here)
    for key in ("additionalProperties",):
        sub = node.get(key)
        if isinstance(sub, dict) and "$ref" in sub:
            yield from _schema_keys(SCHEMA_DOC["$defs"][sub["$ref"].split("/")[-1]], f"{path}.*")


SCHEMA_DOC = yaml.safe_load(SCHEMA.read_text())


def test_schema_documents_every_key_and_matches_the_parameter_table(repo):
    keys = dict(_schema_keys(SCHEMA_DOC))
    required = {f"{p}.{r}" for p, s in keys.items() for r in s.get("required", [])}
    for path, sub in keys.items():
        assert sub.get("description"), f"{path}: no description"
        assert "default" in sub or path in required or path.endswith(".range"), f"{path}: no default"
    base = SCHEMA_DOC["properties"]["base"]["properties"]
    assert set(base) == set(PARAMETERS) - {"catalyst"}
    for name, sub in base.items():
        assert sub["default"] == DEFAULTS[name], name
        assert sub["description"].startswith(PARAMETERS[name].description), name
        assert sub.get("enum", list(PARAMETERS[name].choices)) == list(PARAMETERS[name].choices)
    readme = (repo / "config" / "README.md").read_text()
    for path in keys:
        leaf = path.split(".")[-1]
        assert f"`{leaf}`" in readme, f"config/README.md does not explain `{leaf}` ({path})"


def test_cells_give_every_case_the_id_of_its_own_parameters_and_share_equal_baselines():
    """cells() validates a shared baseline once: its ids must still be point_id of each cell's
    own parameters, with one baseline per value of a non-catalyst axis (omega_a) and the same
    baseline across a catalyst-only axis (g)."""
    from qbcat.engine.params import canonical
    from qbcat.workflow.study import Axis

    sweep = Sweep("s", (Axis("g", (0.0, 0.1, 0.2)), Axis("omega_a", (0.9, 1.0))), {"n_fock": 4})
    baselines = {}
    for index, pair in sweep.cells():
        p = sweep.cell_params(index)
        for case, catalyst in (("catalyzed", True), ("baseline", False)):
            params = canonical({**p, "catalyst": catalyst})
            assert pair[case] == (point_id(params), params), (index, case)
        baselines.setdefault(index[1], set()).add(pair["baseline"][0])
        assert pair["baseline"][0] != pair["catalyzed"][0]
    assert [len(ids) for ids in baselines.values()] == [1, 1]
    assert len({next(iter(ids)) for ids in baselines.values()}) == 2
    # each cell gets its own parameter dict: editing one does not edit another's
    cells = [pair for _, pair in sweep.cells()]
    cells[0]["baseline"][1]["t_max"] = -1.0
    assert cells[1]["baseline"][1]["t_max"] != -1.0
