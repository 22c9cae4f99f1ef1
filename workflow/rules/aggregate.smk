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
    threads: config["aggregate"]["threads"]
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


rule point_index:
    input:
        # the sweep datasets, not the point files: the study's points are the sweeps' points,
        # and asking for every missing point file a second time would double Snakemake's
        # search for its producer (the DAG's largest cost on large maps, benchmarks/README.md)
        sweep_datasets(),
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
