"""``make bench [BENCH=name]``: run one benchmark, or all of them."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {"gateway-hop": "bench.gateway_hop"}


def main(argv: list[str]) -> int:
    selected = argv or list(BENCHMARKS)
    for name in selected:
        if name not in BENCHMARKS:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        print(f"== {name}")
        importlib.import_module(BENCHMARKS[name]).main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
