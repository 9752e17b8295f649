"""``python -m sandboxes.etims``: see :mod:`sandboxes.etims.cli`."""

from __future__ import annotations

import sys

from sandboxes.etims.cli import main

if __name__ == "__main__":
    sys.exit(main())
