"""actlab.swap: modules and functional calls, selection, placement, training, saving, compiling."""

from __future__ import annotations

import copy
import io
import warnings

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import actlab  # noqa: E402
from actlab.diagnose import swap  # noqa: E402
from actlab.nn import Activation  # noqa: E402


def _module_net(act: type = nn.ReLU) -> nn.Sequential:
    return nn.Sequential(nn.Linear(6, 16), act(), nn.Linear(16, 16), act(), nn.Linear(16, 3))


class FunctionalNet(nn.Module):
    """A model whose forward calls activations directly (as library models often do)."""

    def __init__(self, first=F.relu, second=torch.tanh):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 16), nn.Linear(16, 16), nn.Linear(16, 3)
        self.first, self.second = first, second

    def forward(self, x):
        return self.fc3(self.second(self.fc2(self.first(self.fc1(x)))))


class FunctionalNetCalls(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 16), nn.Linear(16, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(F.relu(self.fc1(x)))))


def _inputs(seed: int = 0, shape: tuple[int, ...] = (32, 6)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- (a) modules
def test_every_relu_module_becomes_the_requested_activation():
    torch.manual_seed(0)
    model = _module_net()
    reference = _module_net(nn.GELU)  # the hand-written copy
    reference.load_state_dict(model.state_dict())
    result = swap(model, "gelu")
    assert result.model is model
    assert [type(m).__name__ for m in model] == ["Linear", "Activation", "Linear", "Activation", "Linear"]
    assert [r.name for r in result.report.replaced] == ["1", "3"]
    assert all(r.old == "relu" and r.new == "gelu" for r in result.report.replaced)
    assert result.report.complete
    x = _inputs()
    torch.testing.assert_close(model(x), reference(x))


# ----------------------------------------------------------------------------- (b) functional calls
def test_functional_calls_become_modules_and_match_the_hand_written_model():
    torch.manual_seed(0)
    model = FunctionalNetCalls()
    reference = FunctionalNet(F.gelu, F.gelu)
    reference.load_state_dict(model.state_dict())
    result = swap(model, "gelu", functional=True)
    gm = result.model
    assert isinstance(gm, torch.fx.GraphModule)
    assert [(r.name, r.kind, r.old, r.new) for r in result.report.replaced] == [
        ("relu", "function", "relu", "gelu"),
        ("tanh", "function", "tanh", "gelu"),
    ]
    calls = [n.target for n in gm.graph.nodes if n.op in ("call_function", "call_method")]
    assert F.relu not in calls and torch.tanh not in calls
    x = _inputs()
    torch.testing.assert_close(gm(x), reference(x))
    # the original object is untouched: the rewrite lives in the GraphModule
    torch.testing.assert_close(model(x), model.fc3(torch.tanh(model.fc2(F.relu(model.fc1(x))))))


def test_swapped_models_train_save_load_and_compile():
    torch.manual_seed(0)
    for model, kwargs in ((_module_net(), {}), (FunctionalNetCalls(), {"functional": True})):
        result = swap(model, "prelu(num_parameters='channels')", example_inputs=_inputs(), **kwargs)
        swapped = result.model
        prelus = [m for m in swapped.modules() if type(m).__name__ == "PReLU"]
        assert [p.weight.numel() for p in prelus] == [16, 16]
        # trains: every parameter, the new slopes included, gets a gradient and moves
        opt = torch.optim.SGD(swapped.parameters(), lr=0.1)
        before = [p.detach().clone() for p in swapped.parameters()]
        loss = F.cross_entropy(swapped(_inputs(1)), torch.arange(32) % 3)
        loss.backward()
        opt.step()
        assert all(not torch.equal(a, b) for a, b in zip(before, swapped.parameters()))
        # state_dict round trip into a second swap of a fresh model
        buffer = io.BytesIO()
        torch.save(swapped.state_dict(), buffer)
        buffer.seek(0)
        fresh = type(model)() if kwargs else _module_net()
        again = swap(fresh, "prelu(num_parameters='channels')", example_inputs=_inputs(), **kwargs).model
        again.load_state_dict(torch.load(buffer))
        x = _inputs(2)
        torch.testing.assert_close(again(x), swapped(x))
        # the whole module pickles too
        buffer = io.BytesIO()
        torch.save(swapped, buffer)
        buffer.seek(0)
        torch.testing.assert_close(torch.load(buffer, weights_only=False)(x), swapped(x))
        # torch.compile (aot_eager: Dynamo and AOTAutograd trace it, no C++ toolchain needed)
        compiled = torch.compile(swapped, backend="aot_eager", fullgraph=False)
        out = compiled(x)
        torch.testing.assert_close(out, swapped(x))
        out.sum().backward()


def test_method_calls_and_literal_parameters_are_read():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return F.leaky_relu(self.fc(x), 0.2).relu() + F.leaky_relu(x, negative_slope=0.1)

    torch.manual_seed(0)
    model = Net()
    result = swap(model, "elu", replace="leaky_relu(negative_slope=0.2)", functional=True)
    assert [(r.name, r.old) for r in result.report.replaced] == [("leaky_relu", "leaky_relu(negative_slope=0.2)")]
    x = _inputs(shape=(8, 4))
    torch.testing.assert_close(result.model(x), F.elu(model.fc(x)).relu() + F.leaky_relu(x, 0.1))
    # by default only calls that follow a learned layer (#15): the one on the raw input is listed
    default = swap(model, "elu", functional=True).report
    assert [r.name for r in default.replaced] == ["leaky_relu", "relu"]
    assert [(n.name, "learned layer" in n.reason) for n in default.not_replaced] == [("leaky_relu#1", True)]
    everything = swap(model, "elu", functional=True, include="*").report.replaced
    assert [r.name for r in everything] == ["leaky_relu", "relu", "leaky_relu#1"]


def test_inplace_call_whose_input_is_reused_is_reported():
    class Net(nn.Module):
        def forward(self, x):
            y = x * 2
            F.relu(y, inplace=True)
            return y + 1

    result = swap(Net(), "gelu", functional=True)
    (entry,) = result.report.not_replaced
    assert entry.name == "relu" and "in-place" in entry.reason
    x = _inputs(shape=(4, 3))
    torch.testing.assert_close(result.model(x), F.relu(x * 2) + 1)


def test_untraceable_forward_is_reported_and_modules_still_swap():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.act = nn.Linear(3, 3), nn.ReLU()

        def forward(self, x):
            h = self.act(self.fc(x))
            return F.relu(h) if h.sum() > 0 else h

    model = Branchy()
    with pytest.warns(UserWarning, match="cannot trace"):
        result = swap(model, "silu", functional=True)
    assert result.model is model and isinstance(model.act, Activation)
    (entry,) = result.report.not_replaced
    assert entry.kind == "forward" and "control flow" in entry.reason
    assert not result.report.complete


# ----------------------------------------------------------------------------- selection
def test_mapping_swaps_selectively():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4), nn.Sigmoid())
    result = swap(model, {"relu": "gelu", "tanh": "softsign"})
    assert [type(m).__name__ for m in model[1::2]] == ["Activation", "Activation", "Sigmoid"]
    assert (model[1].name, model[3].name) == ("gelu", "softsign")
    assert len(result.report.replaced) == 2


