rule embed:
    """One row per labelled cell: latent mean and log-variance, size, PCA coordinates; with
    `--finetune N` also the fine-tuned model that made them (the table's checkpoint)."""
    input:
        image=lambda wildcards: image_zarr(wildcards.image),
        train=f"{RUN}/train",
        labels=labels_input,
    output:
        **embed_outputs(),
        cells=f"{RUN}/cells.parquet",
    log:
        log_of("embed"),
    benchmark:
        bench_of("embed")
    wildcard_constraints:
        image="|".join(LABELLED) or "(?!)",
    conda:
        "../envs/cellvae.yaml"
    threads: res("embed", "threads")
    resources:
        **gpu_resources("embed"),
        mem_mb=res("embed", "mem_mb"),
        runtime=res("embed", "runtime"),
    params:
        ckpt=ckpt_param,
        labels=lambda wildcards: labels_of(wildcards.image),
        t=embed_time,
        args=" ".join(config["embed"]["args"]),
    shell:
        "cellvae embed --ckpt {params.ckpt} {input.image} --labels {params.labels}"
        " -o {output.cells} {params.t} {params.args} --no-progress > {log} 2>&1"


rule blur:
    """Where the reconstruction lost fine structure: a blur map and a JSON summary."""
    input:
        image=lambda wildcards: image_zarr(wildcards.image),
        recon=f"{RUN}/recon.ome.zarr",
        truth=truth_input,
    output:
        blurmap=directory(f"{RUN}/blurmap.ome.zarr"),
        summary=f"{RUN}/blur.json",
    log:
        log_of("blur"),
    benchmark:
        bench_of("blur")
    wildcard_constraints:
        image="|".join(WITHOUT_TRUTH) or "(?!)",
    conda:
        "../envs/cellvae.yaml"
    threads: res("blur", "threads")
    resources:
        mem_mb=res("blur", "mem_mb"),
        runtime=res("blur", "runtime"),
    params:
        truth=truth_option,
        args=" ".join(config["blur"]["args"]),
    shell:
        "cellvae blur {input.image} {input.recon} -o {output.blurmap}"
        " --summary {output.summary} {params.truth} {params.args} > {log} 2>&1"


use rule blur as blur_with_truth with:
    output:
        blurmap=directory(f"{RUN}/blurmap.ome.zarr"),
        summary=f"{RUN}/blur.json",
        truth_map=directory(f"{RUN}/blurmap_truth.ome.zarr"),
    wildcard_constraints:
        image="|".join(WITH_TRUTH) or "(?!)",


rule sample:
    """Images drawn from the model's prior."""
    input:
        train=f"{RUN}/train",
    output:
        samples=f"{RUN}/samples.tif",
    log:
        log_of("sample"),
    benchmark:
        bench_of("sample")
    conda:
        "../envs/cellvae.yaml"
    threads: res("sample", "threads")
    resources:
        mem_mb=res("sample", "mem_mb"),
        runtime=res("sample", "runtime"),
    params:
        ckpt=ckpt_param,
        n=config["sample"]["n"],
    shell:
        "cellvae sample --ckpt {params.ckpt} -n {params.n} -o {output.samples} > {log} 2>&1"
