#!/usr/bin/env bash
# `make demo`: the cellvae Snakemake workflow, end to end, on a bundled sample, on CPU, in minutes.
#
#   ingest -> fit -> reconstruct -> embed -> blur -> sample -> report
#
# Every step is one `cellvae` command, printed before it runs (snakemake -p), so you can rerun
# any of them by hand. What runs is workflows/config/config.yaml with the local profile;
# results go to runs/demo/IMAGE/PRESET/ (override the folder with CELLVAE_DEMO_DIR), the HTML
# report to runs/demo/report.html. The same workflow runs on SLURM with
# --profile workflows/profiles/slurm (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

OUT=${CELLVAE_DEMO_DIR:-runs/demo}
args=(-s workflows/Snakefile --profile workflows/profiles/local --config "outdir=$OUT")
if [ -n "${CELLVAE_DEMO_STEPS:-}" ]; then  # e.g. CELLVAE_DEMO_STEPS=50 make demo
  args+=("presets={2d_hier_dlogistic: {overrides: {trainer.max_steps: $CELLVAE_DEMO_STEPS}}}")
fi

printf '\n==> run the workflow\n    $ snakemake %s\n' "${args[*]}"
snakemake "${args[@]}"

printf '\n==> write the HTML report\n'
snakemake "${args[@]}" --report "$OUT/report.html"

printf '\nDone. Results per image and preset (open one with: cellvae view FOLDER):\n'
for report in "$OUT"/*/*/report.md; do
  printf '    %s\n' "$(dirname "$report")"
done
printf 'Report: %s (Markdown per run: FOLDER/report.md)\n' "$OUT/report.html"
