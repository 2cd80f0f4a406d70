"""The cellvae napari plugin (npe2): a results-folder reader, sample data and three widgets.

``napari.yaml`` declares the contributions. The widgets are thin Qt/magicgui containers over
plain functions in :mod:`.selection`, :mod:`.blur` and :mod:`.explore`, which are tested
without a viewer; :mod:`.results` reads a results folder into layer data.
"""
