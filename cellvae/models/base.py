"""The interface every VAE in cellvae implements, and its forward-pass record."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from cellvae.errors import ConfigError
from cellvae.models.geometry import describe, per_axis
from cellvae.models.latents import DiagonalGaussian
from cellvae.models.likelihoods import Likelihood


@dataclass
class VAEOutput:
    """What one forward pass produces.

    Attributes
    ----------
    params : Tensor
        Likelihood parameters ``(B, P * C, *spatial)``.
    kl : list of Tensor
        One per latent group (order of ``group_names``): the elementwise KL in nats, shaped like
        that group's latent, ``(B, c_l, *spatial_l)`` or ``(B, D)``.
    posteriors : list of DiagonalGaussian
        The posterior of each group.
    z : list of Tensor
        The latent used by the decoder for each group.
    priors : list of DiagonalGaussian
        The prior of each group, ``p(z_l | z_>l)``; N(0, I) for a flat model. With ``z`` and
        ``posteriors`` it gives importance weights ``log p(z) - log q(z | x)``.
    """

    params: Tensor
    kl: list[Tensor] = field(default_factory=list)
    posteriors: list[DiagonalGaussian] = field(default_factory=list)
    z: list[Tensor] = field(default_factory=list)
    priors: list[DiagonalGaussian] = field(default_factory=list)


class VAE(nn.Module):
    """Abstract VAE: an encoder to latents and a decoder to likelihood parameters.

    Attributes
    ----------
    ndim : int
        2 (``(B, C, Y, X)``) or 3 (``(B, C, Z, Y, X)``).
    in_channels : int
        Image channels ``C``.
    likelihood : Likelihood
        The decoder distribution; owns any learned likelihood parameters.
    downsampling : tuple of int
        Total downsampling per axis (storage order); each patch side must be divisible by its
        axis' factor.
    group_names : list of str
        Names of the latent groups, most global first.
    patch_shape : tuple of int or None
        The only patch shape a model with a vector latent accepts; ``None`` if fully
        convolutional.
    """

    ndim: int
    in_channels: int
    likelihood: Likelihood
    downsampling: tuple[int, ...]
    group_names: list[str]
    patch_shape: tuple[int, ...] | None = None

    def check_patch_shape(self, shape: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        """Validate a spatial patch shape and return it as a tuple.

        Raises :class:`ConfigError` if it has the wrong length, a side not divisible by its
        axis' ``downsampling``, or differs from a fixed ``patch_shape``.
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) != self.ndim:
            raise ConfigError(f"patch_size: {list(shape)} must have {self.ndim} sides")
        down = per_axis(self.downsampling, self.ndim)
        if any(s <= 0 or s % d for s, d in zip(shape, down)):
            raise ConfigError(
                f"patch_size must be divisible by {describe(down)}; got {list(shape)}"
            )
        if self.patch_shape is not None and shape != tuple(self.patch_shape):
            raise ConfigError(
                f"patch_size: {list(shape)} differs from the model's {list(self.patch_shape)}"
            )
        return shape

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != self.ndim + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected (B, {self.in_channels}, *{self.ndim} sides), got {tuple(x.shape)}"
            )
        self.check_patch_shape(tuple(x.shape[2:]))

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return next(self.parameters()).device

    def forward(self, x: Tensor) -> VAEOutput:
        """Encode ``x`` (``(B, C, *S)`` in [-1, 1]), sample the posteriors, decode."""
        raise NotImplementedError

    def reconstruct_params(self, x: Tensor, sample: bool = False) -> Tensor:
        """Likelihood parameters of the reconstruction; posterior means unless ``sample``."""
        raise NotImplementedError

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior ``(mean, logvar)`` of the top (most global) group, each ``(B, D)``."""
        raise NotImplementedError

    def local_summary(self, x: Tensor) -> Tensor:
        """Per-channel spatial mean and standard deviation of each spatial latent group's
        posterior mean, ``(B, K)``: what the local latents say about the whole crop (texture,
        extent, brightness), the second half of a cell's description beside :meth:`embed`.
        ``K`` is 0 for a model without spatial groups."""
        return x.new_zeros(x.shape[0], 0)

    def decode_embedding(self, mean: Tensor, patch_shape: tuple[int, ...]) -> Tensor:
        """Parameters decoded from a top-group code ``(B, D)``; lower groups at prior mean."""
        raise NotImplementedError

    def sample_params(
        self, n: int, patch_shape: tuple[int, ...], temperature: float = 1.0
    ) -> Tensor:
        """Parameters of ``n`` draws from the prior (latent std scaled by ``temperature``)."""
        raise NotImplementedError

    def prototype_params(self, patch_shape: tuple[int, ...]) -> Tensor:
        """Parameters decoded at ``z = 0`` / every group at its prior mean, ``(1, P*C, *S)``."""
        return self.sample_params(1, patch_shape, temperature=0.0)
