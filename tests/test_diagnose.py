"""actlab.watch: dead units, saturation, gradient flow, streaming statistics, renderers, CLI."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import actlab  # noqa: E402
from actlab.analysis import mean_field  # noqa: E402
from actlab.diagnose import DiagnosisReport, watch  # noqa: E402
from actlab.diagnose.monitor import FLUSH_EVERY, SAMPLE  # noqa: E402


def _mlp(widths: list[int], act: type = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-2], widths[1:-1]):
        layers += [nn.Linear(a, b), act()]
    return nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1]))


def _run(model: nn.Module, batches: int, shape: tuple[int, ...], seed: int = 0, backward: bool = True) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        out = model(torch.randn(*shape, generator=g))
        if backward:
            model.zero_grad()
            out.pow(2).mean().backward()


def test_lazy_attributes_resolve_to_diagnose():
    assert actlab.watch is watch
    assert actlab.swap is actlab.diagnose.swap


# ----------------------------------------------------------------------------- dead units
def test_reports_exactly_the_units_made_dead():
    torch.manual_seed(0)
    model = _mlp([16, 32, 8])
    dead = (3, 7, 20, 31)
    with torch.no_grad():
        model[0].bias[list(dead)] = -100.0
    with watch(model) as w:
        _run(model, 5, (64, 16))
    report = w.report()
    site = report.site("1")
    assert site.dead_units == dead
    assert site.units == 32
    assert site.dead_fraction == pytest.approx(4 / 32)
    assert report.dead_fraction == pytest.approx(4 / 32)
    finding = next(f for f in report.findings if f.kind == "dead_units")
    assert finding.site == "1" and finding.value == pytest.approx(4 / 32)
    assert "leaky_relu" in finding.advice and "12.5 %" in finding.message


def test_dead_channels_of_a_convolution():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 3), nn.Tanh())
    with torch.no_grad():
        model[0].bias[[1, 4]] = -100.0
    with watch(model) as w:
        _run(model, 3, (8, 2, 10, 10))
    site = w.report().site("1")
    assert site.units == 6 and site.unit_dim == 1
    assert site.dead_units == (1, 4)
    assert w.report().site("3").dead_units == ()


def test_a_unit_active_once_is_not_dead():
    model = nn.Sequential(nn.ReLU())
    x = -torch.ones(4, 3)
    with watch(model) as w:
        model(x)
        x2 = x.clone()
        x2[2, 1] = 0.5  # unit 1 fires once, in one batch
        model(x2)
    assert w.report().site("0").dead_units == (0, 2)


# ----------------------------------------------------------------------------- gradient flow
def test_sigmoid_mlp_vanishing_gradients_match_mean_field():
    torch.manual_seed(0)
    width, depth, sigma_w2 = 256, 10, 1.0
    model = _mlp([width] * (depth + 1) + [1], nn.Sigmoid)
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, math.sqrt(sigma_w2 / m.in_features))
            nn.init.zeros_(m.bias)
    with watch(model) as w:
        _run(model, 4, (128, width))
    report = w.report()
    assert len(report.sites) == depth
    # chi is the factor of the squared gradient norm per layer: depth - 1 layers lie between the
    # first and the last site, so the norms differ by chi^((depth - 1) / 2).
    predicted = mean_field("sigmoid", sigma_w2=sigma_w2).chi ** ((depth - 1) / 2)
    assert predicted < 1e-4
    assert 0.5 < report.gradient_ratio / predicted < 2.0
    kinds = {f.kind for f in report.findings}
    assert "vanishing_gradients" in kinds
    assert "off_centre" in kinds  # sigmoid outputs have mean 0.5


def test_healthy_relu_net_with_he_init_has_no_finding():
    torch.manual_seed(0)
    model = _mlp([64, 128, 128, 128, 128, 128, 10])
    actlab.init.init_(model, "he")
    with watch(model) as w:
        _run(model, 4, (256, 64))
    report = w.report()
    assert report.findings == ()
    # deep ReLU nets have a few units dead at initialisation (Lu et al. 2019, arXiv:1903.06733)
    assert report.dead_fraction < 0.02
    assert 0.3 < report.gradient_ratio < 3.0


def test_no_backward_means_no_gradient_figures():
    model = _mlp([4, 8, 2])
    with watch(model) as w, torch.no_grad():
        _run(model, 2, (16, 4), backward=False)
    report = w.report()
    assert report.gradient_ratio is None and report.backward_passes == 0
    assert all(s.grad_norm is None for s in report.sites)


# ----------------------------------------------------------------------------- saturation, moments
def test_saturation_of_tanh_matches_a_direct_count():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.Tanh())
    with torch.no_grad():
        model[0].weight.mul_(8.0)
    x = torch.randn(256, 32)
    with watch(model) as w:
        model(x)
    site = w.report().site("1")
    pre = model[0](x).detach().reshape(-1)
    # |tanh'(x)| < 1 % of its maximum 1 where |x| > artanh(sqrt(0.99)) = 2.9932: the exact
    # fraction of all values; the watch's estimate comes from a random sample of SAMPLE values
    # (standard deviation <= 0.5 / sqrt(SAMPLE) = 0.016).
    expected = (pre.abs() > math.atanh(math.sqrt(0.99))).double().mean().item()
    assert site.saturated_fraction == pytest.approx(expected, abs=3.5 * 0.5 / math.sqrt(SAMPLE))
    assert site.saturated_fraction > 0.25
    assert any(f.kind == "saturation" and f.site == "1" for f in w.report().findings)
    assert site.pre_mean == pytest.approx(pre.double().mean().item(), rel=1e-5, abs=1e-6)
    assert site.pre_std == pytest.approx(pre.double().std(correction=0).item(), rel=1e-5)
    out = torch.tanh(pre)
    assert site.out_std == pytest.approx(out.double().std(correction=0).item(), rel=1e-5)


def test_relu_has_no_saturation_figure_but_negative_and_zero_fractions():
    model = nn.Sequential(nn.ReLU())
    x = torch.tensor([[-1.0, 2.0, 0.0, -3.0]])
    with watch(model, hist_range=(-4.0, 4.0), bins=8) as w:
        model(x)
    s = w.report().site("0")
    assert s.saturated_fraction is None
    assert s.negative_fraction == 0.5 and s.zero_fraction == 0.75
    assert s.histogram.counts == (0, 1, 0, 1, 1, 0, 1, 0) and s.histogram.below == 0  # bins [a, b)


def test_inplace_relu_is_measured_before_it_overwrites_its_input():
    model = nn.Sequential(nn.ReLU(inplace=True))
    x = torch.tensor([[-1.0, -2.0, 3.0, 4.0]])
    with watch(model) as w:
        model(x)
    s = w.report().site("0")
    assert s.negative_fraction == 0.5 and s.pre_mean == pytest.approx(1.0)
    assert s.out_mean == pytest.approx(1.75)


# ----------------------------------------------------------------------------- sites
def test_a_shared_module_is_one_site_per_call():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 3)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.b(self.act(self.a(x))))

    model = Net()
    with watch(model) as w:
        _run(model, 2, (8, 4))
    report = w.report()
    assert [(s.name, s.units, s.batches) for s in report.sites] == [("act", 6, 2), ("act#1", 3, 2)]


def test_functional_calls_are_watched_with_their_owner():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 5)

        def forward(self, x):
            return torch.tanh(self.fc(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 5)
            self.block = Block()

        def forward(self, x):
            h = F.leaky_relu(self.fc(x), 0.2)
            return self.block(h).sigmoid()

    model = Net()
    with watch(model) as w:
        _run(model, 3, (16, 4))
    report = w.report()
    assert [(s.name, s.activation, s.kind) for s in report.sites] == [
        ("leaky_relu", "leaky_relu(negative_slope=0.2)", "function"),
        ("block.tanh", "tanh", "function"),
        ("sigmoid", "sigmoid", "function"),
    ]
    assert all(s.batches == 3 and s.backward_passes == 3 for s in report.sites)


def test_module_only_models_stop_intercepting_after_the_first_pass():
    model = _mlp([4, 8, 2])
    with watch(model) as w:
        _run(model, 1, (4, 4))
        assert not w._probing  # no F.relu calls found: no TorchFunctionMode from now on
        _run(model, 1, (4, 4))
    assert torch._C._len_torch_function_stack() == 0


def test_timm_style_classes_are_recognised_by_name():
    class GELUTanh(nn.Module):
        def forward(self, x):
            return F.gelu(x, approximate="tanh")

    class QuickGELU(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(1.702 * x)

    model = nn.Sequential(nn.Linear(3, 4), GELUTanh(), nn.Linear(4, 4), QuickGELU())
    with watch(model) as w:
        _run(model, 1, (8, 3))
    assert [s.activation for s in w.report().sites] == ["gelu(approximate='tanh')", "quick_gelu"]


def test_sites_patterns_and_vector_activations():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.GELU(), nn.Softmax(dim=-1))
    with watch(model, sites="3", functional=False) as w:
        _run(model, 1, (8, 3))
    report = w.report()
    assert [s.name for s in report.sites] == ["3"]
    with watch(model) as w:
        _run(model, 1, (8, 3))
    assert [s.name for s in w.report().sites] == ["1", "3"]
    assert any("softmax" in s and "vector" in s for s in w.report().skipped)


# ----------------------------------------------------------------------------- contract
def test_hooks_are_gone_and_nothing_changes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))
    x = torch.randn(16, 6)

    def outputs_and_grads():
        model.zero_grad()
        out = model(x)
        out.pow(2).sum().backward()
        return out.detach().clone(), [p.grad.clone() for p in model.parameters()]

    before = outputs_and_grads()
    with watch(model) as w:
        assert w.active
        during = outputs_and_grads()
    after = outputs_and_grads()
    assert not w.active
    for got in (during, after):
        assert torch.equal(got[0], before[0])
        assert all(torch.equal(a, b) for a, b in zip(got[1], before[1]))
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        assert not m._forward_hooks_always_called
    assert torch._C._len_torch_function_stack() == 0
    # the report is still there after the block, and a backward after it records nothing more
    grads = w.report().site("1").backward_passes
    model(x).sum().backward()
    assert w.report().site("1").backward_passes == grads


def test_hooks_are_removed_when_the_block_raises():
    model = _mlp([4, 8, 2])
    with pytest.raises(RuntimeError, match="boom"):
        with watch(model):
            model(torch.randn(2, 4))
            raise RuntimeError("boom")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_model_without_activations_gets_a_clear_message():
    with pytest.raises(ValueError, match="no activation to watch.*ReLU"):
        watch(nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1)))


def test_untraceable_model_without_activations_says_so_at_report():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else -self.fc(x)  # data-dependent: fx cannot trace

    model = Odd()
    with watch(model) as w:
        model(torch.ones(2, 3))
    with pytest.raises(ValueError, match="no activation"):
        w.report()


def test_report_before_any_forward_says_what_to_do():
    with watch(_mlp([2, 3, 1])) as w:
        pass
    with pytest.raises(RuntimeError, match="no forward pass"):
        w.report()


@pytest.mark.parametrize(
    "kwargs, name",
    [({"bins": 0}, "bins"), ({"hist_range": (1.0, -1.0)}, "hist_range"), ({"unit_dim": "1"}, "unit_dim")],
)
def test_bad_arguments_name_themselves(kwargs, name):
    model = _mlp([2, 3, 1])
    with pytest.raises(ValueError, match=name):
        watch(model, **kwargs)
    assert all(not m._forward_hooks for m in model.modules())


def test_memory_stays_constant_over_many_batches():
    model = _mlp([8, 16, 4])
    with watch(model) as w:
        _run(model, 3, (32, 8))
        stats = next(iter(w._stats.values()))
        for _ in range(3):  # the per-call lists are reduced every FLUSH_EVERY calls
            _run(model, FLUSH_EVERY, (32, 8), seed=1)
            assert max(len(stats.hists), len(stats.lows), len(stats.grad_norms)) < FLUSH_EVERY
            assert len(stats.figures) < FLUSH_EVERY * len(stats.layout)
            assert stats.hist.numel() == 66 and stats.unit_min.numel() == 16
        assert len(w._stats) == 1 and not w._pending
    assert w.report().site("1").batches == 3 + 3 * FLUSH_EVERY


# ----------------------------------------------------------------------------- rendering, CLI
def _small_report() -> DiagnosisReport:
    torch.manual_seed(0)
    model = _mlp([4, 8, 8, 2])
    with torch.no_grad():
        model[0].bias[:4] = -50.0
    with watch(model) as w:
        _run(model, 2, (32, 4))
    return w.report()


def test_renderers_table_markdown_json():
    report = _small_report()
    table, md, js = report.render("table"), report.render("md"), report.render("json")
    assert "dead units" in table and "50 %" in table and "findings:" in table
    assert md.splitlines()[2].startswith("| # | name |") and "**Findings**" in md
    data = json.loads(js)
    assert data["dead_fraction"] == pytest.approx(0.25)
    assert data["sites"][0]["dead_units"] == [0, 1, 2, 3]
    assert len(data["sites"][0]["histogram"]["counts"]) == 64
    with pytest.raises(ValueError, match="fmt"):
        report.render("html")


def test_plots_are_written(tmp_path):
    from actlab.diagnose.render import plot_gradients, plot_histograms, plot_sites, save_plots

    report = _small_report()
    written = save_plots(report, tmp_path / "plots")
    assert sorted(written) == ["gradients", "histograms", "sites"]
    assert all(p.stat().st_size > 1000 for p in written.values())
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.startswith(".")]
    fig = plot_sites(report)
    assert len(fig.axes[0].patches) == 2 * len(report.sites)  # ReLU: no saturation bars
    assert len(plot_histograms(report).axes) >= len(report.sites)
    assert plot_gradients(report).axes[0].get_yscale() == "log"


def test_cli_diagnose(tmp_path, capsys, monkeypatch):
    from actlab.cli import main

    (tmp_path / "dg_user_nets.py").write_text(
        "import torch\n"
        "def make():\n"
        "    return torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))\n"
        "def data():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    return [(torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g))]\n"
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code = main(["diagnose", "dg_user_nets:make", "--data", "dg_user_nets:data", "--steps", "3", "--lr", "0.1",
                 "--format", "json", "-o", str(out)])  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["batches"] == 3 and data["sites"][0]["units"] == 12
    assert sorted(p.name for p in out.iterdir()) == ["gradients.png", "histograms.png", "report.json", "sites.png"]
    assert main(["diagnose", "dg_user_nets:make", "--input-shape", "6", "--steps", "2", "--format", "md"]) == 0
    assert "| # | name |" in capsys.readouterr().out
    assert main(["diagnose", "dg_user_nets", "--input-shape", "6"]) == 2
    assert "MODULE:FACTORY" in capsys.readouterr().err
    assert main(["diagnose", "dg_user_nets:make", "--input-shape", "6,x"]) == 2
    assert "--input-shape" in capsys.readouterr().err
    assert main(["diagnose", "dg_user_nets:make"]) == 2
    assert "--input-shape" in capsys.readouterr().err


def test_bench_watch_runs(capsys):
    from actlab.cli import main

    threads = torch.get_num_threads()
    try:
        assert main(["bench", "watch", "--models", "mlp", "--steps", "1", "--repeats", "1", "--format", "json"]) == 0
    finally:
        torch.set_num_threads(threads)
    (row,) = json.loads(capsys.readouterr().out)
    assert row["sites"] == 4 and row["plain_ms"] > 0 and row["watched_ms"] > 0


def test_building_the_cli_parser_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, actlab.cli; actlab.cli.build_parser(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


# ----------------------------------------------------------------------------- findings that are true (#15)
class _SqueezeExcite(nn.Module):
    """conv -> BN -> ReLU, then the channels scaled by a gate computed from their means (as in EfficientNet)."""

    def __init__(self, gate: str, channels: int = 16):
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(3, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()
        self.reduce, self.act2, self.expand = nn.Linear(channels, 4), nn.ReLU(), nn.Linear(4, channels)
        self.kind = gate
        self.gate = {"sigmoid": nn.Sigmoid(), "hard_sigmoid": nn.Hardsigmoid()}.get(gate, nn.Identity())

    def forward(self, x):
        x = self.act(self.bn(self.conv(x)))
        s = self.expand(self.act2(self.reduce(x.mean((2, 3)))))  # (N, C)
        if self.kind == "functional":  # torch.sigmoid, then reshaped and expanded before the product
            return x * torch.sigmoid(s).view(*s.shape, 1, 1).expand_as(x)
        if self.kind == "constant":  # a sigmoid scaled by a number is an activation, not a gate
            return x + 2.0 * torch.sigmoid(s)[:, :, None, None]
        return x * self.gate(s)[:, :, None, None]


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid", "functional"])
def test_a_squeeze_excitation_gate_is_judged_as_a_gate(gate):
    torch.manual_seed(0)
    model = _SqueezeExcite(gate)
    with watch(model) as w:
        _run(model, 2, (8, 3, 8, 8))
    report = w.report()
    site = report.sites[-1]
    assert site.bounded and not site.zero_centered and abs(site.out_mean - 0.5) < 0.2  # what made it "off-centre"
    assert site.gated is True
    assert [s.gated for s in report.sites[:-1]] == [False, False]  # the ReLU it scales is not a gate
    assert not [f for f in report.findings if f.kind in ("off_centre", "shift")]
    assert "(gate)" in report.render("table")


def test_a_sigmoid_that_is_not_a_gate_is_still_off_centre():
    torch.manual_seed(0)
    for model in (_SqueezeExcite("constant"), _mlp([8, 16, 16, 2], nn.Sigmoid)):
        with watch(model) as w:
            _run(model, 2, (8, 3, 8, 8) if isinstance(model, _SqueezeExcite) else (16, 8))
        report = w.report()
        assert all(s.gated is False for s in report.sites)
        assert any(f.kind == "off_centre" for f in report.findings)


class _HandLSTM(nn.Module):
    """An LSTM written out: one sigmoid over the three gates, split, each multiplying a tensor."""

    def __init__(self, inputs: int = 8, hidden: int = 16):
        super().__init__()
        self.ih, self.hh, self.hidden = nn.Linear(inputs, 4 * hidden), nn.Linear(hidden, 4 * hidden), hidden

    def forward(self, x):  # (time, batch, inputs)
        h = c = x.new_zeros(x.shape[1], self.hidden)
        for t in range(x.shape[0]):
            z = self.ih(x[t]) + self.hh(h)
            i, f, o = torch.sigmoid(z[:, : 3 * self.hidden]).chunk(3, 1)
            c = f * c + i * torch.tanh(z[:, 3 * self.hidden :])
            h = o * torch.tanh(c)
        return h


def test_lstm_gates_are_gates_and_its_tanh_is_not():
    torch.manual_seed(0)
    model = _HandLSTM()
    with watch(model) as w:
        _run(model, 2, (3, 16, 8))
    report = w.report()
    gates = [s for s in report.sites if s.activation == "sigmoid"]
    assert len(gates) == 3 and all(s.gated for s in gates)  # one site per time step
    assert all(s.gated is False for s in report.sites if s.activation == "tanh")
    assert not [f for f in report.findings if f.kind == "off_centre"]


def test_a_gate_biased_open_is_not_shifted():
    # a gate biased towards open (as an LSTM's forget gate is initialised) is a choice, not a shift;
    # the same bias before a sigmoid that is not a gate is reported
    for kind, shifted in (("sigmoid", False), ("constant", True)):
        torch.manual_seed(0)
        model = _SqueezeExcite(kind)
        with torch.no_grad():
            model.expand.weight.mul_(0.1)
            model.expand.bias.fill_(2.0)
        with watch(model) as w:
            _run(model, 2, (8, 3, 8, 8))
        report = w.report()
        site = report.sites[-1]
        assert site.pre_mean > 2 * site.pre_std and site.saturated_fraction == 0.0
        assert any(f.kind == "shift" and f.site == site.name for f in report.findings) is shifted


def test_gates_are_unknown_without_a_graph():
    model = _SqueezeExcite("sigmoid")
    with watch(model) as w, torch.no_grad():
        _run(model, 1, (4, 3, 8, 8), backward=False)
    assert w.report().sites[-1].gated is None


def test_a_saturated_gate_is_reported_as_a_stuck_gate():
    torch.manual_seed(0)
    model = _SqueezeExcite("sigmoid")
    with torch.no_grad():
        model.expand.bias.fill_(-20.0)  # the gate is closed for every input
    with watch(model) as w:
        _run(model, 2, (8, 3, 8, 8))
    (finding,) = [f for f in w.report().findings if f.kind == "saturation"]
    assert "gate" in finding.message and "non-saturating" not in finding.advice


class _Residual(nn.Module):
    """A ResNet basic block; ``zero_last`` zero-initialises its last BN as timm's zero_init_last does."""

    def __init__(self, channels: int, zero_last: bool):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.act1, self.act2 = nn.ReLU(), nn.ReLU()
        if zero_last:
            nn.init.zeros_(self.bn2.weight)

    def forward(self, x):
        return self.act2(self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x))))) + x)