def test_replace_include_exclude():
    def net():
        return nn.Sequential(
            nn.Sequential(nn.Linear(3, 3), nn.LeakyReLU(0.2)),
            nn.Sequential(nn.Linear(3, 3), nn.LeakyReLU(0.01), nn.ReLU()),
        )

    model = swap(net(), "gelu", replace="leaky_relu(negative_slope=0.2)").model
    assert isinstance(model[0][1], Activation) and isinstance(model[1][1], nn.LeakyReLU)
    model = swap(net(), "gelu", replace="leaky_relu").model  # a bare name: any parameters
    assert isinstance(model[1][1], Activation) and isinstance(model[1][2], nn.ReLU)
    model = swap(net(), "gelu", include="1").model
    assert isinstance(model[0][1], nn.LeakyReLU) and isinstance(model[1][2], Activation)
    model = swap(net(), "gelu", exclude=["1.2", "0"]).model
    assert [type(m).__name__ for m in (model[0][1], model[1][1], model[1][2])] == ["LeakyReLU", "Activation", "ReLU"]


def test_vector_activations_only_when_named():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Softmax(dim=-1))
    report = swap(model, "gelu").report
    assert [r.name for r in report.replaced] == ["1"]
    assert report.not_replaced[0].name == "2" and "vector" in report.not_replaced[0].reason
    model = nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=-1))
    swap(model, "sparsemax", replace="softmax")
    assert model[1].name == "sparsemax"


