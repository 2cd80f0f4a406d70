rule ingest:
    """Convert the image (or write the bundled sample and its labels) to OME-Zarr 0.5."""
    input:
        ingest_inputs,
    output:
        directory(f"{OUT}/{{image}}/image.ome.zarr"),
    log:
        f"{OUT}/logs/ingest/{{image}}.log",
    benchmark:
        f"{OUT}/benchmarks/ingest/{{image}}.tsv"
    conda:
        "../envs/cellvae.yaml"
    threads: res("ingest", "threads")
    resources:
        mem_mb=res("ingest", "mem_mb"),
        runtime=res("ingest", "runtime"),
    params:
        source=ingest_source,
    shell:
        "cellvae ingest {params.source} -o {output} --no-progress > {log} 2>&1"
