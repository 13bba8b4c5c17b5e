"""Peak memory of one trial, measured as what it is.

The process's lifetime high-water mark (``getrusage().ru_maxrss``) cannot be reset, so in a worker that
runs several trials it reports the largest trial so far, not this one. On Linux writing ``5`` to
``/proc/self/clear_refs`` resets the high-water mark (``VmHWM``) to the current resident size
(proc(5), Linux 4.0+): the peak read at the end is then this trial's. It is the *process's* resident
memory, so it includes the interpreter and torch (a few hundred MB) besides the trial's own data.
Where the reset is not possible the lifetime mark is stored and labelled so. On a CUDA device the
torch allocator's peak (``torch.cuda.max_memory_allocated``, reset per trial) is stored as well.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["TrialMemory", "SCOPE_TRIAL", "SCOPE_PROCESS"]

SCOPE_TRIAL = "peak resident memory (RSS) of the process during this trial, reset at its start"
SCOPE_PROCESS = "peak resident memory (RSS) of the process since it started (no per-trial reset on this OS)"


def _reset_high_water_mark() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return _vm_hwm_bytes() is not None
    except OSError:
        return False


def _vm_hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _lifetime_peak_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _cuda() -> Any:
    torch = sys.modules.get("torch")  # never import torch for this: a fake trial may not need it
    try:
        return torch.cuda if torch is not None and torch.cuda.is_initialized() else None
    except Exception:  # noqa: BLE001 - a broken CUDA setup is not this module's business
        return None


class TrialMemory:
    """Start at a trial's beginning; :meth:`fields` at its end gives the result's memory fields.

    >>> meter = TrialMemory()  # doctest: +SKIP
    >>> ...; result.update(meter.fields())  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.per_trial = _reset_high_water_mark()
        cuda = _cuda()
        if cuda is not None:
            cuda.reset_peak_memory_stats()

    def fields(self) -> dict[str, Any]:
        peak = _vm_hwm_bytes() if self.per_trial else _lifetime_peak_bytes()
        out: dict[str, Any] = {
            "peak_memory_bytes": peak,
            "peak_memory_scope": SCOPE_TRIAL if self.per_trial else SCOPE_PROCESS,
        }
        cuda = _cuda()
        if cuda is not None:
            out["peak_cuda_bytes"] = int(cuda.max_memory_allocated())
        return out