def test_timm_style_and_shared_modules():
    class GELUTanh(nn.Module):
        def forward(self, x):
            return F.gelu(x, approximate="tanh")

    class HardMishMe(nn.Module):
        def forward(self, x):
            return 0.5 * x * (x + 2).clamp(min=0, max=2)

    shared = nn.ReLU()
    model = nn.Sequential(nn.Linear(3, 3), GELUTanh(), nn.Linear(3, 3), HardMishMe(), shared, shared)
    report = swap(model, "mish").report
    assert [(r.name, r.old) for r in report.replaced] == [
        ("1", "gelu(approximate='tanh')"),
        ("3", "hard_mish"),
        ("4", "relu"),
        ("5", "relu"),
    ]
    assert model[4] is model[5]  # still one module, now a Mish


# ----------------------------------------------------------------------------- placement
def test_keeps_dtype_device_and_mode():
    model = nn.Sequential(nn.Conv2d(2, 5, 3), nn.ReLU(), nn.Conv2d(5, 4, 3), nn.ReLU()).double().eval()
    model[1].train()  # a submodule's own mode is kept too
    x = torch.randn(2, 2, 9, 9, dtype=torch.float64)
    result = swap(model, "prelu(num_parameters='channels')", example_inputs=(x,))
    assert [m.weight.numel() for m in (model[1], model[3])] == [5, 4]
    assert all(m.weight.dtype == torch.float64 and m.weight.device == x.device for m in (model[1], model[3]))
    assert (model.training, model[1].training, model[3].training) == (False, True, False)
    assert [r.new for r in result.report.replaced] == ["prelu(num_parameters=5)", "prelu(num_parameters=4)"]
    assert model(x).dtype == torch.float64


def test_channels_from_traced_shapes_in_functional_code():
    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 7, 3), nn.Conv2d(7, 2, 3)

        def forward(self, x):
            return self.c2(F.relu(self.c1(x))).relu()

    bn_model = ConvNet()
    result = swap(bn_model, "prelu(num_parameters='channels')", functional=True, example_inputs=torch.randn(1, 3, 8, 8))
    sizes = [m.weight.numel() for m in result.model.modules() if type(m).__name__ == "PReLU"]
    assert sizes == [7, 2]


def test_inplace_false_leaves_the_original_alone():
    model = _module_net()
    snapshot = copy.deepcopy(model.state_dict())
    result = swap(model, "selu", inplace=False)
    assert isinstance(model[1], nn.ReLU) and isinstance(result.model[1], Activation)
    assert all(torch.equal(snapshot[k], v) for k, v in model.state_dict().items())


def test_a_model_that_is_an_activation():
    result = swap(nn.Tanh(), "softsign")
    assert isinstance(result.model, Activation) and result.model.name == "softsign"


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, error, text",
    [
        ({"to": "gelux"}, KeyError, "to: unknown activation 'gelux'; did you mean 'gelu'"),
        ({"to": "leaky_relu(negative_slope=-1)"}, ValueError, "negative_slope"),
        ({"to": "gelu", "replace": "relux"}, KeyError, "replace"),
        ({"to": {"relu": "gelu"}, "replace": "relu"}, ValueError, "either a mapping"),
        ({"to": "prelu(num_parameters='channels')"}, ValueError, "example_inputs"),
        ({"to": "gelu", "include": 3}, TypeError, "include"),
    ],
)
def test_bad_arguments_change_nothing(kwargs, error, text):
    model = _module_net()
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        swap(model, **kwargs)
    assert isinstance(model[1], nn.ReLU) and isinstance(model[3], nn.ReLU)


