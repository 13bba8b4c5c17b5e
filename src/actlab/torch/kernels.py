"""The fused fast path: one C++ loop forward and one backward per elementwise activation.

Each spec's :class:`~actlab.catalog.Kernel` (C++ bodies of f and f') is compiled, with the shared
loops in ``csrc/``, into one shared library of two operators, ``actlab_kernels::forward`` and
``::backward`` (CPU; float32, bfloat16, float16). The library is built once per source, torch
version and CPU capability into a disk cache and loaded in later processes in well under a second.
The accurate eager path (:mod:`actlab.torch.functional`) stays the reference, and the fallback
where no C++ compiler exists (one warning) or where the kernels are turned off.

CUDA tensors run the same operators, implemented for CUDA by :mod:`actlab.torch.cuda` (kernels
generated from the same specs' double bodies, compiled with NVRTC on first use); they need the CPU
library loaded too (it defines the operators).

Environment:
- ``ACTLAB_KERNELS=0`` turns the fast path off (``1``, the default, uses it).
- ``ACTLAB_KERNEL_CACHE``: the cache folder (default ``$XDG_CACHE_HOME/actlab/kernels``, else
  ``~/.cache/actlab/kernels``).
- ``CXX``: the C++ compiler (default ``c++``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from actlab.catalog import Spec

__all__ = [
    "use",
    "enabled",
    "available",
    "has_kernel",
    "eligible",
    "build",
    "param_encoder",
    "decode_params",
    "library_path",
]

ENV_SWITCH = "ACTLAB_KERNELS"
ENV_CACHE = "ACTLAB_KERNEL_CACHE"
_CSRC = Path(__file__).with_name("csrc")
DTYPES = (torch.float32, torch.bfloat16, torch.float16)

_enabled = os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "false", "no")
# None: not tried yet; True: loaded; False: failed (warned once, eager from then on).
_loaded: bool | None = None
_names: frozenset[str] = frozenset()
# Whether CUDA tensors take the fused path (a CUDA device and NVRTC; set by build()).
_cuda_ready = False
_lock = threading.Lock()


@contextlib.contextmanager
def use(enabled: bool) -> Iterator[None]:
    """Turn the fast path on or off inside the block (``use(False)``: the accurate eager path)."""
    global _enabled
    before, _enabled = _enabled, bool(enabled)
    try:
        yield
    finally:
        _enabled = before


def enabled() -> bool:
    """Whether the fast path is switched on (``ACTLAB_KERNELS``, :func:`use`)."""
    return _enabled


def available() -> bool:
    """Whether the kernels are built and loaded in this process (builds them if needed)."""
    return build()


def has_kernel(spec: Spec, dtype: Any = None, device: Any = None) -> bool:
    """Whether ``spec`` runs fused for tensors of this dtype and device (default float32, CPU; CUDA where
    :func:`actlab.torch.cuda.available`)."""
    if spec.kernel is None or spec.kind != "elementwise" or not build() or spec.name not in _names:
        return False
    dtype = torch.float32 if dtype is None else dtype
    device = torch.device("cpu" if device is None else device)
    if spec.native and spec.torch_native is not None and dtype == torch.float32:
        return False  # PyTorch's own op (accurate there); the kernel serves bfloat16 and float16
    return dtype in DTYPES and (device.type == "cpu" or (device.type == "cuda" and _cuda_ready))


def eligible(x: torch.Tensor) -> bool:
    """Whether the fused path takes this tensor now (switched on, loaded, a supported dtype, on the CPU
    or on CUDA where the CUDA path is available)."""
    if not (_enabled and _loaded is True and x.dtype in DTYPES):
        return False
    kind = x.device.type
    return kind == "cpu" or (kind == "cuda" and _cuda_ready)


def kernel_name(spec: Spec) -> str | None:
    """The library's name for ``spec``'s kernel (its name), or None if the library has none."""
    if spec.kernel is None or not build() or spec.name not in _names:
        return None
    return spec.name


def param_encoder(spec: Spec) -> Any:
    """A function from validated parameter values to the kernel's doubles: a choice by its index, a
    bool as 0/1, None as NaN (a closure over plain data, so torch.compile traces it)."""
    choices = tuple(p.choices for p in spec.params)
    if not choices:
        return lambda values: []

    def encode(values: Any) -> list[float]:
        out = []
        for options, value in zip(choices, values):
            if value is None:
                out.append(math.nan)
            elif options is not None:
                out.append(float(options.index(value)))
            else:
                out.append(float(value))
        return out

    return encode


def decode_params(spec: Spec, encoded: Sequence[float]) -> dict[str, Any]:
    """The inverse of :func:`param_encoder`: the kernel's doubles back to parameter values."""
    out = {}
    for p, value in zip(spec.params, encoded):
        if math.isnan(value):
            out[p.name] = None
        elif p.choices is not None:
            out[p.name] = p.choices[int(value)]
        elif p.kind is bool:
            out[p.name] = value != 0.0
        elif p.kind is int:
            out[p.name] = int(value)
        else:
            out[p.name] = value
    return out


