rule fit:
    """Train the preset's VAE on the image; the log folder is fixed so the checkpoint is known."""
    input:
        image=f"{OUT}/{{image}}/image.ome.zarr",
        config=lambda wildcards: preset_config(wildcards.preset),
    output:
        train=directory(f"{RUN}/train"),
    params:
        preset=lambda wildcards: preset_option(wildcards.preset),
        overrides=lambda wildcards: fit_overrides(wildcards.preset),
    conda:
        "../envs/cellvae.yaml"
    log:
        log_of("fit"),
    benchmark:
        bench_of("fit")
    threads: res("fit", "threads")
    resources:
        mem_mb=res("fit", "mem_mb"),
        runtime=res("fit", "runtime"),
        **gpu_resources("fit"),
    shell:
        "cellvae fit {params.preset} '--data.paths=[{input.image}]'"
        " --trainer.default_root_dir={output.train}"
        " --trainer.logger=lightning.pytorch.loggers.CSVLogger"
        " --trainer.logger.save_dir={output.train} --trainer.logger.version=0"
        " --trainer.enable_progress_bar=false {params.overrides} > {log} 2>&1"
