"""``python -m sandboxes.solana_rpc``: see :mod:`sandboxes.solana_rpc.cli`."""

from __future__ import annotations

import sys

from sandboxes.solana_rpc.cli import main

if __name__ == "__main__":
    sys.exit(main())
