# Simulation: one rule per batch of missing points (BATCHES, common.smk), defined in a loop with
# the `name:` directive. A batch job simulates its points in one process (one QuTiP import)
# and writes each point file atomically as soon as it is done; its outputs are exactly its
# points' files. Its console entry is one line (message:) saying how many points of which
# sweeps it computes, not its hundreds of output files.


onstart:
    write_batch_plan(PLAN_FILE, BATCHES)
    status.write_run_info(RUN_FILE, STUDY.sweep_points, BATCHES, STUDY.points)


for batch, ids in BATCHES.items():

    rule:
        name:
            batch
        output:
            [point_file(p) for p in ids],
        log:
            f"logs/simulate/{batch}.log",
        benchmark:
            f"logs/benchmarks/{batch}.tsv"
        conda:
            "../../envs/qbcat.yaml"
        threads: 1
        resources:
            **batch_resources(ids),
        params:
            points=[STUDY.points[p] for p in ids],
            sanity=STUDY.sanity,
            version=QBCAT_VERSION,
        message:
            batch_message(batch, ids)
        script:
            "../../scripts/simulate_batch.py"
