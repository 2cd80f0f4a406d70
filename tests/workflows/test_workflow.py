"""The Snakemake workflow: lint, dry runs of the shipped and split configs, config validation,
and a real tiny run of the whole chain with its HTML report."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml

from tests.workflows.conftest import REPO, snakemake, write_config

RULES = ("ingest", "fit", "reconstruct", "embed", "blur", "sample", "report")


def _job_counts(output: str) -> dict[str, int]:
    """`rule -> count` from the job-stats table a dry run prints."""
    table = output.split("Job stats:", 1)[1].split("\ntotal", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_lint_is_clean(cellvae_env):
    done = snakemake(cellvae_env, "--lint")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Congratulations, your workflow is in a good condition!" in done.stdout + done.stderr


def test_dry_run_of_shipped_config_plans_every_step(cellvae_env, tmp_path):
    import yaml

    config = yaml.safe_load((REPO / "workflows/config/config.yaml").read_text())
    runs = len(config["images"]) * len(config["presets"])
    profile = ["--profile", "workflows/profiles/local"]
    done = snakemake(cellvae_env, "-n", "-p", *profile, "--config", f"outdir={tmp_path}")
    assert done.returncode == 0, done.stderr
    counts = _job_counts(done.stdout)
    # a synthetic sample is ingested with its noise-free truth, and its blur map scored by it
    for rule in ("ingest", "blur"):
        counts[rule] = counts.get(rule, 0) + counts.pop(f"{rule}_with_truth", 0)
    assert counts["ingest"] == len(config["images"])
    for rule in RULES[1:]:
        assert counts[rule] == runs, (rule, counts)
    mito = [name for name, spec in config["images"].items() if "mito" in spec.get("sample", "")]
    assert mito, "the demo has mitochondria, whose truth the blur map is checked against"
    truth = f"{tmp_path}/{mito[0]}/truth.ome.zarr"
    assert f"--truth-out {truth}" in done.stdout
    assert re.search(
        rf"cellvae blur \S*/{mito[0]}/image.ome.zarr .*--truth {truth} --truth-map ", done.stdout
    ), done.stdout[-3000:]


def test_dry_run_splits_reconstruction_into_parts(cellvae_env, tiny_image, tmp_path):
    config = write_config(tmp_path / "c.yaml", tmp_path / "out", tiny_image, parts=3)
    done = snakemake(cellvae_env, "-n", "-p", "--configfile", str(config))
    assert done.returncode == 0, done.stderr
    counts = _job_counts(done.stdout)
    assert (counts["reconstruct_prepare"], counts["reconstruct_part"]) == (1, 3)
    assert counts["reconstruct"] == 1  # the finalize step
    for i in (1, 2, 3):
        assert f"--part {i}/3" in done.stdout
    assert "--prepare" in done.stdout and "--finalize" in done.stdout


def _refusal(done) -> str:
    """The error Snakemake printed for a refused config (its lines after the header)."""
    assert done.returncode != 0
    text = done.stdout + done.stderr
    return text[text.index("WorkflowError") :]


@pytest.mark.parametrize(
    ("embed_args", "model"),
    [
        (["--finetune", "2"], True),
        (["--finetune=600"], True),
        (["--finetune", "0"], False),
        ([], False),
    ],
)
def test_embed_declares_the_finetuned_model_only_when_it_finetunes(
    cellvae_env, tiny_image, tmp_path, embed_args, model
):
    """Declared, Snakemake removes it before a rerun of embed (which refuses an existing one)
    and counts it in the run's outputs."""
    config = write_config(tmp_path / "c.yaml", tmp_path / "out", tiny_image, embed_args=embed_args)
    done = snakemake(cellvae_env, "-n", "-p", "--configfile", str(config))
    assert done.returncode == 0, done.stderr
    (declared,) = re.findall(r"^rule embed:\n(?:    .*\n)*?    output: (.*)$", done.stdout, re.M)
    run = tmp_path / "out" / "tiny" / "small"
    expected = [f"{run}/cells.parquet"] + ([f"{run}/cells.finetuned.ckpt"] if model else [])
    assert sorted(declared.split(", ")) == sorted(expected)


