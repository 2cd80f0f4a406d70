"""Small metadata helpers against known answers: OME-XML voxels, tifffile warnings, lock
files and provenance carriers (Parquet, TIFF)."""

from __future__ import annotations

import logging
import os
import socket

import pytest

from cellvae.io import atomic
from cellvae.io.provenance import read_provenance, recording, tiff_metadata, write_parquet
from cellvae.io.tiff import _ome_channel_names, _ome_voxels, _Warnings

OME = '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">{}</OME>'


def _image(**pixels: str) -> str:
    attrs = " ".join(f'{k}="{v}"' for k, v in pixels.items())
    return f"<Image><Pixels {attrs}/></Image>"


def test_ome_voxel_sizes_keep_their_own_unit_per_axis():
    xml = OME.format(
        _image(
            PhysicalSizeX="0.5",
            PhysicalSizeXUnit="nm",
            PhysicalSizeY="0.25",
            PhysicalSizeZ="2",
            PhysicalSizeZUnit="mm",
        )
    )
    voxel, units = _ome_voxels(xml, 0)
    assert voxel == {"z": 2.0, "y": 0.25, "x": 0.5}
    assert units == {"z": "millimeter", "y": "micrometer", "x": "nanometer"}


def test_ome_voxel_sizes_of_zero_or_pixel_units_are_left_out():
    xml = OME.format(_image(PhysicalSizeX="0", PhysicalSizeY="1.5", PhysicalSizeYUnit="pixel"))
    assert _ome_voxels(xml, 0) == ({"y": 1.5}, {})


def test_ome_voxels_of_the_chosen_image_and_of_images_without_pixels():
    xml = OME.format(_image(PhysicalSizeX="1") + _image(PhysicalSizeX="3"))
    assert _ome_voxels(xml, 1)[0] == {"x": 3.0}
    # a series beyond the listed images falls back to the last one
    assert _ome_voxels(xml, 5)[0] == {"x": 3.0}
    assert _ome_voxels(OME.format("<Image/>"), 0) == ({}, {})
    assert _ome_voxels(OME.format(""), 0) == ({}, {})


def test_tifffile_warnings_are_collected_as_text():
    handler = _Warnings()
    logger = logging.getLogger("cellvae-test-tifffile")
    logger.addHandler(handler)
    try:
        logger.info("not collected")
        logger.warning("page %d is corrupt", 3)
    finally:
        logger.removeHandler(handler)
    assert handler.messages == ["page 3 is corrupt"]


def test_lock_owner_reads_pid_and_host_and_tolerates_more(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text("123 node-a extra words\n")
    assert atomic._lock_owner(lock) == (123, "node-a", None)
    lock.write_text("123 node-a 4567 2\n")
    assert atomic._lock_owner(lock) == (123, "node-a", ("4567", 2))
    lock.write_text("half")
    assert atomic._lock_owner(lock) is None
    assert atomic._lock_owner(tmp_path / "missing.lock") is None


def test_a_process_we_may_not_signal_is_alive(monkeypatch):
    def refuse(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refuse)
    assert atomic._alive(1)


def test_a_live_lock_owner_on_this_host_is_respected(tmp_path):
    out = tmp_path / "out.txt"
    atomic.lock_path(out).write_text(f"{os.getpid()} {socket.gethostname()}\n")
    with pytest.raises(atomic.OutputBusyError, match=rf"pid {os.getpid()} on "):
        with atomic.output_lock(out):
            pass


def test_parquet_holds_the_given_provenance_pandas_metadata_and_no_index(tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    table = pd.DataFrame({"label": [1, 2]}, index=[10, 20])
    with recording({"verb": "current"}):
        write_parquet(table, tmp_path / "t.parquet", provenance={"verb": "given"})
    assert read_provenance(tmp_path / "t.parquet") == {"verb": "given"}
    schema = pq.read_schema(tmp_path / "t.parquet")
    assert schema.names == ["label"]
    assert b"pandas" in schema.metadata


def test_tiff_metadata_holds_the_given_or_current_provenance():
    assert tiff_metadata() == {}
    assert tiff_metadata({"verb": "x"}) == {"cellvae": {"provenance": {"verb": "x"}}}
    with recording({"verb": "now"}):
        assert tiff_metadata() == {"cellvae": {"provenance": {"verb": "now"}}}


def test_ome_channel_names_of_the_chosen_image():
    def image(*names: str) -> str:
        channels = "".join(f'<Channel Name="{n}"/>' if n else "<Channel/>" for n in names)
        return f"<Image><Pixels>{channels}</Pixels></Image>"

    xml = OME.format(image("a", "b") + image("DAPI", "GFP", "RFP"))
    assert _ome_channel_names(xml, 0) == ["a", "b"]
    assert _ome_channel_names(xml, 1) == ["DAPI", "GFP", "RFP"]
    assert _ome_channel_names(xml, 7) == ["DAPI", "GFP", "RFP"]  # the last image
    assert _ome_channel_names(OME.format(image("a", "")), 0) is None  # one unnamed channel
    assert _ome_channel_names(OME.format("<Image/>"), 0) is None
    assert _ome_channel_names(OME.format(""), 0) is None
