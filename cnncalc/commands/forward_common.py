"""What `cnncalc verify` and `cnncalc run` share: their backend options, finding and analysing the
spec, loading a backend, the memory check before a forward pass, and the findings both JSON
reports carry.

Everything here raises CnnCalcError (located) for unusable input; the two commands turn it into
one line and an exit code. Only click and the light shared helpers at module level; the analysis
and the backends (numpy, torch, cupy) come in when a command runs.
"""
from __future__ import annotations

import click

from .support import quantity_option

BACKEND_NAMES = ("numpy", "torch", "cupy")


def backend_options(func):
    options = [
        click.option("--backend", type=click.Choice(BACKEND_NAMES), default="numpy", show_default=True,
                     help="numpy: ops.py on the CPU; torch: torch.nn.functional; cupy: ops.py on a GPU."),
        click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
                     help="Where the arrays live [default: cpu; cuda for cupy]."),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Seed of the random weights and input."),
        quantity_option("--max-memory", metavar="BYTES", positive=True,
                        help="Refuse runs estimated above this, e.g. 4GiB [default: 50% of the available memory]."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def resolve_spec(spec: str) -> str:
    """A file, a zoo model, or a lecture example: ``zoo.spec_path``, the resolver every command
    uses (it raises SpecError, with close matches, for a name that is none of them)."""
    from .. import zoo

    return str(zoo.spec_path(spec))


def analysed(spec: str, batch: int, input_shape: str | None):
    """(spec, report at float32 and ``batch``, the plan that executes it), the spec's input replaced
    by ``input_shape`` (read as `--input`) when given."""
    from dataclasses import replace

    from ..api import analyze_spec, load_spec

    loaded = load_spec(resolve_spec(spec), input_shape=input_shape)
    # The backends floor a size that is not whole, as PyTorch does, whatever the spec says. That is the
    # spec's own choice only when it declares `rounding: floor` (one note lists the layers); otherwise
    # the floor is the default, and each floored layer is warned, as `table` warns it.
    analysed_spec = loaded if loaded.rounding == "floor" else replace(loaded, rounding=None)
    analysis = analyze_spec(analysed_spec, rounding=None, batch=batch, dtype="float32")
    return loaded, analysis.report, analysis.plan


def load_engine(name: str, device: str | None):
    """The backend ``name`` on ``device`` (default: cpu, cuda for cupy); a missing library or
    device is an error located at the options."""
    from ..backends.registry import load_backend
    from ..errors import CnnCalcError

    try:
        return load_backend(name, device or ("cuda" if name == "cupy" else "cpu"))
    except CnnCalcError as exc:
        raise exc.located(file=f"--backend {name}" + (f" --device {device}" if device else "")) from None


def other_engine(name: str | None, engine):
    """The `--cross-check` backend, or None; it runs where the first one ran (torch) or where it must."""
    if name is None:
        return None
    if name == engine.name:
        raise click.BadParameter(f"cross-checking {name} against itself shows nothing; pick another backend",
                                 param_hint="--cross-check")
    device = {"numpy": "cpu", "cupy": "cuda"}.get(name, engine.device)  # torch goes where the first one ran
    return load_engine(name, device)


def check_memory(estimate, engine, max_memory, loaded):
    """(estimate, limit in bytes); an estimate above the limit (`--max-memory`, else half of what the
    device has free) is an error that suggests a smaller input."""
    from ..backends.memory import check_memory as check_estimate, default_limit
    from ..errors import CnnCalcError

    if max_memory:
        limit, limit_text = max_memory[0], f"--max-memory {max_memory[1]}"
    else:
        limit, limit_text = default_limit(engine.available_bytes())
        limit_text += f" on {engine.device}"
    try:
        check_estimate(estimate, limit, limit_text, smaller_input(loaded))
    except CnnCalcError as exc:
        raise exc.located(file=loaded.file) from None
    return estimate, limit


def smaller_input(loaded) -> str | None:
    """The spec's input at half the spatial size, written as --input takes it (None if flat)."""
    from ..notation import shape_text

    channels, *spatial = loaded.input
    if not spatial or max(spatial) < 2:
        return None
    return shape_text([channels, *(max(1, s // 2) for s in spatial)], loaded.layout)


def findings(report) -> dict:
    """The analysis' warnings (e.g. a size floored by default), notes and floored layers, as `table
    --format json` has them."""
    return {"warnings": [w.to_dict() for w in report.warnings], "notes": [n.to_dict() for n in report.notes],
            "rounded": [r.to_dict() for r in report.rounded]}


def run_header(report, engine, seed: int) -> dict:
    """What both JSON reports open with: the spec, the backend that ran it, the seed and the inputs."""
    return {"spec": report.name, "file": report.file, "backend": engine.name, "device": engine.device,
            "seed": seed, "inputs": {name: list(shape) for name, shape in report.inputs.items()}}


def duration(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"
