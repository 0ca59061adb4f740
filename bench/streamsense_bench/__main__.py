"""`python -m streamsense_bench [NAME ...]`: run benchmarks (all by default).

Each benchmark is a module ``streamsense_bench.<name>`` with ``run() -> dict`` that prints its
table and returns the results written to bench-results/<name>.json."""

from __future__ import annotations

import importlib
import sys
import time

from streamsense_bench.common import write_results

BENCHMARKS = ("fraud", "recs", "cache", "abr", "bandit")


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    for name in names:
        try:
            module = importlib.import_module(f"streamsense_bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"streamsense_bench.{name}":
                raise
            print(f"[{name}] not implemented yet: skipped")
            continue
        started = time.perf_counter()
        results = module.run()
        results["wall_s"] = round(time.perf_counter() - started, 2)
        path = write_results(name, results)
        print(f"[{name}] {results['wall_s']} s -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
