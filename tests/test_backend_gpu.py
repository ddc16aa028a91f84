"""The GPU backends: PyTorch on CUDA and CuPy. Each test skips, saying why, where this machine
has no CUDA GPU (or no CuPy); on a GPU machine they compare against the NumPy backend."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import cnncalc
import cnncalc.api
from cnncalc.backends.forward import compare_outputs, run_forward
from cnncalc.backends.registry import BackendUnavailable, load_backend
from cnncalc.cli import cli

TOLERANCE = 1e-4
# A mix of kinds, small enough for a second or two: grouped and transposed convs, pools with
# ceil_mode and asymmetric padding, upsampling, a residual and a cropping concat.
MIXED = {
    "name": "mixed",
    "input": [4, 17, 15],
    "layers": [
        {"conv": {"filters": 8, "kernel": 3, "stride": 2, "padding": [[1, 0], [0, 1]], "groups": 2}, "name": "a"},
        "batchnorm",
        "relu",
        {"residual": {"layers": [{"conv": {"filters": 8, "kernel": 3, "padding": "same"}}, "gelu"]}},
        {"maxpool": {"kernel": 3, "stride": 2, "padding": 1, "ceil_mode": True}},
        {"conv_transpose": {"filters": 4, "kernel": 4, "stride": 2, "padding": [[1, 2], [1, 1]]}},
        {"upsample": {"scale_factor": 1.5, "mode": "bilinear"}},
        {"concat": {"from": ["a", "upsample1"], "crop": True}},
        {"avgpool": {"kernel": 2, "ceil_mode": True, "count_include_pad": False}},
        "lrn 3",
        "global_avgpool",
        {"linear": 10},
        "softmax",
    ],
}


def _gpu_backend(name: str):
    """The backend on CUDA, or skip with the reason it cannot run here."""
    if name == "torch":
        pytest.importorskip("torch", reason="PyTorch is not installed")
    try:
        return load_backend(name, "cuda")
    except BackendUnavailable as exc:
        pytest.skip(f"no GPU for the {name} backend here: {exc.message}")


@pytest.fixture(params=["torch", "cupy"])
def gpu(request):
    return _gpu_backend(request.param)


def test_mixed_spec_matches_numpy_on_the_gpu(gpu):
    plan = cnncalc.api.analyze_spec(MIXED).plan
    ours = run_forward(plan, gpu, batch=2, seed=5, keep=lambda row: True)
    assert all(r.ok for r in ours), [(r.name, r.actual_shape, r.error) for r in ours if not r.ok]
    reference = run_forward(plan, load_backend("numpy"), batch=2, seed=5, keep=lambda row: True)
    assert all(d.ok for d in compare_outputs(ours, reference, TOLERANCE))


@pytest.mark.parametrize("model, shape", [("resnet18", "3x64x64"), ("mobilenet_v2", "3x64x64"),
                                          ("googlenet", "3x96x96"), ("c3d", "3x16x32x32")])
def test_verify_zoo_models_on_the_gpu(gpu, model, shape):
    result = CliRunner().invoke(cli, ["verify", model, "--backend", gpu.name, "--device", "cuda",
                                      "--input", shape, "--batch", "4", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["device"], data["ok"], data["batch"]) == ("cuda", True, 4)


def test_lecture_example_is_exact_on_the_gpu(gpu):
    result = CliRunner().invoke(cli, ["run", "sobel_typo_corrected", "--backend", gpu.name, "--device", "cuda",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output"][2] == [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]


def test_gpu_memory_limit_reads_the_device(gpu):
    free = gpu.available_bytes()
    assert free is not None and free > 0


def test_cross_check_torch_cuda_against_cupy():
    torch_cuda = _gpu_backend("torch")
    _gpu_backend("cupy")
    result = CliRunner().invoke(cli, ["run", "resnet18", "--backend", "cupy", "--cross-check", "torch",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["cross_check"]["ok"] and torch_cuda.device == "cuda"
