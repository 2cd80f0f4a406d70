#!/usr/bin/env bash
# The install steps of every cellvae container (Dockerfile.*, *.def run this file), and of the
# test that checks them without a container runtime (tests/workflows/test_containers.py):
#
#   install.sh cpu|cuda SOURCE    # SOURCE: a checkout of this repository
#
# PYTHON (default python3) is the interpreter to install into. CPU images take torch from the
# PyTorch CPU index (TORCH_INDEX; the test points it at the default index), CUDA images take
# the PyPI build, which bundles the CUDA runtime. Then cellvae with its samples and workflows
# extras from SOURCE, so `cellvae` and `snakemake` are on PATH.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: install.sh cpu|cuda SOURCE" >&2; exit 2; }
variant=$1
source_dir=$2
python=${PYTHON:-python3}
torch=${TORCH:-torch==2.13.0}
case $variant in
  cpu) index=${TORCH_INDEX-https://download.pytorch.org/whl/cpu} ;;
  cuda) index=${TORCH_INDEX-} ;;
  *) echo "install.sh: variant must be cpu or cuda, not $variant" >&2; exit 2 ;;
esac
"$python" -m pip install --upgrade pip
if [ -n "$index" ]; then
  "$python" -m pip install --index-url "$index" "$torch"
else
  "$python" -m pip install "$torch"
fi
"$python" -m pip install "$source_dir[samples,slurm]"
"$python" -m cellvae --version
