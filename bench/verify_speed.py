"""The NumPy backend against PyTorch on the CPU: forward time, peak memory and the memory estimate.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/verify_speed.py      # 4 nets, batch 1 and 8
    python bench/verify_speed.py --models resnet50 --batches 1 --repeat 9

For every (model, batch) the same work on both backends: the zoo spec's report at float32, all
weights drawn once by ``SeededParameters(seed=0)`` in PyTorch's layouts (the PyTorch backend wraps
the very same arrays with ``torch.from_numpy``), the same input, both through ``run_forward``.
The NumPy worker uses numba's kernels in every pass (``CNNCALC_NUMBA=1`` unless the environment
says otherwise; ``CNNCALC_NUMBA=0`` measures NumPy alone), loaded before the first pass as the
modules are: the steady state of a process that runs many passes.

* time: two worker processes, one per backend (neither library's threads ever compete with the
  other's), take turns: one forward pass each, ``--repeat`` times, after one untimed pass, with a
  pause between turns so that the other's idle threads (OpenBLAS and OpenMP spin a while after
  their last job) have gone to sleep. The median of each counts.
* memory: each worker's first forward pass, in a fresh process: the kernel's resident-set
  high-water mark is reset (``/proc/self/clear_refs``), then VmHWM after the pass minus VmRSS
  before it: what the forward pass needs on top of the weights (it sees PyTorch's native
  allocations, which tracemalloc does not).
* the estimate: a third process runs what ``cnncalc verify --backend numpy`` runs (weights drawn
  layer by layer during the pass, outputs freed after their last reader) under ``tracemalloc``
  (NumPy reports its allocations to it) and compares the peak of traced memory during the pass
  with ``estimate_memory``, the figure `verify` prints and checks before it starts.

Prints a Markdown table and the environment it ran in.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

MODELS = ("vgg16", "resnet50", "mobilenet_v2", "efficientnet_b0")
BATCHES = (1, 8)
BACKENDS = ("numpy", "torch")
PAUSE_S = 0.3  # between turns: longer than OpenBLAS's and OpenMP's idle spinning
MiB = 2**20


# ----------------------------------------------------------------------------- in a worker
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


def analysed(model: str, batch: int):
    from cnncalc.commands.forward_common import analysed as analyse

    _, report, plan = analyse(model, batch, None)
    return report, plan


def serve(model: str, batch: int, backend_name: str) -> None:
    """Answer the parent: a line per forward pass asked for; the first reports memory too."""
    from cnncalc.backends.forward import input_array, run_forward
    from cnncalc.backends.parameters import SeededParameters
    from cnncalc.backends.registry import load_backend

    report, plan = analysed(model, batch)
    backend = load_backend(backend_name, "cpu")
    draw = SeededParameters(seed=0)
    weights = {step.index: draw(step, (batch, *step.input_shape)) for step in plan.steps}
    image = input_array(plan, 1, 0)[0]

    def forward():
        return run_forward(plan, backend, batch=batch, input_values=image,
                           parameters=lambda step, shape: weights[step.index])

    backend.prepare(plan.steps, batch)  # compiled code is loaded before, as modules are: not the pass's memory

    exact = reset_peak()
    before = proc_status_kib("VmRSS")
    results = forward()
    peak = proc_status_kib("VmHWM")
    failed = [r.name for r in results if not r.ok]
    print(json.dumps({"peak_growth_bytes": (peak - before) * 1024, "exact_peak": exact, "failed": failed,
                      "layers": len(plan.steps), "name": report.name}), flush=True)
    for _ in sys.stdin:  # one line asks for one timed pass
        start = time.perf_counter()
        forward()
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


def traced_peak(model: str, batch: int) -> dict:
    """What `verify --backend numpy` does, under tracemalloc: (estimate, peak of the pass)."""
    import tracemalloc

    import numpy.random  # noqa: F401 (loaded before measuring: module code is not the pass's memory)

    import cnncalc.backends.parameters  # noqa: F401 (as numpy.random)
    from cnncalc.backends.forward import run_forward
    from cnncalc.backends.memory import estimate_memory
    from cnncalc.backends.registry import load_backend

    report, plan = analysed(model, batch)
    estimate = estimate_memory(report)
    backend = load_backend("numpy", "cpu")
    backend.prepare(plan.steps, batch)  # numba's code, like the modules, is loaded before measuring
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    results = run_forward(plan, backend, batch=batch, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"estimate_bytes": estimate.total, "traced_peak_bytes": peak - before, "ok": all(r.ok for r in results)}


# ----------------------------------------------------------------------------- the parent
def worker(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *arguments], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, bufsize=1)


def answer(process: subprocess.Popen) -> dict:
    line = process.stdout.readline()
    if not line:
        raise SystemExit(f"a worker failed: {' '.join(process.args[2:])}")
    return json.loads(line)


def measure(model: str, batch: int, repeat: int) -> dict:
    workers = {name: worker("--serve", model, str(batch), name) for name in BACKENDS}
    first = {name: answer(process) for name, process in workers.items()}  # one at a time: each warms up alone
    times = {name: [] for name in BACKENDS}
    for _ in range(repeat + 1):  # the first round is untimed
        for name, process in workers.items():
            time.sleep(PAUSE_S)
            process.stdin.write("\n")
            times[name].append(answer(process)["seconds"])
    for process in workers.values():
        process.stdin.close()
        process.wait()
    done = subprocess.run([sys.executable, __file__, "--traced", model, str(batch)], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise SystemExit(f"the tracemalloc run of {model} failed:\n{done.stderr}")
    traced = json.loads(done.stdout.strip().splitlines()[-1])
    return {"model": first["numpy"]["name"], "batch": batch, "layers": first["numpy"]["layers"],
            "failed": first["numpy"]["failed"] + first["torch"]["failed"] + ([] if traced["ok"] else ["traced run"]),
            "exact_peak": all(f["exact_peak"] for f in first.values()),
            **{f"{name}_seconds": statistics.median(times[name][1:]) for name in BACKENDS},
            **{f"{name}_all_seconds": times[name][1:] for name in BACKENDS},
            **{f"{name}_peak_bytes": first[name]["peak_growth_bytes"] for name in BACKENDS},
            **traced}


def environment() -> str:
    import numpy
    import torch

    from cnncalc.backends.compiled import description
    from cnncalc.backends.ops import host_threads

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = {key: os.environ[key] for key in sorted(os.environ) if key.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores (load average {load:.2f} at the end); Python {platform.python_version()}, "
            f"NumPy {numpy.__version__} ({host_threads()} threads; {description()}), PyTorch {torch.__version__} "
            f"({torch.get_num_threads()} threads); BLAS/OpenMP environment: {blas or 'none set'}")


def table(rows: list[dict]) -> str:
    header = ("| model | batch | NumPy s | PyTorch s | time ratio | NumPy peak | PyTorch peak | memory ratio "
              "| estimate | traced peak | estimate / peak |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['batch']} | {row['numpy_seconds']:.3f} | {row['torch_seconds']:.3f} "
            f"| {row['numpy_seconds'] / row['torch_seconds']:.2f}x "
            f"| {row['numpy_peak_bytes'] / MiB:.1f} MiB | {row['torch_peak_bytes'] / MiB:.1f} MiB "
            f"| {row['numpy_peak_bytes'] / max(row['torch_peak_bytes'], 1):.2f}x "
            f"| {row['estimate_bytes'] / MiB:.1f} MiB | {row['traced_peak_bytes'] / MiB:.1f} MiB "
            f"| {row['estimate_bytes'] / row['traced_peak_bytes']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--repeat", type=int, default=7, help="timed forward passes per backend; the median counts")
    parser.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    parser.add_argument("--serve", nargs=3, metavar=("MODEL", "BATCH", "BACKEND"), help=argparse.SUPPRESS)
    parser.add_argument("--traced", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Many passes in one process: numba's kernels, loaded once, always pay (a one-off `verify` uses
    # them from compiled.AUTO_MIN_VALUES); the workers inherit it. CNNCALC_NUMBA=0 measures NumPy alone.
    os.environ.setdefault("CNNCALC_NUMBA", "1")
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return
    if args.traced:
        print(json.dumps(traced_peak(args.traced[0], int(args.traced[1]))))
        return
    rows = []
    for model in args.models:
        for batch in args.batches:
            rows.append(measure(model, batch, args.repeat))
            print(f"measured {model} at batch {batch}", file=sys.stderr)
    print(f"Forward pass at the zoo input (224x224), float32, median of {args.repeat} passes per backend taking "
          "turns; peak = resident-set growth during the first pass (VmHWM - VmRSS, a fresh process per backend); "
          "estimate = what `verify` prints, traced peak = tracemalloc's peak during `verify`'s pass\n")
    print(table(rows))
    print(f"\nEnvironment: {environment()}")
    failed = {f"{row['model']} batch {row['batch']}": row["failed"] for row in rows if row["failed"]}
    if failed:
        print(f"note: layers that did not match: {failed}")
    if not all(row["exact_peak"] for row in rows):
        print("note: /proc/self/clear_refs was not writable; peaks include anything before the forward pass")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
