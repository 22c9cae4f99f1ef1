"""What the science products of a study are, planned from the config once, when the workflow is read.

:func:`plan_products` turns the schema-checked config and its :class:`qbcat.workflow.study.Study` into a
:class:`ProductPlan` of plain data: the sweeps behind the paper's figures and the enhancement
maps, the steady-state maps, the convergence points with their options, the claims thresholds,
and every product file by the rule that makes it (the manifest records the rule of each file).
The rule files (workflow/rules/products.smk, share.smk) only wire rules to this plan.

Every check a product's config needs is made here, so that a bad value stops the workflow before
any job with one :class:`qbcat.workflow.configuration.ConfigError` line naming the config key, e.g.
``claims.thresholds.enhancement_metric: ...``, instead of failing the product's job at the end
of a run. The functions are pure (no file is read or written) and testable without Snakemake.
QuTiP (through qbcat.science.convergence) is imported only when the config asks for convergence checks,
xarray (through qbcat.science.claims and qbcat.science.analysis) only to check the product settings.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .configuration import SWEEP_NAME, ConfigError
from .study import Study
from ..engine.params import PARAMETERS, ParameterError, point_id, validate

SWEEP_FILE = "results/sweeps/{sweep}.nc"
CONV_TABLE = "results/analysis/convergence.csv"
CONV_DETAILS = "results/analysis/convergence_details.csv"
CONV_VERDICT = "results/convergence/verdict.txt"
STUDY_CONFIG = "results/config/config.yaml"
MANIFEST = "results/manifest.json"
FIGURE_FORMATS = ("pdf", "png")

#: The `analysis` config keys under the names the scripts (qbcat.science.analysis) take.
ANALYSIS_OPTIONS = {
    "t_start": "t_start",
    "t_end": "t_end",
    "late_duration": "late_duration",
    "ratio_floor": "ratio_floor",
    "backflow_tolerance": "tolerance",
}

#: Options of qbcat.science.convergence.validate_options -> the `convergence` config keys they come from.
_CONVERGENCE_KEYS = {
    "checks": "checks_at_base/checks_at_corners",
    "n_fock": "n_fock_offsets/n_fock_extra/reference_gap",
    "n_fock_offsets": "n_fock_offsets",
    "reference_n_fock": "reference_gap",
    "min_gap": "reference_gap",
}


@dataclass(frozen=True)
class ProductPlan:
    """The products of one study; every field is plain data (lists, dicts, strings)."""

    enabled: bool  # config build_products
    paper_sweeps: list  # the 1-D sweeps of the panels of Fig. 2 and Fig. 3, in panel order
    map_sweeps: list  # the 2-D sweeps, each with an enhancement dataset and map
    steady_maps: dict  # name -> {"sweep", "base": fixed parameters, "axes": {axis: values}, "n_fock_from_sweep"}
    convergence_points: dict  # point id -> {"label", "params", "options"}
    analysis: dict  # qbcat.science.analysis options under the scripts' names
    claims_thresholds: dict  # the config's overrides of qbcat.science.claims.DEFAULT_THRESHOLDS
    sweep_files: list  # every sweep dataset
    products_by_rule: dict = field(default_factory=dict)  # rule -> the product files it makes

    @property
    def targets(self) -> list[str]:
        """The final outputs the products add to `snakemake` (rule all)."""
        files = [f for paths in self.products_by_rule.values() for f in paths]
        # each checked point's figure (beside its table; not a shared product)
        files += [f"results/convergence/{pid}.png" for pid in self.convergence_points]
        return files + ([CONV_VERDICT] if self.convergence_points else [])

    @property
    def claims_input(self) -> dict:
        """Input of the claims rule: the sweeps, and the convergence tables when checks run."""
        out = {"sweeps": list(self.sweep_files)}
        if self.convergence_points:
            out.update(convergence=CONV_DETAILS, convergence_table=CONV_TABLE)
        return out

    @property
    def manifest_input(self) -> dict:
        """Input of the manifest rule: every shared file by the rule that makes it, and the
        convergence gate (not a shared file: it only makes the manifest wait for the verdict)."""
        return {
            "aggregate_sweep": list(self.sweep_files),
            "study_config": [STUDY_CONFIG],
            **self.products_by_rule,
            "convergence_gate": [CONV_VERDICT] if self.convergence_points else [],
        }

    @property
    def manifest_rules(self) -> dict:
        """Shared file -> the rule that made it (recorded in the manifest)."""
        return {path: rule for rule, paths in self.manifest_input.items()
                if rule != "convergence_gate" for path in paths}

    @property
    def share_targets(self) -> list[str]:
        """The final outputs of sharing: the effective config and the manifest (with products)."""
        return [STUDY_CONFIG, MANIFEST] if self.enabled else []


def expand(pattern: str, **values: Iterable) -> list[str]:
    """``pattern`` formatted with every combination of ``values`` (first keyword outermost),
    as Snakemake's ``expand`` does."""
    names = list(values)
    return [pattern.format(**dict(zip(names, combo)))
            for combo in itertools.product(*(list(values[n]) for n in names))]


