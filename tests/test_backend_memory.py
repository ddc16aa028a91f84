"""The memory estimate `verify` prints (backends/memory.py) against the peak that tracemalloc
measures while the NumPy backend runs the same pass (NumPy reports its allocations to it)."""

from __future__ import annotations

import tracemalloc

import numpy.random  # noqa: F401 (imported before measuring: module code is not the pass's memory)
import pytest

import cnncalc.backends.parameters  # noqa: F401 (as numpy.random)
from cnncalc.backends.forward import run_forward
from cnncalc.backends.memory import MemoryEstimate, estimate_memory, fitting_batch
from cnncalc.backends.registry import load_backend
from cnncalc.commands.forward_common import analysed

# (zoo model, --input, batch): every op family the zoo uses, small enough to run in a second
SMALL_RUNS = [
    ("lenet5", None, 1),  # connection table, tanh, linear
    ("lenet5", None, 4),
    ("squeezenet1_1", None, 1),  # ceil_mode pools, concat
    ("mobilenet_v3_small", "3x128x128", 2),  # depthwise (strided, 5x5), hardswish, squeeze-excite
    ("shufflenet_v2_x1_0", "3x128x128", 1),  # split, channel shuffle
    ("dcgan_generator", None, 2),  # transposed convolutions
    ("resnet18", "3x112x112", 2),  # residual adds, strided 1x1 downsampling
    ("efficientnet_b0", "3x96x96", 1),  # silu, sigmoid gates, drop path
    ("convnext_tiny", "3x64x64", 1),  # 7x7 depthwise, permute, layer norm, gelu, layer scale
    ("googlenet_paper", None, 1),  # local response norm, branches
]


def traced_peak(plan, batch, keep=None, source=None) -> tuple[int, list]:
    backend = load_backend("numpy", "cpu")
    backend.prepare(plan.steps, batch)  # numba's code loaded first: code, like modules, is not the pass's memory
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        results = run_forward(plan, backend, batch=batch, seed=0, keep=keep, source=source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before, results


@pytest.mark.parametrize("name, input_shape, batch", SMALL_RUNS, ids=lambda v: str(v))
def test_the_estimate_covers_the_measured_peak_within_a_fifth(name, input_shape, batch):
    loaded, report, plan = analysed(name, batch, input_shape)
    estimate = estimate_memory(report)
    peak, results = traced_peak(plan, batch, source=loaded.source)
    assert all(r.ok for r in results)
    assert peak <= estimate.total <= 1.2 * peak, (estimate, peak)


@pytest.mark.parametrize("name", ["lenet5", "squeezenet1_1"])
def test_kept_outputs_are_counted_until_the_end(name):
    loaded, report, plan = analysed(name, 1, None)
    estimate = estimate_memory(report, keep_all=True)
    peak, _ = traced_peak(plan, 1, keep=lambda row: True, source=loaded.source)
    assert peak <= estimate.total <= 1.2 * peak
    assert estimate.total > estimate_memory(report).total


def test_an_output_that_is_its_input_again_costs_nothing():
    _, report, _ = analysed("alexnet", 1, None)  # dropouts after fc6 and fc7
    dropouts = [row for row in report.layers if row.kind == "dropout"]
    assert dropouts
    with_dropout = estimate_memory(report)
    assert with_dropout.row == "fc6"  # its 151 MB of weights, not a dropout, sets the peak
    assert with_dropout.activations == (256 * 6 * 6 + 4096) * 4


def test_the_estimate_grows_with_the_batch_and_the_offered_batch_fits():
    _, report, _ = analysed("resnet18", 1, "3x64x64")
    estimate = estimate_memory(report)
    totals = [estimate.at_batch(batch).total for batch in (1, 2, 4, 8)]
    assert totals == sorted(totals) and totals[0] == estimate.total
    limit = totals[2] + 1
    assert fitting_batch(estimate, limit) == max(b for b in range(1, 64) if estimate.at_batch(b).total <= limit)
    assert fitting_batch(estimate, 1000) == 0


def test_an_estimate_made_by_hand_offers_only_its_own_batch():
    estimate = MemoryEstimate(weights=10, activations=20, scratch=5, batch=3)
    assert fitting_batch(estimate, 100) == 3 and fitting_batch(estimate, 30) == 0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_both_cpu_backends_keep_freed_memory_alike(monkeypatch, backend):
    """Both are measured on equal terms: each asks glibc to keep freed memory when it loads."""
    if backend == "torch":
        pytest.importorskip("torch")
    import importlib

    module = importlib.import_module(f"cnncalc.backends.{backend}_backend")
    calls = []
    monkeypatch.setattr(module, "keep_freed_memory", lambda: calls.append(backend) or True)
    load_backend(backend, "cpu")
    assert calls == [backend]


def test_keeping_freed_memory_applies_on_linux():
    import sys

    from cnncalc.backends.common import keep_freed_memory

    assert keep_freed_memory() is sys.platform.startswith("linux")
