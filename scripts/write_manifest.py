"""Snakemake entry script: write ``results/manifest.json`` (see qbcat.data.manifest).

Intended rule (the output's folder is the results folder unless ``params.results`` says otherwise):

    rule manifest:
        input:
            aggregate_sweep=expand("results/sweeps/{sweep}.nc", sweep=SWEEPS),
            plot_sweep=expand("results/figures/{sweep}.png", sweep=SWEEPS),
            claims="results/claims.md",
        output: "results/manifest.json"
        script: "../../scripts/write_manifest.py"  # from workflow/rules/

Each named input lists files made by the rule of that name, which is what the manifest records
as their producer; ``params.produced_by`` (a {path: rule} mapping) overrides that, and
``params.include_points`` (default false) also checksums every point dataset.
"""

from pathlib import Path

from qbcat.data.manifest import write_manifest


def produced_by_from(smk) -> dict:
    """{path: rule} from params.produced_by if given, else from the named inputs."""
    explicit = getattr(smk.params, "produced_by", None)
    if explicit:
        return dict(explicit)
    mapping = {}
    for rule, files in smk.input.items():
        for f in [files] if isinstance(files, str) else files:
            mapping[str(f)] = rule
    return mapping


def main(smk) -> None:
    output = Path(smk.output[0])
    results = getattr(smk.params, "results", None) or output.parent
    write_manifest(results, produced_by_from(smk),
                   include_points=bool(getattr(smk.params, "include_points", False)), output=output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake)