def _sweep_list(study: Study) -> str:
    return ", ".join(study.sweeps) or "none"


def paper_sweeps(config: Mapping, study: Study) -> list[str]:
    """The sweeps of the panels of Fig. 2 and Fig. 3 (config figures.paper_sweeps): 1-D sweeps."""
    names = list(config["figures"]["paper_sweeps"])
    for i, name in enumerate(names):
        if name not in study.sweeps:
            raise ConfigError(f"figures.paper_sweeps[{i}]: no sweep named {name!r} "
                              f"(sweeps: {_sweep_list(study)})")
        if len(study.sweeps[name].axes) != 1:
            raise ConfigError(f"figures.paper_sweeps[{i}]: {name} has axes {study.sweeps[name].axis_names}; "
                              "a figure panel needs a 1-D sweep")
    return names


def steady_maps(config: Mapping, study: Study) -> dict:
    """Steady-state maps (config steady.maps): name -> the sweep, its fixed parameters, (a subset
    of) its grid, whose values must be values of the sweep so that every cell has a trajectory, and
    whether the cells' cutoffs come from the sweep dataset (``n_fock_from_sweep``: the sweep's
    n_fock is "auto", a per-point cutoff).

    ``maps: all`` (the default study): one map per 2-D sweep, named after it, on its whole grid."""
    spec_maps = config["steady"]["maps"]
    if spec_maps == "all":
        spec_maps = {name: {"sweep": name} for name, s in study.sweeps.items() if len(s.axes) == 2}
    elif isinstance(spec_maps, str):
        raise ConfigError(f"steady.maps: expected 'all' or a mapping NAME -> {{sweep, axes}}, got {spec_maps!r}")
    maps = {}
    for name, spec in spec_maps.items():
        where = f"steady.maps.{name}"
        if not SWEEP_NAME.match(str(name)):
            raise ConfigError(f"{where}: a map name must start with a letter and hold only letters, "
                              "digits, '_' and '-'")
        if spec["sweep"] not in study.sweeps:
            raise ConfigError(f"{where}.sweep: no sweep named {spec['sweep']!r} (sweeps: {_sweep_list(study)})")
        sweep = study.sweeps[spec["sweep"]]
        axes = {a.name: list(a.values) for a in sweep.axes}
        for axis, values in (spec.get("axes") or {}).items():
            if axis not in axes:
                raise ConfigError(f"{where}.axes.{axis}: not an axis of sweep {sweep.name} "
                                  f"(axes: {', '.join(axes)})")
            subset = [w for w in axes[axis] if any(w == v or str(w) == str(v) for v in values)]
            if len(subset) != len(set(map(str, values))):
                raise ConfigError(f"{where}.axes.{axis}: {values} must be values of sweep {sweep.name} "
                                  f"(its {axis}: {axes[axis]}), so that every cell has a trajectory "
                                  "to compare with")
            axes[axis] = subset
        maps[name] = {"sweep": sweep.name, "base": sweep.fixed, "axes": axes,
                      "n_fock_from_sweep": sweep.fixed.get("n_fock") == "auto"}
    return maps


def corner_sweeps(config: Mapping, study: Study) -> list[str]:
    """The sweeps whose corners are convergence-checked (config convergence.corner_sweeps)."""
    names = config["convergence"]["corner_sweeps"]
    if names == "all":
        return list(study.sweeps)
    if isinstance(names, str) or any(s not in study.sweeps for s in names):
        raise ConfigError(f"convergence.corner_sweeps: expected 'all' or a list of sweep names "
                          f"(sweeps: {_sweep_list(study)}), got {names!r}")
    return list(names)


