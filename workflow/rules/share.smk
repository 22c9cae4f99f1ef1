# Sharing: the effective config next to the results, the manifest of every shared product
# (results/manifest.json, built last: it checksums them) and, on request only, one archive:
#   snakemake export    ->  results/qbcat-results.tar.gz  (qbcat.data.share.export; not part of `all`)
# `qbcat verify results` checks a results folder (or an unpacked archive) against its manifest.
# Reads, from the files the Snakefile includes before it: PLAN, the plan of the products
# (products.smk, qbcat.workflow.plan.ProductPlan: the shared files by rule, the manifest's inputs), and
# add_targets and QBCAT_VERSION (common.smk).
import os

import yaml

from qbcat.workflow import plan
from qbcat.atomic import write_text

add_targets(lambda: PLAN.share_targets)


# The config the results were made with, schema defaults filled in: rerunning the workflow with
# it (--configfile results/config/config.yaml --replace-workflow-config) remakes them.
rule study_config:
    output:
        plan.STUDY_CONFIG,
    log:
        "logs/share/study_config.log",
    localrule: True
    params:
        config=config,
        version=QBCAT_VERSION,
    run:
        write_text(yaml.safe_dump(params.config, sort_keys=False), output[0])


rule manifest:
    input:
        unpack(lambda wildcards: PLAN.manifest_input),
    output:
        plan.MANIFEST,
    log:
        "logs/share/manifest.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        produced_by=PLAN.manifest_rules,
        include_points=config["share"]["include_points"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/write_manifest.py"


rule export:
    input:
        manifest=plan.MANIFEST,
        config=plan.STUDY_CONFIG,
    output:
        "results/qbcat-results.tar.gz",
    log:
        "logs/share/export.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        results=lambda wildcards, input: os.path.dirname(input.manifest),
        version=QBCAT_VERSION,
    # tee: the note naming share: keys still at their defaults is shown, not only logged
    shell:
        "qbcat export --results {params.results} --config {input.config} -o {output} 2>&1 | tee {log}"
