"""actlab.watch's numbers: unbiased fractions whatever the layout, dead units exact over any
number of flushes, NaN/inf as findings, compiled models (issues #14 item 4, #15 item 2).

Expected values are computed here from the whole tensors (or constructed to be known), never from
the watch's own sample."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import actlab  # noqa: E402
from actlab.diagnose import watch  # noqa: E402
from actlab.diagnose.monitor import FLUSH_EVERY, SAMPLE  # noqa: E402


def _kinds(report) -> list[str]:
    return [f.kind for f in report.findings]


# ----------------------------------------------------------------------------- unbiased fractions
def test_zero_fraction_of_a_layout_the_old_stride_saw_only_live_units_of():
    # (256, 512): a stride of numel // 1024 = 128 lands on units 0, 128, 256 and 384 of row 0 only.
    # Exactly those four units are alive; the 508 others never fire.
    g = torch.Generator().manual_seed(0)
    alive = [0, 128, 256, 384]
    x = -(torch.rand(256, 512, generator=g) + 0.1)
    x[:, alive] = torch.rand(256, len(alive), generator=g) + 0.1
    model = nn.Sequential(nn.ReLU())
    with watch(model) as w:
        model(x)
    report = w.report()
    site = report.site("0")
    truth = (model(x) == 0).double().mean().item()  # every value, independently of the watch
    assert truth == pytest.approx(508 / 512)
    # Stratified by unit: each unit gets the same number of positions, and here a unit's values
    # all have one sign, so the estimate is exact.
    assert site.zero_fraction == pytest.approx(truth, abs=1e-12)
    assert site.negative_fraction == pytest.approx((x < 0).double().mean().item(), abs=1e-12)
    assert site.dead_units == tuple(u for u in range(512) if u not in alive)
    assert "dead_units" in _kinds(report)
    assert site.histogram.below + sum(site.histogram.counts[:32]) == pytest.approx(508 / 512 * site.histogram.total)


def test_saturation_of_a_layout_the_old_stride_saw_only_pixel_0_0_of():
    # (64, 64, 32, 32): a stride of 4096 sees pixel (0, 0) of 16 channels and nothing else. Here
    # that pixel is 0 (tanh' = 1) and every other pixel +-5 (saturated): truth 1023/1024.
    g = torch.Generator().manual_seed(1)
    x = 5.0 * torch.sign(torch.randn(64, 64, 32, 32, generator=g))
    x[:, :, 0, 0] = 0.0
    model = nn.Sequential(nn.Tanh())
    with watch(model) as w:
        model(x)
    report = w.report()
    site = report.site("0")
    # |tanh'(x)| < 1 % of its maximum where |x| > artanh(sqrt(0.99)) = 2.993
    truth = (x.abs() > math.atanh(math.sqrt(0.99))).double().mean().item()
    assert truth == pytest.approx(1023 / 1024)
    # Each draw hits pixel (0, 0) with probability 1/1024: the sample of ~1024 values is within
    # a few of them of the truth.
    assert site.saturated_fraction == pytest.approx(truth, abs=0.01)
    assert "saturation" in _kinds(report)


def test_fractions_match_the_whole_tensors_over_batches_with_structure_inside_units():
    # Channels with their own shift, a pixel column (w = 0) far positive: a 4-d conv layout where
    # a sample that follows the layout (old stride 32: pixels 0 and 32, both in column 0) is
    # biased. Ten batches: the estimate over ~10 x 1024 values is within 4 standard deviations.
    g = torch.Generator().manual_seed(2)
    shift = torch.linspace(-3.0, 3.0, 16).view(1, 16, 1, 1)
    model = nn.Sequential(nn.Tanh())
    xs = []
    for _ in range(10):
        x = shift + torch.randn(32, 16, 8, 8, generator=g)
        x[..., 0] = 6.0
        xs.append(x)
    with watch(model) as w:
        for x in xs:
            model(x)
    site = w.report().site("0")
    every = torch.cat([x.reshape(-1) for x in xs])
    n = 10 * SAMPLE
    for estimate, truth in (
        (site.negative_fraction, (every < 0).double().mean().item()),
        (site.saturated_fraction, (every.abs() > math.atanh(math.sqrt(0.99))).double().mean().item()),
    ):
        assert estimate == pytest.approx(truth, abs=4 * math.sqrt(truth * (1 - truth) / n) + 1e-9)
    assert site.pre_mean == pytest.approx(every.double().mean().item(), rel=1e-6)


def test_sample_is_drawn_afresh_per_batch_and_reproducible():
    model = nn.Sequential(nn.ReLU())
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(3))
    with watch(model) as w:
        model(x)
        stats = next(iter(w._stats.values()))
        first, second = stats._positions(x.shape, 1), stats._positions(x.shape, 1)
    assert first.shape == second.shape == (SAMPLE,)
    assert not torch.equal(first, second)
    # (draw, unit) flattened: SAMPLE // 256 positions of each unit (flat index % 256 == unit)
    assert torch.equal(first.view(-1, 256) % 256, torch.arange(256).expand(SAMPLE // 256, 256))
    reports = []
    for _ in range(2):  # seeded: the same batches give the same report
        with watch(model) as w:
            model(x)
            model(x.flip(0))
        reports.append(w.report().to_dict())
    assert reports[0] == reports[1]


# ----------------------------------------------------------------------------- dead units over flushes
@pytest.mark.parametrize("layout", ["features", "channels", "functional"])
def test_dead_units_are_exact_over_many_flushes(layout):
    # Units 2, 4 and 5 fire once each, in the first batch, in a middle window and in the last batch
    # of 3 * FLUSH_EVERY + 5; the others never do. Keeping only the last window, or the first,
    # would call 2 or 5 dead.
    batches = 3 * FLUSH_EVERY + 5
    fires = {0: 2, FLUSH_EVERY + 3: 4, batches - 1: 5}
    g = torch.Generator().manual_seed(4)

    class Functional(nn.Module):
        def forward(self, x):
            return F.relu(x)

    model = Functional() if layout == "functional" else nn.Sequential(nn.ReLU())
    name = "relu" if layout == "functional" else "0"
    shape = (8, 6, 3, 3) if layout == "channels" else (8, 6)
    middle = None
    with watch(model) as w:
        for b in range(batches):
            x = -torch.rand(*shape, generator=g) - 0.01
            if b in fires:
                x[(3, fires[b]) + (1, 2)[: len(shape) - 2]] = 0.5  # one value of one unit
            model(x)
            if b == FLUSH_EVERY + 10:
                middle = w.report().site(name).dead_units  # a report between flushes changes nothing
    site = w.report().site(name)
    assert middle == (0, 1, 3, 5)
    assert site.dead_units == (0, 1, 3)
    assert site.batches == batches and site.units == 6


# ----------------------------------------------------------------------------- NaN and inf
def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))


def test_nan_weights_are_a_finding():
    model = _mlp()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    with watch(model) as w:
        for _ in range(3):
            model(torch.randn(4, 8)).sum().backward()
    report = w.report()
    weights = next(f for f in report.findings if f.kind == "non_finite_weights")
    assert "2.weight" in weights.message and "1 of 433" in weights.message
    assert weights.value == pytest.approx(1 / 433)
    acts = next(f for f in report.findings if f.kind == "non_finite_activations")
    assert acts.site == "3" and "input of 3" in acts.message and "3 of 3 batches" in acts.message
    assert "non_finite_gradients" in _kinds(report)
    assert report.findings[0].kind == "non_finite_weights"  # first: it explains the rest
    assert "no findings" not in str(report)


def test_nan_in_one_batch_of_the_activations_is_a_finding_at_the_first_site():
    model = _mlp()
    with watch(model) as w:
        for b in range(5):
            x = torch.randn(4, 8)
            if b == 2:
                x[1, 3] = float("nan")
            model(x)
    report = w.report()
    assert _kinds(report).count("non_finite_activations") == 1
    f = next(f for f in report.findings if f.kind == "non_finite_activations")
    assert f.site == "1" and f.value == pytest.approx(1 / 5)
    assert "1 of 5 batches" in f.message and "1 later site" in f.message
    assert "non_finite_weights" not in _kinds(report)


def test_inf_made_by_the_activation_itself_is_named_so():
    # softplus(x) = log(1 + exp(beta x)) / beta overflows float32 for beta = 1e-40, from finite x
    model = nn.Sequential(nn.Softplus(beta=1e-40))
    with watch(model) as w:
        model(torch.ones(4, 3))
    f = next(f for f in w.report().findings if f.kind == "non_finite_activations")
    assert "output (from finite inputs) of 0" in f.message


def test_inf_gradients_are_a_finding():
    model = _mlp()
    with watch(model) as w:
        for b in range(4):
            out = model(torch.randn(4, 8))
            out.backward(torch.full_like(out, math.inf if b == 1 else 1.0))
    report = w.report()
    f = next(f for f in report.findings if f.kind == "non_finite_gradients")
    assert f.site == "3" and "1 of 4 backward passes" in f.message and "1 earlier site" in f.message
    assert ".grad of" in f.message  # the parameters' gradients hold it too (accumulated)


def test_huge_but_finite_values_are_not_called_nan():
    # 1e30 squared overflows float32 (and the norm of 1e25 does), the sums do not.
    model = nn.Sequential(nn.ReLU())
    x = torch.full((16, 4), 1e30, requires_grad=True)
    with watch(model) as w:
        out = model(x)
        out.backward(torch.full_like(out, 1e25))
    kinds = _kinds(w.report())
    assert not any(k.startswith("non_finite") for k in kinds), kinds


def test_a_healthy_model_has_no_non_finite_finding():
    model = _mlp()
    with watch(model) as w:
        for _ in range(3):
            model(torch.randn(32, 8)).pow(2).mean().backward()
    assert not any(k.startswith("non_finite") for k in _kinds(w.report()))


# ----------------------------------------------------------------------------- compiled models
_COMPILED = textwrap.dedent(
    """
    import torch, actlab
    nn = torch.nn
    torch.manual_seed(0)

    def mlp():
        m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
        with torch.no_grad():
            m[0].bias[:4] = -100.0  # units 0-3 of site "1" never fire
        return m

    x = torch.randn(4, 8)
    for how in ("torch.compile", "module.compile"):
        for functional in (None, False, True):
            m = mlp()
            c = torch.compile(m, backend="eager") if how == "torch.compile" else m
            if how == "module.compile":
                c.compile(backend="eager")
            before = c(x)  # compiled before the watch starts
            forward = c.__dict__.get("forward"), c.__dict__.get("_compiled_call_impl")
            with actlab.watch(c, functional=functional) as w:
                for _ in range(3):
                    c(torch.randn(32, 8)).pow(2).mean().backward()
            r = w.report()
            assert r.model == "Sequential", r.model
            assert [s.name for s in r.sites] == ["1", "3"], [s.name for s in r.sites]
            assert r.site("1").dead_units == (0, 1, 2, 3) and r.batches == 3 and r.backward_passes == 3
            assert (c.__dict__.get("forward"), c.__dict__.get("_compiled_call_impl")) == forward  # restored
            assert torch.equal(c(x), before)
            assert not any(mod._forward_hooks or mod._forward_pre_hooks for mod in m.modules())
            print(how, functional, "ok")

    # a compiled submodule: its sites are watched too, and it is compiled again after the block
    inner = nn.Sequential(nn.ReLU(), nn.Linear(16, 4))
    m = nn.Sequential(nn.Linear(8, 16), torch.compile(inner, backend="eager"), nn.Tanh())
    before, forward = m(x), m[1].__dict__["forward"]
    with actlab.watch(m) as w:
        m(torch.randn(32, 8)).sum().backward()
    assert [s.name for s in w.report().sites] == ["1._orig_mod.0", "2"], w.report().sites
    assert m[1].__dict__["forward"] is forward and torch.equal(m(x), before)
    print("nested ok")
    """
)


def test_watch_on_a_compiled_model_observes_the_original_and_never_hangs(tmp_path: Path):
    pytest.importorskip("torch._dynamo")
    script = tmp_path / "compiled.py"
    script.write_text(_COMPILED)
    src = str(Path(actlab.__file__).resolve().parents[1])  # the actlab under test
    env = {**os.environ, "PYTHONPATH": src}
    try:
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
        )
    except subprocess.TimeoutExpired:
        pytest.fail("watch on a compiled model did not finish in 120 s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ok") == 7
