# Shared names and helpers: result paths, per-step resources, option rendering.
import json
from pathlib import Path

OUT = config["outdir"].rstrip("/")
IMAGES = list(config["images"])
PRESETS = list(config["presets"])
PARTS = config["reconstruct"]["parts"]
# relative preset paths are read from the repository (the folder above workflows/)
REPO = Path(workflow.basedir).parent
RUN = f"{OUT}/{{image}}/{{preset}}"  # one results folder per image and preset


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
    return table.get(step, {}).get(key, table.get("default", {}).get(key, fallback[key]))


def gpu_resources(step):
    """`gpu` (snakemake-executor-plugin-slurm's GPU request) only where the step asks for GPUs."""
    n = res(step, "gpus")
    return {"gpu": n} if n else {}


def image_zarr(image):
    return f"{OUT}/{image}/image.ome.zarr"


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
        return f"--preset {spec['preset']}"
    return f"--config {preset_config(preset)}"


def option_value(value):
    """A YAML/JSON scalar or list as LightningCLI reads it on the command line."""
    return value if isinstance(value, str) else json.dumps(value)


def fit_overrides(preset):
    items = config["presets"][preset].get("overrides", {}).items()
    return " ".join(f"'--{key}={option_value(value)}'" for key, value in items)


def ckpt_in(train_dir):
    """The checkpoint `cellvae fit` leaves in the workflow's fixed log folder."""
    return f"{train_dir}/lightning_logs/version_0/checkpoints/last.ckpt"


LABELLED = [image for image in IMAGES if labels_of(image)]
UNLABELLED = [image for image in IMAGES if not labels_of(image)]


def ingest_source(wildcards):
    """`cellvae ingest`'s source: a bundled sample, or the image file with its axes."""
    spec = config["images"][wildcards.image]
    if "sample" in spec:
        return f"--sample {spec['sample']}"
    axes = f" --axes {spec['axes']}" if "axes" in spec else ""
    return f"'{spec['path']}'{axes}"


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
