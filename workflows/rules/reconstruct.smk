# Reconstruction of the whole image. With `reconstruct.parts: N > 1` it is N jobs (a SLURM
# array under the slurm profile): `--prepare` creates the output, each `--part I/N` writes its
# own disjoint share of the blocks, `--finalize` checks all are there, builds the pyramid and
# gives the output its final name. A part that dies is rerun alone: the others keep their
# `.done` flags (kept until the output is final; the `prepared` flag stays, so rerunning one
# part never makes the others look out of date). With N = 1 it is one plain `cellvae reconstruct`.
# The split steps pass --overwrite: they run because something upstream changed, so an
# existing recon.ome.zarr is stale and the finalize step replaces it. Finished blocks are
# reused only under the same checkpoint bytes, image and options (a retrained model or a
# changed image rewrites them).
RECON_ARGS = " ".join(config["reconstruct"]["args"])
PART_FLAG = f"{OUT}/parts/{{image}}/{{preset}}/part{{part}}of{PARTS}.done"


if PARTS == 1:

    rule reconstruct:
        """Reconstruct the whole image tile by tile in one job."""
        input:
            unpack(recon_inputs),
        output:
            recon=directory(f"{RUN}/recon.ome.zarr"),
        log:
            log_of("reconstruct"),
        benchmark:
            bench_of("reconstruct")
        conda:
            "../envs/cellvae.yaml"
        threads: res("reconstruct", "threads")
        resources:
            **gpu_resources("reconstruct"),
            mem_mb=res("reconstruct", "mem_mb"),
            runtime=res("reconstruct", "runtime"),
        params:
            ckpt=ckpt_param,
            args=RECON_ARGS,
        shell:
            "cellvae reconstruct --ckpt {params.ckpt} {input.image} -o {output.recon}"
            " {params.args} --no-progress > {log} 2>&1"

else:

    rule reconstruct_prepare:
        """Create the empty output that the parts write into."""
        input:
            unpack(recon_inputs),
        output:
            flag=f"{OUT}/parts/{{image}}/{{preset}}/prepared.done",
        log:
            log_of("reconstruct_prepare"),
        benchmark:
            bench_of("reconstruct_prepare")
        conda:
            "../envs/cellvae.yaml"
        threads: 1
        resources:
            mem_mb=res("reconstruct", "mem_mb"),
            runtime=res("default", "runtime"),
        params:
            ckpt=ckpt_param,
            recon=f"{RUN}/recon.ome.zarr",
            args=RECON_ARGS,
        shell:
            "cellvae reconstruct --ckpt {params.ckpt} {input.image} -o {params.recon}"
            " {params.args} --prepare --overwrite > {log} 2>&1 && touch {output.flag}"

    rule reconstruct_part:
        """Write part I of N of the reconstruction's blocks (never another part's)."""
        input:
            unpack(recon_inputs),
            prepared=rules.reconstruct_prepare.output.flag,
        output:
            flag=temp(PART_FLAG),
        log:
            f"{OUT}/logs/reconstruct_part/{{image}}/{{preset}}/part{{part}}.log",
        benchmark:
            f"{OUT}/benchmarks/reconstruct_part/{{image}}/{{preset}}/part{{part}}.tsv"
        wildcard_constraints:
            part=r"\d+",
        conda:
            "../envs/cellvae.yaml"
        threads: res("reconstruct", "threads")
        resources:
            **gpu_resources("reconstruct"),
            mem_mb=res("reconstruct", "mem_mb"),
            runtime=res("reconstruct", "runtime"),
        params:
            ckpt=ckpt_param,
            recon=f"{RUN}/recon.ome.zarr",
            args=RECON_ARGS,
            parts=PARTS,
        shell:
            "cellvae reconstruct --ckpt {params.ckpt} {input.image} -o {params.recon}"
            " {params.args} --part {wildcards.part}/{params.parts} --overwrite --no-progress"
            " > {log} 2>&1"
            " && touch {output.flag}"

    rule reconstruct:
        """Check every block is written, build the pyramid, mark the output complete."""
        input:
            unpack(recon_inputs),
            parts=expand(PART_FLAG, part=range(1, PARTS + 1), allow_missing=True),
        output:
            recon=directory(f"{RUN}/recon.ome.zarr"),
        log:
            log_of("reconstruct"),
        benchmark:
            bench_of("reconstruct")
        conda:
            "../envs/cellvae.yaml"
        threads: res("reconstruct", "threads")
        resources:
            mem_mb=res("reconstruct", "mem_mb"),
            runtime=res("reconstruct", "runtime"),
        params:
            ckpt=ckpt_param,
            args=RECON_ARGS,
        shell:
            "cellvae reconstruct --ckpt {params.ckpt} {input.image} -o {output.recon}"
            " {params.args} --finalize --overwrite --no-progress > {log} 2>&1"
