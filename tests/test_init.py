"""actlab.init.init_: schemes, structural activation lookup, orthogonal recurrent weights."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import actlab  # noqa: E402
import actlab.analysis as aa  # noqa: E402
from actlab.init import init_  # noqa: E402


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_he_variance_for_relu():
    model = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
    report = init_(model, "he", generator=_gen())
    for layer in (model[0], model[2]):
        fan_in = layer.weight.shape[1]
        assert layer.weight.var().item() == pytest.approx(2 / fan_in, rel=0.03)
        assert torch.all(layer.bias == 0)
    assert report.by_name("0.weight").std == pytest.approx(math.sqrt(2 / 512), rel=1e-15)
    auto = init_(model, "auto", generator=_gen())
    assert auto.by_name("0.weight").activation == "relu"
    assert auto.by_name("0.weight").std == pytest.approx(math.sqrt(2 / 512), rel=1e-14)


def test_other_schemes_std():
    model = nn.Sequential(nn.Linear(300, 200), nn.Tanh())
    w = model[0].weight
    init_(model, "xavier", generator=_gen())
    assert w.var().item() == pytest.approx(2 / 500, rel=0.03)
    init_(model, "lecun", generator=_gen())
    assert w.var().item() == pytest.approx(1 / 300, rel=0.03)
    init_(model, "gaussian", std=0.05, generator=_gen())
    assert w.std().item() == pytest.approx(0.05, rel=0.03)
    r = init_(model, "orthogonal", generator=_gen())
    g = aa.gain("tanh").computed
    assert r.by_name("0.weight").gain == pytest.approx(g, rel=1e-14)
    assert torch.allclose(w @ w.T, g * g * torch.eye(200), atol=1e-4)  # rows orthonormal times g
    with pytest.raises(ValueError, match="scheme"):
        init_(model, "kaiming")


def test_structure_maps_torch_modules_to_catalog_gains():
    model = nn.Sequential(
        nn.Linear(8, 8),
        nn.LeakyReLU(0.2),
        nn.Linear(8, 8),
        nn.Dropout(0.1),
        nn.GELU(approximate="tanh"),
        nn.Conv1d(8, 8, 3),
        actlab.nn.Activation("mish"),
        nn.Linear(8, 8),
        nn.Softmax(dim=-1),
        nn.Linear(8, 4),
    )
    r = init_(model, generator=_gen())
    assert r.by_name("0.weight").gain == pytest.approx(math.sqrt(2 / 1.04), rel=1e-13)
    assert r.by_name("2.weight").activation == "gelu(approximate='tanh')"
    assert r.by_name("2.weight").gain == pytest.approx(aa.gain("gelu", approximate="tanh").computed, rel=1e-15)
    conv = r.by_name("5.weight")
    assert conv.activation == "mish" and conv.fan_in == 24
    # softmax has no variance-preserving gain and the last layer's output is the model's: both keep
    # their initialisation (issue #15: never a silent gain-1 overwrite)
    assert r.by_name("7.weight").action == "kept" and "Softmax" in r.by_name("7.weight").note
    assert r.by_name("9.weight").action == "kept" and "model's output" in r.by_name("9.weight").note


def test_conv_variance():
    model = nn.Sequential(nn.Conv2d(16, 32, 3), nn.ReLU())
    init_(model, generator=_gen())
    assert model[0].weight.var().item() == pytest.approx(2 / (16 * 9), rel=0.05)


def test_unknown_structure_says_so_and_explicit_activation_wins():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(10, 10)

        def forward(self, x):
            return torch.relu(self.fc(x))

    net = Net()
    before = net.fc.weight.detach().clone()
    r = init_(net, generator=_gen())
    assert r.by_name("fc.weight").action == "kept" and "example_inputs" in r.by_name("fc.weight").note
    assert torch.equal(net.fc.weight, before)  # not overwritten with gain 1
    r = init_(net, example_inputs=torch.randn(4, 10, generator=_gen(1)), generator=_gen())
    assert r.by_name("fc.weight").activation == "relu"  # the functional torch.relu, found by tracing
    assert net.fc.weight.var().item() == pytest.approx(2 / 10, rel=0.3)
    r = init_(net, activation="relu", generator=_gen())
    assert r.by_name("fc.weight").gain == pytest.approx(math.sqrt(2), rel=1e-15)
    r = init_(net, activation={"fc": "selu"}, generator=_gen())
    assert r.by_name("fc.weight").activation == "selu"


def test_auto_keeps_tanh_variance_across_20_layers():
    """The auto gain makes q = 1 the mean-field fixed point of the tanh length map; a seeded
    20-layer, 256-wide net fed tanh(z), z ~ N(0, 1) (a previous layer at q = 1), keeps every
    pre-activation's variance near 1: within a factor of 2 across depth and 15% of q* = 1."""
    torch.manual_seed(0)
    layers = []
    for _ in range(20):
        layers += [nn.Linear(256, 256), nn.Tanh()]
    model = nn.Sequential(*layers).double()
    init_(model, generator=_gen(3))
    g2 = aa.gain("tanh").computed ** 2
    mf = aa.mean_field("tanh", g2, 0.0, q0=1.0, layers=20)
    assert mf.q_star == pytest.approx(1.0, abs=1e-12)
    h = torch.tanh(torch.randn(512, 256, generator=_gen(4), dtype=torch.float64))
    variances = []
    with torch.no_grad():
        for i in range(0, 40, 2):
            pre = model[i](h)
            variances.append(pre.pow(2).mean().item())
            h = model[i + 1](pre)
    assert max(variances) / min(variances) < 2
    assert variances[-1] == pytest.approx(mf.q_star, rel=0.15)
    for layer, v in enumerate(variances, start=1):
        assert v == pytest.approx(mf.trajectory[layer], rel=0.15)


