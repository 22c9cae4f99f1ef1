"""The product plan (qbcat.workflow.plan) without Snakemake: what a config asks for, and the config errors
that must stop the workflow before any job, each in one line naming the config key."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from qbcat.science import claims
from qbcat.workflow import plan
from qbcat.engine.params import point_id, validate
from qbcat.workflow.configuration import ConfigError, load_config

from conftest import REPO

SCHEMA = REPO / "config" / "schema.yaml"

BASE = {"n_fock": 5, "t_max": 20.0, "n_t": 201}
CONFIG = {
    "base": BASE,
    "sweeps": {
        "g_scan": {"axes": {"g": {"values": [0.0, 0.1, 0.3]}}},
        "kappa_1_scan": {"axes": {"kappa_1": {"values": [0.1, 0.02]}}},
        "g_omega_c_map": {"axes": {"g": {"values": [0.1, 0.3]}, "omega_c": {"values": [0.8, 1.0, 1.2]}}},
    },
    "build_products": True,
    "figures": {"paper_sweeps": ["g_scan", "kappa_1_scan"]},
    "convergence": {"corner_sweeps": ["g_scan", "g_omega_c_map"], "checks_at_corners": ["cutoff"],
                    "reference_gap": 2, "n_fock_offsets": [-1], "n_fock_extra": [4]},
    "steady": {"maps": {"m": {"sweep": "g_omega_c_map", "axes": {"omega_c": [1.2, 0.8]}}}},
    "claims": {"thresholds": {"catalyst_t_start": 5.0}},
}


def planned(config: dict) -> plan.ProductPlan:
    """What products.smk does at parse time: load_config (schema, defaults), then the plan."""
    config = copy.deepcopy(config)
    study = load_config(config, SCHEMA)
    return plan.plan_products(config, study)


def changed(path: str, value) -> dict:
    config = copy.deepcopy(CONFIG)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


def test_the_paper_sweeps_maps_and_steady_maps():
    p = planned(CONFIG)
    assert p.enabled and p.paper_sweeps == ["g_scan", "kappa_1_scan"]
    assert p.map_sweeps == ["g_omega_c_map"]
    # a subset of the sweep's grid, in the sweep's order, with the sweep's fixed parameters
    assert p.steady_maps["m"]["axes"] == {"g": [0.1, 0.3], "omega_c": [0.8, 1.2]}
    assert p.steady_maps["m"]["sweep"] == "g_omega_c_map" and p.steady_maps["m"]["base"]["n_fock"] == 5
    assert p.analysis == {"t_start": None, "t_end": None, "late_duration": None, "ratio_floor": 1e-6,
                          "tolerance": 1e-10}
    # the schema fills in the claims' defaults; the override is kept
    assert p.claims_thresholds["catalyst_t_start"] == 5.0 and set(p.claims_thresholds) == set(claims.DEFAULT_THRESHOLDS)
    assert p.sweep_files == [f"results/sweeps/{s}.nc" for s in CONFIG["sweeps"]]


def test_the_convergence_points_are_the_base_and_the_corners_each_once():
    p = planned(CONFIG)
    base = validate({**BASE, "catalyst": True})
    expected = {
        point_id(base),  # the base point (g = 0.2) ...
        point_id({**base, "g": 0.3}),  # ... g_scan's top end (its g = 0 end has nothing to truncate)
        *(point_id({**base, "g": g, "omega_c": w}) for g in (0.1, 0.3) for w in (0.8, 1.2)),  # map corners
    }
    assert set(p.convergence_points) == expected
    shared = p.convergence_points[point_id({**base, "g": 0.3})]
    assert shared["label"] == "g_scan g=0.3"
    base_entry = p.convergence_points[point_id(base)]
    assert base_entry["label"] == "base"
    options = base_entry["options"]
    assert options["checks"] == ["cutoff", "tolerance", "sampling"]  # checks_at_base (defaults)
    assert options["n_fock"] == [4, 5, 7] and options["reference_n_fock"] == 7  # extra, offset, own, ref
    assert options["min_gap"] == 2 and options["fail_on_error"] is False
    assert shared["options"]["checks"] == ["cutoff"]  # checks_at_corners


def test_a_point_with_n_fock_auto_is_checked_at_the_cutoff_it_will_choose():
    p = planned(changed("base.n_fock", "auto"))
    entry = p.convergence_points[point_id(validate({**BASE, "n_fock": "auto", "catalyst": True}))]
    # the cutoff is chosen when the check runs: the reference and the offsets follow it there
    assert entry["options"]["reference_n_fock"] is None
    assert entry["options"]["n_fock"] == [4] and entry["options"]["n_fock_offsets"] == [-1]


def test_by_default_the_corners_are_not_checked_every_point_has_its_certificate():
    config = changed("convergence.checks_at_corners", [])
    p = planned(config)
    assert set(p.convergence_points) == {point_id(validate({**BASE, "catalyst": True}))}
    with open(SCHEMA) as fh:
        schema = yaml.safe_load(fh)
    assert schema["properties"]["convergence"]["properties"]["checks_at_corners"]["default"] == []


def test_a_point_listed_twice_is_checked_once_with_both_sets_of_checks():
    # the base point (g = 0.2) is a corner of a g sweep ending at 0.2
    p = planned(changed("sweeps.g_scan.axes.g.values", [0.1, 0.2]))
    base = validate({**BASE, "catalyst": True})
    entry = p.convergence_points[point_id(base)]
    assert entry["label"] == "base; g_scan g=0.2"
    assert entry["options"]["checks"] == ["cutoff", "tolerance", "sampling"]


def test_every_product_file_by_rule_and_the_manifest():
    p = planned(CONFIG)
    by_rule = p.products_by_rule
    assert by_rule["paper_figures"] == ["results/figures/fig2.pdf", "results/figures/fig2.png",
                                        "results/figures/fig3.pdf", "results/figures/fig3.png",
                                        "results/figures/fig3_channels.pdf", "results/figures/fig3_channels.png"]
    assert by_rule["enhancement"] == ["results/analysis/enhancement_g_omega_c_map.nc"]
    assert by_rule["steady_map"] == ["results/analysis/steady_m.nc"]
    assert by_rule["steady_figure"] == ["results/figures/steady_m.pdf", "results/figures/steady_m.png"]
    assert by_rule["convergence_summary"] == [plan.CONV_TABLE, plan.CONV_DETAILS]
    assert p.targets[-1] == plan.CONV_VERDICT and "results/claims.md" in p.targets
    assert {f"results/convergence/{pid}.png" for pid in p.convergence_points} <= set(p.targets)
    assert p.claims_input == {"sweeps": p.sweep_files, "convergence": plan.CONV_DETAILS,
                              "convergence_table": plan.CONV_TABLE}
    rules = p.manifest_rules
    assert rules["results/figures/fig3.png"] == "paper_figures"
    assert rules["results/sweeps/g_scan.nc"] == "aggregate_sweep"
    assert rules[plan.STUDY_CONFIG] == "study_config"
    assert plan.CONV_VERDICT not in rules and p.manifest_input["convergence_gate"] == [plan.CONV_VERDICT]
    assert p.share_targets == [plan.STUDY_CONFIG, plan.MANIFEST]


def test_expand_orders_like_snakemake():
    from snakemake.io import expand

    pattern = "results/figures/{name}_{sweep}.{ext}"
    values = {"name": ["a", "b"], "sweep": ["s1", "s2", "s3"], "ext": ["pdf", "png"]}
    assert plan.expand(pattern, **values) == expand(pattern, **values)


def test_without_products_nothing_is_planned():
    p = planned(changed("build_products", False))
    assert not p.enabled and p.targets == [] and p.share_targets == []
    assert p.convergence_points == {} and p.steady_maps == {} and p.paper_sweeps == []
    assert all(files == [] for files in p.products_by_rule.values())


def test_convergence_disabled_plans_no_checks():
    p = planned(changed("convergence.enabled", False))
    assert p.convergence_points == {} and plan.CONV_VERDICT not in p.targets
    assert p.claims_input == {"sweeps": p.sweep_files}


BAD = [
    ("figures.paper_sweeps", ["g_scan", "g_sacn"], "figures.paper_sweeps[1]: no sweep named 'g_sacn'"),
    ("figures.paper_sweeps", ["g_omega_c_map"], "figures.paper_sweeps[0]: g_omega_c_map has axes ['g', 'omega_c']"),
    ("steady.maps", {"1m": {"sweep": "g_scan"}}, "steady.maps.1m: a map name must start with a letter"),
    ("steady.maps", {"m": {"sweep": "g_sacn"}}, "steady.maps.m.sweep: no sweep named 'g_sacn'"),
    ("steady.maps", {"m": {"sweep": "g_scan", "axes": {"kappa_1": [0.1]}}},
     "steady.maps.m.axes.kappa_1: not an axis of sweep g_scan"),
    ("steady.maps", {"m": {"sweep": "g_scan", "axes": {"g": [0.1, 0.2]}}},
     "steady.maps.m.axes.g: [0.1, 0.2] must be values of sweep g_scan"),
    ("convergence.corner_sweeps", ["g_scan", "nope"], "convergence.corner_sweeps: expected 'all' or a list"),
    ("convergence.corner_sweeps", "g_scan", "convergence.corner_sweeps: expected 'all' or a list"),
    # claims thresholds: typos and bad values that the schema lets through
    ("claims.thresholds", {"enhancement_metric": "mean_diference"},
     "claims.thresholds.enhancement_metric: threshold enhancement_metric='mean_diference': use one of"),
    ("claims.thresholds", {"link_enhancement_metric": "peak"}, "claims.thresholds.link_enhancement_metric:"),
    ("claims.thresholds", {"link_backflow_metric": "integrated"}, "claims.thresholds.link_backflow_metric:"),
    ("claims.thresholds", {"robustness_axes": ["kappa_1", "gama_D"]},
     "claims.thresholds.robustness_axes: 'gama_D' is not a parameter"),
    ("claims.thresholds", {"fraction_holds": 1.5}, "claims.thresholds.fraction_holds: threshold fraction_holds=1.5: "
                                                  "must lie in [0, 1]"),
    ("claims.thresholds", {"fraction_partly": 0.9, "fraction_holds": 0.8},
     "claims.thresholds.fraction_partly: threshold fraction_partly=0.9 must not exceed fraction_holds=0.8"),
    ("claims.thresholds", {"peak_time": -1.0}, "claims.thresholds.peak_time: threshold peak_time=-1.0: must be >= 0"),
    # analysis windows that no sweep's time grid (t in [0, 20] here) can serve
    ("analysis.t_start", 25.0, "analysis.t_start/t_end: t_start/t_end: t_start=25.0 must be smaller than t_end=20.0 "
                               "(sweep g_scan)"),
    ("analysis.late_duration", 30.0, "analysis.late_duration: late_duration=30.0 must be > 0 and <= the run's "
                                     "length 20.0 (sweep g_scan)"),
]


@pytest.mark.parametrize("path, value, message", BAD, ids=[f"{p}={v}" for p, v, _ in BAD])
def test_a_bad_product_setting_is_one_line_naming_its_key(path, value, message):
    with pytest.raises(ConfigError) as err:
        planned(changed(path, value))
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_a_threshold_key_typo_is_refused_by_the_schema_before_the_plan():
    with pytest.raises(ConfigError, match=r"^claims\.thresholds\.fraction_hold: unknown key"):
        planned(changed("claims.thresholds", {"fraction_hold": 0.9}))


@pytest.mark.parametrize("path, value, message", [
    ("steady.methd", "batched", r"^steady\.methd: unknown key"),
    ("steady.method", "dmd", r"^steady\.method: "),
    ("steady.validation", ["corner"], r"^steady\.validation(\[0\])?: "),
    ("steady.n_period", 2, r"^steady\.n_period: "),
    ("steady.maps", "every", r"^steady\.maps: 'every' does not match '\^all\$'"),
    ("steady.maps", {"m": {"sweep": "g_scan", "axis": {"g": [0.1]}}}, r"^steady\.maps\.m\.axis: unknown key"),
])
def test_a_bad_steady_setting_is_refused_naming_its_key(path, value, message):
    with pytest.raises(ConfigError, match=message) as err:
        planned(changed(path, value))
    assert "\n" not in str(err.value)


def test_steady_maps_all_is_every_cell_of_every_2d_sweep():
    p = planned(changed("steady.maps", "all"))
    assert p.steady_maps == {"g_omega_c_map": {"sweep": "g_omega_c_map", "base": p.steady_maps["g_omega_c_map"]["base"],
                                               "axes": {"g": [0.1, 0.3], "omega_c": [0.8, 1.0, 1.2]},
                                               "n_fock_from_sweep": False}}
    assert "results/analysis/steady_g_omega_c_map.nc" in p.targets


def test_product_settings_are_not_checked_without_products():
    # the figures, maps, claims and analysis sections only matter when products are built ...
    config = changed("build_products", False)
    config["figures"] = {"paper_sweeps": ["g_sacn"]}
    config["claims"] = {"thresholds": {"enhancement_metric": "mean_diference"}}
    assert planned(config).targets == []
    # ... but the corner sweeps were always checked, and still are
    config["convergence"] = {"corner_sweeps": ["nope"]}
    with pytest.raises(ConfigError, match="convergence.corner_sweeps"):
        planned(config)


def test_the_repository_config_plans_and_its_claims_thresholds_pass():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    p = planned(config)
    assert p.enabled and len(p.paper_sweeps) == 4 and p.convergence_points
    # every cell of every 2-D map (steady.maps: all), each map named after its sweep
    assert config["steady"]["maps"] == "all"
    assert set(p.steady_maps) == set(p.map_sweeps) == {"g_omega_c_map", "kappa_1_gamma_D_map"}
    for name, spec in p.steady_maps.items():
        assert spec["sweep"] == name and spec["n_fock_from_sweep"]  # the study runs n_fock: auto
        assert [len(v) for v in spec["axes"].values()] == [len(a.values) for a in load_config(
            copy.deepcopy(config), SCHEMA).sweeps[name].axes]


def test_planning_imports_neither_qutip_nor_xarray():
    # the workflow imports qbcat.workflow.plan on every parse (also in every cluster job)
    code = "import sys, qbcat.workflow.plan; print(sorted({'qutip', 'xarray'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_job_step_gets_the_same_plan_without_the_checks():
    # the submitting run checks; a job step that reads the workflow again must plan the same
    assert plan.plan_products(*_loaded(CONFIG), check=False) == plan.plan_products(*_loaded(CONFIG))
    bad = changed("claims.thresholds", {"enhancement_metric": "mean_diference"})
    plan.plan_products(*_loaded(bad), check=False)  # not checked here ...
    with pytest.raises(ConfigError):
        plan.plan_products(*_loaded(bad))  # ... but in the submitting run


def _loaded(config):
    config = copy.deepcopy(config)
    return config, load_config(config, SCHEMA)
