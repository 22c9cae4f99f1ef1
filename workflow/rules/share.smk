# Sharing: the effective config next to the results, the manifest of every shared product
# (results/manifest.json, built last: it checksums them) and, on request only, one archive:
#   snakemake export    ->  results/qbcat-results.tar.gz  (qbcat.share.export; not part of `all`)
# `qbcat verify results` checks a results folder (or an unpacked archive) against its manifest.
import os

import yaml

from qbcat.atomic import write_text

STUDY_CONFIG = "results/config/config.yaml"
# The manifest's inputs: every shared product by the rule that makes it, and the convergence
# gate (not a shared file: it only makes the manifest wait for the verdict).
MANIFEST_INPUT = {
    "aggregate_sweep": sweep_datasets(),
    "study_config": [STUDY_CONFIG],
    **PRODUCTS_BY_RULE,
    "convergence_gate": [CONV_VERDICT] if CONV_POINTS else [],
}
MANIFEST_RULES = {
    path: rule
    for rule, paths in MANIFEST_INPUT.items()
    if rule != "convergence_gate"
    for path in paths
}

if PRODUCTS:
    add_targets(lambda: [STUDY_CONFIG, "results/manifest.json"])


# The config the results were made with, schema defaults filled in: rerunning the workflow with
# it (--configfile results/config/config.yaml --replace-workflow-config) remakes them.
rule study_config:
    output:
        STUDY_CONFIG,
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
        unpack(lambda wildcards: MANIFEST_INPUT),
    output:
        "results/manifest.json",
    log:
        "logs/share/manifest.log",
    conda:
        "../../envs/qbcat.yaml"
    params:
        produced_by=MANIFEST_RULES,
        include_points=config["share"]["include_points"],
        version=QBCAT_VERSION,
    script:
        "../../scripts/write_manifest.py"


rule export:
    input:
        manifest="results/manifest.json",
        config=STUDY_CONFIG,
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
