"""``make bench [BENCH=name]``: run one benchmark, or all of them."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {"gateway": "bench.gateway", "facilitator": "bench.facilitator"}


def main(argv: list[str]) -> int:
    """Run the named benchmarks (all by default); the first failing one's code is returned."""
    selected = argv or list(BENCHMARKS)
    for name in selected:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
    for name in selected:
        print(f"== {name}", flush=True)
        code: int = importlib.import_module(BENCHMARKS[name]).main()
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
