"""``actlab kernels``: the fused kernels' status, and ``--build`` to build them ahead of first use
(in a Docker image, a CI cache step, or before a long job), so no process pays for the compile."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--build", action="store_true", help="build (or load) the library now and say how long it took")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")


def status(build: bool = False) -> dict:
    """What the fast path has here: switch, compiler, cache, library, and which specs run fused."""
    from actlab.registry import all_specs
    from actlab.torch import kernels

    compiler = os.environ.get("CXX", "c++")
    out: dict = {
        "enabled": kernels.enabled(),
        "switch": f"{kernels.ENV_SWITCH}={os.environ.get(kernels.ENV_SWITCH, '1')}",
        "compiler": shutil.which(compiler) or f"{compiler} (not found)",
        "library": str(kernels.library_path()),
        "built": kernels.library_path().exists(),
    }
    if build:
        started = time.monotonic()
        out["loaded"] = kernels.build()
        out["seconds"] = round(time.monotonic() - started, 2)
        out["built"] = kernels.library_path().exists()
    out["cuda"] = _cuda_status()
    elementwise = [s for s in all_specs() if s.kind == "elementwise"]
    fused = [s for s in elementwise if s.kernel is not None]
    out["fused"] = [s.name for s in fused if not s.native]
    out["float_form"] = [s.name for s in fused if not s.native and s.kernel.fast_where is not None]
    # float32 through PyTorch's own op (accurate there); bfloat16/float16 fused where they have a kernel
    out["pytorch_native"] = [s.name + ("" if s.kernel is None else "*") for s in elementwise if s.native]
    out["eager_only"] = [s.name for s in elementwise if s.kernel is None and not s.native]
    return out


def _cuda_status() -> str:
    """Whether CUDA tensors take the fused CUDA kernels here, and if not why."""
    import torch

    from actlab.torch import cuda

    if not torch.cuda.is_available():
        return "no (no CUDA device: CUDA tensors would run the eager path)"
    if not cuda.available():
        return "no (NVRTC or torch's kernel loader missing: the eager path)"
    return f"yes (NVRTC, compiled per activation and dtype on first use, cached in {cuda._cache_dir()})"


def run(args: argparse.Namespace) -> int:
    info = status(build=args.build)
    if args.format == "json":
        print(json.dumps(info, indent=2))
        return 0 if info.get("loaded", True) else 1
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="actlab fused kernels", show_header=False, width=100)
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("")
    table.add_row("switched on", f"{'yes' if info['enabled'] else 'no'} ({escape(info['switch'])})")
    table.add_row("C++ compiler", escape(info["compiler"]))
    table.add_row("library", escape(info["library"]) + ("" if info["built"] else " (not built yet)"))
    if "loaded" in info:
        table.add_row("loaded", f"{'yes' if info['loaded'] else 'NO (see the warning above)'} in {info['seconds']} s")
    fused = escape(", ".join(info["fused"]))  # names are text, not rich markup
    table.add_row("fused", f"{len(info['fused'])} (float form: {len(info['float_form'])}): {fused}")
    table.add_row("PyTorch's op", escape(", ".join(info["pytorch_native"])) + " (*: fused in bfloat16/float16)")
    table.add_row("CUDA", escape(info["cuda"]))
    table.add_row("eager only", escape(", ".join(info["eager_only"])) or "none")
    Console(file=sys.stdout, width=100).print(table)
    return 0 if info.get("loaded", True) else 1
