"""The GUI test environment: napari draws a layer under Xvfb.

The napari plugin builds on this; if it fails, the X server, Mesa or the Qt binding that
``make test`` installs is missing or broken.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari", reason="needs the napari extra: pip install 'cellvae[napari]'")
pytestmark = pytest.mark.gui


def test_napari_renders_an_image_layer(make_napari_viewer) -> None:
    viewer = make_napari_viewer(show=True)
    image = np.zeros((64, 64), dtype=np.float32)
    image[16:48, 16:48] = 1.0
    viewer.add_image(image, colormap="gray")
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[-1] == 4
    # a bright square on black: both levels must appear in the rendered canvas
    assert shot[..., :3].max() > 200 and shot[..., :3].min() < 50
