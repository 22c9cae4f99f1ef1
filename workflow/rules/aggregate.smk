# Aggregation: one dataset per sweep, results/sweeps/{sweep}.nc, stacked lazily (dask) from the
# sweep's point files; and the point index.


rule aggregate_sweep:
    input:
        points=sweep_point_files,
    output:
        "results/sweeps/{sweep}.nc",
    log:
        "logs/aggregate/{sweep}.log",
    benchmark:
        "logs/benchmarks/aggregate_{sweep}.tsv"
    wildcard_constraints:
        sweep=sweep_name_pattern(),
    conda:
        "../../envs/qbcat.yaml"
    threads: aggregate_threads
    resources:
        mem_mb=config["resources"]["aggregate"]["mem_mb"],
        runtime=config["resources"]["aggregate"]["runtime_min"],
    params:
        sweep=sweep_spec,
        allow_gaps=config["allow_gaps"],
        fail_on_cutoff=config["fail_on_cutoff"],
        chunk_mb=config["aggregate"]["chunk_mb"],
        sanity=STUDY.sanity,
        share=SHARE_METADATA,
        version=QBCAT_VERSION,
    message:
        "aggregate sweep {wildcards.sweep} into {output}"
    script:
        "../../scripts/aggregate_sweep.py"


# The index is the study's points, their files' paths and their parameters: a function of the
# config alone (params), so it needs no input and is written at the start of a run. Asking for
# every point file here would double Snakemake's search for the producer of each missing one
# (the DAG's largest cost on large maps, benchmarks/README.md).
rule point_index:
    output:
        "results/points/index.csv",
    log:
        "logs/point_index.log",
    localrule: True
    params:
        study=STUDY.to_spec(),
        version=QBCAT_VERSION,
    message:
        "index the study's points in {output}"
    run:
        write_index(Study.from_spec(params.study), output[0], POINT_DIR, log[0])