def test_invalid_config_is_refused_naming_the_one_field(cellvae_env, tiny_image, tmp_path):
    config = write_config(tmp_path / "c.yaml", tmp_path / "out", tiny_image)
    text = config.read_text().replace("parts: 1", "parts: 0")
    config.write_text(text)
    message = _refusal(snakemake(cellvae_env, "-n", "--configfile", str(config)))
    assert "config: reconstruct.parts: 0 is less than the minimum of 1" in message, message
    assert len(message.splitlines()) < 6 and "$schema" not in message  # not the whole schema


def _edited(path, edit):
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c: c["presets"]["small"]["overrides"].update({"trainer.max_stepz": 3}),
            "presets.small.overrides.trainer.max_stepz: trainer has no option 'max_stepz'; "
            "did you mean trainer.max_steps?",
        ),
        (
            lambda c: c["presets"]["small"]["overrides"].update({"model.widthz": [4]}),
            "model has no option 'widthz'; did you mean model.widths?",
        ),
        (
            lambda c: c["images"]["tiny"].update({"presets": ["big"]}),
            "config: images.tiny.presets: no preset 'big'; defined: small",
        ),
        (
            lambda c: c["images"]["tiny"].update({"voxelsize": [1, 1]}),
            "config: images.tiny: unknown key(s) 'voxelsize'",
        ),
    ],
    ids=["trainer key", "model key", "image preset", "image key"],
)
def test_unknown_keys_fail_the_dry_run_in_one_line(
    cellvae_env, tiny_image, tmp_path, edit, expected
):
    config = _edited(write_config(tmp_path / "c.yaml", tmp_path / "out", tiny_image), edit)
    message = _refusal(snakemake(cellvae_env, "-n", "--configfile", str(config)))
    assert expected in message, message
    assert len(message.splitlines()) < 6, message


def test_missing_labels_file_fails_the_dry_run(cellvae_env, tiny_image, tmp_path):
    missing = tmp_path / "no_labels.tif"
    config = _edited(
        write_config(tmp_path / "c.yaml", tmp_path / "out", tiny_image),
        lambda c: c["images"]["tiny"].update({"labels": str(missing)}),
    )
    done = snakemake(cellvae_env, "-n", "--configfile", str(config))
    assert done.returncode != 0 and str(missing) in done.stdout + done.stderr


def test_mixed_2d_and_3d_images_each_run_their_own_presets(cellvae_env, tiny_image, tmp_path):
    def edit(c):
        c["images"]["stack"] = {
            "path": str(tiny_image[0]),
            "axes": "YX",
            "voxel_size": [0.2, 0.1],
            "unit": "micrometer",
            "t": 0,
            "presets": ["deep"],
        }
        c["images"]["tiny"]["presets"] = ["small"]
        c["presets"]["deep"] = {"config": "configs/3d_hier_dlogistic.yaml"}

    config = _edited(write_config(tmp_path / "c.yaml", tmp_path / "out", tiny_image), edit)
    done = snakemake(cellvae_env, "-n", "-p", "--configfile", str(config))
    assert done.returncode == 0, done.stderr[-2000:]
    counts = _job_counts(done.stdout)
    assert (counts["ingest"], counts["fit"], counts["report_without_cells"]) == (2, 2, 1)
    out = tmp_path / "out"
    assert f"{out}/stack/deep/train" in done.stdout and f"{out}/tiny/small/train" in done.stdout
    assert "stack/small" not in done.stdout and "tiny/deep" not in done.stdout
    assert "--voxel-size 0.2 0.1 --unit micrometer" in done.stdout


