"""Forward time and peak memory of the NumPy backend against PyTorch on the CPU, same weights.

    python bench/verify_speed.py                       # VGG-16, ResNet-50, MobileNetV2 at 224x224
    python bench/verify_speed.py --models vgg16 --repeat 10

Every (model, backend) pair runs in a fresh subprocess: it builds the report, draws all weights
(SeededParameters, seed 0, float32, PyTorch layouts: the very same arrays for both backends;
torch.from_numpy shares their memory) and the input, then
  * memory: resets the kernel's resident-set high-water mark (``/proc/self/clear_refs``), reads
    VmRSS, runs one forward pass and reads VmHWM: peak growth = VmHWM - VmRSS before, what the
    forward pass itself needed on top of the weights (tracemalloc cannot see torch's allocations);
  * time: the best of ``--repeat`` further forward passes (wall clock of ``run_forward``).
Prints a Markdown table with the NumPy / PyTorch ratios and the environment it ran in.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

MODELS = ("vgg16", "resnet50", "mobilenet_v2")
BACKENDS = ("numpy", "torch")
MiB = 2**20


# ----------------------------------------------------------------------------- in the subprocess
def proc_status_kib(key: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} is not in /proc/self/status")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


def measure(model: str, backend_name: str, repeat: int, size: int) -> dict:
    import cnncalc
    from cnncalc.backends.forward import network_input, run_forward
    from cnncalc.backends.parameters import SeededParameters
    from cnncalc.backends.registry import load_backend
    from cnncalc.errors import Location

    spec = cnncalc.load_spec(model)
    spec.input = (spec.input[0], *(size,) * (len(spec.input) - 1))
    report = cnncalc.analyze(spec)
    backend = load_backend(backend_name, "cpu")
    draw = SeededParameters(seed=0)
    weights = {row.index: draw(row, (1, *row.input_shape)) for row in report.layers}
    image = network_input(report, 1, 0, None, None, Location())[0]

    def forward():
        return run_forward(report, backend, input_values=image, parameters=lambda row, shape: weights[row.index])

    exact_peak = reset_peak()
    before = proc_status_kib("VmRSS")
    results = forward()
    peak = proc_status_kib("VmHWM")
    assert all(r.ok for r in results), [r.name for r in results if not r.ok]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        forward()
        times.append(time.perf_counter() - start)
    return {"model": report.name, "backend": backend_name, "seconds": min(times), "all_seconds": times,
            "peak_growth_bytes": (peak - before) * 1024, "peak_rss_bytes": peak * 1024, "exact_peak": exact_peak,
            "param_bytes": report.totals.param_bytes, "layers": len(report.layers)}


# ----------------------------------------------------------------------------- the parent
def run_worker(model: str, backend: str, repeat: int, size: int) -> dict:
    command = [sys.executable, __file__, "--worker", model, backend, "--repeat", str(repeat), "--size", str(size)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{model} on {backend} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def environment() -> str:
    import numpy
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = {key: os.environ[key] for key in sorted(os.environ) if key.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, NumPy {numpy.__version__}, "
            f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads); "
            f"BLAS/OpenMP environment: {blas or 'none set'}")


def table(rows: list[dict]) -> str:
    lines = ["| model | NumPy time | PyTorch time | time ratio | NumPy peak | PyTorch peak | memory ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for numpy_row, torch_row in zip(rows[::2], rows[1::2]):
        lines.append(
            f"| {numpy_row['model']} | {numpy_row['seconds'] * 1000:.0f} ms | {torch_row['seconds'] * 1000:.0f} ms "
            f"| {numpy_row['seconds'] / torch_row['seconds']:.2f}x "
            f"| {numpy_row['peak_growth_bytes'] / MiB:.1f} MiB | {torch_row['peak_growth_bytes'] / MiB:.1f} MiB "
            f"| {numpy_row['peak_growth_bytes'] / max(torch_row['peak_growth_bytes'], 1):.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--repeat", type=int, default=5, help="timed forward passes; the best counts")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(*args.worker, args.repeat, args.size)))
        return
    rows = [run_worker(model, backend, args.repeat, args.size) for model in args.models for backend in BACKENDS]
    print(f"Forward pass at {args.size}x{args.size}, batch 1, float32, best of {args.repeat}; peak = resident-set "
          "growth during one forward pass, on top of the weights (VmHWM - VmRSS, fresh process each)\n")
    print(table(rows))
    print(f"\nEnvironment: {environment()}")
    if not all(row["exact_peak"] for row in rows):
        print("note: /proc/self/clear_refs was not writable; peaks include anything before the forward pass")


if __name__ == "__main__":
    main()
