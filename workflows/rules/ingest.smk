rule ingest:
    """Convert the image (or write the bundled sample and its labels) to OME-Zarr 0.5."""
    input:
        ingest_inputs,
    output:
        image=directory(f"{OUT}/{{image}}/image.ome.zarr"),
    log:
        f"{OUT}/logs/ingest/{{image}}.log",
    benchmark:
        f"{OUT}/benchmarks/ingest/{{image}}.tsv"
    wildcard_constraints:
        image="|".join(i for i in IMAGES if i not in SYNTHETIC) or "(?!)",
    conda:
        "../envs/cellvae.yaml"
    threads: res("ingest", "threads")
    resources:
        mem_mb=res("ingest", "mem_mb"),
        runtime=res("ingest", "runtime"),
    params:
        source=ingest_source,
        truth="",
    shell:
        "cellvae ingest {params.source} -o {output.image} {params.truth} --no-progress > {log} 2>&1"


use rule ingest as ingest_with_truth with:
    output:
        image=directory(f"{OUT}/{{image}}/image.ome.zarr"),
        truth=directory(f"{OUT}/{{image}}/truth.ome.zarr"),
    wildcard_constraints:
        image="|".join(SYNTHETIC) or "(?!)",
    params:
        source=ingest_source,
        truth=lambda wildcards, output: f"--truth-out {output.truth}",
