# Science products, built from the sweep datasets when config `build_products` is true:
#   the paper's Fig. 2 and Fig. 3 (figures.paper_sweeps), an enhancement dataset and map per 2-D
#   sweep, backflow statistics over all sweeps, convergence checks of the base point and the
#   sweep corners (one job per point, then one pass/fail table), steady-state maps, and the
#   claims report. Figure rules read the `plots` section and nothing else, so a figure option
#   redraws figures only. Every config value a rule uses is in its params (config/README.md).
import itertools

from qbcat import convergence as qbcat_convergence
from qbcat.params import ParameterError, point_id, validate


report: "../report/workflow.rst"


PRODUCTS = bool(config["build_products"])
PLOTS = config["plots"]
# The analysis options of qbcat.analysis, under the names the scripts take.
ANALYSIS = {
    "t_start": config["analysis"]["t_start"],
    "t_end": config["analysis"]["t_end"],
    "late_duration": config["analysis"]["late_duration"],
    "ratio_floor": config["analysis"]["ratio_floor"],
    "tolerance": config["analysis"]["backflow_tolerance"],
}
CONV = config["convergence"]

PAPER_SWEEPS = list(config["figures"]["paper_sweeps"]) if PRODUCTS else []
MAP_SWEEPS = (
    [n for n, s in STUDY.sweeps.items() if len(s.axes) == 2] if PRODUCTS else []
)
for i, name in enumerate(PAPER_SWEEPS):
    if name not in STUDY.sweeps:
        sys.exit(
            f"qbcat: bad config: figures.paper_sweeps[{i}]: no sweep named {name!r} "
            f"(sweeps: {', '.join(STUDY.sweeps) or 'none'})"
        )
    if len(STUDY.sweeps[name].axes) != 1:
        sys.exit(
            f"qbcat: bad config: figures.paper_sweeps[{i}]: {name} has axes "
            f"{STUDY.sweeps[name].axis_names}; a figure panel needs a 1-D sweep"
        )

# Steady-state maps: name -> the sweep's fixed parameters and (a subset of) its grid.
STEADY_MAPS = {}
for name, spec in config["steady"]["maps"].items() if PRODUCTS else []:
    where = f"qbcat: bad config: steady.maps.{name}"
    if not grid.SWEEP_NAME.match(name):
        sys.exit(
            f"{where}: a map name must start with a letter and hold only letters, digits, '_' and '-'"
        )
    if spec["sweep"] not in STUDY.sweeps:
        sys.exit(
            f"{where}.sweep: no sweep named {spec['sweep']!r} "
            f"(sweeps: {', '.join(STUDY.sweeps) or 'none'})"
        )
    sweep = STUDY.sweeps[spec["sweep"]]
    axes = {a.name: list(a.values) for a in sweep.axes}
    for axis, values in spec["axes"].items():
        if axis not in axes:
            sys.exit(
                f"{where}.axes.{axis}: not an axis of sweep {sweep.name} (axes: {', '.join(axes)})"
            )
        subset = [
            w for w in axes[axis] if any(w == v or str(w) == str(v) for v in values)
        ]
        if len(subset) != len(set(map(str, values))):
            sys.exit(
                f"{where}.axes.{axis}: {values} must be values of sweep {sweep.name} "
                f"(its {axis}: {axes[axis]}), so that every cell has a trajectory to compare with"
            )
        axes[axis] = subset
    STEADY_MAPS[name] = {"sweep": sweep.name, "base": sweep.fixed, "axes": axes}

# Convergence checks: the base point and the corners of the sweeps (the cells at the smallest
# and largest value of every axis, where truncation errors are largest), each with its own
# checks; a point listed twice (e.g. the base point is also a corner) is checked once.
CORNER_SWEEPS = CONV["corner_sweeps"]
if CORNER_SWEEPS == "all":
    CORNER_SWEEPS = list(STUDY.sweeps)
elif isinstance(CORNER_SWEEPS, str) or any(
    s not in STUDY.sweeps for s in CORNER_SWEEPS
):
    sys.exit(
        f"qbcat: bad config: convergence.corner_sweeps: expected 'all' or a list of sweep "
        f"names (sweeps: {', '.join(STUDY.sweeps) or 'none'}), got {CORNER_SWEEPS!r}"
    )
