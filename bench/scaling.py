"""In-process analysis time against spec size: synthetic specs of 1k, 10k and 100k layers.

    python bench/scaling.py [--sizes 1000 10000 100000] [--runs 3]

Each spec alternates `conv 16 k3 p1` and `relu` on a 16x32x32 input. "build" validates the
layer entries into models (cnncalc.load_spec), "analyze" infers every layer (cnncalc.analyze);
best of --runs. Cost per layer should stay flat: the engine is linear in the layer count.
"""
from __future__ import annotations

import argparse
import time

import cnncalc


def synthetic(layers: int) -> dict:
    body = []
    for _ in range(layers // 2):
        body.append({"conv": {"filters": 16, "kernel": 3, "padding": 1}})
        body.append("relu")
    return {"name": f"synthetic-{layers}", "input": [16, 32, 32], "layers": body}


def best(func, runs: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = func()
        timings.append(time.perf_counter() - start)
    return min(timings), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| layers | build (s) | analyze (s) | total (s) | per layer (µs) |")
    print("|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        data = synthetic(size)
        build_time, spec = best(lambda: cnncalc.load_spec(data), args.runs)
        analyze_time, _ = best(lambda: cnncalc.analyze(spec), args.runs)
        total = build_time + analyze_time
        print(f"| {size:,} | {build_time:.3f} | {analyze_time:.3f} | {total:.3f} | {total / size * 1e6:.1f} |")


if __name__ == "__main__":
    main()
