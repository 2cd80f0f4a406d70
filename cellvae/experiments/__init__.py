"""The VAE facts cellvae rests on, each reproduced with a table and a figure.

Each module ``cellvae.experiments.<name>`` has ``run(outdir, fast=False, seed=0) -> dict``;
``cellvae.experiments._report.run_all`` runs them all and writes ``report.md`` and
``summary.json``. ``docs/experiments.md`` lists the measured numbers beside the expectations.
"""
