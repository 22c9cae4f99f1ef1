# Helpers and target functions of the qbcat workflow.
#
# Everything that decides what runs is computed here, once, when Snakemake reads the workflow:
#   config -> STUDY (qbcat.workflow.configuration.load_config: schema, then semantic checks): sweeps and points
#   points without a file in results/points -> BATCHES of at most batch_size points
# simulate.smk defines one rule per batch, whose outputs are exactly its points' files; point
# files that exist are plain inputs of the aggregation (no rule makes them), so a re-run with
# nothing changed runs nothing and a new point runs only its own batch.
import sys
from pathlib import Path

import qbcat
from qbcat.workflow import status
from qbcat.data.aggregate import POOL_MIN_FILES
from qbcat.data.datasets import SHARE_DEFAULTS
from qbcat.workflow.batches import (
    partition,
    read_batch_plan,
    runtime_minutes,
    write_batch_plan,
)
from qbcat.workflow.configuration import ConfigError, load_config
from qbcat.workflow.study import (
    Study,
    failed_points,
    missing_points,
    point_path,
    write_index,
)

# In every rule's params: Snakemake does not track changes to imported modules.
QBCAT_VERSION = qbcat.__version__
POINT_DIR = "results/points"
SCHEMA = Path(workflow.basedir, "config", "schema.yaml")
# Batches of the current run, written when jobs start (onstart, simulate.smk), and what
# `qbcat status` reads besides the point files (start time, sweeps' points, estimates).
PLAN_FILE = Path(".snakemake", "qbcat", "batch-plan.json")
RUN_FILE = status.RUN_FILE

try:
    STUDY = load_config(config, SCHEMA, workflow.configfiles)
except ConfigError as exc:
    sys.exit(f"qbcat: bad config: {exc}")

# Who made and shares the data (config `share:`): in the params of the rules that write shared
# datasets (aggregation, steady maps), so that editing them rewrites those, never a point.
SHARE_METADATA = {k: v for k, v in config["share"].items() if k in SHARE_DEFAULTS}

# With allow_gaps, points whose last attempt failed are not retried (they become NaN gaps).
FAILED = failed_points(POINT_DIR) if STUDY.allow_gaps else set()


def parallel_slots():
    """Jobs that can run at once: --jobs (cluster, or local -j), else --cores."""
    return workflow.nodes or workflow.global_resources["_cores"].value or 1


def batch_resources(ids):
    res = STUDY.resources["simulate"]
    return {"mem_mb": res["mem_mb"], "runtime": runtime_minutes(len(ids), res)}


def batch_message(name, ids):
    """The one line the console shows for a batch job, instead of its hundreds of files."""
    cpu_s = sum(status.estimate_point_seconds(STUDY.points[p]) for p in ids)
    return status.describe_batch(
        ids, STUDY.membership, f"logs/simulate/{name}.log", cpu_s
    )


if workflow.is_main_process:
    MISSING = missing_points(STUDY, POINT_DIR)
    BATCHES = partition(
        [p for p in MISSING if p not in FAILED],
        STUDY.batch_size,
        parallel_slots(),
    )
    # What the run will cost, before it starts (also in a dry run): points present and to
    # compute, estimated CPU time, warnings for out-of-proportion points or batches.
    for _line in status.cost_report(
        STUDY.points,
        [p for ids in BATCHES.values() for p in ids],
        present=len(STUDY.points) - len(MISSING),
        gaps=len(FAILED.intersection(MISSING)),
        batches=BATCHES,
        runtime_min={
            name: batch_resources(ids)["runtime"] for name, ids in BATCHES.items()
        },
        n_sweeps=len(STUDY.sweeps),
    ):
        print(_line, file=sys.stderr)
else:
    # A job step (e.g. a cluster job) reads the workflow again while other batches' points may
    # already exist: it must define the batch rules of the run that submitted it.
    BATCHES = {
        name: ids
        for name, ids in read_batch_plan(PLAN_FILE).items()
        if all(p in STUDY.points for p in ids)
    }


def point_file(pid):
    return point_path(POINT_DIR, pid)


def sweep_point_files(wildcards):
    """The point files a sweep's dataset is stacked from (gaps left out with allow_gaps)."""
    return [
        point_file(p) for p in STUDY.sweep_points[wildcards.sweep] if p not in FAILED
    ]


def aggregate_threads(wildcards):
    """The cores an aggregation job takes: config aggregate.threads for a sweep large enough
    for reader processes (qbcat.data.aggregate.POOL_MIN_FILES point files), else 1, so that the
    small sweeps of a study aggregate side by side."""
    n_files = len(STUDY.sweep_points[wildcards.sweep])
    return config["aggregate"]["threads"] if n_files >= POOL_MIN_FILES else 1


def sweep_spec(wildcards):
    """The sweep's definition (axes and fixed parameters): a config edit that changes it
    reruns the aggregation, one that does not (e.g. plots) leaves it alone."""
    return STUDY.sweeps[wildcards.sweep].to_spec()


def sweep_name_pattern():
    return "|".join(STUDY.sweeps) or "(?!)"


# The `all` target (Snakefile) is whatever these functions return; rule files add theirs.
TARGET_FUNCTIONS = []


def add_targets(function):
    """Register a function () -> list of paths as final outputs of `snakemake` (rule all)."""
    TARGET_FUNCTIONS.append(function)


def all_targets(wildcards):
    return [path for function in TARGET_FUNCTIONS for path in function()]


def sweep_datasets():
    return expand("results/sweeps/{sweep}.nc", sweep=STUDY.sweeps)


def point_index():
    return ["results/points/index.csv"]


add_targets(sweep_datasets)
add_targets(point_index)