def _resnet(zero_last: bool) -> nn.Sequential:
    torch.manual_seed(0)
    stem = [nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    model = nn.Sequential(*stem, _Residual(8, zero_last), _Residual(8, zero_last))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):  # timm's ResNet init
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


def test_zero_gradients_behind_a_zero_initialised_norm_are_their_own_finding():
    model = _resnet(zero_last=True)
    with watch(model) as w:
        _run(model, 2, (8, 3, 16, 16))
    report = w.report()
    assert [s.name for s in report.sites if s.grad_norm == 0.0] == ["4.act1", "5.act1"]
    (zero,) = [f for f in report.findings if f.kind == "zero_gradients"]
    assert "4.act1, 5.act1" in zero.message
    assert "4.bn2.weight" in zero.advice and "5.bn2.weight" in zero.advice
    # the post-residual ReLUs see the max-pooled ReLU output only: shifted, and the cause is named
    shifted = [f for f in report.findings if f.kind == "shift"]
    assert [f.site for f in shifted] == ["4.act2", "5.act2"]
    assert all("residual sum" in f.advice and "4.bn2.weight" in f.advice for f in shifted)
    assert not any("add a normalisation layer" in f.advice for f in shifted)
    assert report.site("4.act2").sum_input and not report.site("4.act1").sum_input
    assert "actlab.init" not in " ".join(f.advice for f in report.findings)  # the convolutions have their own init


