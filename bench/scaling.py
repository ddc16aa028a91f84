"""Time against spec size, in process and as a whole `cnncalc table` process.

    python bench/scaling.py [--sizes 1000 10000 100000] [--runs 3]

Each spec is issue 11's `[conv 8 k3 p1, relu] x N/2` on an 8x32x32 input, written as a YAML file
of one-line layers. In process (best of --runs): "load" reads and validates the file
(cnncalc.load_spec), "analyze" infers every layer, "json" and "table" render the report, with the cyclic
collector paused as the table command pauses it. Whole
process (median of --runs): `cnncalc table FILE --format json` and `cnncalc table FILE` with
stdout to /dev/null, start-up included. Cost per layer should stay flat: linear in the layers.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cnncalc
from cnncalc.api import analyze_spec
from cnncalc.engine import paused_gc
from cnncalc.render.json_layout import json_text
from cnncalc.render.table import plain_table


def write_spec(folder: Path, layers: int) -> Path:
    path = folder / f"chain-{layers}.yaml"
    body = "".join("  - conv 8 k3 p1\n  - relu\n" for _ in range(layers // 2))
    path.write_text(f"name: chain-{layers}\ninput: [8, 32, 32]\nlayers:\n{body}")
    return path


def best(func, runs: int) -> tuple[float, object]:
    timings, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = func()
        timings.append(time.perf_counter() - start)
    return min(timings), result


def process_time(command: list[str], runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    exe = shutil.which("cnncalc", path=str(Path(sys.executable).parent))
    cli = [exe] if exe else [sys.executable, "-m", "cnncalc"]
    print("| layers | load | analyze | json | table | `table --format json` process | `table` process | per layer (table process) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            path = write_spec(Path(folder), size)
            with paused_gc():  # as the table command runs
                load, spec = best(lambda: cnncalc.load_spec(str(path)), args.runs)
                analyze, analysis = best(lambda: analyze_spec(spec), args.runs)
                as_json, _ = best(lambda: json_text(analysis.report.to_dict()), args.runs)
                as_table, _ = best(lambda: plain_table(analysis.report), args.runs)
            json_process = process_time([*cli, "table", str(path), "--format", "json"], args.runs)
            table_process = process_time([*cli, "table", str(path)], args.runs)
            print(f"| {size:,} | {load:.3f} s | {analyze:.3f} s | {as_json:.3f} s | {as_table:.3f} s "
                  f"| {json_process:.3f} s | {table_process:.3f} s | {table_process / size * 1e6:.0f} µs |")


if __name__ == "__main__":
    main()
