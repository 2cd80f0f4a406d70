# Shared names and helpers: result paths, per-step resources, option rendering.
import shlex
from pathlib import Path

from cellvae_workflow_checks import canonical_overrides

OUT = config["outdir"].rstrip("/")
IMAGES = list(config["images"])
PRESETS = list(config["presets"])
PARTS = config["reconstruct"]["parts"]
# relative preset paths are read from the repository (the folder above workflows/)
REPO = Path(workflow.basedir).parent
RUN = f"{OUT}/{{image}}/{{preset}}"  # one results folder per image and preset


def presets_of(image):
    """The presets trained on `image`: its own list, or every preset."""
    return config["images"][image].get("presets", PRESETS)


#: every (image, preset) the workflow runs
RUNS = [(image, preset) for image in IMAGES for preset in presets_of(image)]


wildcard_constraints:
    image="|".join(IMAGES),
    preset="|".join(PRESETS),


def log_of(step):
    """Per-step, per-run log file."""
    return f"{OUT}/logs/{step}/{{image}}/{{preset}}.log"


def bench_of(step):
    """Per-step, per-run benchmark table (wall time, memory)."""
    return f"{OUT}/benchmarks/{step}/{{image}}/{{preset}}.tsv"


def res(step, key):
    """A resource of `step` from config `resources`, falling back to its `default` entry."""
    table = config["resources"]
    fallback = {"threads": 1, "mem_mb": 2000, "runtime": 30, "gpus": 0}
    return table.get(step, {}).get(
        key, table.get("default", {}).get(key, fallback[key])
    )


def gpu_resources(step):
    """`gpu` (snakemake-executor-plugin-slurm's GPU request) only where the step asks for GPUs."""
    n = res(step, "gpus")
    return {"gpu": n} if n else {}


def image_zarr(image):
    return f"{OUT}/{image}/image.ome.zarr"


def run_targets(name):
    """`OUT/IMAGE/PRESET/name` of every run."""
    return [f"{OUT}/{image}/{preset}/{name}" for image, preset in RUNS]


def labels_of(image):
    """What `cellvae embed --labels` reads for `image`, or None when it has no labels."""
    spec = config["images"][image]
    if "sample" in spec:  # `cellvae ingest --sample` stores them as labels/<kind>
        kind = spec["sample"].split("_")[0]
        return f"{image_zarr(image)}/labels/{kind}"
    return spec.get("labels")


def preset_config(preset):
    """The run's own config file (an input of fit), or none for a shipped preset."""
    spec = config["presets"][preset]
    if "config" not in spec:
        return []
    path = Path(spec["config"])
    return str(path if path.is_absolute() else REPO / path)


def preset_option(preset):
    """`--preset NAME` for a preset shipped with cellvae, else `--config FILE`."""
    spec = config["presets"][preset]
    if "preset" in spec:
        return f"--preset {shlex.quote(spec['preset'])}"
    return f"--config {shlex.quote(preset_config(preset))}"


def preset_file(preset):
    """The YAML file the run's fit starts from: the user's config, or the shipped preset's."""
    spec = config["presets"][preset]
    if "preset" in spec:
        from cellvae.cli.shipped import preset_path

        return str(preset_path(spec["preset"]))
    return preset_config(preset)


def fit_overrides(preset):
    """The preset's overrides as options, in a canonical order (a reordering changes nothing)."""
    return canonical_overrides(config["presets"][preset].get("overrides", {}))


def ckpt_in(train_dir):
    """The checkpoint `cellvae fit` leaves in its run folder (one version per run, resumed
    runs included)."""
    return f"{train_dir}/lightning_logs/version_0/checkpoints/last.ckpt"


def fit_workers(preset):
    """`data.num_workers` of the preset: its override, else its config file's, else 0."""
    overrides = config["presets"][preset].get("overrides", {})
    if "data.num_workers" in overrides:
        return int(overrides["data.num_workers"])
    import yaml

    try:
        data = yaml.safe_load(Path(preset_file(preset)).read_text()).get("data") or {}
    except (OSError, AttributeError):
        return 0
    return int(data.get("num_workers") or 0)


def fit_threads(wildcards):
    """CPUs per training task: `resources.fit.threads`, else the loader's workers + 1."""
    if "threads" in config["resources"].get("fit", {}):
        return res("fit", "threads")
    return fit_workers(wildcards.preset) + 1


def fit_tasks():
    """Training processes: one per GPU (DDP) when the fit asks for several, else one."""
    return max(1, res("fit", "gpus"))


