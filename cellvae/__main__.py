"""``python -m cellvae`` runs the ``cellvae`` command."""

import sys

from cellvae.cli import main

sys.exit(main())
