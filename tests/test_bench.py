"""actlab.bench.activations and ``actlab bench [NAMES]``: the measurements that are not timings
(saved-for-backward bytes, peak memory, ATen op counts, the SymPy translation, the PyTorch module
of the block) against values known independently, and the command line in every format.

No timed assertions: timings are only checked to be positive numbers where measured.
"""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
import torch

from actlab.bench import activations as bench
from actlab.cli import main

TINY = ["--size", "4096", "--repeats", "2", "--warmup", "0", "--small-shape", "8,16", "--quiet"]


# --------------------------------------------------------------------------- saved for backward
class _SavesInputAndView(torch.autograd.Function):
    """Saves the input and a view of it: one storage."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x, x.view(-1)[::2])
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 3


class _SavesInputAndOutput(torch.autograd.Function):
    """Saves the input and the output: two storages."""

    @staticmethod
    def forward(ctx, x):
        y = x * 3
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    def backward(ctx, g):
        return g * 3


@pytest.mark.parametrize(
    "fn, dtype, expected",
    [
        (torch.relu, torch.float32, 4.0),  # relu keeps its output (threshold_backward(g, y, 0))
        (torch.relu, torch.float64, 8.0),
        (lambda t: t * 2, torch.float32, 0.0),  # a Python scalar: nothing of the input's size
        (torch.sin, torch.float32, 4.0),  # sin keeps its input
        (torch.exp, torch.float32, 4.0),  # exp keeps its output
        (lambda t: torch.sin(t) * t, torch.float32, 8.0),  # x (kept by sin and mul, once) and sin(x)
        (_SavesInputAndView.apply, torch.float32, 4.0),  # one storage, counted once
        (_SavesInputAndOutput.apply, torch.float32, 8.0),
    ],
)
def test_saved_bytes_per_element_against_known_cases(fn, dtype, expected) -> None:
    x = torch.randn(1000, dtype=dtype, generator=torch.Generator().manual_seed(1))
    assert bench.saved_bytes_per_element(fn, x) == expected


# --------------------------------------------------------------------------- peak memory, op counts
def test_cpu_peak_counts_live_allocations() -> None:
    x = torch.randn(1 << 16, generator=torch.Generator().manual_seed(2))
    nbytes = x.numel() * 4
    # relu allocates its output only.
    _, peak = bench._cpu_peak_bytes(lambda: torch.relu(x))
    assert peak == nbytes
    # ((x*2)+1)*3: each temporary is freed once the next op has its output: two outputs live at most
    # (and the Python scalars, wrapped as 0-d tensors of a few bytes each).
    _, peak = bench._cpu_peak_bytes(lambda: ((x * 2) + 1) * 3)
    assert 2 * nbytes <= peak <= 2 * nbytes + 64


def test_aten_op_counts() -> None:
    gen = torch.Generator().manual_seed(3)
    x, g = torch.randn(64, generator=gen), torch.randn(64, generator=gen)
    assert bench._count_aten(torch.nn.functional.gelu, x, g) == (1, 1)  # aten.gelu / aten.gelu_backward
    # sin(x) * x: sin, mul forward; backward mul's two products, cos, the chain product, the sum of the two.
    fwd, bwd = bench._count_aten(lambda t: torch.sin(t) * t, x, g)
    assert fwd == 2 and bwd >= 4


# --------------------------------------------------------------------------- the naive SymPy composition
@pytest.mark.parametrize(
    "identifier", ["gelu", "elu(alpha=0.5)", "hard_sigmoid", "loglog", "cloglog", "mish", "softsign", "hardswish"]
)
def test_sympy_translation_matches_sympy_evaluation(identifier: str) -> None:
    """The torch composition against SymPy's own numeric evaluation of the same expression."""
    import sympy

    import actlab

    act = actlab.get(identifier)
    x = sympy.Symbol("x", real=True)
    expr = act.spec.sympy_definition(x, **act.params)
    fn = bench.sympy_to_torch(expr, x)
    points = [-7.5, -3.0, -1.25, -0.5, 0.0, 0.375, 1.0, 2.5, 6.0]
    got = fn(torch.tensor(points, dtype=torch.float64))
    for v, y in zip(points, got.tolist()):
        want = float(expr.subs(x, sympy.Float(v, 30)).evalf(30))
        assert math.isclose(y, want, rel_tol=1e-12, abs_tol=1e-300), (identifier, v, y, want)


