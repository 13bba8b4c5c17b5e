"""Arena tasks, loaders (on files the tests write) and models."""

from __future__ import annotations

import gzip
import pickle
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from actlab.arena import loaders  # noqa: E402
from actlab.arena.models import build_model, model_names, model_spec  # noqa: E402
from actlab.arena.tasks import build_task, task_names, task_spec  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small models train faster on one thread (as arena workers do), and a busy CI machine is not oversubscribed."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


GENERATED = [name for name in task_names() if not any(p.required for p in task_spec(name).params)]


# ----------------------------------------------------------------------------- built-in tasks
@pytest.mark.parametrize("name", GENERATED)
def test_task_builds_with_consistent_shapes(name):
    data = build_task(name, {}, seed=0)
    assert len(data.x_train) == len(data.y_train) > len(data.x_val) == len(data.y_val) > 0
    assert data.x_train.dtype == np.float32 and np.isfinite(data.x_train).all()
    assert data.x_train.shape[1:] == data.x_val.shape[1:]
    assert data.input_kind == task_spec(name).input_kind
    assert data.metric == task_spec(name).metric
    if data.loss == "cross_entropy":
        assert data.y_train.dtype == np.int64
        assert 0 <= data.y_train.min() and data.y_train.max() < data.output_shape[-1]
        # both classes / all labels appear in the training split
        assert len(np.unique(data.y_train)) == data.output_shape[-1]
    else:
        assert data.y_train.shape[1:] == data.output_shape


@pytest.mark.parametrize("name", ["spirals", "digits", "copy_memory"])
def test_task_data_depend_on_the_seed_only(name):
    a, b, c = build_task(name, {}, 3), build_task(name, {}, 3), build_task(name, {}, 4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert a.x_train.shape == c.x_train.shape and not np.array_equal(a.x_train, c.x_train)


def test_digits_split_covers_every_sample_once():
    data = build_task("digits", {"val_fraction": 0.25}, seed=1)
    assert len(data.x_train) + len(data.x_val) == 1797
    assert len(data.x_val) == round(1797 * 0.25)
    # standardised with the training split's statistics
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0.0, atol=1e-5)


def test_adding_problem_target_is_the_sum_of_the_marked_values():
    data = build_task("adding", {"n_samples": 50, "seq_len": 10}, seed=0)
    x, y = data.x_train, data.y_train
    assert (x[:, :, 1].sum(axis=1) == 2).all()
    np.testing.assert_allclose((x[:, :, 0] * x[:, :, 1]).sum(axis=1), y[:, 0], rtol=1e-6)


def test_copy_memory_layout():
    data = build_task("copy_memory", {"n_samples": 40, "copy_length": 3, "delay": 4, "n_symbols": 5}, seed=0)
    x, y = data.x_train, data.y_train
    assert x.shape[1:] == (3 + 4 + 3, 5 + 2) and data.output_shape == (3, 5)
    np.testing.assert_array_equal(x[:, :3].argmax(-1), y)  # the first steps show the symbols
    assert (x[:, 3 + 4 - 1].argmax(-1) == 6).all()  # the recall marker
    assert (x[:, 3:6].argmax(-1) == 5).all() and (x[:, -3:].argmax(-1) == 5).all()  # blanks


def test_bad_task_params_are_named_with_their_range():
    with pytest.raises(ValueError, match=r"task_params.noise: -1 is not allowed; expected a number with 0 <= x <= 1"):
        build_task("spirals", {"noise": -1}, 0)
    with pytest.raises(ValueError, match=r"task_params.n_sample: unknown parameter.*did you mean 'n_samples'"):
        build_task("spirals", {"n_sample": 10}, 0)
    with pytest.raises(KeyError, match="did you mean 'spirals'"):
        build_task("spiral", {}, 0)