CONV_CANDIDATES = []
if PRODUCTS and CONV["enabled"] and CONV["base_point"] and CONV["checks_at_base"]:
    CONV_CANDIDATES.append(
        ("base", {**config["base"], "catalyst": True}, CONV["checks_at_base"])
    )
for name in CORNER_SWEEPS if PRODUCTS and CONV["enabled"] else []:
    sweep = STUDY.sweeps[name]
    ends = [
        sorted({a.values.index(min(a.values)), a.values.index(max(a.values))})
        for a in sweep.axes
    ]
    for index in itertools.product(*ends):
        cell = sweep.cell_params(index)
        where = ", ".join(f"{a.name}={a.values[i]}" for a, i in zip(sweep.axes, index))
        if cell["g"] != 0 and CONV["checks_at_corners"]:
            CONV_CANDIDATES.append((f"{name} {where}", cell, CONV["checks_at_corners"]))
CONV_POINTS = {}
for label, cell, checks in CONV_CANDIDATES:
    params = validate(cell)
    entry = CONV_POINTS.setdefault(
        point_id(params), {"labels": [], "params": params, "checks": set()}
    )
    entry["labels"].append(label)
    entry["checks"].update(checks)
for pid, entry in CONV_POINTS.items():
    n_fock = entry["params"]["n_fock"]
    reference = n_fock + CONV["reference_gap"]
    listed = {n_fock, reference, *CONV["n_fock_extra"]}
    listed |= {n_fock + k for k in CONV["n_fock_offsets"]}
    entry["label"] = "; ".join(entry.pop("labels"))
    checks = entry.pop("checks")
    entry["options"] = {
        "checks": [c for c in qbcat_convergence.CHECKS if c in checks],
        "n_fock": sorted(n for n in listed if 2 <= n <= reference),
        "reference_n_fock": reference,
        "min_gap": CONV["reference_gap"],
        "thresholds": dict(CONV["thresholds"]),
        "relative": CONV["relative"],
        "tolerances": [list(t) for t in CONV["tolerances"]],
        "methods": list(CONV["methods"]),
        # a point's job records its verdict; the gate (convergence_gate) decides the run
        "fail_on_error": False,
    }
    try:  # every bad option stops the run here, before any job
        qbcat_convergence.validate_options(entry["options"], entry["params"])
    except ParameterError as exc:
        sys.exit(f"qbcat: bad config: convergence ({entry['label']}): {exc}")

CONV_TABLE = "results/analysis/convergence.csv"
CONV_DETAILS = "results/analysis/convergence_details.csv"
CONV_VERDICT = "results/convergence/verdict.txt"
CLAIMS_INPUT = {"sweeps": sweep_datasets()}
if CONV_POINTS:
    CLAIMS_INPUT.update(convergence=CONV_DETAILS, convergence_table=CONV_TABLE)

# Every shared product, by the rule that makes it (the manifest records the rule of each file).
PRODUCTS_BY_RULE = {
    "paper_figures": (
        expand(
            "results/figures/{fig}.{ext}",
            fig=["fig2", "fig3", "fig3_channels"],
            ext=["pdf", "png"],
        )
        if PAPER_SWEEPS
        else []
    ),
    "enhancement": expand("results/analysis/enhancement_{sweep}.nc", sweep=MAP_SWEEPS),
    "enhancement_figure": expand(
        "results/figures/enhancement_{sweep}.{ext}",
        sweep=MAP_SWEEPS,
        ext=["pdf", "png"],
    ),
    "backflow_stats": (
        [
            "results/analysis/backflow_points.csv",
            "results/analysis/backflow_correlations.csv",
        ]
        if PRODUCTS
        else []
    ),
    "backflow_figure": (
        expand("results/figures/backflow_scatter.{ext}", ext=["pdf", "png"])
        if PRODUCTS
        else []
    ),
    "convergence_summary": [CONV_TABLE, CONV_DETAILS] if CONV_POINTS else [],
    "convergence_figure": (
        expand("results/figures/convergence.{ext}", ext=["pdf", "png"])
        if CONV_POINTS
        else []
    ),
    "steady_map": expand("results/analysis/steady_{name}.nc", name=STEADY_MAPS),
    "steady_figure": expand(
        "results/figures/steady_{name}.{ext}", name=STEADY_MAPS, ext=["pdf", "png"]
    ),
    "steady_compare": expand(
        "results/analysis/steady_vs_trajectory_{name}.csv", name=STEADY_MAPS
    ),
    "claims": ["results/claims.md"] if PRODUCTS else [],
}
PRODUCT_TARGETS = [f for files in PRODUCTS_BY_RULE.values() for f in files]
PRODUCT_TARGETS += [CONV_VERDICT] if CONV_POINTS else []
# each point's convergence figure (results/convergence/, beside its table; not a shared product)
PRODUCT_TARGETS += expand("results/convergence/{point_id}.png", point_id=CONV_POINTS)