def test_no_zero_gradient_finding_when_every_scale_is_live():
    model = _resnet(zero_last=False)
    with watch(model) as w:
        _run(model, 2, (8, 3, 16, 16))
    report = w.report()
    assert all(s.grad_norm > 0 for s in report.sites)
    assert not [f for f in report.findings if f.kind == "zero_gradients"]


def test_the_gradient_plot_shows_zero_gradients():
    from actlab.diagnose.render import plot_gradients

    model = _resnet(zero_last=True)
    with watch(model) as w:
        _run(model, 1, (4, 3, 16, 16))
    axis = plot_gradients(w.report()).axes[0]
    plotted = sorted(int(x) for line in axis.get_lines() for x in line.get_xdata())
    assert plotted == [0, 1, 2, 3, 4]  # every site, the two with zero gradient included
    assert "zero" in " ".join(t.get_text() for t in axis.get_legend().get_texts())


def _wide_narrow(scale: float) -> nn.Sequential:
    """Two ReLU sites of 4096 and 16 units, initialised so that the gradient per element is preserved
    backwards (He, fan_out); ``scale`` multiplies the weights between them."""
    torch.manual_seed(0)
    model = _mlp([32, 4096, 16, 1])
    for layer in model[::2]:
        nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(layer.bias)
    with torch.no_grad():
        model[2].weight.mul_(scale)
    return model


