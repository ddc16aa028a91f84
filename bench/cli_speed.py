"""Whole-process times of cnncalc commands against the alternatives, measured in the same run.

    python bench/cli_speed.py [--runs 10]

Prints a Markdown table: median and best wall time of each command over --runs runs, and
ratios: `cnncalc table resnet50` vs `python -c "import rich, pydantic, click"` (the floor any
CLI built on those libraries pays) and vs torchinfo's summary of the same ResNet-50 built in
PyTorch (needs `pip install torchinfo` and torch). cnncalc keeps no cache, so every run is cold.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCHINFO_SCRIPT = f"""
import sys
sys.path.insert(0, {str(ROOT / 'tests')!r})
import torchinfo
from zoo_reference import resnet
torchinfo.summary(resnet(50), input_size=(1, 3, 224, 224), depth=3)
"""


def cnncalc_command() -> list[str]:
    exe = shutil.which("cnncalc", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "cnncalc"]


def timed(command: list[str], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)  # exit 1 = findings
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    cnncalc = cnncalc_command()
    cases = {
        'python -c "import rich, pydantic, click"': [sys.executable, "-c", "import rich, pydantic, click"],
        "cnncalc table lenet5": [*cnncalc, "table", "lenet5"],
        "cnncalc table specs/resnet50.yaml": [*cnncalc, "table", "specs/resnet50.yaml"],
        "cnncalc table resnet152": [*cnncalc, "table", "resnet152"],
        "cnncalc validate specs/": [*cnncalc, "validate", "specs/"],
    }
    try:
        import torchinfo  # noqa: F401
        cases["torchinfo.summary(ResNet-50)"] = [sys.executable, "-c", TORCHINFO_SCRIPT]
    except ImportError:
        print("(torchinfo not installed: pip install torchinfo for the comparison)", file=sys.stderr)
    results = {name: timed(command, args.runs) for name, command in cases.items()}
    base = results['python -c "import rich, pydantic, click"'][0]
    table = results["cnncalc table specs/resnet50.yaml"][0]
    print(f"| command | median (s) | best (s) | vs import rich, pydantic, click |")
    print("|---|---:|---:|---:|")
    for name, (median, best) in results.items():
        print(f"| `{name}` | {median:.3f} | {best:.3f} | {median / base:.2f}x |")
    if "torchinfo.summary(ResNet-50)" in results:
        torchinfo_time = results["torchinfo.summary(ResNet-50)"][0]
        print(f"\n`cnncalc table resnet50` takes {table / torchinfo_time:.2f}x the time of torchinfo's summary "
              f"({torchinfo_time / table:.1f}x faster), {table / base:.2f}x the bare imports.")


if __name__ == "__main__":
    main()
