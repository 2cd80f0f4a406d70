"""cellvae: variational autoencoders for microscopy volumes.

The package is layered along the data flow (see ``docs/architecture.md``)::

    io -> data -> models -> training -> inference / metrics -> experiments
                                             front doors: cli, napari, workflows
"""

__version__ = "0.1.0"