def test_gradient_flow_compares_the_gradient_per_element():
    model = _wide_narrow(1.0)
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(0))
    with watch(model) as w:
        out = model(x)
        out.pow(2).mean().backward()
    report = w.report()
    # the same gradients, taken directly: RMS per element at each ReLU's output
    h1 = model[1](model[0](x)).detach().requires_grad_()
    h2 = model[3](model[2](h1))
    h2.retain_grad()
    model[4](h2).pow(2).mean().backward()
    rms = [h1.grad.pow(2).mean().sqrt().item(), h2.grad.pow(2).mean().sqrt().item()]
    assert [s.grad_rms for s in report.sites] == pytest.approx(rms, rel=1e-5)
    assert report.gradient_ratio == pytest.approx(rms[0] / rms[1], rel=1e-5)
    assert 0.5 < report.gradient_ratio < 2.0  # the norms differ by about sqrt(4096 / 16) = 16
    assert h1.grad.norm() / h2.grad.norm() > 10
    assert not [f for f in report.findings if "gradients" in f.kind]


def test_gradient_flow_still_sees_a_real_loss_of_gradient():
    model = _wide_narrow(0.02)
    with watch(model) as w:
        _run(model, 2, (64, 32))
    report = w.report()
    assert report.gradient_ratio == pytest.approx(0.02, rel=0.3)
    (finding,) = [f for f in report.findings if f.kind == "vanishing_gradients"]
    assert "actlab.init" not in finding.advice  # the model has its own init (He, fan_out)


