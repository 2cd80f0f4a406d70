"""Files in and out: TIFF reading, OME-Zarr open/write/ingest, statistics, atomic outputs.

Modules: :mod:`~cellvae.io.tiff` (TIFF / OME-TIFF / ImageJ, lazy), :mod:`~cellvae.io.omezarr`
(``open_image``, ``write_image``, ``create_image``/``finalize_image``, ``open_labels``),
:mod:`~cellvae.io.ingest` (any input to NGFF 0.5), :mod:`~cellvae.io.stats` (per-channel
intensity statistics), :mod:`~cellvae.io.atomic` (temporary names, rename when complete),
:mod:`~cellvae.io.pyramid` and :mod:`~cellvae.io.store` (pyramid levels, chunked writes).
"""
