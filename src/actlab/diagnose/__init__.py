"""Activation health of any PyTorch model, and swapping its activations (DESIGN.md §5).

>>> import torch, actlab
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
>>> with torch.no_grad():
...     model[0].bias[:16] = -10.0  # 16 of the 64 units can never fire
>>> with actlab.watch(model) as w:
...     for _ in range(10):
...         model(torch.randn(128, 20)).pow(2).mean().backward()
>>> report = w.report()
>>> report.dead_fraction, report.site("1").dead_units[:3]
(0.25, (0, 1, 2))
>>> model, swapped = actlab.swap(model, "leaky_relu(negative_slope=0.1)")
>>> model[1]
Activation(leaky_relu, negative_slope=0.1)

``print(report)`` shows the per-site table and the findings with advice;
:mod:`actlab.diagnose.render` draws the plots.
"""

from __future__ import annotations

import importlib
from typing import Any

# The names resolve on first use, and that is where torch is required (an ImportError naming the
# extra to install): the package also holds ``actlab.diagnose.cli``, whose ``add_arguments`` is
# imported to build the parser of every ``actlab`` command and must not need torch.
_EXPORTS = {
    "watch": "actlab.diagnose.monitor",
    "Watch": "actlab.diagnose.monitor",
    "DiagnosisReport": "actlab.diagnose.report",
    "SiteReport": "actlab.diagnose.report",
    "Finding": "actlab.diagnose.report",
    "Histogram": "actlab.diagnose.report",
    "diagnose": "actlab.diagnose.running",
    "swap": "actlab.diagnose.swapping",
    "SwapResult": "actlab.diagnose.swapping",
    "SwapReport": "actlab.diagnose.swapping",
    "Replacement": "actlab.diagnose.swapping",
    "NotReplaced": "actlab.diagnose.swapping",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'actlab.diagnose' has no attribute {name!r}")
    from actlab.ops._lazy import require

    require("torch", "actlab.diagnose")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
