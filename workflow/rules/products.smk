# Science products, built from the sweep datasets when config `build_products` is true:
#   the paper's Fig. 2 and Fig. 3 (figures.paper_sweeps), an enhancement dataset and map per 2-D
#   sweep, backflow statistics over all sweeps, convergence checks of the base point and the
#   sweep corners (one job per point, then one pass/fail table), steady-state maps, and the
#   claims report. Figure rules read the `plots` section and nothing else, so a figure option
#   redraws figures only. Every config value a rule uses is in its params (config/README.md).
import sys

from qbcat.workflow import plan
from qbcat.workflow.configuration import ConfigError


report: "../report/workflow.rst"


# The plan of every product (qbcat.workflow.plan): made and checked here, so that a bad product setting
# stops the workflow before any job with one line naming its config key; a job step (cluster
# job) skips the checks that the submitting run made. share.smk reads PLAN too.
try:
    PLAN = plan.plan_products(config, STUDY, check=workflow.is_main_process)
except ConfigError as exc:
    sys.exit(f"qbcat: bad config: {exc}")
PLOTS = config["plots"]

add_targets(lambda: PLAN.targets)


rule paper_figures:
    input:
        sweeps=expand(plan.SWEEP_FILE, sweep=PLAN.paper_sweeps),
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
        panels=PLAN.paper_sweeps,
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
        **PLAN.analysis,
        version=QBCAT_VERSION,
    script:
        "../../scripts/enhancement.py"


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
        "../../scripts/enhancement_figure.py"


rule backflow_stats:
    input:
        sweeps=PLAN.sweep_files,
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
        **PLAN.analysis,
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
        "../../scripts/backflow_figure.py"


rule cutoff_figure:
    input:
        sweeps=PLAN.sweep_files,
    output:
        figure="results/figures/cutoff_certificates.pdf",
        png=report(
            "results/figures/cutoff_certificates.png",
            caption="../report/cutoff_certificates.rst",
            category="Convergence",
        ),
    log:
        "logs/products/cutoff_figure.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        dpi=PLOTS["dpi"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/cutoff_figure.py"


rule convergence_point:
    output:
        table="results/convergence/{point_id}.csv",
        summary="results/convergence/{point_id}.txt",
    log:
        "logs/convergence/{point_id}.log",
    wildcard_constraints:
        point_id="|".join(PLAN.convergence_points) or "(?!)",
    conda:
        "../../envs/qbcat.yaml"
    params:
        label=lambda wildcards: PLAN.convergence_points[wildcards.point_id]["label"],
        base=lambda wildcards: PLAN.convergence_points[wildcards.point_id]["params"],
        options=lambda wildcards: PLAN.convergence_points[wildcards.point_id]["options"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/convergence_point.py"


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
        point_id="|".join(PLAN.convergence_points) or "(?!)",
    conda:
        "../../envs/qbcat.yaml"
    params:
        dpi=PLOTS["dpi"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/convergence_point_figure.py"


rule convergence_summary:
    input:
        tables=expand(
            "results/convergence/{point_id}.csv", point_id=PLAN.convergence_points
        ),
    output:
        table=report(
            plan.CONV_TABLE,
            caption="../report/convergence_table.rst",
            category="Convergence",
        ),
        details=plan.CONV_DETAILS,
    log:
        "logs/convergence/summary.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        point_ids=list(PLAN.convergence_points),
        points={
            pid: {"label": e["label"], "params": e["params"]}
            for pid, e in PLAN.convergence_points.items()
        },
        version=QBCAT_VERSION,
    script:
        "../../scripts/convergence_summary.py"


rule convergence_figure:
    input:
        table=plan.CONV_TABLE,
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
        dpi=PLOTS["dpi"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/convergence_figure.py"


# Fails the run when a check failed and convergence.fail_on_error is true; the table, figure
# and claims report that show the failure do not depend on it and are kept.
rule convergence_gate:
    input:
        table=plan.CONV_TABLE,
    output:
        verdict=plan.CONV_VERDICT,
    log:
        "logs/convergence/gate.log",
    localrule: True
    conda:
        "../../envs/qbcat.yaml"
    params:
        fail_on_error=config["convergence"]["fail_on_error"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/convergence_gate.py"


rule steady_map:
    input:
        # per-cell cutoffs (n_fock: auto) come from the sweep dataset's n_fock variable
        sweep=lambda wildcards: (
            f"results/sweeps/{PLAN.steady_maps[wildcards.name]['sweep']}.nc"
            if PLAN.steady_maps[wildcards.name]["n_fock_from_sweep"]
            else []
        ),
    output:
        dataset="results/analysis/steady_{name}.nc",
    log:
        "logs/products/steady_{name}.log",
    wildcard_constraints:
        name="|".join(PLAN.steady_maps) or "(?!)",
    conda:
        "../../envs/qbcat.yaml"
    # method batched: the map's cells split over this many processes
    threads: config["steady"]["threads"]
    params:
        name=lambda wildcards: wildcards.name,
        base=lambda wildcards: PLAN.steady_maps[wildcards.name]["base"],
        axes=lambda wildcards: PLAN.steady_maps[wildcards.name]["axes"],
        options={
            "method": config["steady"]["method"],
            "n_period": config["steady"]["n_period"],
            "validation": config["steady"]["validation"],
        },
        share=SHARE_METADATA,
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
        name="|".join(PLAN.steady_maps) or "(?!)",
    conda:
        "../../envs/qbcat.yaml"
    params:
        dpi=PLOTS["dpi"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/steady_figure.py"


rule steady_compare:
    input:
        steady="results/analysis/steady_{name}.nc",
        sweep=lambda wildcards: f"results/sweeps/{PLAN.steady_maps[wildcards.name]['sweep']}.nc",
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
        name="|".join(PLAN.steady_maps) or "(?!)",
    conda:
        "../../envs/qbcat.yaml"
    params:
        late_periods=config["steady"]["late_periods"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/steady_compare.py"


rule claims:
    input:
        unpack(lambda wildcards: PLAN.claims_input),
    output:
        report=report(
            "results/claims.md", caption="../report/claims.rst", category="Claims"
        ),
    log:
        "logs/products/claims.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        **PLAN.analysis,
        thresholds=PLAN.claims_thresholds,
        version=QBCAT_VERSION,
    script:
        "../../scripts/claims_report.py"
