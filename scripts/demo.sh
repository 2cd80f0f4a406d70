#!/usr/bin/env bash
# `make demo`: the whole cellvae chain on bundled and generated samples, on CPU, in minutes.
#
#   ingest -> fit -> reconstruct -> embed -> blur -> sample -> report
#
# Every step is one `cellvae` command, printed before it runs, so you can rerun any of them by
# hand. Outputs go under runs/demo/ (override with CELLVAE_DEMO_DIR); inputs under data/generated/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

RUN=${CELLVAE_DEMO_DIR:-runs/demo}
DATA=data/generated
STEPS=${CELLVAE_DEMO_STEPS:-300}
mkdir -p "$RUN" "$DATA"

step() { printf '\n==> %s\n' "$1"; shift; printf '    $ %s\n' "$*"; "$@"; }

step "1/7 ingest the real 2D nuclei sample (stardist wheel) with its labels" \
  cellvae ingest --sample nuclei_2d -o "$DATA/nuclei2d.ome.zarr" --overwrite
step "    ingest generated 2D mitochondria (thin tubules with known ground truth)" \
  cellvae ingest --sample mitochondria_2d -o "$DATA/mito2d.ome.zarr" --overwrite

step "2/7 fit a hierarchical VAE with a discretized logistic likelihood" \
  cellvae fit --config configs/2d_hier_dlogistic.yaml \
  --data.paths "[$DATA/nuclei2d.ome.zarr]" \
  --trainer.max_steps "$STEPS" --trainer.default_root_dir "$RUN/train"

CKPT=$(ls -t "$RUN"/train/lightning_logs/version_*/checkpoints/*.ckpt | head -n 1)
printf '\n    checkpoint: %s\n' "$CKPT"

step "3/7 reconstruct the whole image tile by tile" \
  cellvae reconstruct --ckpt "$CKPT" "$DATA/nuclei2d.ome.zarr" -o "$RUN/recon.ome.zarr" --overwrite

step "4/7 embed every labelled nucleus in the latent space" \
  cellvae embed --ckpt "$CKPT" "$DATA/nuclei2d.ome.zarr" \
  --labels "$DATA/nuclei2d.ome.zarr/labels/nuclei" -o "$RUN/cells.parquet" --overwrite

step "5/7 map where the reconstruction lost fine structure" \
  cellvae blur "$DATA/nuclei2d.ome.zarr" "$RUN/recon.ome.zarr" \
  -o "$RUN/blurmap.ome.zarr" --summary "$RUN/blur.json" --overwrite

step "6/7 sample from the prior and decode the prototype (z = 0)" \
  cellvae sample --ckpt "$CKPT" -n 16 -o "$RUN/samples.tif" --overwrite

step "7/7 write the report" \
  cellvae report "$RUN"

printf '\nDone. Outputs in %s:\n' "$RUN"
ls -1 "$RUN"