def convergence_points(config: Mapping, study: Study) -> dict:
    """The convergence-checked points: point id -> {"label", "params", "options"}.

    The base point (checks_at_base) and the corners of the corner sweeps (checks_at_corners): the
    cells at the smallest and largest value of every axis, where truncation errors are largest,
    without those with g = 0 (the catalyst is decoupled: nothing to truncate). A point listed twice
    (e.g. the base point is also a corner) is checked once, with the union of its checks. The
    options are those of qbcat.science.convergence.run_checks, validated here.
    """
    conv = config["convergence"]
    sweeps = corner_sweeps(config, study)
    if not conv["enabled"]:
        return {}
    candidates = []
    if conv["base_point"] and conv["checks_at_base"]:
        candidates.append(("base", {**config["base"], "catalyst": True}, conv["checks_at_base"]))
    for name in sweeps:
        sweep = study.sweeps[name]
        ends = [sorted({a.values.index(min(a.values)), a.values.index(max(a.values))}) for a in sweep.axes]
        for index in itertools.product(*ends):
            cell = sweep.cell_params(index)
            where = ", ".join(f"{a.name}={a.values[i]}" for a, i in zip(sweep.axes, index))
            if cell["g"] != 0 and conv["checks_at_corners"]:
                candidates.append((f"{name} {where}", cell, conv["checks_at_corners"]))
    if not candidates:
        return {}
    from ..science import convergence  # imports QuTiP: only when there is something to check

    points: dict = {}
    for label, cell, checks in candidates:
        params = validate(cell)
        entry = points.setdefault(point_id(params), {"labels": [], "params": params, "checks": set()})
        entry["labels"].append(label)
        entry["checks"].update(checks)
    for entry in points.values():
        n_fock = entry["params"]["n_fock"]
        if n_fock == "auto":  # the cutoff is chosen when the check runs (convergence.resolve_auto)
            reference = None
            listed = set(conv["n_fock_extra"]) or {entry["params"]["n_fock_min"]}
        else:
            reference = n_fock + conv["reference_gap"]
            listed = {n_fock, reference, *conv["n_fock_extra"]}
            listed |= {n_fock + k for k in conv["n_fock_offsets"]}
        entry["label"] = "; ".join(entry.pop("labels"))
        checks = entry.pop("checks")
        entry["options"] = {
            "checks": [c for c in convergence.CHECKS if c in checks],
            "n_fock": sorted(n for n in listed if 2 <= n <= (reference or n)),
            "n_fock_offsets": list(conv["n_fock_offsets"]),
            "reference_n_fock": reference,
            "min_gap": conv["reference_gap"],
            "thresholds": dict(conv["thresholds"]),
            "relative": conv["relative"],
            "tolerances": [list(t) for t in conv["tolerances"]],
            "methods": list(conv["methods"]),
            # a point's job records its verdict; the gate (convergence_gate) decides the run
            "fail_on_error": False,
        }
        try:
            convergence.validate_options(entry["options"], entry["params"])
        except ParameterError as exc:
            option, _, rest = str(exc).partition(": ")
            key = _CONVERGENCE_KEYS.get(option.split(".")[0], option)
            raise ConfigError(f"convergence.{key}: {rest} (convergence point {entry['label']})") from None
    return points


def analysis_options(config: Mapping, study: Study) -> dict:
    """The `analysis` section under the scripts' names, with its windows checked against the time
    grid of every sweep (the backflow statistics and the claims read every sweep)."""
    raw = config["analysis"]
    options = {name: raw[key] for key, name in ANALYSIS_OPTIONS.items()}
    from ..science import analysis  # imports xarray: only when products are built

    for name, sweep in study.sweeps.items():
        time = np.linspace(0.0, sweep.fixed["t_max"], sweep.fixed["n_t"])
        try:
            analysis.resolve_window(time, options["t_start"], options["t_end"], what="t_start/t_end")
            analysis.late_window(time, options["late_duration"])
        except ValueError as exc:
            key = "late_duration" if "late" in str(exc) else "t_start/t_end"
            raise ConfigError(f"analysis.{key}: {exc} (sweep {name})") from None
    return options


