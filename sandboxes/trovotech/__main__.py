"""``python -m sandboxes.trovotech``: see :mod:`sandboxes.trovotech.cli`."""

from __future__ import annotations

import sys

from sandboxes.trovotech.cli import main

if __name__ == "__main__":
    sys.exit(main())