@pytest.fixture(scope="module")
def tiny_run(cellvae_env, tiny_image, tmp_path_factory):
    """The whole workflow, run for real on the tiny image with the local profile."""
    folder = tmp_path_factory.mktemp("tiny_run")
    out = folder / "out"
    config = write_config(folder / "c.yaml", out, tiny_image)
    args = ["--configfile", str(config)]
    done = snakemake(cellvae_env, "--profile", "workflows/profiles/local", "--cores", "2", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder, out, args


@pytest.mark.slow
def test_tiny_workflow_runs_end_to_end_with_report(cellvae_env, tiny_image, tiny_run):
    folder, out, args = tiny_run
    run = out / "tiny" / "small"
    for name in ("recon.ome.zarr", "blurmap.ome.zarr", "blur.json", "cells.parquet"):
        assert (run / name).exists(), name
    for name in ("samples.tif", "report.md", "train"):
        assert (run / name).exists(), name
    figures = {p.name for p in (run / "report_figures").glob("*.png")}
    assert figures == {
        "training.png",
        "blur.png",
        "blur_resolution.png",
        "cells.png",
        "samples.png",
    }
    cells = pd.read_parquet(run / "cells.parquet")
    labels = np.unique(tifffile.imread(tiny_image[1]))
    assert set(cells["label"]) == set(labels[labels > 0])  # one row per labelled network
    from cellvae.io.provenance import read_provenance

    assert set(cells["finetune_steps"]) == {2}  # the model that made the codes is kept
    assert read_provenance(run / "cells.parquet")["inputs"]["ckpt"] == str(
        run / "cells.finetuned.ckpt"
    )
    assert 0 < json.loads((run / "blur.json").read_text())["global_hf_ratio"] < 2
    for rule in RULES:  # a log and a benchmark per rule and run
        suffix = "tiny" if rule == "ingest" else "tiny/small"
        assert (out / "logs" / rule / f"{suffix}.log").is_file(), rule
        assert (out / "benchmarks" / rule / f"{suffix}.tsv").is_file(), rule

    again = snakemake(cellvae_env, "-n", *args)
    assert "Nothing to be done" in again.stdout + again.stderr

    html = folder / "report.html"
    made = snakemake(cellvae_env, "--report", str(html), *args)
    assert made.returncode == 0, made.stderr[-2000:]
    text = html.read_text(errors="replace")
    for caption in ("Training curves", "blur map", "principal components", "prior of preset"):
        assert caption in text, caption


@pytest.mark.slow
def test_split_reconstruction_equals_one_job_and_reruns_a_missing_part_alone(
    cellvae_env, tiny_image, tiny_run, tmp_path
):
    from cellvae.io.omezarr import open_image

    _, out, _ = tiny_run
    split = tmp_path / "out"
    for name in ("tiny/image.ome.zarr", "tiny/small/train"):  # same image, same model
        shutil.copytree(out / name, split / name)
    config = write_config(tmp_path / "c.yaml", split, tiny_image, parts=3)
    args = ["--configfile", str(config), "--cores", "2", "-p"]
    flag = split / "parts" / "tiny" / "small" / "part{}of3.done"
    # parts 1 and 3 only, as if part 2's job had died
    done = snakemake(cellvae_env, *args, str(flag).format(1), str(flag).format(3))
    assert done.returncode == 0, done.stderr[-3000:]
    recon = split / "tiny" / "small" / "recon.ome.zarr"
    done = snakemake(cellvae_env, *args, str(recon))
    assert done.returncode == 0, done.stderr[-3000:]
    counts = _job_counts(done.stdout + done.stderr)
    assert counts == {"reconstruct_part": 1, "reconstruct": 1}, counts  # part 2
    assert "--part 2/3" in done.stdout + done.stderr
    assert not list(flag.parent.glob("part*.done"))  # the parts' temporary flags are gone
    one = open_image(out / "tiny" / "small" / "recon.ome.zarr")
    three = open_image(recon)
    np.testing.assert_array_equal(np.asarray(three.array), np.asarray(one.array))


@pytest.mark.slow
def test_reordered_overrides_retrain_nothing(cellvae_env, tiny_image, tiny_run, tmp_path):
    _, out, _ = tiny_run
    config = _edited(
        write_config(tmp_path / "c.yaml", out, tiny_image),
        lambda c: c["presets"]["small"].update(
            overrides=dict(reversed(list(c["presets"]["small"]["overrides"].items())))
        ),
    )
    done = snakemake(cellvae_env, "-n", "--configfile", str(config))
    assert "Nothing to be done" in done.stdout + done.stderr, done.stdout[-2000:]


@pytest.mark.slow
def test_edited_labels_rerun_the_cell_table(cellvae_env, tiny_image, tiny_run):
    """Labels are an input of embed: editing them reruns embed (and the report), not the fit.
    Touching them without a change reruns nothing (Snakemake compares stored checksums)."""
    _, _, args = tiny_run
    labels = tiny_image[1]
    before = labels.read_bytes()
    os.utime(labels)
    touched = snakemake(cellvae_env, "-n", *args)
    assert "Nothing to be done" in touched.stdout + touched.stderr
    edited = tifffile.imread(labels)
    edited[edited == edited.max()] = 0  # the user deletes one object
    try:
        tifffile.imwrite(labels, edited)
        done = snakemake(cellvae_env, "-n", *args)
    finally:
        labels.write_bytes(before)
    output = done.stdout + done.stderr
    assert "Job stats:" in output, output[-3000:]
    counts = _job_counts(output)
    assert counts.get("embed") == 1 and "fit" not in counts, output[-2000:]


@pytest.mark.slow
def test_a_rerun_of_embed_replaces_its_finetuned_model(cellvae_env, tiny_run):
    """The fine-tuned model is an output of embed: Snakemake removes it before a rerun (embed
    refuses to replace an existing one without --overwrite), and the rerun writes it again."""
    _, out, args = tiny_run
    model = out / "tiny" / "small" / "cells.finetuned.ckpt"
    before = model.stat().st_mtime_ns
    local = ["--profile", "workflows/profiles/local", "--cores", "2"]
    done = snakemake(cellvae_env, *local, "--forcerun", "embed", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert model.stat().st_mtime_ns > before


@pytest.mark.slow
def test_split_reconstruction_reruns_after_the_image_changes(cellvae_env, tiny_image, tmp_path):
    """parts: 3, then a changed image (new model, same paths): the rerun completes and equals
    a one-job reconstruction with the new model, voxel for voxel."""
    from cellvae.inference.reconstruct import reconstruct_image
    from cellvae.io.omezarr import open_image

    image = tmp_path / "image.tif"
    shutil.copy(tiny_image[0], image)
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", out, (image, tiny_image[1]), parts=3)
    args = ["--configfile", str(config), "--cores", "2", "--profile", "workflows/profiles/local"]
    recon = out / "tiny" / "small" / "recon.ome.zarr"
    first = snakemake(cellvae_env, *args, str(recon))
    assert first.returncode == 0, first.stderr[-3000:]

    data = tifffile.imread(image)
    tifffile.imwrite(image, np.flip(data, axis=1))  # the user edits the image
    again = snakemake(cellvae_env, *args, "-p", str(recon))
    assert again.returncode == 0, again.stderr[-3000:]
    counts = _job_counts(again.stdout + again.stderr)
    assert counts["fit"] == 1 and counts["reconstruct_part"] == 3, counts

    run = out / "tiny" / "small"
    one_job = tmp_path / "one_job.ome.zarr"
    ckpt = run / "train/lightning_logs/version_0/checkpoints/last.ckpt"
    reconstruct_image(ckpt, out / "tiny/image.ome.zarr", one_job, block=32, progress=False)
    np.testing.assert_array_equal(
        np.asarray(open_image(recon).array), np.asarray(open_image(one_job).array)
    )


def test_snakefmt_is_clean():
    pytest.importorskip("snakefmt")
    import subprocess
    import sys

    files = [str(REPO / "workflows" / "Snakefile"), str(REPO / "workflows" / "rules")]
    done = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--no-format-shell", "--check", *files],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