def claims_thresholds(config: Mapping) -> dict:
    """The config's claims thresholds (overrides of qbcat.science.claims.DEFAULT_THRESHOLDS), checked as
    the claims report checks them, and the robustness axes must be parameter names."""
    thresholds = dict(config["claims"]["thresholds"])
    from ..science import claims  # imports xarray: only when products are built

    try:
        checked = claims.check_thresholds(thresholds)
    except ValueError as exc:
        match = re.match(r"threshold '?(\w+)", str(exc))
        key = f"claims.thresholds.{match[1]}" if match else "claims.thresholds"
        raise ConfigError(f"{key}: {exc}") from None
    for axis in checked["robustness_axes"]:
        if axis not in PARAMETERS:
            raise ConfigError(f"claims.thresholds.robustness_axes: {axis!r} is not a parameter "
                              f"(known: {', '.join(PARAMETERS)})")
    return thresholds


def products_by_rule(enabled: bool, paper: list, maps: list, steady: Mapping, conv_points: Mapping) -> dict:
    """Every shared product file, by the rule that makes it."""
    return {
        "paper_figures": expand("results/figures/{fig}.{ext}", fig=["fig2", "fig3", "fig3_channels"],
                                ext=FIGURE_FORMATS)
        if paper else [],
        "enhancement": expand("results/analysis/enhancement_{sweep}.nc", sweep=maps),
        "enhancement_figure": expand("results/figures/enhancement_{sweep}.{ext}", sweep=maps, ext=FIGURE_FORMATS),
        "backflow_stats": ["results/analysis/backflow_points.csv", "results/analysis/backflow_correlations.csv"]
        if enabled else [],
        "backflow_figure": expand("results/figures/backflow_scatter.{ext}", ext=FIGURE_FORMATS) if enabled else [],
        "cutoff_figure": expand("results/figures/cutoff_certificates.{ext}", ext=FIGURE_FORMATS)
        if enabled else [],
        "convergence_summary": [CONV_TABLE, CONV_DETAILS] if conv_points else [],
        "convergence_figure": expand("results/figures/convergence.{ext}", ext=FIGURE_FORMATS)
        if conv_points else [],
        "steady_map": expand("results/analysis/steady_{name}.nc", name=steady),
        "steady_figure": expand("results/figures/steady_{name}.{ext}", name=steady, ext=FIGURE_FORMATS),
        "steady_compare": expand("results/analysis/steady_vs_trajectory_{name}.csv", name=steady),
        "claims": ["results/claims.md"] if enabled else [],
    }


def plan_products(config: Mapping, study: Study, check: bool = True) -> ProductPlan:
    """The ProductPlan of a schema-checked config (defaults filled in: qbcat.workflow.configuration.load_config)
    and its Study; ConfigError naming the key on any product setting that cannot work.

    ``check=False`` skips the checks that import xarray (claims thresholds, analysis windows) and
    change nothing in the plan: for a job step (e.g. a cluster job) that reads the workflow again
    after the submitting run checked the same config.
    """
    enabled = bool(config["build_products"])
    corner_sweeps(config, study)  # checked even without products, as before
    paper = paper_sweeps(config, study) if enabled else []
    maps = [n for n, s in study.sweeps.items() if len(s.axes) == 2] if enabled else []
    steady = steady_maps(config, study) if enabled else {}
    conv = convergence_points(config, study) if enabled else {}
    raw_analysis = config["analysis"]
    analysis = (analysis_options(config, study) if enabled and check
                else {name: raw_analysis[key] for key, name in ANALYSIS_OPTIONS.items()})
    thresholds = claims_thresholds(config) if enabled and check else dict(config["claims"]["thresholds"])
    return ProductPlan(
        enabled=enabled,
        paper_sweeps=paper,
        map_sweeps=maps,
        steady_maps=steady,
        convergence_points=conv,
        analysis=analysis,
        claims_thresholds=thresholds,
        sweep_files=expand(SWEEP_FILE, sweep=study.sweeps),
        products_by_rule=products_by_rule(enabled, paper, maps, steady, conv),
    )
