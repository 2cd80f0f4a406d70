"""Pure-torch VAEs: latents, likelihoods, a flat and a hierarchical convolutional VAE."""

from cellvae.models.base import VAE, VAEOutput
from cellvae.models.factory import ARCHS, build_model
from cellvae.models.flat import FlatVAE
from cellvae.models.hierarchical import HierarchicalVAE
from cellvae.models.latents import DiagonalGaussian, free_bits
from cellvae.models.likelihoods import LIKELIHOODS, Likelihood, make_likelihood

__all__ = [
    "ARCHS",
    "LIKELIHOODS",
    "VAE",
    "DiagonalGaussian",
    "FlatVAE",
    "HierarchicalVAE",
    "Likelihood",
    "VAEOutput",
    "build_model",
    "free_bits",
    "make_likelihood",
]
