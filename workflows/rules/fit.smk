# Training. `cellvae fit` runs in a work folder beside the declared output, which Snakemake
# never deletes: a job ended by its time limit, a preemption or `scontrol requeue` resumes
# there (`--ckpt_path auto`: the newest valid checkpoint) when SLURM requeues it (the folder
# records the SLURM job id it belongs to: Snakemake does not pass SLURM_RESTART_COUNT on) or
# Snakemake retries it; only a fresh job starts it over. `train.work/fit.log` keeps the output
# of every run of the job (Snakemake restarts the rule's log). On success the folder becomes
# the output `train/`. Under SLURM the fit is its own job step (srun), so the
# warning signal before the time limit (`fit.signal_seconds`) reaches only `cellvae fit`,
# which saves, asks SLURM to requeue and stops (cellvae.training.requeue); with
# `resources.fit.gpus: N > 1` the step is N DDP tasks, one per GPU.
rule fit:
    """Train the preset's VAE on the image; requeued and resumed on SLURM, not restarted."""
    input:
        image=f"{OUT}/{{image}}/image.ome.zarr",
        config=lambda wildcards: preset_config(wildcards.preset),
    output:
        train=directory(f"{RUN}/train"),
    log:
        log_of("fit"),
    benchmark:
        bench_of("fit")
    conda:
        "../envs/cellvae.yaml"
    threads: fit_threads
    resources:
        **fit_resources(),
        attempt=lambda wildcards, attempt: attempt,  # 1: a fresh job, > 1: a retry
    params:
        preset=lambda wildcards: preset_option(wildcards.preset),
        overrides=lambda wildcards: fit_overrides(wildcards.preset),
        devices=fit_devices(),
        work=f"{RUN}/train.work",
        tasks=fit_tasks(),
        stage=int(config["fit"]["stage_data"]),
    shell:
        """
        work={params.work:q}
        job=${{SLURM_JOB_ID:-local}}
        if [ {resources.attempt} = 1 ] && [ "$(cat "$work/.slurm_job" 2>/dev/null)" != "$job" ]; then
          rm -rf "$work"  # a fresh job: neither a retry nor a requeue of the one that wrote it
        fi
        mkdir -p "$work"
        echo "$job" > "$work/.slurm_job"
        echo "fit: job $job attempt {resources.attempt} $(date -u +%FT%TZ)" | tee -a "$work/fit.log" >> {log:q}
        data={input.image:q}
        if [ {params.stage} = 1 ]; then
          scratch=$(mktemp -d "${{SLURM_TMPDIR:-${{TMPDIR:-/tmp}}}}/cellvae-stage.XXXXXX")
          trap 'rm -rf "$scratch"' EXIT
          cp -r "$data" "$scratch/" && data="$scratch/$(basename "$data")"
          echo "fit: training from a copy in $data" >> {log:q}
        fi
        launch=""
        if [ -n "${{SLURM_JOB_ID:-}}" ]; then
          launch="srun --ntasks={params.tasks} --kill-on-bad-exit=1"
        fi
        $launch cellvae fit {params.preset} "--data.paths=[$data]" \
          --trainer.default_root_dir="$work" --ckpt_path auto \
          --trainer.enable_progress_bar=false {params.devices} {params.overrides} 2>&1 \
          | tee -a "$work/fit.log" >> {log:q}
        rm -rf {output.train:q}
        mv "$work" {output.train:q}
        """
