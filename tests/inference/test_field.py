"""The measured receptive field, and a reconstruction without periodic error at the tile period."""

import numpy as np
import pytest
import torch

from cellvae.data.normalize import Quantizer
from cellvae.inference import reconstruct as rec
from cellvae.inference.field import margin_for, overlap_for, receptive_radius
from cellvae.inference.model import Reconstructor
from cellvae.io.omezarr import open_image
from tests.inference.helpers import IdentityVAE, stand_in, write_test_image


class BlurVAE(IdentityVAE):
    """Reconstructs by a ``(2R+1)²`` box blur with zero padding: its border effect is known,
    it reaches exactly ``R`` voxels in from a tile's edge."""

    def __init__(self, radius: int):
        super().__init__()
        self.radius, self.downsampling = radius, 1
        side = 2 * radius + 1
        self.register_buffer("kernel", torch.full((1, 1, side, side), 1.0 / side**2))

    def reconstruct_params(self, x, sample=False):
        return torch.nn.functional.conv2d(x, self.kernel.to(x.dtype), padding=self.radius)


@pytest.mark.parametrize("radius", [0, 2, 5])
def test_receptive_radius_of_a_box_blur_is_its_half_width(radius):
    vae = BlurVAE(radius) if radius else IdentityVAE()
    assert receptive_radius(vae, (32, 48)) == (radius, radius)


def test_default_overlap_holds_a_margin_and_a_ramp():
    assert overlap_for((5, 0), (64, 64)) == (15, 2)
    assert overlap_for((40, 40), (64, 64)) == (32, 32)  # at most half the tile
    assert margin_for((5, 5), (15, 6)) == (5, 2)  # a narrow hand-picked overlap keeps a ramp


#: the tile frequency, then nearby frequencies that are not its harmonics (in its units)
FREQ = (1.0, 0.7, 0.8, 1.2, 1.3)


def _at_tile_period(err: np.ndarray, period: int) -> tuple[float, float]:
    """Amplitude (raw units) of the mean error profile (over rows, over columns) at frequency
    1/period, and its power relative to the mean power at nearby non-harmonic frequencies."""
    amplitude, ratio = 0.0, 0.0
    for profile in (err.mean(axis=0), err.mean(axis=1)):
        profile = profile - profile.mean()
        x = np.arange(profile.size)
        power = [abs(np.sum(profile * np.exp(-2j * np.pi * f / period * x))) ** 2 for f in FREQ]
        amplitude = max(amplitude, 2 * np.sqrt(power[0]) / profile.size)
        ratio = max(ratio, power[0] / (np.mean(power[1:]) + 1e-30))
    return amplitude, ratio


