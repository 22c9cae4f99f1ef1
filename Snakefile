# qbcat: config grids -> batched per-point simulations -> dask-aggregated sweep datasets.
#
# `snakemake` in the repository root runs the default study (config/config.yaml) locally with
# the workflow profile profiles/default, which Snakemake picks up by itself. The rule files
# below hold the rules; workflow/rules/common.smk the helpers, the config checks and the
# target functions.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# Validates the config (config/schema.yaml via snakemake.utils.validate, then the semantic
# checks of qbcat.workflow.configuration): a bad config stops here with one line naming the key.
include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/aggregate.smk"
# Science products (figures, analysis, convergence checks, claims report) and sharing
# (manifest, export); each adds its final outputs to `all` with add_targets().
include: "workflow/rules/products.smk"
include: "workflow/rules/share.smk"


# The default target: every final output registered with add_targets() (common.smk).
rule all:
    input:
        all_targets,
    localrule: True