# ----------------------------------------------------------------------------- loaders
def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_mnist(folder, n_train=30, n_test=10, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        if n == 0:
            continue
        images = rng.integers(0, 256, (n, 6, 5), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            raw = _idx_bytes(arr, 0x08)
            path = folder / (f"{prefix}-{kind}.gz" if gz else f"{prefix}-{kind}")
            path.write_bytes(gzip.compress(raw) if gz else raw)
        written[prefix] = (images, labels)
    return written


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    raw = _idx_bytes(arr, 0x0C)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    out = loaders.read_idx(path)
    np.testing.assert_array_equal(out, arr)
    assert out.dtype == np.int32


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        loaders.read_idx(tmp_path / "bad")
    arr = np.zeros((3, 2), dtype=np.uint8)
    (tmp_path / "short").write_bytes(_idx_bytes(arr, 0x08)[:-1])
    with pytest.raises(ValueError, match=r"declares shape \(3, 2\)"):
        loaders.read_idx(tmp_path / "short")


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_loader_and_task(tmp_path, gz):
    written = _write_mnist(tmp_path, gz=gz)
    data = loaders.load_mnist_idx(tmp_path)
    assert data.x_train.shape == (30, 1, 6, 5) and data.x_val.shape == (10, 1, 6, 5)
    np.testing.assert_allclose(data.x_train[:, 0] * 255, written["train"][0], atol=1e-4)
    np.testing.assert_array_equal(data.y_val, written["t10k"][1])
    task = build_task("mnist_idx", {"path": str(tmp_path)}, seed=0)
    assert task.input_kind == "image" and task.output_shape == (10,) and len(task.x_val) == 10
    split = build_task("mnist_idx", {"path": str(tmp_path), "validation": "split", "val_fraction": 0.5}, seed=0)
    assert len(split.x_train) == len(split.x_val) == 15


def test_a_trial_trains_on_mnist_files(tmp_path):
    from actlab.arena.trial import run_trial

    _write_mnist(tmp_path, n_train=40, n_test=10)
    result = run_trial(
        {"task": "mnist_idx", "task_params": {"path": str(tmp_path)}, "model": "cnn", "activation": "relu", "epochs": 1}
    )
    assert result["status"] == "ok" and result["metric"] == "accuracy" and 0.0 <= result["final_metric"] <= 1.0


def test_mnist_loader_without_test_files_and_missing_files(tmp_path):
    _write_mnist(tmp_path / "only_train", n_test=0)
    data = loaders.load_mnist_idx(tmp_path / "only_train")
    assert data.x_val is None
    task = build_task("mnist_idx", {"path": str(tmp_path / "only_train")}, seed=0)
    assert len(task.x_train) + len(task.x_val) == 30  # split by seed instead
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        loaders.load_mnist_idx(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        loaders.load_mnist_idx(tmp_path / "nowhere")


def test_cifar10_loader_and_task(tmp_path):
    rng = np.random.default_rng(0)
    batches = {}
    for name, n in (("data_batch_1", 6), ("data_batch_2", 4), ("test_batch", 5)):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
        batches[name] = batch
    data = loaders.load_cifar10(tmp_path)
    assert data.x_train.shape == (10, 3, 32, 32) and data.x_val.shape == (5, 3, 32, 32)
    np.testing.assert_allclose(data.x_train[6].reshape(-1) * 255, batches["data_batch_2"][b"data"][0], atol=1e-3)
    np.testing.assert_array_equal(data.y_val, batches["test_batch"][b"labels"])
    task = build_task("cifar10", {"path": str(tmp_path), "limit": 4}, seed=0)
    assert len(task.x_train) == 4 and len(task.x_val) == 4
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"expected \(N, 3072\)"):
        loaders.load_cifar10(tmp_path)


def test_arrays_loader_npy_and_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3)).astype(np.float32)
    y = (np.arange(20) % 3).astype(np.int64)
    np.save(tmp_path / "x_train.npy", x)
    (tmp_path / "y_train.csv").write_text("label\n" + "\n".join(map(str, y)) + "\n")
    data = loaders.load_arrays(tmp_path)
    np.testing.assert_array_equal(data.x_train, x)
    np.testing.assert_array_equal(data.y_train, y)
    assert data.y_train.dtype == np.int64 and data.x_val is None
    task = build_task("arrays", {"path": str(tmp_path)}, seed=0)
    assert task.loss == "cross_entropy" and task.output_shape == (3,) and len(task.x_val) == 4
    regression = build_task("arrays", {"path": str(tmp_path), "kind": "regression"}, seed=0)
    assert regression.loss == "mse" and regression.output_shape == (1,) and not regression.higher_is_better


def test_arrays_loader_with_validation_files_and_errors(tmp_path):
    np.savetxt(tmp_path / "x_train.csv", np.ones((6, 2)), delimiter=",")
    np.savetxt(tmp_path / "y_train.csv", np.linspace(0, 1, 6), delimiter=",")
    np.save(tmp_path / "x_val.npy", np.zeros((3, 2)))
    with pytest.raises(FileNotFoundError, match="x_val and y_val must both exist"):
        loaders.load_arrays(tmp_path)
    np.save(tmp_path / "y_val.npy", np.zeros(3))
    data = build_task("arrays", {"path": str(tmp_path)}, seed=0)
    assert data.x_val.shape == (3, 2) and data.loss == "mse"
    np.save(tmp_path / "y_train.npy", np.zeros(6))
    with pytest.raises(ValueError, match="both y_train.npy and y_train.csv"):
        loaders.load_arrays(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"missing x_train.npy \(or .csv\) and y_train.npy"):
        loaders.load_arrays(tmp_path / "empty")


