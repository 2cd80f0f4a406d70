"""Camera metadata: stored with an OME-Zarr image, read from an OME-TIFF's detector."""

from __future__ import annotations

import numpy as np
import tifffile

from cellvae.io.camera import read_camera, write_camera
from cellvae.io.omezarr import write_image

OME_XML = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
  <Instrument ID="Instrument:0"><Detector ID="Detector:0" Gain="9.0" Offset="7.0"/></Instrument>
  <Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="16"
      SizeY="8" SizeC="1" SizeZ="1" SizeT="1">
    <Channel ID="Channel:0:0" SamplesPerPixel="1">
      <DetectorSettings ID="Detector:0" Gain="2.5" Offset="100"/></Channel>
    <TiffData/></Pixels></Image>
</OME>"""


def test_camera_round_trips_through_an_ome_zarr_image(tmp_path):
    path = write_image(tmp_path / "a.ome.zarr", np.zeros((8, 8), np.uint8), "yx")
    assert read_camera(path) is None
    write_camera(path, {"gain": 2.0, "offset": None, "read_noise": 1.5, "source": "a test"})
    assert read_camera(path) == {"gain": 2.0, "read_noise": 1.5, "source": "a test"}
    assert read_camera(tmp_path / "missing.zarr") is None


def test_ome_tiff_detector_settings_come_before_the_detector(tmp_path):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, np.zeros((8, 16), np.uint16), description=OME_XML, metadata=None)
    assert read_camera(path) == {
        "gain": 2.5,
        "offset": 100.0,
        "source": "a.ome.tif: OME-XML detector settings",
    }
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((8, 16), np.uint16))
    assert read_camera(plain) is None