add_targets(lambda: PRODUCT_TARGETS)


rule paper_figures:
    input:
        sweeps=expand("results/sweeps/{sweep}.nc", sweep=PAPER_SWEEPS),
    output:
        fig2="results/figures/fig2.pdf",
        fig2_png=report(
            "results/figures/fig2.png",
            caption="../report/fig2.rst",
            category="Paper figures",
        ),
        fig3="results/figures/fig3.pdf",
        fig3_png=report(
            "results/figures/fig3.png",
            caption="../report/fig3.rst",
            category="Paper figures",
        ),
        fig3_channels="results/figures/fig3_channels.pdf",
        fig3_channels_png=report(
            "results/figures/fig3_channels.png",
            caption="../report/fig3_channels.rst",
            category="Paper figures",
        ),
    log:
        "logs/products/paper_figures.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        panels=PAPER_SWEEPS,
        zoom_t_end=PLOTS["zoom_t_end"],
        catalyst_axis=PLOTS["catalyst_axis"],
        ergotropy_curves=PLOTS["ergotropy_curves"],
        dpi=PLOTS["dpi"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/figure_paper.py"


rule enhancement:
    input:
        sweep="results/sweeps/{sweep}.nc",
    output:
        netcdf="results/analysis/enhancement_{sweep}.nc",
    log:
        "logs/products/enhancement_{sweep}.log",
    wildcard_constraints:
        sweep=sweep_name_pattern(),
    conda:
        "../../envs/qbcat.yaml"
    params:
        **ANALYSIS,
        version=QBCAT_VERSION,
    script:
        "../../scripts/enhancement_map.py"


rule enhancement_figure:
    input:
        enhancement="results/analysis/enhancement_{sweep}.nc",
    output:
        figure="results/figures/enhancement_{sweep}.pdf",
        png=report(
            "results/figures/enhancement_{sweep}.png",
            caption="../report/enhancement.rst",
            category="Enhancement maps",
            subcategory="{sweep}",
        ),
    log:
        "logs/products/enhancement_figure_{sweep}.log",
    wildcard_constraints:
        sweep=sweep_name_pattern(),
    conda:
        "../../envs/qbcat.yaml"
    params:
        dpi=PLOTS["dpi"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/enhancement_map.py"


rule backflow_stats:
    input:
        sweeps=sweep_datasets(),
    output:
        points=report(
            "results/analysis/backflow_points.csv",
            caption="../report/backflow_points.rst",
            category="Backflow",
        ),
        correlations=report(
            "results/analysis/backflow_correlations.csv",
            caption="../report/backflow_correlations.rst",
            category="Backflow",
        ),
    log:
        "logs/products/backflow_stats.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        **ANALYSIS,
        version=QBCAT_VERSION,
    script:
        "../../scripts/backflow_stats.py"


rule backflow_figure:
    input:
        points="results/analysis/backflow_points.csv",
    output:
        figure="results/figures/backflow_scatter.pdf",
        png=report(
            "results/figures/backflow_scatter.png",
            caption="../report/backflow_scatter.rst",
            category="Backflow",
        ),
    log:
        "logs/products/backflow_figure.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        enhancement_metric=PLOTS["scatter_metric"],
        dpi=PLOTS["dpi"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/backflow_stats.py"


rule convergence_point:
    output:
        table="results/convergence/{point_id}.csv",
        summary="results/convergence/{point_id}.txt",
    log:
        "logs/convergence/{point_id}.log",
    wildcard_constraints:
        point_id="|".join(CONV_POINTS) or "(?!)",
    conda:
        "../../envs/qbcat.yaml"
    params:
        label=lambda wildcards: CONV_POINTS[wildcards.point_id]["label"],
        base=lambda wildcards: CONV_POINTS[wildcards.point_id]["params"],
        options=lambda wildcards: CONV_POINTS[wildcards.point_id]["options"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/convergence_check.py"


rule convergence_point_figure:
    input:
        table="results/convergence/{point_id}.csv",
    output:
        figure=report(
            "results/convergence/{point_id}.png",
            caption="../report/convergence_point.rst",
            category="Convergence",
            subcategory="Per point",
        ),
    log:
        "logs/convergence/{point_id}_figure.log",
    wildcard_constraints:
        point_id="|".join(CONV_POINTS) or "(?!)",
    conda:
        "../../envs/qbcat.yaml"
    params:
        step="point_figure",
        dpi=PLOTS["dpi"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/convergence_check.py"


rule convergence_summary:
    input:
        tables=expand("results/convergence/{point_id}.csv", point_id=CONV_POINTS),
    output:
        table=report(
            CONV_TABLE,
            caption="../report/convergence_table.rst",
            category="Convergence",
        ),
        details=CONV_DETAILS,
    log:
        "logs/convergence/summary.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        step="summary",
        point_ids=list(CONV_POINTS),
        points={
            pid: {"label": e["label"], "params": e["params"]}
            for pid, e in CONV_POINTS.items()
        },
        version=QBCAT_VERSION,
    script:
        "../../scripts/convergence_check.py"


rule convergence_figure:
    input:
        table=CONV_TABLE,
    output:
        figure="results/figures/convergence.pdf",
        png=report(
            "results/figures/convergence.png",
            caption="../report/convergence.rst",
            category="Convergence",
        ),
    log:
        "logs/convergence/figure.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        step="figure",
        dpi=PLOTS["dpi"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/convergence_check.py"


# Fails the run when a check failed and convergence.fail_on_error is true; the table, figure
# and claims report that show the failure do not depend on it and are kept.
rule convergence_gate:
    input:
        table=CONV_TABLE,
    output:
        verdict=CONV_VERDICT,
    log:
        "logs/convergence/gate.log",
    localrule: True
    conda:
        "../../envs/qbcat.yaml"
    params:
        step="gate",
        fail_on_error=CONV["fail_on_error"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/convergence_check.py"


rule steady_map:
    output:
        dataset="results/analysis/steady_{name}.nc",
    log:
        "logs/products/steady_{name}.log",
    wildcard_constraints:
        name="|".join(STEADY_MAPS) or "(?!)",
    conda:
        "../../envs/qbcat.yaml"
    params:
        name=lambda wildcards: wildcards.name,
        base=lambda wildcards: STEADY_MAPS[wildcards.name]["base"],
        axes=lambda wildcards: STEADY_MAPS[wildcards.name]["axes"],
        options={
            "method": config["steady"]["method"],
            "n_period": config["steady"]["n_period"],
        },
        version=QBCAT_VERSION,
    script:
        "../../scripts/steady_map.py"


rule steady_figure:
    input:
        dataset="results/analysis/steady_{name}.nc",
    output:
        figure="results/figures/steady_{name}.pdf",
        figure_png=report(
            "results/figures/steady_{name}.png",
            caption="../report/steady.rst",
            category="Steady state",
            subcategory="{name}",
        ),
    log:
        "logs/products/steady_figure_{name}.log",
    wildcard_constraints:
        name="|".join(STEADY_MAPS) or "(?!)",
    conda:
        "../../envs/qbcat.yaml"
    params:
        dpi=PLOTS["dpi"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/steady_map.py"


rule steady_compare:
    input:
        steady="results/analysis/steady_{name}.nc",
        sweep=lambda wildcards: f"results/sweeps/{STEADY_MAPS[wildcards.name]['sweep']}.nc",
    output:
        comparison=report(
            "results/analysis/steady_vs_trajectory_{name}.csv",
            caption="../report/steady_compare.rst",
            category="Steady state",
            subcategory="{name}",
        ),
    log:
        "logs/products/steady_compare_{name}.log",
    wildcard_constraints:
        name="|".join(STEADY_MAPS) or "(?!)",
    conda:
        "../../envs/qbcat.yaml"
    params:
        late_periods=config["steady"]["late_periods"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/steady_map.py"


rule claims:
    input:
        unpack(lambda wildcards: CLAIMS_INPUT),
    output:
        report=report(
            "results/claims.md", caption="../report/claims.rst", category="Claims"
        ),
    log:
        "logs/products/claims.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        **ANALYSIS,
        thresholds=config["claims"]["thresholds"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/claims_report.py"