def test_reconstruction_has_no_periodic_error_at_the_tile_period(tmp_path, rng, monkeypatch):
    """A blur whose border effect is known: with the default overlap (from the measured
    receptive field) the tiled result equals the untiled one; with a thin overlap (1/16 of
    the tile, the old default) the error repeats with the tile period."""
    from scipy.ndimage import gaussian_filter

    tile, radius = 32, 4
    smooth = gaussian_filter(rng.normal(size=(170, 170)), 3)
    data = (200 + 40 * smooth / smooth.std()).clip(0, 255).astype(np.uint8)
    src = write_test_image(tmp_path / "in.zarr", data, "yx")
    vae = BlurVAE(radius)
    stand_in(monkeypatch, vae)
    image = open_image(src)
    quantizers = [Quantizer.from_stats(image.stats, 0, 0.1, 99.9, 8)]
    whole = Reconstructor(vae, quantizers)(data[None, None].astype(np.float32))[0][0, 0]
    errors = {}
    for name, overlap in (("default", None), ("thin", tile // 16)):
        out = tmp_path / f"{name}.zarr"
        rec.reconstruct_image("x.ckpt", src, out, tile, overlap, block=64, progress=False)
        errors[name] = open_image(out).array[...] - whole
    step = tile - 3 * radius  # the default overlap is three radii
    amplitude, _ = _at_tile_period(errors["default"], step)
    assert amplitude < 1e-4 and np.abs(errors["default"]).max() < 1e-3  # float rounding only
    amplitude, ratio = _at_tile_period(errors["thin"], tile - tile // 16)
    assert amplitude > 0.5 and ratio > 10  # the seams the default overlap removes


class RectBlurVAE(IdentityVAE):
    """A ``(2 ry + 1) x (2 rx + 1)`` box blur over all channels; records its input shapes."""

    def __init__(self, ry: int, rx: int, channels: int = 1, downsampling=1, patch=None):
        super().__init__(channels=channels, patch=patch)
        self.downsampling, self.pad, self.shapes = downsampling, (ry, rx), []
        kernel = torch.ones(1, channels, 2 * ry + 1, 2 * rx + 1)
        self.register_buffer("kernel", kernel / kernel.sum())

    def reconstruct_params(self, x, sample=False):
        self.shapes.append(tuple(x.shape))
        return torch.nn.functional.conv2d(x, self.kernel.to(x.dtype), padding=self.pad)


def test_receptive_radius_is_measured_per_axis_on_all_channels():
    vae = RectBlurVAE(2, 4, channels=3)
    assert receptive_radius(vae, (32, 40)) == (2, 4)
    assert vae.shapes == [(1, 3, 32, 40)]


def test_receptive_radius_holds_the_asked_share_of_the_gradient():
    # a box of 11 voxels: radius r holds (2r + 1) / 11 of the gradient along each axis
    assert receptive_radius(RectBlurVAE(5, 5), (32, 32), mass=0.5) == (3, 3)
    assert receptive_radius(RectBlurVAE(5, 5), (32, 32), mass=1.0) == (5, 5)


def test_a_large_tile_is_probed_on_a_small_one_and_measured_whole_only_if_needed():
    near = RectBlurVAE(3, 3)
    assert receptive_radius(near, (100, 80)) == (3, 3)
    assert near.shapes == [(1, 1, 64, 64)]  # the probe only
    far = RectBlurVAE(31, 31)  # reaches the probe's edge: measured again on the whole tile
    assert receptive_radius(far, (100, 100)) == (31, 31)
    assert far.shapes == [(1, 1, 64, 64), (1, 1, 100, 100)]


def test_the_probe_is_a_multiple_of_the_downsampling_and_fixed_patches_are_not_probed():
    coarse = RectBlurVAE(1, 1, downsampling=(48, 16))
    receptive_radius(coarse, (100, 100))
    assert coarse.shapes == [(1, 1, 48, 64)]
    uniform = RectBlurVAE(1, 1, downsampling=24)
    receptive_radius(uniform, (100, 100))
    assert uniform.shapes == [(1, 1, 48, 48)]
    huge = RectBlurVAE(1, 1, downsampling=128)  # at least one downsampling step
    receptive_radius(huge, (200, 200))
    assert huge.shapes == [(1, 1, 128, 128)]
    fixed = RectBlurVAE(1, 1, patch=(96, 96))
    receptive_radius(fixed, (96, 96))
    assert fixed.shapes == [(1, 1, 96, 96)]


def test_a_model_that_ignores_its_input_has_radius_zero():
    class Constant(IdentityVAE):
        def reconstruct_params(self, x, sample=False):
            return x * 0.0

    assert receptive_radius(Constant(), (16, 16)) == (0, 0)


def test_margin_never_goes_negative_and_overlap_has_a_floor():
    assert margin_for((-1, 4), (30, 30)) == (0, 4)
    assert overlap_for((0, 1), (64, 3)) == (2, 1)  # floor of 2, but at most half the tile


class AnisotropicBlurVAE(IdentityVAE):
    """A 3D model with anisotropic downsampling (``(1, 2, 4)`` per level, as a confocal stack's
    model halves Y and X before Z) whose reconstruction is a separable box blur of radii
    ``(rz, ry, rx)``: its receptive field is known per axis."""

    def __init__(self, radii: tuple[int, int, int], downsampling=(1, 2, 4)):
        super().__init__(ndim=3)
        self.radii, self.downsampling, self.shapes = radii, downsampling, []

    def reconstruct_params(self, x, sample=False):
        self.shapes.append(tuple(x.shape[2:]))
        for axis, r in enumerate(self.radii):
            kernel = [1, 1, 1]
            kernel[axis] = 2 * r + 1
            box = torch.ones(1, 1, *kernel, dtype=x.dtype) / (2 * r + 1)
            x = torch.nn.functional.conv3d(x, box, padding=tuple(k // 2 for k in kernel))
        return x


@pytest.mark.parametrize("radii", [(1, 3, 6), (4, 1, 2)])
def test_receptive_radius_and_overlap_of_an_anisotropic_3d_model(radii):
    """Per-axis known answer: each axis' radius is its own blur's, whatever the others are
    (an axis mix-up, e.g. Z's radius reported for X, cannot pass both orders); the probe is a
    multiple of each axis' downsampling; the overlap is three radii per axis."""
    vae = AnisotropicBlurVAE(radii)
    tile = (24, 96, 128)
    assert receptive_radius(vae, tile) == radii
    assert vae.shapes == [(24, 64, 64)]  # at most 64 per axis, multiples of (1, 2, 4)
    assert overlap_for(radii, tile) == tuple(max(3 * r, 2) for r in radii)


def test_a_hierarchical_model_downsampling_yx_first_sees_farther_in_yx_than_in_z():
    """A real 3D ladder VAE with levels (1, 2, 2), (1, 2, 2) (a stack whose z-step is twice
    its pixel size): its field reaches farther along Y and X (4x downsampled) than along Z
    (never downsampled), and equally far along Y and X. Swapping the model's Y and Z
    (levels (2, 1, 2)) swaps their radii."""
    from cellvae.models import build_model

    def model(downsample):
        torch.manual_seed(0)
        vae = build_model(
            "hierarchical", ndim=3, patch_size=(8, 16, 16), widths=[4, 8, 8],
            latent_channels=2, downsample=downsample, global_dim=0,
        )  # fmt: skip
        with torch.no_grad():
            for p in vae.parameters():  # move the zero-initialised layers
                p.add_(0.05 * torch.randn_like(p))
        return vae.eval()

    rz, ry, rx = receptive_radius(model([(1, 2, 2), (1, 2, 2)]), (32, 32, 32))
    assert rz < ry and abs(ry - rx) <= 1
    sz, sy, sx = receptive_radius(model([(2, 1, 2), (2, 1, 2)]), (32, 32, 32))
    assert sy < sz and abs(sz - sx) <= 1