# ----------------------------------------------------------------------------- user tasks
USER_MODULE = textwrap.dedent(
    """
    import numpy as np
    import torch

    import actlab.nn


    def make(seed, n=40, classes=3):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, 4)).astype(np.float32)
        y = (np.arange(n) % classes).astype(np.int64)
        x[np.arange(n), y] += 3.0
        return {
            "data": (x[:30], y[:30], x[30:], y[30:]),
            "model": lambda act: torch.nn.Sequential(
                torch.nn.Linear(4, 8), actlab.nn.Activation(act), torch.nn.Linear(8, classes)
            ),
        }


    def regression(scale=1.0):
        x = np.linspace(-1, 1, 20, dtype=np.float32)[:, None]
        return {
            "data": {"x_train": x, "y_train": scale * x[:, 0], "x_val": x, "y_val": scale * x[:, 0]},
            "loss": "mse",
            "metric": lambda out, y: float(-((out[:, 0] - y[:, 0]) ** 2).mean()),
            "metric_name": "neg_mse",
            "higher_is_better": True,
        }


    def no_data():
        return {"model": None}


    NOT_CALLABLE = 3
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "arena_user_task_mod.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "arena_user_task_mod"


def test_user_task_entry_point(user_module):
    data = build_task(f"{user_module}:make", {"n": 40}, seed=2)
    assert data.x_train.shape == (30, 4) and data.output_shape == (3,) and data.metric == "accuracy"
    model = data.model_factory("relu")
    assert model(torch.zeros(2, 4)).shape == (2, 3)
    again = build_task(f"{user_module}:make", {"n": 40}, seed=2)
    np.testing.assert_array_equal(data.x_train, again.x_train)  # the seed is passed through
    reg = build_task(f"{user_module}:regression", {"scale": 2.0}, seed=0)
    assert reg.metric == "neg_mse" and reg.higher_is_better and reg.y_train.shape == (20, 1)
    assert reg.metric_fn is not None and reg.model_factory is None


def test_user_task_errors(user_module):
    with pytest.raises(ValueError, match="returned no 'data'"):
        build_task(f"{user_module}:no_data", {}, 0)
    with pytest.raises(ValueError, match="is not callable"):
        build_task(f"{user_module}:NOT_CALLABLE", {}, 0)
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        build_task(f"{user_module}:nope", {}, 0)
    with pytest.raises(ValueError, match="cannot import module"):
        build_task("arena_no_such_module_xyz:make", {}, 0)
    with pytest.raises(ValueError, match="must look like 'package.module:function'"):
        build_task("os.system('x'):y", {}, 0)


# ----------------------------------------------------------------------------- models
def _input_for(kind):
    return {"vector": (5,), "image": (1, 8, 8), "sequence": (6, 3)}[kind]


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("output_shape", [(4,), (2, 4)])
def test_every_model_builds_and_runs_on_each_input_it_takes(name, output_shape):
    torch.manual_seed(0)
    for kind in model_spec(name).inputs:
        model = build_model(name, "gelu", _input_for(kind), output_shape)
        out = model(torch.randn(3, *_input_for(kind)))
        assert out.shape == (3, *output_shape)
        out.sum().backward()


def test_models_reject_inputs_they_cannot_take():
    with pytest.raises(ValueError, match=r"model 'cnn' takes image inputs, got vector input \(5,\)"):
        build_model("cnn", "relu", (5,), (2,))
    with pytest.raises(ValueError, match=r"model_params.norm: 'group' is not allowed; expected one of 'none'"):
        build_model("mlp", "relu", (5,), (2,), {"norm": "group"})


def test_mlp_norm_placement_and_gain_map():
    before = build_model("mlp", "tanh", (5,), (2,), {"depth": 2, "norm": "batch", "norm_placement": "before"})
    after = build_model("mlp", "tanh", (5,), (2,), {"depth": 2, "norm": "layer", "norm_placement": "after"})
    kinds_before = [type(m).__name__ for m in before]
    kinds_after = [type(m).__name__ for m in after]
    assert kinds_before[1:4] == ["Linear", "BatchNorm1d", "Activation"]
    assert kinds_after[1:4] == ["Linear", "Activation", "LayerNorm"]
    # hidden layers feed the activation; the head does not
    assert before.arena_gains == {"1": "tanh", "4": "tanh"}
    assert set(after.arena_gains) == {"1", "4"}


def test_residual_mlp_variants_and_deep_mlp_depth():
    pre = build_model("residual_mlp", "relu", (5,), (3,), {"blocks": 3, "norm": "layer"})
    post = build_model("residual_mlp", "relu", (5,), (3,), {"blocks": 3, "pre_activation": False})
    for model in (pre, post):
        assert model(torch.randn(4, 5)).shape == (4, 3)
        assert "stem.1" in model.arena_gains and len(model.blocks) == 3
    deep = build_model("mlp", "relu", (64,), (10,), {"depth": 30})
    assert sum(isinstance(m, torch.nn.Linear) for m in deep) == 31
