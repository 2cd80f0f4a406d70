# `cellvae report` writes report.md and its figures; the figures are also marked for
# Snakemake's HTML report (`snakemake ... --report report.html`), with the captions in report/.
rule report:
    """The run report of one image x preset (training, blur, cells, samples)."""
    input:
        train=f"{RUN}/train",
        recon=f"{RUN}/recon.ome.zarr",
        blur=f"{RUN}/blur.json",
        samples=f"{RUN}/samples.tif",
        cells=f"{RUN}/cells.parquet",
    output:
        report=f"{RUN}/report.md",
        training=figure("training", "training curves"),
        blur=figure("blur", "original / reconstruction / blur map"),
        samples=figure("samples", "prior samples"),
        cells=figure("cells", "embedding scatter"),
    log:
        log_of("report"),
    benchmark:
        bench_of("report")
    wildcard_constraints:
        image="|".join(LABELLED) or "(?!)",
    conda:
        "../envs/cellvae.yaml"
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
    params:
        run=run_folder,
    shell:
        "cellvae report {params.run} > {log} 2>&1"


use rule report as report_without_cells with:
    input:
        train=f"{RUN}/train",
        recon=f"{RUN}/recon.ome.zarr",
        blur=f"{RUN}/blur.json",
        samples=f"{RUN}/samples.tif",
    output:
        report=f"{RUN}/report.md",
        training=figure("training", "training curves"),
        blur=figure("blur", "original / reconstruction / blur map"),
        samples=figure("samples", "prior samples"),
    wildcard_constraints:
        image="|".join(UNLABELLED) or "(?!)",
