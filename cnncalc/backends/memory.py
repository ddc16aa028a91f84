"""How much memory a forward pass needs, checked before anything is allocated.

Estimate = weights + the largest live set of activations (both from the analytic report at
float32 and the run's batch) + scratch: NumPy makes a padded copy of a conv's input and each
element-wise op allocates its result before the input is freed (about two of the largest
activation), and im2col copies at most ``IM2COL_SCRATCH_BYTES`` of columns at a time.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..errors import CnnCalcError
from ..units import human_bytes, short_bytes

IM2COL_SCRATCH_BYTES = 8 * 2**20  # ops.IM2COL_BUDGET_BYTES (a test keeps the two equal)
DEFAULT_SHARE = 0.5  # of the memory available now: the default limit


class MemoryLimitError(CnnCalcError):
    """The run would need more memory than the limit allows."""


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    activations: int  # peak live activations, whole batch
    scratch: int
    kept: int = 0  # outputs kept to print or cross-check
    batch: int = 1

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.scratch + self.kept

    @property
    def per_sample(self) -> float:
        """The part that grows with the batch."""
        return (self.total - self.weights - IM2COL_SCRATCH_BYTES) / self.batch

    def to_dict(self) -> dict:
        return {"weights": self.weights, "activations": self.activations, "scratch": self.scratch,
                "kept": self.kept, "total": self.total}


def estimate_memory(report, keep_all: bool = False) -> MemoryEstimate:
    """``report`` analysed at float32 and the batch of the run."""
    largest = max([report.totals.input_bytes, *(row.activation_bytes for row in report.layers)])
    return MemoryEstimate(
        weights=report.totals.param_bytes,
        activations=report.totals.peak_live_activation_bytes,
        scratch=2 * largest + IM2COL_SCRATCH_BYTES,
        kept=report.totals.activation_bytes if keep_all else 0,
        batch=report.batch,
    )


def host_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else free pages from sysconf, else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_limit(available: int | None) -> tuple[int | None, str]:
    """(limit in bytes or None for no limit, how it was chosen in words)."""
    if available is None:
        return None, "no limit: the available memory is unknown"
    share = int(available * DEFAULT_SHARE)
    return share, f"{DEFAULT_SHARE:.0%} of the {human_bytes(available)} available"


def check_memory(estimate: MemoryEstimate, limit: int | None, limit_text: str, smaller_input: str | None) -> None:
    """Raise MemoryLimitError with what to change when the estimate is above the limit."""
    if limit is None or estimate.total <= limit:
        return
    parts = (f"weights {short_bytes(estimate.weights)}, activations {short_bytes(estimate.activations)}, "
             f"scratch {short_bytes(estimate.scratch)}"
             + (f", kept outputs {short_bytes(estimate.kept)}" if estimate.kept else ""))
    advice = []
    batch = fitting_batch(estimate, limit)
    if batch and batch < estimate.batch:
        advice.append(f"--batch {batch}")
    if smaller_input:
        advice.append(f"a smaller --input such as {smaller_input}")
    hint = f"; try {' or '.join(advice)}" if advice else ""
    raise MemoryLimitError(
        f"the run needs about {human_bytes(estimate.total)} ({parts}) at batch {estimate.batch}, more than "
        f"the limit of {human_bytes(limit)} ({limit_text}){hint}, or raise --max-memory")


def fitting_batch(estimate: MemoryEstimate, limit: int) -> int:
    """The largest batch whose estimate fits the limit (0 if not even one sample does)."""
    room = limit - estimate.weights - IM2COL_SCRATCH_BYTES
    if room <= 0 or estimate.per_sample <= 0:
        return 0
    return math.floor(room / estimate.per_sample)