def test_init_advice_only_for_layers_at_torch_default_init():
    from actlab.diagnose.structure import model_facts

    torch.manual_seed(0)
    default = _mlp([64, 64, 64, 64, 64, 64, 64, 2], nn.Sigmoid)
    assert model_facts(default).default_init
    with watch(default) as w:
        _run(default, 2, (32, 64))
    (finding,) = [f for f in w.report().findings if f.kind == "vanishing_gradients"]
    assert "init_(model, 'auto')" in finding.advice
    chosen = _mlp([64, 64, 64, 64, 64, 64, 64, 2], nn.Sigmoid)
    for layer in chosen[::2]:
        nn.init.normal_(layer.weight, std=0.02)  # as transformers' models initialise
    assert not model_facts(chosen).default_init
    with watch(chosen) as w:
        _run(chosen, 2, (32, 64))
    (finding,) = [f for f in w.report().findings if f.kind == "vanishing_gradients"]
    assert "actlab.init" not in finding.advice


def test_every_rule_is_stated_in_the_method_section():
    report = _small_report()
    table, md, data = report.render("table"), report.render("md"), json.loads(report.render("json"))
    rules = ("dead units:", "saturation:", "gates:", "shift:", "off-centre:", "zero gradients:", "gradient flow:")
    assert "\nmethod:\n" in table and "**Method**" in md
    for rule in rules:
        assert rule in table and rule in md and any(m.startswith(rule) for m in data["method"])
    assert "10 %" in table and ">= 2 std" in table and "<= 0.1" in table  # the thresholds in force