# ----------------------------------------------------------------------------- source generation
def _identifier(text: str) -> str:
    return re.sub(r"\W", "_", str(text))


def _declarations(spec: Spec) -> str:
    lines = []
    for i, p in enumerate(spec.params):
        name = _identifier(p.name)
        if p.choices is not None:
            lines.append(f"const int {name} = static_cast<int>(prm[{i}]); (void){name};")
            for k, choice in enumerate(p.choices):
                lines.append(f"constexpr int {name}_{_identifier(choice)} = {k}; (void){name}_{_identifier(choice)};")
        elif p.kind is bool:
            lines.append(f"const bool {name} = prm[{i}] != 0.0; (void){name};")
        else:
            lines.append(f"const double {name} = prm[{i}]; (void){name};")
        if p.nullable:
            lines.append(f"const bool {name}_is_none = std::isnan(prm[{i}]); (void){name}_is_none;")
    return "\n    ".join(lines)


def _body(spec: Spec, code: str) -> str:
    return f"{{\n    (void)prm;\n    {_declarations(spec)}\n    {code.strip()}\n  }}"


def ref_struct(spec: Spec, qualifier: str = "") -> str:
    """``struct Ref``: the spec's double form (``forward``, ``derivative``), the parameters read from
    ``prm``. ``qualifier`` goes before each function (the CUDA source passes ``ACTLAB_FN``)."""
    k = spec.kernel
    assert k is not None
    q = f"{qualifier} " if qualifier else ""
    return f"""struct Ref {{
  using V = Vd;
  using S = double;
  static {q}V forward(const V& x, const double* prm) {_body(spec, k.forward)}
  static {q}V derivative(const V& x, const double* prm) {_body(spec, k.derivative)}
}};"""


def kernel_structs(spec: Spec) -> str:
    """The C++ of a spec's Kernel: ``struct Ref`` (the double form) and ``struct Fast`` (the float
    form, empty without one), the parameters read from ``prm`` (also used by the row kernels)."""
    k = spec.kernel
    assert k is not None

    def body(code: str) -> str:
        return _body(spec, code)

    if k.fast_where is not None:
        mask = k.fast_where.strip() or "(x == x) | (x != x)"  # every lane
        fast = f"""struct Fast {{
  using V = Vf;
  using S = float;
  static V ok(const V& x, const double* prm) {body("return " + mask + ";")}
  static V forward(const V& x, const double* prm) {body(k.fast_forward)}
  static V derivative(const V& x, const double* prm) {body(k.fast_derivative)}
}};"""
    else:
        fast = "struct Fast {};"
    return f"{ref_struct(spec)}\n{fast}"


def _kernel_source(spec: Spec) -> str:
    k = spec.kernel
    assert k is not None
    ident = _identifier(spec.name)
    return f"""
// {spec.name}: {spec.summary}
namespace k_{ident} {{
{kernel_structs(spec)}
struct K {{
  using Ref = k_{ident}::Ref;
  using Fast = k_{ident}::Fast;
  static constexpr bool has_fast = {"true" if k.fast_where is not None else "false"};
}};
const bool registered = (table().emplace("{spec.name}", make_entry<K>({len(spec.params)})), true);
}}  // namespace k_{ident}
"""


def _group(spec: Spec) -> str:
    return spec.forward.__module__.rsplit(".", 1)[-1]


def sources(specs: Sequence[Spec] | None = None) -> dict[str, str]:
    """The generated C++ files, one per catalog module (compiled in parallel), by file name."""
    if specs is None:
        from actlab.registry import all_specs

        specs = all_specs()
    groups: dict[str, list[Spec]] = {}
    for spec in specs:
        if spec.kernel is not None and spec.kind == "elementwise":
            groups.setdefault(_group(spec), []).append(spec)
    out = {}
    for group, members in sorted(groups.items()):
        body = "".join(_kernel_source(s) for s in members)
        out[f"kernels_{group}.cpp"] = (
            "// Generated by actlab.torch.kernels from the specs' Kernel fields: do not edit.\n"
            f'#include "actlab_kernels.h"\nnamespace actlab_k {{\n{body}}}  // namespace actlab_k\n'
        )
    return out