@pytest.mark.parametrize("cls,gates", [(nn.RNN, 1), (nn.LSTM, 4), (nn.GRU, 3)])
def test_recurrent_weights_orthogonal(cls, gates):
    hidden = 16
    rnn = cls(8, hidden, num_layers=2)
    r = init_(rnn, generator=_gen())
    for name, p in rnn.named_parameters():
        if name.startswith("weight_hh"):
            for block in p.detach().split(hidden, dim=0):
                assert torch.allclose(block @ block.T, torch.eye(hidden), atol=1e-5)
            assert r.by_name(name).scheme == "orthogonal"
        elif name.startswith("bias"):
            assert torch.all(p == 0)
    assert sum(1 for e in r if e.name.startswith("weight_hh")) == 2
    if cls is nn.RNN:  # input weights get the tanh gain
        assert r.by_name("weight_ih_l0").gain == pytest.approx(aa.gain("tanh").computed, rel=1e-15)


# ----------------------------------------------------------------------------- issue #15: traced pairing
F = torch.nn.functional


class _ResBlock(nn.Module):
    """conv-BN-ReLU, conv-BN, + shortcut (a strided 1x1 conv-BN), ReLU: torchvision's BasicBlock."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y += self.down(x)  # in place, as torchvision does
        return F.relu(y)


class _ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = _ResBlock(8, 16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(self.block(self.stem(x)).mean((2, 3)))


def test_resnet_block_pairs_through_norm_and_residual():
    torch.manual_seed(0)
    net = _ResNet()
    fc_before = net.fc.weight.detach().clone()
    bn_stats = net.block.bn1.running_mean.clone()
    r = init_(net, example_inputs=torch.randn(2, 3, 8, 8, generator=_gen(1)), generator=_gen())
    for name in ("stem.0.weight", "block.conv1.weight", "block.conv2.weight", "block.down.0.weight"):
        row = r.by_name(name)
        assert (row.action, row.activation) == ("initialised", "relu"), name
        assert row.gain == pytest.approx(math.sqrt(2), rel=1e-14)
        assert "BatchNorm2d" in row.note  # the norm between layer and activation is said
    assert "residual" in r.by_name("block.conv2.weight").note and "residual" in r.by_name("block.down.0.weight").note
    assert net.block.conv2.weight.var().item() == pytest.approx(2 / (16 * 9), rel=0.1)
    assert r.by_name("fc.weight").action == "kept" and torch.equal(net.fc.weight, fc_before)
    assert torch.equal(net.block.bn1.running_mean, bn_stats) and net.training  # the trace changed nothing else
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())  # hooks removed
    assert str(r) == "init auto: initialised 4 of 5 weights (relu 4); kept 1 (model output 1)"


class _PreNormBlock(nn.Module):
    """x + attn(LN(x)); x + W_down(silu(W_gate LN(x)) * W_up LN(x)) (Llama's SwiGLU MLP)."""

    def __init__(self, d: int, sdpa: bool) -> None:
        super().__init__()
        self.sdpa = sdpa
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(d, 2 * d, bias=False), nn.Linear(d, 2 * d, bias=False)
        self.down = nn.Linear(2 * d, d, bias=False)

    def forward(self, x):
        h = self.ln1(x)

        def heads(t):  # t.size() reads a traced tensor's metadata: not a consumer of its signal
            return t.view(t.size(0), t.size(1), 2, -1).transpose(1, 2)

        q, k, v = (heads(p(h)) for p in (self.q, self.k, self.v))
        if self.sdpa:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(x.shape))
        h = self.ln2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class _TinyLM(nn.Module):
    def __init__(self, sdpa: bool = True, vocab: int = 50, d: int = 32) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([_PreNormBlock(d, sdpa) for _ in range(2)])
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.emb.weight  # tied, as GPT-2's lm_head

    def forward(self, ids):
        x = self.emb(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


@pytest.mark.parametrize("sdpa", [True, False])
def test_prenorm_transformer_with_glu(sdpa):
    torch.manual_seed(0)
    lm = _TinyLM(sdpa)
    emb = lm.emb.weight.detach().clone()
    before = {n: p.detach().clone() for n, p in lm.named_parameters(remove_duplicate=False)}
    r = init_(lm, "auto", example_inputs=torch.randint(0, 50, (2, 12), generator=_gen(1)), generator=_gen())
    for i in (0, 1):
        p = f"blocks.{i}."
        assert r.by_name(p + "gate.weight").activation == "silu"
        assert r.by_name(p + "gate.weight").gain == pytest.approx(aa.gain("silu").computed, rel=1e-14)
        # Layers whose output reaches another layer with no activation between keep their init (the
        # library's scale there is a design choice no activation's gain speaks to), and say the path.
        up = r.by_name(p + "up.weight")  # a GLU's linear half: through the gating product into down
        assert (up.action, up.consumer) == ("kept", "layer") and "gating" in up.note and "down" in up.note
        v = r.by_name(p + "v.weight")  # attention averages values linearly, then o projects them
        assert (v.action, v.consumer) == ("kept", "layer") and "attention" in v.note
        for name in ("q", "k"):  # the softmax of q·k has no gain: kept
            assert r.by_name(f"{p}{name}.weight").action == "kept"
            assert r.by_name(f"{p}{name}.weight").consumer == "attention"
        for name in ("o", "down"):  # into the residual stream, read by the next norm + layer
            row = r.by_name(p + name + ".weight")
            assert (row.action, row.consumer) == ("kept", "layer") and "LayerNorm" in row.note
    for row in r:
        if row.action != "initialised":
            assert torch.equal(lm.get_parameter(row.name), before[row.name]), row.name
    assert not torch.equal(lm.blocks[0].gate.weight, before["blocks.0.gate.weight"])
    assert r.by_name("head.weight").action == "tied" and "emb.weight" in r.by_name("head.weight").note
    assert torch.equal(lm.emb.weight, emb)


def test_tied_weight_left_alone_without_inputs_too():
    lm = _TinyLM()
    emb = lm.emb.weight.detach().clone()
    for scheme in ("auto", "he", "orthogonal"):
        r = init_(lm, scheme, generator=_gen())
        assert r.by_name("head.weight").action == "tied"
        assert torch.equal(lm.emb.weight, emb)
    assert "left 1 tied alone" in str(r)


class _SE(nn.Module):
    """An MBConv-style block: conv-BN-SiLU, squeeze-excitation (mean, 1x1 reduce, ReLU, 1x1
    expand, sigmoid gate times the features), 1x1 projection-BN, residual."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.act = nn.SiLU()
        self.reduce, self.expand = nn.Conv2d(c, 4, 1), nn.Conv2d(4, c, 1)
        self.gate = nn.Sigmoid()
        self.proj = nn.Conv2d(c, c, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.head = nn.Conv2d(c, 3, 1)

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        s = F.relu(self.reduce(y.mean((2, 3), keepdim=True)))
        y = y * self.gate(self.expand(s))
        return self.head(torch.tanh(x + self.bn2(self.proj(y))))


def test_squeeze_excitation_block():
    net = _SE()
    r = init_(net, example_inputs=torch.randn(2, 16, 6, 6, generator=_gen(1)), generator=_gen())
    expected = {"conv": "silu", "reduce": "relu", "expand": "sigmoid", "proj": "tanh"}
    assert {n: r.by_name(f"{n}.weight").activation for n in expected} == expected
    assert r.by_name("expand.weight").gain == pytest.approx(aa.gain("sigmoid").computed, rel=1e-14)
    assert r.by_name("head.weight").action == "kept"


def test_lstm_and_the_layers_around_it():
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(6, 12)
            self.rnn = nn.LSTM(12, 16, batch_first=True)
            self.mid = nn.Linear(16, 16)
            self.out = nn.Linear(16, 5)

        def forward(self, x):
            h, _ = self.rnn(self.inp(x))
            return self.out(F.gelu(self.mid(h)))

    net = Tagger()
    r = init_(net, example_inputs=torch.randn(3, 7, 6, generator=_gen(1)), generator=_gen())
    inp = r.by_name("inp.weight")
    assert (inp.action, inp.consumer) == ("kept", "layer") and "LSTM" in inp.note
    assert r.by_name("mid.weight").activation == "gelu"
    assert r.by_name("out.weight").action == "kept"
    w = net.rnn.weight_hh_l0.detach()
    for block in w.split(16, dim=0):
        assert torch.allclose(block @ block.T, torch.eye(16), atol=1e-5)
    assert r.by_name("rnn.weight_ih_l0").gain == 1.0


def test_shared_module_and_shared_weight():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
            self.b.weight = self.a.weight  # two modules, one weight
            self.out = nn.Linear(8, 2)

        def forward(self, x):
            x = torch.relu(self.c(torch.relu(self.c(x))))  # one module called twice, relu both times
            return self.out(torch.tanh(self.a(x)) + torch.relu(self.b(x)))

    net = Twice()
    a = net.a.weight.detach().clone()
    r = init_(net, example_inputs=torch.randn(4, 8, generator=_gen(1)), generator=_gen())
    assert r.by_name("c.weight").activation == "relu"
    assert r.by_name("a.weight").action == "tied" and r.by_name("b.weight").action == "tied"
    assert "b.weight" in r.by_name("a.weight").note and torch.equal(net.a.weight, a)


def test_report_table_and_summary():
    net = nn.Sequential()
    net.add_module("[red]x", nn.Linear(4, 4))  # rich markup in a module name is shown, not applied
    net.add_module("act", nn.ReLU())
    net.add_module("out", nn.Linear(4, 2))
    r = init_(net, generator=_gen())
    text = r.table()
    assert "[red]x.weight" in text and all(len(line) <= 100 for line in text.splitlines())
    assert str(r) == "init auto: initialised 1 of 2 weights (relu 1); kept 1 (model output 1)"
    assert "\n" not in str(r) and "LayerInit(" not in repr(r)


def test_bad_example_inputs_clear_error():
    with pytest.raises(ValueError, match="could not trace the model on example_inputs"):
        init_(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), example_inputs=torch.randn(2, 5))


# ----------------------------------------------------------------------------- libraries' models
def _ids(vocab: int = 100) -> torch.Tensor:
    return torch.randint(0, vocab, (4, 16), generator=_gen(7))


def _tf_model(kind: str):
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    small = {"vocab_size": 100, "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 64}
    if kind == "bert":
        return tf.BertModel(tf.BertConfig(hidden_size=32, intermediate_size=64, **small))
    if kind == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64))
    cfg = tf.LlamaConfig(hidden_size=32, intermediate_size=64, num_key_value_heads=1, **small)
    return tf.LlamaForCausalLM(cfg)


def _out_std(model, kind: str) -> float:
    model.eval()
    with torch.no_grad():
        out = model(input_ids=_ids()) if kind == "bert" else model(input_ids=_ids(), use_cache=False)
    return float((out.last_hidden_state if kind == "bert" else out.logits).std())


@pytest.mark.parametrize("kind", ["bert", "gpt2", "llama"])
def test_transformers_models(kind):
    model = _tf_model(kind)
    before = _out_std(model, kind)
    emb = model.get_input_embeddings().weight.detach().clone()
    inputs = {"input_ids": _ids()} if kind == "bert" else {"input_ids": _ids(), "use_cache": False}
    r = init_(model, "auto", example_inputs=inputs, generator=_gen())
    after = _out_std(model, kind)
    assert before / 2 < after < 2 * before, (before, after)
    assert torch.equal(model.get_input_embeddings().weight, emb)
    assert not any(row.action == "initialised" and row.activation is None and row.consumer != "layer" for row in r)
    if kind == "gpt2":  # Conv1D layers, weights stored (in, out)
        assert r.by_name("lm_head.weight").action == "tied"
        assert model.lm_head.weight is model.get_input_embeddings().weight
        assert r.by_name("transformer.h.0.attn.c_attn.weight").consumer == "attention"  # fused q, k, v
        proj = r.by_name("transformer.h.0.attn.c_proj.weight")  # GPT-2's residual-scaled init is kept
        assert (proj.action, proj.consumer, proj.fan_in) == ("kept", "layer", 32)
        fc = r.by_name("transformer.h.0.mlp.c_fc.weight")  # NewGELUActivation, recognised by what it computes
        assert (fc.action, fc.activation) == ("initialised", "gelu(approximate='tanh')")
        he = init_(model, "he", generator=_gen())  # a fixed scheme fills every Conv1D, through its (out, in) view
        mlp_out = he.by_name("transformer.h.0.mlp.c_proj.weight")  # stored (128, 32): fan_in 128
        assert (mlp_out.action, mlp_out.fan_in, mlp_out.fan_out) == ("initialised", 128, 32)
        assert model.transformer.h[0].mlp.c_proj.weight.std().item() == pytest.approx((2 / 128) ** 0.5, rel=0.1)
        assert he.by_name("lm_head.weight").action == "tied"
        assert torch.equal(model.get_input_embeddings().weight, emb)
    if kind == "llama":
        assert r.by_name("model.layers.0.mlp.gate_proj.weight").activation == "silu"
        assert r.by_name("model.layers.0.self_attn.q_proj.weight").action == "kept"
        assert r.by_name("lm_head.weight").action == "kept"
    if kind == "bert":
        assert r.by_name("encoder.layer.0.intermediate.dense.weight").activation == "gelu"
        assert r.by_name("pooler.dense.weight").activation == "tanh"


def test_gpt2_without_inputs_leaves_the_tied_head_alone():
    model = _tf_model("gpt2")
    emb = model.get_input_embeddings().weight.detach().clone()
    r = init_(model, "auto", generator=_gen())
    assert r.by_name("lm_head.weight").action == "tied"
    assert torch.equal(model.get_input_embeddings().weight, emb)


def test_timm_resnet18():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=10)
    x = torch.randn(4, 3, 64, 64, generator=_gen(1))

    def out_std() -> float:
        model.train()  # BatchNorm with batch statistics, as in training
        with torch.no_grad():
            return float(model(x).std())

    before = out_std()
    r = init_(model, "auto", example_inputs=x, generator=_gen())
    after = out_std()
    assert before / 2 < after < 2 * before, (before, after)
    assert r.by_name("conv1.weight").activation == "relu" and r.by_name("fc.weight").action == "kept"


def test_ambiguous_consumers_keep_the_initialisation():
    from dataclasses import dataclass

    @dataclass
    class Out:
        y: torch.Tensor

    class Fork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.both, self.exp, self.out = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            h = self.both(x)
            return Out(self.out(torch.tanh(h) + torch.relu(h) + torch.exp(self.exp(x))))

    net = Fork()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    r = init_(net, example_inputs=torch.randn(3, 4, generator=_gen(1)), generator=_gen())
    assert (r.by_name("both.weight").consumer, r.by_name("exp.weight").consumer) == ("several", "operation")
    assert "exp" in r.by_name("exp.weight").note and "relu" in r.by_name("both.weight").note
    assert r.by_name("out.weight").consumer == "output"  # found inside a dataclass output
    assert all(torch.equal(p, before[n]) for n, p in net.named_parameters())  # biases too


def test_compiled_model_is_traced_through_its_original():
    net = _ResNet()
    r = init_(torch.compile(net), example_inputs=torch.randn(2, 3, 8, 8, generator=_gen(1)), generator=_gen())
    assert r.by_name("block.conv1.weight").activation == "relu"
    assert net.block.conv1.weight.var().item() == pytest.approx(2 / (8 * 9), rel=0.15)


def test_an_activation_written_out_is_not_taken_for_its_inner_function():
    class Net(nn.Module):  # CLIP's quick_gelu written out, and a GLU whose halves come from one layer
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.glu, self.out = nn.Linear(4, 4), nn.Linear(4, 8), nn.Linear(4, 2)

        def forward(self, x):
            h = self.fc(x)
            h = h * torch.sigmoid(1.702 * h)
            a, b = self.glu(h).chunk(2, dim=-1)
            return self.out(a * F.silu(b))

    r = init_(Net(), example_inputs=torch.randn(3, 4, generator=_gen(1)), generator=_gen())
    for name in ("fc.weight", "glu.weight"):  # not "sigmoid" / "silu": the function applied is neither
        assert (r.by_name(name).action, r.by_name(name).consumer) == ("kept", "operation"), name


def test_structure_without_inputs_pairs_inside_sequentials_only():
    net = _ResNet()  # stem is an nn.Sequential (conv, BN, ReLU); the rest is a custom forward
    before = net.block.down[0].weight.detach().clone()
    r = init_(net, generator=_gen())
    stem = r.by_name("stem.0.weight")
    assert (stem.activation, stem.note) == ("relu", "through BatchNorm2d")
    down = r.by_name("block.down.0.weight")  # last of its Sequential: what follows is not known
    assert down.action == "kept" and "example_inputs" in down.note
    assert torch.equal(net.block.down[0].weight, before)
    assert r.by_name("block.conv1.weight").consumer == "structure"
