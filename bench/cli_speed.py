"""Whole-process times of cnncalc commands against the alternatives, measured in the same run.

    python bench/cli_speed.py [--runs 15]

Every command runs --runs times as a subprocess (stdout to /dev/null), the commands taking turns
so that a change in the machine's load touches them all alike; the table shows median and best
wall time and each median as a ratio to the reference command of issue 11,
`python -c "from pydantic import BaseModel; import rich.console, click, yaml"` (the libraries a
cnncalc table needs, imported and nothing else). Two more floors put the ratio in context: the
reference plus defining and validating one pydantic model with one field, which is the least any
pydantic-validated spec costs, and torchinfo's summary of the same ResNet-50 built in PyTorch
(needs `pip install torchinfo` and torch).

cnncalc keeps no cache of any kind, so every run computes from the spec. The script first
compiles cnncalc's modules to bytecode (`compileall`), as `pip install` does for every installed
wheel and did for pydantic, rich and click: an editable checkout run with
PYTHONDONTWRITEBYTECODE=1 would otherwise recompile cnncalc's sources on every start.
"""
from __future__ import annotations

import argparse
import compileall
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = 'python -c "from pydantic import BaseModel; import rich.console, click, yaml"'
ONE_MODEL = """from pydantic import BaseModel, Field
import rich.console, click, yaml
class Layer(BaseModel):
    filters: int = Field(1, description="output channels")
Layer.model_validate({"filters": 2})
"""
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


def interleaved(cases: dict[str, list[str]], runs: int) -> dict[str, tuple[float, float]]:
    """name -> (median, best) seconds; one run of every case per round."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, command in cases.items():
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)  # exit 1 = findings
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(values), min(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    import cnncalc

    compileall.compile_dir(Path(cnncalc.__file__).parent, quiet=1)
    cnncalc_cli = cnncalc_command()
    cases = {
        REFERENCE: [sys.executable, "-c", "from pydantic import BaseModel; import rich.console, click, yaml"],
        "the reference + one pydantic model validated": [sys.executable, "-c", ONE_MODEL],
        "cnncalc table vgg16": [*cnncalc_cli, "table", "vgg16"],
        "cnncalc table lenet5": [*cnncalc_cli, "table", "lenet5"],
        "cnncalc table resnet50": [*cnncalc_cli, "table", "resnet50"],
        "cnncalc table resnet152": [*cnncalc_cli, "table", "resnet152"],
        "cnncalc validate specs/": [*cnncalc_cli, "validate", "specs/"],
    }
    try:
        import torchinfo  # noqa: F401
        cases["torchinfo.summary(ResNet-50)"] = [sys.executable, "-c", TORCHINFO_SCRIPT]
    except ImportError:
        print("(torchinfo not installed: pip install torchinfo for the comparison)", file=sys.stderr)
    results = interleaved(cases, args.runs)
    base = results[REFERENCE][0]
    print(f"{args.runs} runs each, Python {sys.version.split()[0]}\n")
    print("| command | median (s) | best (s) | median / reference |")
    print("|---|---:|---:|---:|")
    for name, (median, best) in results.items():
        print(f"| `{name}` | {median:.3f} | {best:.3f} | {median / base:.2f}x |")
    if "torchinfo.summary(ResNet-50)" in results:
        table = results["cnncalc table resnet50"][0]
        torchinfo_time = results["torchinfo.summary(ResNet-50)"][0]
        print(f"\n`cnncalc table resnet50` is {torchinfo_time / table:.1f}x faster than torchinfo's summary.")


if __name__ == "__main__":
    main()