def test_sympy_translation_is_differentiable_and_says_what_torch_lacks() -> None:
    import sympy

    import actlab

    x = sympy.Symbol("x", real=True)
    spec = actlab.get("silu").spec
    fn = bench.sympy_to_torch(spec.sympy_definition(x), x)
    t = torch.tensor([0.5, -2.0], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(fn(t).sum(), t)
    s = torch.sigmoid(t.detach())
    torch.testing.assert_close(grad, s * (1 + t.detach() * (1 - s)))  # silu' = σ(x)(1 + x(1 - σ(x)))
    with pytest.raises(bench.NoTorchCounterpart, match="hyper"):
        bench.sympy_to_torch(actlab.get("sinc").spec.sympy_definition(x), x)


# --------------------------------------------------------------------------- the block's PyTorch module
def test_torch_module_is_derived_from_the_spec() -> None:
    import actlab

    def label(identifier: str) -> str | None:
        act = actlab.get(identifier)
        found = bench.torch_module(act.spec, dict(act.params))
        return None if found is None else found[0]

    assert label("gelu") == "torch.nn.GELU()"
    assert label("gelu(approximate='tanh')") == "torch.nn.GELU(approximate='tanh')"
    assert label("silu") == "torch.nn.SiLU()"
    assert label("relu") == "torch.nn.ReLU()"
    assert label("leaky_relu(negative_slope=0.2)") == "torch.nn.LeakyReLU(negative_slope=0.2)"
    assert label("pelu") is None  # PyTorch has no PELU
    # actlab's exact default threshold=None: torch_native uses PyTorch's default 20, as nn.Softplus() does.
    assert label("softplus") == "torch.nn.Softplus()"
    # A non-default parameter torch.nn.ReLU does not take: PyTorch's op through the spec, not nn.ReLU.
    assert label("relu(max_value=6.0)") == "torch.nn.functional.relu (torch_native)"


def test_default_names_are_every_elementwise_activation() -> None:
    from actlab.registry import all_specs

    acts = bench.resolve(None)
    names = [a.name for a in acts]
    assert len(names) == len(all_specs("elementwise")) and "gelu" in names and "softmax" not in names
    with pytest.raises(bench.BenchError, match="layer"):
        bench.resolve(["prelu"])


# --------------------------------------------------------------------------- one measured run, every format
@pytest.fixture(scope="module")
def result() -> bench.BenchResult:
    return bench.measure(
        ["relu", "gelu(approximate='tanh')", "sinc"],
        shape=(4096,),
        small_shape=(8, 16),
        repeats=2,
        warmup=0,
        parts=("time", "small", "memory", "block"),
        block_input=(1, 4, 192),
    )


def test_measure_records(result: bench.BenchResult) -> None:
    assert [a.activation for a in result.activations] == ["relu", "gelu(approximate='tanh')", "sinc"]
    assert result.setting["threads"] == 1 and result.setting["numel"] == 4096
    for a in result.activations:
        assert [p.path for p in a.paths] == list(bench.PATHS)
        clone = a.path("clone")
        assert clone.fwd_x_clone == 1.0 and clone.saved_bytes_per_element == 0.0 and clone.peak_x_output == 1.0
        torch_ = a.path("torch")
        assert torch_.fwd_ms > 0 and torch_.fwdbwd_ms > 0 and torch_.small_fwd_us > 0
        assert torch_.fwdbwd_x_clone == pytest.approx(torch_.fwdbwd_ms / torch_.clone_ms)
        eager = a.path("eager")
        assert eager.fwd_ms > 0 and eager.saved_bytes_per_element == 4.0  # actlab keeps one float32 tensor
        assert a.block is not None and a.block.step_x_torch > 0
    gelu = result.activations[1]
    assert gelu.path("torch").aten_ops_fwd == 1  # F.gelu(approximate='tanh'): one op
    assert gelu.block.torch_module == "torch.nn.GELU(approximate='tanh')"
    sinc = result.activations[2]
    assert math.isnan(sinc.path("sympy").fwd_ms) and "hyper" in sinc.path("sympy").note
    # relu is native: actlab's path is PyTorch's op, and there is no kernel of its own.
    assert "native" in result.activations[0].path("fast").note


def test_eager_and_fast_columns_measure_two_paths(result: bench.BenchResult) -> None:
    """Where gelu has a fused kernel, ``fast`` dispatches one op each way and ``eager`` the chain."""
    gelu = result.activations[1]
    if gelu.default_path != "fast":
        pytest.skip(f"no fused kernel here: {gelu.path('fast').note}")
    fast, eager = gelu.path("fast"), gelu.path("eager")
    assert (fast.aten_ops_fwd, fast.aten_ops_bwd) == (1, 1)
    assert eager.aten_ops_fwd > 20 and eager.aten_ops_bwd > 20
    assert fast.peak_x_output == 1.0 and fast.saved_bytes_per_element == 4.0


def test_render_formats(result: bench.BenchResult) -> None:
    data = json.loads(bench.render(result, "json"))
    assert data["activations"][0]["paths"][0]["path"] == "clone"
    assert data["activations"][2]["paths"][2]["fwd_ms"] is None  # sinc's sympy: n/a is null
    rows = list(csv.DictReader(io.StringIO(bench.render(result, "csv"))))
    assert len(rows) == 3 * len(bench.PATHS) and rows[0]["activation"] == "relu" and rows[0]["path"] == "clone"
    summary = list(csv.DictReader(io.StringIO(bench.render(result, "csv", "summary"))))
    assert [r["activation"] for r in summary] == ["relu", "gelu(approximate='tanh')", "sinc"]
    md = bench.render(result, "md").splitlines()
    assert md[2].startswith("| activation | path |") and md[3].startswith("|---|---|--:")
    assert any(line.startswith("| gelu(approximate='tanh') | clone |") for line in md)
    table = bench.render(result, "table")
    assert all(len(line) <= 100 for line in table.splitlines())
    assert "n/a: sympy, no torch counterpart for SymPy's hyper: sinc" in table.replace("\n", " ")


def test_saved_json_renders_the_same(result: bench.BenchResult, tmp_path, capsys) -> None:
    saved = tmp_path / "run.json"
    saved.write_text(bench.render(result, "json"))
    again = bench.BenchResult.from_dict(json.loads(saved.read_text()))
    for view in bench.VIEWS:
        assert bench.render(again, "md", view) == bench.render(result, "md", view)
    assert main(["bench", "--load", str(saved), "--view", "summary", "--format", "csv"]) == 0
    assert capsys.readouterr().out.strip() == bench.render(result, "csv", "summary")
    assert main(["bench", "relu", "--load", str(saved)]) == 2
    assert "give no activation names" in capsys.readouterr().err


# --------------------------------------------------------------------------- the command line
@pytest.mark.parametrize("fmt", ["json", "csv", "md", "table"])
def test_cli_formats(fmt: str, capsys) -> None:
    assert main(["bench", "relu", "silu", *TINY, "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        assert [a["name"] for a in json.loads(out)["activations"]] == ["relu", "silu"]
    elif fmt == "csv":
        assert out.splitlines()[0].startswith("activation,path,fwd_ms,fwd_x_clone,fwdbwd_ms")
    elif fmt == "md":
        assert "| silu | clone |" in out
    else:
        assert "silu" in out and all(len(line) <= 100 for line in out.splitlines())


def test_cli_explicit_topic_block_only_and_progress(capsys) -> None:
    args = ["bench", "activations", "gelu", "--block-only", "--block-input", "1,3,192", "--repeats", "1"]
    assert main([*args, "--warmup", "0", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert rows[0]["activation"] == "gelu" and rows[0]["torch_module"] == "torch.nn.GELU()"
    assert "actlab bench: [1/1] gelu" in captured.err


def test_cli_unknown_name_exits_2_with_a_suggestion(capsys) -> None:
    assert main(["bench", "gelo", *TINY]) == 2
    assert "did you mean 'gelu'" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--size", "0"], ["--shape", "3,x"], ["--paths", "clone,nope"]])
def test_cli_bad_arguments_exit_2(bad, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "relu", *bad])
    assert info.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without CUDA")
def test_cli_cuda_without_cuda_exits_2(capsys) -> None:
    assert main(["bench", "relu", "--device", "cuda", *TINY]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_cli_help_names_the_default_topic(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bench", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "activations" in out and "lstm" in out and "actlab bench gelu silu" in out


def test_bench_lstm_still_works(capsys) -> None:
    args = ["bench", "lstm", "--seq", "2", "--batch", "1", "--input-size", "3", "--hidden", "3", "--repeats", "1"]
    assert main([*args, "--warmup", "0", "--variant", "GRU", "--format", "json"]) == 0
    assert "GRU" in [r["model"] for r in json.loads(capsys.readouterr().out)["rows"]]


def test_summary_lists_the_missed_targets() -> None:
    """Issue #11's targets from figures given by hand: 3.5× clone, 1.05× torch, one saved tensor, 1.1× output."""

    def result(dtype: str, **mine: float) -> bench.BenchResult:
        torch_ = bench.PathResult("torch", fwdbwd_ms=10.0, small_fwdbwd_us=100.0)
        eager = bench.PathResult("eager", **{"fwdbwd_ms": 10.0, "small_fwdbwd_us": 100.0, **mine})
        act = bench.ActivationResult("f", "f", {}, "eager", [bench.PathResult("clone"), torch_, eager])
        setting = {"dtype": dtype, "shape": [8], "small_shape": [8], "device": "cpu", "threads": 1}
        return bench.BenchResult({**setting, "torch": "-", "repeats": 1, "kernels": "-"}, [act])

    ok = result("float32", fwdbwd_x_clone=3.4, saved_bytes_per_element=4.0, peak_x_output=1.0)
    assert ok.summary_rows()[0]["misses"] == ""
    bad = result("float32", fwdbwd_ms=10.6, fwdbwd_x_clone=3.6, saved_bytes_per_element=8.0, peak_x_output=1.2)
    assert bad.summary_rows()[0]["misses"] == "f+b>3.5×clone, f+b>1.05×torch, saved>1 tensor, peak>1.1×out"
    # bfloat16: one saved tensor is 2 bytes per element.
    assert result("bfloat16", saved_bytes_per_element=4.0).summary_rows()[0]["misses"] == "saved>1 tensor"
    table = bench.render(bad, "table", "summary")
    assert "misses f+b>3.5×clone (issue #11 target): f" in table


def test_memory_flag_is_the_memory_topic() -> None:
    from actlab.bench.cli import with_default_topic

    assert with_default_topic(["--memory", "relu", "gelu"]) == ["memory", "relu", "gelu"]
    assert with_default_topic(["relu", "--memory"]) == ["memory", "relu"]
    assert with_default_topic(["relu"]) == ["activations", "relu"]
