"""Trained models out of cellvae: BioImage Model Zoo packages (:mod:`.bioimageio`).

A layer beside ``experiments`` and ``report``: it imports ``inference`` (loading, the
normalisation), ``training`` (the ELBO for the README's bits/dim) and ``io``, and is imported
only by the ``cellvae export`` command.
"""