def test_no_activation_gets_a_clear_message():
    with pytest.raises(ValueError, match="no activation modules.*functional=True"):
        swap(nn.Sequential(nn.Linear(2, 2)), "gelu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="no activation"):
            swap(nn.Sequential(nn.Linear(2, 2)), "gelu", functional=True)


def test_swapped_model_is_watchable():
    model = swap(FunctionalNetCalls(), "leaky_relu", functional=True).model
    with actlab.watch(model) as w:
        model(_inputs()).sum().backward()
    assert [s.activation for s in w.report().sites] == ["leaky_relu", "leaky_relu"]


def test_actlab_trainable_layers_are_sites_and_swap():
    from actlab.nn import create_activation

    model = nn.Sequential(
        nn.Linear(3, 4),
        create_activation("prelu(num_parameters=4)"),
        nn.Linear(4, 4),
        nn.PReLU(),
        nn.Linear(4, 4),
        create_activation("swish(beta='learnable')"),
    )
    with actlab.watch(model) as w:
        model(_inputs(shape=(8, 3))).sum().backward()
    assert [s.activation for s in w.report().sites] == [
        "prelu(num_parameters=4)",
        "prelu(num_parameters=1)",
        "swish(beta='learnable')",
    ]
    report = swap(model, "elu", replace="prelu").report
    assert [r.name for r in report.replaced] == ["1", "3"]
    assert isinstance(model[5], Activation) and model[5].activation.learnable


# ----------------------------------------------------------------------------- distributed
def test_ddp_model_refuses_a_swap_that_adds_parameters(tmp_path):
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(_module_net())
        before = {k: v.clone() for k, v in ddp.state_dict().items()}
        with pytest.raises(ValueError, match="DistributedDataParallel.*swap before wrapping"):
            swap(ddp, "prelu")
        with pytest.raises(ValueError, match="swap before wrapping"):
            swap(nn.Sequential(ddp), {"relu": "prelu(num_parameters='channels')"}, example_inputs=_inputs())
        assert isinstance(ddp.module[1], nn.ReLU) and isinstance(ddp.module[3], nn.ReLU)  # nothing changed
        assert ddp.state_dict().keys() == before.keys()
        # a parameter-free swap inside the wrapper is fine: nothing new to synchronise
        report = swap(ddp, "gelu").report
        assert [r.name for r in report.replaced] == ["module.1", "module.3"]
        x = _inputs()
        torch.testing.assert_close(ddp(x), ddp.module[4](F.gelu(ddp.module[2](F.gelu(ddp.module[0](x))))))
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- state_dict
class ConstantsNet(nn.Module):
    """A forward that reads tensor constants (as timm's swinv2 does), a plain tensor attribute and a
    non-persistent buffer: torch.fx turns each into a buffer of the GraphModule."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 2)
        self.scale = torch.tensor(2.0)
        self.register_buffer("mask", torch.tensor([1.0, 0.0, 1.0, 1.0]), persistent=False)

    def forward(self, x):
        h = F.relu(self.fc1(x)) * self.scale * self.mask
        return self.fc2(h + torch.tensor([1.0, 2.0, 3.0, 4.0]))


def test_functional_swap_keeps_the_state_dict_loadable_into_the_original():
    torch.manual_seed(0)
    model = ConstantsNet()
    gm = swap(model, "gelu", inplace=False, functional=True).model
    assert isinstance(gm, torch.fx.GraphModule)
    assert sorted(gm.state_dict()) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    fresh = ConstantsNet()
    fresh.load_state_dict(gm.state_dict())  # strict
    gm.load_state_dict(ConstantsNet().state_dict())  # and back
    x = _inputs(shape=(5, 4))
    fresh_gelu = fresh.fc2(F.gelu(fresh.fc1(x)) * 2.0 * torch.tensor([1.0, 0.0, 1.0, 1.0]) + torch.arange(1.0, 5.0))
    gm.load_state_dict(fresh.state_dict())
    torch.testing.assert_close(gm(x), fresh_gelu)
    buffer = io.BytesIO()
    torch.save(gm.state_dict(), buffer)  # and through a file
    buffer.seek(0)
    ConstantsNet().load_state_dict(torch.load(buffer))


# ----------------------------------------------------------------------------- which calls, and untraceable forwards
class BiasAttention(nn.Module):
    """swinv2-style attention: a relative-position bias from a small MLP over a coordinate table,
    gathered by a position index and squashed by 16 * sigmoid: that sigmoid is no layer's activation."""

    def __init__(self, gate=torch.sigmoid, untraceable: bool = False, n: int = 3):
        super().__init__()
        self.gate, self.untraceable = gate, untraceable
        self.qkv, self.proj = nn.Linear(8, 24), nn.Linear(8, 8)
        self.cpb = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
        g = torch.Generator().manual_seed(3)
        self.register_buffer("coords", torch.randn(2 * n - 1, 2, generator=g))
        rel = torch.arange(n)[:, None] - torch.arange(n)[None, :] + n - 1
        self.register_buffer("index", rel.reshape(-1))

    def forward(self, x):
        b, n, c = x.shape
        if self.untraceable:
            n = int(n)  # a Python int from a shape: torch.fx cannot trace this (a TraceError)
        qkv = self.qkv(x).reshape(b, n, 3, 2, c // 2).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.cpb(self.coords)[self.index].view(n, n, 2).permute(2, 0, 1)
        bias = 16 * self.gate(bias)
        attn = torch.softmax(q @ k.transpose(-2, -1) * 0.5 + bias, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class BiasBlock(nn.Module):
    def __init__(self, act=F.gelu, gate=torch.sigmoid, untraceable: bool = False):
        super().__init__()
        self.act = act
        self.attn = BiasAttention(gate, untraceable)
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.fc2(self.act(self.fc1(x)))


class BiasNet(nn.Module):
    def __init__(self, act=F.gelu, gates=(torch.sigmoid, torch.sigmoid), untraceable: bool = False):
        super().__init__()
        self.blocks = nn.Sequential(*(BiasBlock(act, gate, untraceable) for gate in gates))

    def forward(self, x):
        return self.blocks(x)


def _bias_inputs() -> torch.Tensor:
    return _inputs(4, shape=(2, 3, 8))


@pytest.mark.parametrize("untraceable", [False, True], ids=["fx", "call-time"])
def test_only_calls_after_a_learned_layer_are_swapped_by_default(untraceable):
    torch.manual_seed(0)
    model = BiasNet(untraceable=untraceable)
    x = _bias_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot trace" warning: the call-time swap takes over
        result = swap(model, "silu", functional=True, example_inputs=(x,))
    report = result.report
    assert [(r.name, r.kind, r.old) for r in report.replaced] == [
        ("blocks.0.attn.cpb.1", "module", "relu"),
        ("blocks.1.attn.cpb.1", "module", "relu"),
        ("blocks.0.gelu", "function", "gelu"),
        ("blocks.1.gelu", "function", "gelu"),
    ]
    listed = [(n.name, "learned layer" in n.reason, "vector" in n.reason) for n in report.not_replaced]
    assert listed == [
        ("blocks.0.attn.sigmoid", True, False),
        ("blocks.0.attn.softmax", False, True),
        ("blocks.1.attn.sigmoid", True, False),
        ("blocks.1.attn.softmax", False, True),
    ]
    assert isinstance(result.model, torch.fx.GraphModule) is not untraceable
    reference = BiasNet(act=F.silu)  # written by hand: silu in the MLPs, the bias sigmoid kept
    for block in reference.blocks:
        block.attn.cpb[1] = nn.SiLU()
    reference.load_state_dict(result.model.state_dict())  # strict: the same keys as the original
    for _ in range(2):  # every forward routes the same calls
        torch.testing.assert_close(result.model(x), reference(x))
    # include= naming the site swaps it too
    named = swap(
        BiasNet(untraceable=untraceable), "silu", functional=True, include=["blocks.0.attn.sigmoid"], example_inputs=x
    )
    assert [r.name for r in named.report.replaced] == ["blocks.0.attn.sigmoid"]
    reference = BiasNet(gates=(F.silu, torch.sigmoid))
    reference.load_state_dict(named.model.state_dict())
    torch.testing.assert_close(named.model(x), reference(x))


def test_call_time_swap_trains_copies_and_saves_like_the_original():
    torch.manual_seed(0)
    model = BiasNet(untraceable=True)
    x = _bias_inputs()
    result = swap(model, {"gelu": "prelu(num_parameters='channels')"}, functional=True, example_inputs=(x,))
    assert result.model is model  # swapped in place: the model stays its own class
    assert [(r.name, r.new) for r in result.report.replaced] == [
        (f"blocks.{i}.gelu", "prelu(num_parameters=3)") for i in (0, 1)
    ]
    prelus = [n for n, p in model.named_parameters() if "swapped" in n]
    assert prelus == ["blocks.0.swapped_gelu.weight", "blocks.1.swapped_gelu.weight"]
    model(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "swapped" in n)
    copied = copy.deepcopy(model)
    with torch.no_grad():
        model.blocks[0].swapped_gelu.weight.fill_(0.5)
        copied.blocks[0].swapped_gelu.weight.fill_(0.5)
        expected = model(x)
        torch.testing.assert_close(copied(x), expected)
        # the copy routes to its own modules: changing the original's no longer moves the copy
        model.blocks[0].swapped_gelu.weight.fill_(-3.0)
        torch.testing.assert_close(copied(x), expected)
    buffer = io.BytesIO()
    torch.save(copied.state_dict(), buffer)
    buffer.seek(0)
    copied.load_state_dict(torch.load(buffer))


def test_transformers_models_swap_functionally():
    transformers = pytest.importorskip("transformers")
    common = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    common.update(vocab_size=64, max_position_embeddings=32, attn_implementation="eager")
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    bert = transformers.BertModel(transformers.BertConfig(**common)).eval()  # no dropout
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = swap(bert, "silu", functional=True).report  # inputs: the model's dummy_inputs
    layers = [f"encoder.layer.{i}.intermediate.intermediate_act_fn" for i in (0, 1)]
    assert [r.name for r in report.replaced] == [*layers, "pooler.activation"]
    assert [(n.name, "vector" in n.reason) for n in report.not_replaced] == [
        (f"encoder.layer.{i}.attention.self.softmax", True) for i in (0, 1)
    ]
    reference = transformers.BertModel(transformers.BertConfig(hidden_act="silu", **common)).eval()
    reference.pooler.activation = nn.SiLU()
    reference.load_state_dict(bert.state_dict())
    torch.testing.assert_close(bert(ids).pooler_output, reference(ids).pooler_output)

    # GPT-2's NewGELUActivation is one gelu site: the tanh inside its formula is not a call site
    gpt2_config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64, bos_token_id=0, eos_token_id=0)
    gpt2 = transformers.GPT2LMHeadModel(gpt2_config).eval()
    before = gpt2(ids).logits
    report = swap(gpt2, "relu", replace="tanh", functional=True, include="*").report
    assert (report.replaced, report.not_replaced) == ((), ())
    torch.testing.assert_close(gpt2(ids).logits, before)

    llama_config = dict(common, num_key_value_heads=2)
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(**llama_config)).eval()
    report = swap(llama, "gelu", functional=True, example_inputs={"input_ids": ids}).report
    assert [r.name for r in report.replaced] == [f"model.layers.{i}.mlp.act_fn" for i in (0, 1)]
    assert [n.name for n in report.not_replaced] == [f"model.layers.{i}.self_attn.softmax" for i in (0, 1)]
    reference = transformers.LlamaForCausalLM(transformers.LlamaConfig(hidden_act="gelu", **llama_config)).eval()
    reference.load_state_dict(llama.state_dict())
    torch.testing.assert_close(llama(ids).logits, reference(ids).logits)


def test_call_time_swap_twice_and_watch_sees_the_new_modules():
    torch.manual_seed(0)
    model = BiasNet(untraceable=True)
    x = _bias_inputs()
    swap(model, "silu", functional=True, example_inputs=x)
    second = swap(model, {"silu": "elu", "sigmoid": "hard_sigmoid"}, functional=True, example_inputs=x)
    assert [(r.name, r.kind, r.old, r.new) for r in second.report.replaced] == [
        ("blocks.0.attn.cpb.1", "module", "silu", "elu"),
        ("blocks.0.swapped_gelu", "module", "silu", "elu"),
        ("blocks.1.attn.cpb.1", "module", "silu", "elu"),
        ("blocks.1.swapped_gelu", "module", "silu", "elu"),
    ]
    assert [n.name for n in second.report.not_replaced] == ["blocks.0.attn.sigmoid", "blocks.1.attn.sigmoid"]
    reference = BiasNet(act=F.elu)
    for block in reference.blocks:
        block.attn.cpb[1] = nn.ELU()
    reference.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(x), reference(x))
    with actlab.watch(model) as w:  # the watch sees the new modules, not the replaced calls
        model(x)
    assert [(s.name, s.activation) for s in w.report().sites] == [
        (f"blocks.{i}.{site}", act)
        for i in (0, 1)
        for site, act in (("attn.cpb.1", "elu"), ("attn.sigmoid", "sigmoid"), ("swapped_gelu", "elu"))
    ]


def test_a_parametrized_layer_is_a_learned_layer():
    from torch.nn.utils.parametrizations import weight_norm

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = weight_norm(nn.Linear(4, 4, bias=False))  # its weight lives in the parametrization

        def forward(self, x):
            return F.relu(self.fc(x))

    assert [r.name for r in swap(Net(), "gelu", functional=True).report.replaced] == ["relu"]
