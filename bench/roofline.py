"""The roofline bound of `table --device` against measured PyTorch time, per layer and per network.

    python bench/roofline.py [--nets resnet18 vgg16 mobilenet_v2] [--batch 1] [--runs 11] [--device cpu]
                             [--json FILE]

1. The device is measured here, not taken from a datasheet, with PyTorch's threads as set: peak
   FLOP/s = the fastest of float32 matmuls (2 x n^3 FLOPs; n = 512, 1024, 2048 on the CPU) and 3x3
   convolutions (128 channels on 28x28, 256 on 14x14: oneDNN's kernels can beat the BLAS matmul on a
   CPU), best of 30 each; bandwidth = the best of 30 copies of a 256 MiB float32 tensor (read + write:
   2 x 256 MiB moved; an 8 MiB copy, which stays in cache, is shown beside it). Short operations and
   the best of many runs, because on a shared machine a long one is rarely left alone. Both figures go
   into a temporary device table that `table --device measured --devices FILE` reads, as a user's would.
2. Each zoo net is exported to PyTorch (cnncalc.export.pytorch) and run in eval mode under
   inference_mode. Per layer: the layer alone (its submodule on a random input of the row's shape
   and the batch; an `add` row as `a + b`; views are skipped, the bound is 0), median and best of
   --runs after 2 warm-ups. Per network: the whole model, median and best of --runs after 2 warm-ups.
3. Ratios are measured / bound (>= 1 if the bound holds; 1 would be a layer at the roofline),
   per kind of layer as sum(measured) / sum(bound) over its rows (from the medians, and from the
   best times), with the median and range of the per-layer ratios (best times) beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from cnncalc.api import analyze_spec, load_spec
from cnncalc.export.pytorch import pytorch_source
from cnncalc.roofline import bound_on, find_device

COPY_BYTES = 256 * 2**20
VIEWS = {"flatten", "dropout", "identity", "drop_path", "reshape", "squeeze", "unsqueeze", "permute", "split"}


def timed(func, runs: int, device: str, warmup: int = 2) -> list[float]:
    """Wall times of ``func()``; on a GPU each is closed by a synchronize."""
    for _ in range(warmup):
        func()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        sync()
        times.append(time.perf_counter() - start)
    return times


PEAK_RUNS = 30


def measure_device(device: str) -> dict:
    """Peak float32 FLOP/s (the fastest matmul or conv) and bandwidth (a copy) of this machine."""
    sizes = (512, 1024, 2048) if device == "cpu" else (4096, 8192)
    with torch.inference_mode():
        matmul = max(matmul_rate(n, device) for n in sizes)
        convolution = max(conv_rate(channels, size, device) for channels, size in ((128, 28), (256, 14)))
    return {"peak_flops": max(matmul, convolution), "matmul_flops": matmul, "conv_flops": convolution,
            "threads": torch.get_num_threads(), "bandwidth": copy_rate(COPY_BYTES, device),
            "cache_copy_rate": copy_rate(8 * 2**20, device)}


def matmul_rate(n: int, device: str) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / min(timed(lambda: torch.mm(a, b), PEAK_RUNS, device))


def conv_rate(channels: int, size: int, device: str) -> float:
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device).eval()
    x = torch.randn(1, channels, size, size, device=device)
    return 2 * channels**2 * 9 * size**2 / min(timed(lambda: conv(x), PEAK_RUNS, device))


def copy_rate(size: int, device: str) -> float:
    """Bytes moved per second (read + write) by the best copy of ``size`` bytes of float32."""
    src = torch.empty(size // 4, device=device).uniform_()
    dst = torch.empty_like(src)
    return 2 * size / min(timed(lambda: dst.copy_(src), PEAK_RUNS, device))


def device_table(measured: dict, folder: Path) -> str:
    where = f"measured by bench/roofline.py on {platform.processor() or platform.machine()}, " \
            f"{measured['threads']} threads, {time.strftime('%Y-%m-%d')}"
    path = folder / "measured.yaml"
    path.write_text(f"""devices:
  measured:
    name: this machine, measured ({where})
    peak_flops: {{float32: {measured['peak_flops']:.6e}}}
    memory_bandwidth: {measured['bandwidth']:.6e}
    memory: 1GB
    sources: {{peak_flops: "{where}: fastest float32 matmul or 3x3 conv",
              memory_bandwidth: "{where}: best 256 MiB copy", memory: not measured}}