class _TokenClassifier(nn.Module):
    """Two residual GELU blocks over (batch, tokens, features) and a pooler-style tanh head on token 0
    (as BERT's): the head sees one token in 64, so its gradient per element is no peer of the blocks'."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width)) for _ in range(2)
        )
        self.pool, self.pool_act, self.head = nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 2)

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return self.head(self.pool_act(self.pool(x[:, 0])))


def test_a_classifier_head_is_not_compared_with_the_trunk():
    torch.manual_seed(0)
    model = _TokenClassifier()
    with watch(model) as w:
        _run(model, 2, (8, 64, 32))
    report = w.report()
    assert [s.activation for s in report.sites] == ["gelu", "gelu", "tanh"]
    first, last = report.gradient_sites
    assert (first.name, last.name) == ("blocks.0.1", "blocks.1.1")
    assert 0.3 < report.gradient_ratio < 3.0
    assert report.sites[0].grad_rms / report.sites[2].grad_rms < 0.1  # what a first/last comparison would say
    assert not [f for f in report.findings if "gradients" in f.kind]


# ----------------------------------------------------------------------------- diagnose on real models (#15)
def test_outputs_of_any_structure_reduce_to_the_loss_users_expect():
    from dataclasses import dataclass

    from actlab.diagnose.running import OutputError, output_loss

    g = torch.Generator().manual_seed(0)
    logits, aux = torch.randn(4, 3, generator=g), torch.randn(4, 7, generator=g)
    probe = logits.pow(2).mean().item() / 2  # mean(output**2) / 2 of the first tensor
    for output in ((logits, aux), [logits], {"logits": logits, "aux": aux}, {"loss": None, "out": (logits, aux)}):
        assert output_loss(output).item() == pytest.approx(probe)

    @dataclass
    class Output:  # as transformers' ModelOutput: loss first, None without labels
        loss: torch.Tensor | None
        logits: torch.Tensor

    assert output_loss(Output(None, logits)).item() == pytest.approx(probe)
    assert output_loss(Output(torch.tensor(2.5), logits)).item() == 2.5  # the model's own loss
    assert output_loss({"loss": torch.tensor([2.5]), "logits": logits}, torch.tensor([0, 1, 1, 2])).item() == 2.5
    y = torch.tensor([0, 2, 1, 1])
    expected = -torch.log_softmax(logits, 1)[torch.arange(4), y].mean().item()
    assert output_loss(Output(None, logits), y).item() == pytest.approx(expected, rel=1e-6)
    tokens = torch.randn(2, 5, 3, generator=g)  # (batch, time, classes) with (batch, time) labels
    y = torch.randint(0, 3, (2, 5), generator=g)
    expected = -torch.log_softmax(tokens, -1).gather(-1, y[..., None]).mean().item()
    assert output_loss((tokens,), y).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(OutputError, match=r"returned str, which holds no tensor.*tuple, dict or dataclass"):
        output_loss("logits")
    with pytest.raises(OutputError, match=r"output\.ids.*not floating point.*dict\(ids: Tensor\(4; int64\)"):
        output_loss({"ids": logits.argmax(1)})


class _TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 12), nn.ReLU())
        self.head, self.aux = nn.Linear(12, 3), nn.Linear(12, 1)

    def forward(self, x, labels=None):
        h = self.body(x)
        logits = self.head(h)
        loss = None if labels is None else 10.0 + F.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits, "aux": self.aux(h)}


def test_diagnose_api_uses_the_models_own_loss_when_given_labels():
    from actlab.diagnose import diagnose

    torch.manual_seed(0)
    model = _TwoHeads()
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    report = diagnose(model, x, y, steps=2)
    assert [s.name for s in report.sites] == ["body.1"] and report.backward_passes == 2
    # the aux head gets no gradient from the model's own loss, and it would from a probe of every tensor
    model.zero_grad()
    from actlab.diagnose.running import model_loss

    loss = model_loss(model, x, y)
    assert loss.item() > 10.0  # the model's "loss" entry, not a loss computed from the logits
    loss.backward()
    assert model.aux.weight.grad is None
    assert model_loss(model, {"x": x, "labels": y}).item() > 10.0  # a dict batch with labels
    assert model_loss(model, {"x": x}, y).item() > 10.0  # a dict batch, labels beside it
    assert model_loss(model, x).item() < 10.0  # no labels: the probe on the logits
    with pytest.raises(ValueError, match="steps"):
        diagnose(model, x, steps=0)


def _bert_factory(tmp_path) -> str:
    pytest.importorskip("transformers")
    (tmp_path / "dg_tiny_bert.py").write_text(
        "import torch\n"
        "from transformers import BertConfig, BertForSequenceClassification\n"
        "def make():\n"
        "    torch.manual_seed(0)\n"
        "    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,\n"
        "                        intermediate_size=64, max_position_embeddings=32)\n"
        "    return BertForSequenceClassification(config)\n"
        "def data():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    return [(torch.randint(0, 100, (2, 16), generator=g), torch.randint(0, 2, (2,), generator=g))]\n"
    )
    return "dg_tiny_bert"


def test_diagnose_a_transformers_model_through_the_api(tmp_path, monkeypatch):
    import importlib

    from actlab.diagnose import diagnose

    monkeypatch.syspath_prepend(str(tmp_path))
    model = importlib.import_module(_bert_factory(tmp_path)).make()
    g = torch.Generator().manual_seed(0)
    ids, labels = torch.randint(0, 100, (4, 16), generator=g), torch.randint(0, 2, (4,), generator=g)
    report = diagnose(model, ids, labels, steps=2)
    assert report.model == "BertForSequenceClassification" and report.backward_passes == 2
    assert report.site("bert.pooler.activation").units == 32
    assert len(report.sites) == 3  # the two intermediate GELUs and the pooler's tanh
    assert not [f for f in report.findings if "gradients" in f.kind]
    report = diagnose(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)})  # a tokenizer's batch
    assert report.batches == 1


def test_diagnose_a_transformers_model_from_the_command_line(tmp_path, capsys, monkeypatch):
    from actlab.cli import main

    name = _bert_factory(tmp_path)
    monkeypatch.chdir(tmp_path)
    # (ids, labels) batches: the model's own loss ('SequenceClassifierOutput' object has no attribute 'dim' before)
    assert main(["diagnose", f"{name}:make", "--data", f"{name}:data", "--steps", "1", "--format", "md"]) == 0
    assert "BertForSequenceClassification: 1 batches, 1 backward passes" in capsys.readouterr().out
    args = ["diagnose", f"{name}:make", "--vocab-size", "100", "--steps", "2"]
    assert main([*args, "--input-shape", "16", "--batch-size", "2", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "BertForSequenceClassification" and data["backward_passes"] == 2
    assert [s["units"] for s in data["sites"]] == [64, 64, 32]
    # a batch dimension given twice: the model's error, said in one sentence with the fix
    assert main([*args, "--input-shape", "2,16"]) == 2
    err = capsys.readouterr().err
    assert "raised" in err and "Tensor(64, 2, 16; int64)" in err and "without the batch dimension" in err
    assert "Traceback" not in err
    # float inputs into an embedding: the hint names --vocab-size
    assert main(["diagnose", f"{name}:make", "--input-shape", "16", "--batch-size", "2", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--vocab-size" in err and "Traceback" not in err


def test_cli_diagnose_tuple_outputs_token_ids_and_clear_errors(tmp_path, capsys, monkeypatch):
    from actlab.cli import main

    (tmp_path / "dg_odd_nets.py").write_text(
        "import torch\n"
        "class Tokens(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.emb, self.fc = torch.nn.Embedding(50, 8), torch.nn.Linear(8, 3)\n"
        "    def forward(self, ids):\n"
        "        assert ids.dtype == torch.int64 and int(ids.min()) >= 0 and int(ids.max()) < 50\n"
        "        logits = self.fc(torch.relu(self.emb(ids)))\n"
        "        return logits, {'aux': logits.detach()}\n"
        "class Words(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(4, 4)\n"
        "    def forward(self, x):\n"
        "        torch.relu(self.fc(x))\n"
        "        return 'done'\n"
        "def tokens():\n"
        "    return Tokens()\n"
        "def sized(width):\n"
        "    return Tokens()\n"
        "def broken():\n"
        "    raise RuntimeError('no weights here')\n"
        "class Plain(torch.nn.Module):  # no activation, and a forward torch.fx cannot trace\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(4, 4)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x) if x.sum() > 0 else -self.fc(x)\n"
        "def words():\n"
        "    return Words()\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["diagnose", "dg_odd_nets:tokens", "--input-shape", "5", "--vocab-size", "50", "--steps", "3"]) == 0
    assert "activation health of Tokens: 3 batches, 3 backward passes" in capsys.readouterr().out
    assert main(["diagnose", "dg_odd_nets:words", "--input-shape", "4", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "dg_odd_nets:words: the model returned str, which holds no tensor" in err and "Traceback" not in err
    assert main(["diagnose", "dg_odd_nets:sized", "--input-shape", "5"]) == 2
    assert "dg_odd_nets:sized needs arguments" in capsys.readouterr().err
    assert main(["diagnose", "dg_odd_nets:broken", "--input-shape", "5"]) == 2
    assert "dg_odd_nets:broken raised RuntimeError: no weights here" in capsys.readouterr().err
    assert main(["diagnose", "dg_odd_nets:Plain", "--input-shape", "4", "--steps", "1"]) == 2
    assert "Plain has no activation to watch" in (err := capsys.readouterr().err) and "Traceback" not in err
    for bad, message in (
        (["--vocab-size", "0"], "--vocab-size must be"),
        (["--data", "dg_odd_nets:tokens"], "drop one"),
    ):
        assert main(["diagnose", "dg_odd_nets:tokens", "--input-shape", "5", "--vocab-size", "50", *bad]) == 2
        assert message in capsys.readouterr().err


def test_shift_advice_names_the_cause():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.fc, self.act = nn.Linear(16, 16), nn.Linear(16, 16), nn.ReLU()
            with torch.no_grad():
                self.stem.bias.fill_(5.0)

        def forward(self, x):
            h = self.stem(x)
            return self.act(self.fc(h) + h)  # the skip path carries the mean

    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
    with torch.no_grad():
        plain[0].bias.fill_(5.0)  # a layer's bias carries it
    advice = {}
    for model in (plain, Residual()):
        with watch(model) as w:
            _run(model, 2, (32, 16))
        (finding,) = [f for f in w.report().findings if f.kind == "shift"]
        advice[type(model).__name__] = finding.advice
    assert advice["Sequential"].startswith("add a normalisation layer")
    assert "residual sum" in advice["Residual"] and "pre-norm" in advice["Residual"]
    assert "zero-initialised" not in advice["Residual"]  # no zero scale in this model


def test_timm_models_get_true_findings():
    timm = pytest.importorskip("timm", reason="timm is an optional test dependency")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=10)  # zero_init_last by default
    with watch(resnet) as w:
        resnet(x).pow(2).mean().backward()
    report = w.report()
    zero = [s.name for s in report.sites if s.grad_norm == 0.0]
    assert len(zero) == 8  # the first ReLU of each of the 8 basic blocks
    (finding,) = [f for f in report.findings if f.kind == "zero_gradients"]
    assert "layer1.0.bn2.weight" in finding.advice
    assert "actlab.init" not in " ".join(f.advice for f in report.findings)  # timm has its own init
    effnet = timm.create_model("efficientnet_b0", pretrained=False, num_classes=10)
    with watch(effnet) as w:
        effnet(x).pow(2).mean().backward()
    report = w.report()
    assert sum(bool(s.gated) for s in report.sites) == 16  # one squeeze-excitation gate per block
    assert not [f for f in report.findings if f.kind == "off_centre"]