def fit_resources():
    """SLURM resources of `fit`: memory, time, GPUs, one task per GPU, and the requeue
    machinery (a warning signal before the limit, requeue allowed, the log appended)."""
    n = fit_tasks()
    extra = (
        f"--signal=USR1@{config['fit']['signal_seconds']} --requeue --open-mode=append"
    )
    resources = {
        "mem_mb": res("fit", "mem_mb"),
        "runtime": res("fit", "runtime"),
        "slurm_extra": extra,
        # fit launches its own job step (srun), so the SLURM plugin must not wrap it in one
        "mpi": 0,
        "tasks": n,
    }
    if res("fit", "gpus"):
        resources.update(gpu=n, tasks_per_gpu=1)
    return resources


def fit_devices():
    """Trainer options for N > 1 GPUs: N devices on one node, DDP (one srun task each)."""
    n = fit_tasks()
    if n == 1:
        return ""
    return f"--trainer.accelerator=gpu --trainer.devices={n} --trainer.num_nodes=1 --trainer.strategy=ddp"


LABELLED = [image for image in IMAGES if labels_of(image)]
UNLABELLED = [image for image in IMAGES if not labels_of(image)]


def ingest_source(wildcards):
    """`cellvae ingest`'s source: a bundled sample, or the image file with its axes, voxel
    size and unit."""
    spec = config["images"][wildcards.image]
    if "sample" in spec:
        return f"--sample {spec['sample']}"
    args = [shlex.quote(spec["path"])]
    if "axes" in spec:
        args.append(f"--axes {spec['axes']}")
    if "voxel_size" in spec:
        args.append("--voxel-size " + " ".join(str(v) for v in spec["voxel_size"]))
    if "unit" in spec:
        args.append(f"--unit {shlex.quote(spec['unit'])}")
    return " ".join(args)


def labels_input(wildcards):
    """The labels file `embed` reads, as an input (a bundled sample's are in its image)."""
    spec = config["images"][wildcards.image]
    return [spec["labels"]] if "labels" in spec else []


def embed_finetunes():
    """Whether the `embed` args fine-tune the model first (`--finetune N`, N > 0), read by
    `cellvae embed`'s own parser: then embed also writes the fine-tuned model beside the
    table (`cells.finetuned.ckpt`), which the table names as its checkpoint."""
    import argparse

    from cellvae.cli.embed import add_arguments

    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    add_arguments(parser)
    required = ["image", "--ckpt", "c", "--labels", "l", "-o", "o"]
    try:
        known, _ = parser.parse_known_args(required + list(config["embed"]["args"]))
    except (argparse.ArgumentError, SystemExit):
        return False  # not a number: the embed job says so in one line
    return known.finetune > 0


def embed_outputs():
    """`embed`'s outputs beside the table: the fine-tuned model when it fine-tunes."""
    return {"model": f"{RUN}/cells.finetuned.ckpt"} if embed_finetunes() else {}


def embed_time(wildcards):
    t = config["images"][wildcards.image].get("t")
    return "" if t is None else f"--t {t}"


#: images whose bundled sample is synthetic: `cellvae ingest --truth-out` writes its truth
SYNTHETIC = [
    image
    for image, spec in config["images"].items()
    if spec.get("sample", "").startswith("mitochondria")
]
#: images scored against a noise-free truth (given as `truth:`, or the synthetic sample's)
WITH_TRUTH = [
    image
    for image, spec in config["images"].items()
    if "truth" in spec or image in SYNTHETIC
]
WITHOUT_TRUTH = [image for image in IMAGES if image not in WITH_TRUTH]


def truth_zarr(image):
    return f"{OUT}/{image}/truth.ome.zarr"


def truth_input(wildcards):
    """The clean reference `cellvae blur --truth` compares with, when the image has one."""
    spec = config["images"][wildcards.image]
    if "truth" in spec:
        return [spec["truth"]]
    return [truth_zarr(wildcards.image)] if wildcards.image in SYNTHETIC else []


def truth_option(wildcards, input, output):
    if not input.truth:
        return ""
    return (
        f"--truth {shlex.quote(input.truth[0])}"
        f" --truth-map {shlex.quote(output.truth_map)}"
    )


def ingest_inputs(wildcards):
    spec = config["images"][wildcards.image]
    return [spec["path"]] if "path" in spec else []


def recon_inputs(wildcards):
    run = f"{OUT}/{wildcards.image}/{wildcards.preset}"
    return {"image": image_zarr(wildcards.image), "train": f"{run}/train"}


def ckpt_param(wildcards, input):
    return ckpt_in(input.train)


def run_folder(wildcards, output):
    return str(Path(output.report).parent)


def figure(name, what):
    """A figure of `cellvae report`, marked for Snakemake's HTML report with its caption."""
    return report(
        f"{RUN}/report_figures/{name}.png",
        caption=f"../report/{name}.rst",
        category="{image}",
        subcategory="{preset}",
        labels={"image": "{image}", "preset": "{preset}", "figure": what},
    )