""")
    return str(path)


def exported_model(name: str, batch: int, device: str):
    """(analysis at ``batch``, the eval-mode PyTorch model of the spec, its submodules by row name)."""
    loaded = load_spec(name)
    analysis = analyze_spec(loaded, batch=batch)
    namespace = {"__name__": "exported"}
    exec(compile(pytorch_source(analyze_spec(loaded), name), f"<{name}>", "exec"), namespace)
    model_class = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)][-1]
    model = model_class().eval().to(device)
    return analysis, model, dict(model.named_modules())


def layer_runner(row, modules: dict, batch: int, device: str):
    """A function running this row alone, or None for a view (nothing to run)."""
    if row.kind in VIEWS:
        return None
    x = torch.randn(batch, *row.input_shape, device=device)
    if row.kind == "add":
        y = torch.randn_like(x)
        return lambda: x + y
    module = modules.get(row.name)
    if module is None:
        raise SystemExit(f"{row.name} ({row.kind}) has no submodule; this benchmark knows only add rows without one")
    return lambda: module(x)


def layer_times(runners: list, runs: int, device: str) -> list[list[float]]:
    """Each layer's times, the layers taking turns (round after round, after 2 warm-up rounds), so
    a burst of load from elsewhere touches many layers a little rather than one layer entirely."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times: list[list[float]] = [[] for _ in runners]
    for round_ in range(runs + 2):
        for run, taken in zip(runners, times):
            if run is None:
                taken.append(0.0)
                continue
            start = time.perf_counter()
            run()
            sync()
            if round_ >= 2:
                taken.append(time.perf_counter() - start)
    return [taken[-runs:] for taken in times]


def bench_net(name: str, devices_file: str, batch: int, runs: int, device: str) -> dict:
    analysis, model, modules = exported_model(name, batch, device)
    report = analysis.report
    bound = bound_on(report, find_device("measured", devices_file), "float32")
    with torch.inference_mode():
        runners = [layer_runner(row, modules, batch, device) for row in report.layers]
        times = layer_times(runners, runs, device)
        x = torch.randn(batch, *report.input_shape, device=device)
        whole = timed(lambda: model(x), runs, device)
    rows = [{"name": row.name, "kind": row.kind, "bound_s": float(layer.time), "bound": layer.bound,
             "measured_s": statistics.median(taken), "best_s": min(taken)}
            for row, layer, taken in zip(report.layers, bound.layers, times)]
    return {"net": name, "batch": batch, "rows": rows, "bound_s": float(bound.time),
            "whole_measured_s": statistics.median(whole), "whole_best_s": min(whole),
            "layers_measured_s": sum(row["measured_s"] for row in rows),
            "layers_best_s": sum(row["best_s"] for row in rows)}


def kind_ratios(results: list[dict]) -> dict[str, dict]:
    """Per kind: rows, sum(measured) / sum(bound) from medians and from best times, and the median
    and range of the per-layer ratios (best times)."""
    by_kind = defaultdict(list)
    for result in results:
        for row in result["rows"]:
            if row["bound_s"] > 0:
                by_kind[row["kind"]].append(row)
    table = {}
    for kind, rows in sorted(by_kind.items()):
        ratios = [row["best_s"] / row["bound_s"] for row in rows]
        bound = sum(row["bound_s"] for row in rows)
        table[kind] = {"rows": len(rows), "memory_bound": sum(row["bound"] == "memory" for row in rows),
                       "ratio": sum(row["measured_s"] for row in rows) / bound,
                       "ratio_best": sum(row["best_s"] for row in rows) / bound,
                       "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
    return table


def report_text(measured: dict, results: list[dict], kinds: dict, device: str) -> str:
    lines = [f"device: {device}, {platform.processor() or platform.machine()}, {measured['threads']} threads, "
             f"torch {torch.__version__}",
             f"peak float32 (best of runs): {measured['peak_flops'] / 1e9:.1f} GFLOP/s (matmul "
             f"{measured['matmul_flops'] / 1e9:.1f}, conv {measured['conv_flops'] / 1e9:.1f})",
             f"bandwidth (best 256 MiB copy): {measured['bandwidth'] / 1e9:.2f} GB/s (8 MiB copy, in cache: "
             f"{measured['cache_copy_rate'] / 1e9:.2f} GB/s)", "",
             "| net | batch | bound (ms) | whole net: median (ms) | ratio | best (ms) | ratio "
             "| layers alone, summed: median (ms) | ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['net']} | {r['batch']} | {1e3 * r['bound_s']:.2f} | {1e3 * r['whole_measured_s']:.2f} | "
                     f"{r['whole_measured_s'] / r['bound_s']:.2f} | {1e3 * r['whole_best_s']:.2f} | "
                     f"{r['whole_best_s'] / r['bound_s']:.2f} | {1e3 * r['layers_measured_s']:.2f} | "
                     f"{r['layers_measured_s'] / r['bound_s']:.2f} |")
    lines += ["", "| kind | rows | memory-bound | measured / bound: medians | best times | per layer: median "
              "| min | max |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind, k in kinds.items():
        lines.append(f"| {kind} | {k['rows']} | {k['memory_bound']} | {k['ratio']:.2f} | {k['ratio_best']:.2f} | "
                     f"{k['median']:.2f} | {k['min']:.2f} | {k['max']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["resnet18", "vgg16", "mobilenet_v2"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    args = parser.parse_args()
    torch.manual_seed(0)
    measured = measure_device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        devices_file = device_table(measured, Path(folder))
        results = [bench_net(net, devices_file, args.batch, args.runs, args.device) for net in args.nets]
    kinds = kind_ratios(results)
    print(report_text(measured, results, kinds, args.device))
    if args.json:
        Path(args.json).write_text(json.dumps({"measured": measured, "results": results, "kinds": kinds,
                                               "cpus": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