# ----------------------------------------------------------------------------- build and load
def _capability_flags() -> list[str]:
    cap = torch.backends.cpu.get_cpu_capability()
    if cap.startswith("AVX512"):
        return ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mfma", "-mf16c",
                "-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512"]  # fmt: skip
    if cap.startswith("AVX2"):
        return ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"]
    return ["-DCPU_CAPABILITY=DEFAULT"]


def _compile_flags() -> list[str]:
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    # -ffp-contract=off and no -ffast-math: the kernels' error-free arithmetic must survive.
    return ["-O3", "-std=c++17", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-w",
            f"-D_GLIBCXX_USE_CXX11_ABI={abi}", *_capability_flags()]  # fmt: skip


def _cache_root() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "actlab" / "kernels"


def _all_sources() -> dict[str, str]:
    from actlab.torch import rows

    names = ("actlab_kernels.h", "actlab_eft.h", "ops.cpp", "autograd.cpp", "rows.cpp", "memory.cpp")
    files = {name: (_CSRC / name).read_text() for name in names}
    files.update(sources())
    files.update(rows.sources())  # the gated units' row kernels (csrc/rows_gated.h + generated gates)
    return files


def library_path() -> Path:
    """Where this process's library lives (or will): keyed by the sources, flags and torch build."""
    digest = hashlib.sha256()
    for name, text in sorted(_all_sources().items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    digest.update(" ".join(_compile_flags()).encode())
    digest.update(torch.__version__.encode() + sys.version.encode())
    key = digest.hexdigest()[:16]
    return _cache_root() / key / f"actlab_kernels_{key}.so"


def _compile(target: Path, files: dict[str, str]) -> None:
    """Compile every file in parallel, link, and move the library into place in one rename."""
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ({compiler!r} not found; set CXX)")
    includes = [f"-I{p}" for p in cpp_extension.include_paths()]
    libdirs = cpp_extension.library_paths()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        for name, text in files.items():
            (work / name).write_text(text)
        units = sorted(n for n in files if n.endswith(".cpp"))
        jobs = max(1, min(len(units), os.cpu_count() or 1))
        running: list[tuple[str, subprocess.Popen]] = []
        objects = []
        for unit in units:
            obj = work / (unit[:-4] + ".o")
            objects.append(str(obj))
            cmd = [compiler, *_compile_flags(), *includes, f"-I{work}", "-c", str(work / unit), "-o", str(obj)]
            running.append((unit, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
            while len([p for _, p in running if p.poll() is None]) >= jobs:
                time.sleep(0.05)
        for unit, proc in running:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"compiling {unit} failed:\n{out[-4000:]}")
        lib = work / target.name
        link = [compiler, "-shared", *objects, "-o", str(lib)]
        link += [f"-L{d}" for d in libdirs] + [f"-Wl,-rpath,{d}" for d in libdirs]
        link += ["-lc10", "-ltorch_cpu", "-ltorch"]
        done = subprocess.run(link, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"linking failed:\n{(done.stdout + done.stderr)[-4000:]}")
        os.replace(lib, target)  # atomic: another process sees the whole library or none


def _register_python_side() -> None:
    """Shapes for torch.compile/export (fake tensors) and vmap rules for the two operators."""
    from actlab.torch import rows

    @torch.library.register_fake("actlab_kernels::forward")
    def _forward_fake(x: torch.Tensor, name: str, params: list[float]) -> torch.Tensor:
        return torch.empty_like(x)

    @torch.library.register_fake("actlab_kernels::backward")
    def _backward_fake(x: torch.Tensor, grad: torch.Tensor, name: str, params: list[float]) -> torch.Tensor:
        return torch.empty_like(x)

    def _forward_vmap(info: Any, in_dims: tuple, x: torch.Tensor, name: str, params: list[float]) -> tuple:
        return torch.ops.actlab_kernels.forward(x, name, params), in_dims[0]

    def _backward_vmap(
        info: Any, in_dims: tuple, x: torch.Tensor, grad: torch.Tensor, name: str, params: list
    ) -> tuple:
        x_dim, g_dim = in_dims[0], in_dims[1]
        # elementwise: line both batch dims up at 0 (expanding the unbatched one) and run once
        x = x.unsqueeze(0).expand(info.batch_size, *x.shape) if x_dim is None else x.movedim(x_dim, 0)
        grad = grad.unsqueeze(0).expand(info.batch_size, *grad.shape) if g_dim is None else grad.movedim(g_dim, 0)
        return torch.ops.actlab_kernels.backward(x, grad, name, params), 0

    # the row-fused softmax family (csrc/rows.cpp): the output has the input's shape, laid out
    # with ``dim`` last (as the kernel leaves it)
    @torch.library.register_fake("actlab_kernels::softmax_forward")
    def _softmax_forward_fake(x: torch.Tensor, dim: int, log: bool = False, negate: bool = False) -> torch.Tensor:
        return x.movedim(dim, -1).new_empty(x.movedim(dim, -1).shape).movedim(-1, dim)

    @torch.library.register_fake("actlab_kernels::softmax_backward")
    def _softmax_backward_fake(
        y: torch.Tensor, grad: torch.Tensor, dim: int, log: bool = False, negate: bool = False
    ) -> torch.Tensor:
        return y.movedim(dim, -1).new_empty(y.movedim(dim, -1).shape).movedim(-1, dim)

    torch.library.register_vmap("actlab_kernels::forward", _forward_vmap)
    torch.library.register_vmap("actlab_kernels::backward", _backward_vmap)

    @torch.library.register_fake("actlab_kernels::apply")
    def _apply_fake(x: torch.Tensor, name: str, params: list[float]) -> torch.Tensor:
        return torch.empty_like(x)

    # the bound operators (eager only: functional.bound_call) on fake and meta tensors
    for op in ("actlab_kernels::forward.bound", "actlab_kernels::apply.bound"):
        torch.library.register_fake(op)(lambda x, id: torch.empty_like(x))

    # The C++ backward of ``apply`` calls this under create_graph: g * f'(x) from the spec's eager
    # derivative, as torch ops that record a graph (double backward).
    @torch.library.impl("actlab_kernels::eager_grad", "CompositeImplicitAutograd")
    def _eager_grad(x: torch.Tensor, grad: torch.Tensor, name: str, params: list[float]) -> torch.Tensor:
        from actlab.registry import get_spec
        from actlab.torch.functional import input_gradient

        spec = get_spec(name)
        return input_gradient(spec, x, grad, decode_params(spec, params))

    rows.register_fakes()  # the sparse and gated row kernels' operators

    from actlab.torch import cuda

    cuda.register()  # the elementwise operators' CUDA implementations (used where cuda.available())


def build(*, quiet: bool = False) -> bool:
    """Load the kernels, compiling them first if this source/torch/CPU has no cached library.

    Returns False (after one warning) where they cannot be built; never raises for that. Called at
    construction of activations and by the first eager call, never while torch.compile traces."""
    global _loaded, _names, _cuda_ready
    if _loaded is not None or not _enabled:
        return bool(_loaded)
    if torch.compiler.is_compiling():
        return False
    with _lock:
        if _loaded is not None:
            return _loaded
        try:
            files = _all_sources()
            target = library_path()
            if not target.exists():
                started = time.monotonic()
                if not quiet:
                    print(
                        f"actlab: building the fused kernels once for this torch and CPU (about a minute) in "
                        f"{target.parent}",
                        file=sys.stderr,
                        flush=True,
                    )
                _compile(target, files)
                if not quiet:
                    print(f"actlab: kernels built in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            torch.ops.load_library(str(target))
            _register_python_side()
            _names = frozenset(s.name for s in _specs_with_kernels())
            _loaded = True
            _cuda_ready = _cuda_available()
        except Exception as err:  # no compiler, no headers, a failed build: eager path, said once
            _loaded = False
            warnings.warn(
                f"actlab: the fused kernels are not available ({_first_error(err)}); using the accurate "
                f"eager path (slower). Set {ENV_SWITCH}=0 to silence this.",
                RuntimeWarning,
                stacklevel=2,
            )
    return _loaded


def _cuda_available() -> bool:
    from actlab.torch import cuda

    return cuda.available()


def _first_error(err: Exception) -> str:
    lines = str(err).splitlines() or [type(err).__name__]
    return next((line.strip() for line in lines if "error" in line), lines[0])


def _specs_with_kernels() -> list[Spec]:
    from actlab.registry import all_specs

    return [s for s in all_specs() if s.kernel is not None and s.kind == "elementwise"]


def probe(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rows [error of a + b, error of a * b] as the kernels' two_sum/two_prod compute them."""
    if not build():
        raise RuntimeError("actlab kernels are not available")
    return torch.ops.actlab_kernels.probe(a, b)
