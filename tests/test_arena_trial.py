"""Arena trials: normalisation, validation, training, divergence, determinism, fairness."""

from __future__ import annotations

import json
import math
import textwrap

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from actlab.analysis import gain  # noqa: E402
from actlab.arena.models import model_names, model_spec  # noqa: E402
from actlab.arena.tasks import task_names, task_spec  # noqa: E402
from actlab.arena.trial import (  # noqa: E402
    CONFIG_KEYS,
    TrialInterrupted,
    dead_unit_fraction,
    normalize_trial,
    run_trial,
    validate_trial,
    without_measurements,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small models train faster on one thread (as arena workers do), and a busy CI machine is not oversubscribed."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


RESULT_KEYS = {
    "status",
    "metric",
    "higher_is_better",
    "final_metric",
    "best_metric",
    "best_epoch",
    "epochs_to_target",
    "epochs_run",
    "curve",
    "seconds_per_epoch",
    "peak_memory_bytes",
    "peak_memory_scope",
    "dead_fraction",
    "init",
    "lr",
    "lr_search",
    "diverged_at_epoch",
    "n_parameters",
}

# Small versions of every generated task (one or two epochs each keep the file fast).
SMALL = {
    "spirals": {"n_samples": 200},
    "checkerboard": {"n_samples": 200},
    "sine": {"n_samples": 200},
    "digits": {},
    "digits_image": {},
    "deep_mlp": {},
    "adding": {"n_samples": 100, "seq_len": 8},
    "copy_memory": {"n_samples": 100, "copy_length": 2, "delay": 3},
}


# ----------------------------------------------------------------------------- normalisation
def test_normalize_fills_every_default_and_is_a_fixed_point():
    cfg = normalize_trial({"task": "spirals", "activation": "LeakyReLU(0.2)"})
    assert tuple(cfg) == CONFIG_KEYS
    spec = task_spec("spirals")
    assert cfg["activation"] == "leaky_relu(negative_slope=0.2)"
    assert cfg["model"] == spec.model and cfg["epochs"] == spec.epochs and cfg["lr"] == spec.lr
    assert cfg["model_params"]["depth"] == spec.model_params["depth"] and cfg["model_params"]["norm"] == "none"
    assert cfg["task_params"]["n_samples"] == 1000 and cfg["seed"] == 0 and cfg["init"] == "auto"
    assert normalize_trial(cfg) == cfg
    assert json.loads(json.dumps(cfg)) == cfg


def test_normalize_canonicalises_numbers_and_identifiers():
    a = normalize_trial({"task": "digits", "activation": {"name": "elu", "config": {"alpha": 1.0}}, "lr": 1, "seed": 3})
    b = normalize_trial({"task": "digits", "activation": "ELU", "lr": 1.0, "seed": 3.0})
    assert a == b and a["activation"] == "elu" and isinstance(a["lr"], float) and isinstance(a["seed"], int)
    grid = normalize_trial({"task": "digits", "activation": "relu", "lr": [0.1, 0.01]})
    assert grid["lr"] == [0.1, 0.01]
    assert normalize_trial({"task": "digits", "activation": "relu", "lr": [0.1]})["lr"] == 0.1


def test_task_model_params_apply_to_the_task_model_only():
    deep = normalize_trial({"task": "deep_mlp", "activation": "relu", "model_params": {"norm": "batch"}})
    assert deep["model_params"]["depth"] == 30 and deep["model_params"]["norm"] == "batch"
    other = normalize_trial({"task": "deep_mlp", "activation": "relu", "model": "residual_mlp"})
    assert "depth" not in other["model_params"] and other["model_params"]["blocks"] == 2


def test_validate_reports_every_problem_at_once_with_suggestions():
    problems = validate_trial(
        {
            "task": "spiral",
            "activation": "rellu",
            "epochs": 0,
            "lr": [0.1, -1],
            "modle": "mlp",
            "momentum": 1.0,
            "init": "kaiming",
            "batch_size": True,
        }
    )
    text = "\n".join(problems)
    assert len(problems) == 8, text
    assert "did you mean 'spirals'" in text
    assert "unknown activation 'rellu'" in text and "'relu'" in text
    assert "epochs: 0 is not allowed; expected an integer with 1 <= x" in text
    assert "lr[1]: -1 is not allowed; expected a number with 0 < x" in text
    assert "modle: unknown key; did you mean 'model'?" in text
    assert "momentum: 1.0 is not allowed; expected a number with 0 <= x < 1" in text
    assert "init: 'kaiming' is not allowed; expected one of 'auto'" in text
    assert "batch_size: True is not allowed" in text


def test_validate_checks_models_and_their_params_against_the_task():
    problems = validate_trial(
        {"task": "spirals", "activation": "relu", "model": "cnn", "model_params": {"widht": 3, "depth": -1}}
    )
    text = "\n".join(problems)
    assert "model: 'cnn' does not take the vector inputs of task 'spirals'; choose one of mlp, residual_mlp" in text
    assert "model_params.widht: unknown parameter" in text and "did you mean 'width'" in text
    assert "model_params.depth: -1 is not allowed; expected an integer with 1 <= x <= 8" in text
    assert validate_trial({"task": "spirals", "activation": "relu", "model": "mpl"}) == [
        "model: 'mpl' is not allowed; expected one of " + ", ".join(model_names()) + "; did you mean 'mlp'?"
    ]
    assert validate_trial({"task": "spirals", "activation": "relu", "model": "task"})[0].startswith("model: 'task'")


def test_validate_checks_that_the_activation_fits_the_model():
    glu = validate_trial({"task": "spirals", "activation": "glu"})
    assert glu == [
        "activation: 'glu' maps 6 features to 3; the arena's models need an activation that keeps the shape "
        "(gated layers such as GLU halve it)"
    ]
    assert validate_trial({"task": "spirals", "activation": "prelu"}) == []
    cell = validate_trial({"task": "adding", "activation": "prelu"})
    assert cell == [
        "activation: 'prelu' is a layer activation; the lstm model uses it inside its cells, "
        "which need an elementwise one"
    ]


def test_validate_accepts_good_configs_and_normalize_raises_on_bad_ones():
    assert validate_trial({"task": "digits", "activation": "gelu(approximate='tanh')"}) == []
    assert validate_trial("spirals") == ["trial config must be a mapping (dict / TOML table), got str"]
    assert validate_trial({"task": "spirals", "activation": "leaky_relu(negative_slope=-1)"})[0].startswith(
        "activation:"
    )
    with pytest.raises(ValueError, match=r"invalid trial configuration:\n  - activation: required"):
        normalize_trial({"task": "spirals"})


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("task", list(SMALL))
def test_each_task_runs_a_short_trial(task):
    result = run_trial({"task": task, "activation": "elu", "task_params": SMALL[task], "epochs": 1})
    assert set(result) == RESULT_KEYS
    assert result["status"] == "ok" and result["epochs_run"] == 1 and len(result["curve"]) == 1
    assert math.isfinite(result["final_metric"]) and result["metric"] == task_spec(task).metric
    assert result["n_parameters"] > 0 and result["peak_memory_bytes"] >= 0
    assert json.loads(json.dumps(result)) == result  # JSON-serialisable, no NaN


def test_trial_switches_flush_denormal_off_again():
    # The trial runs with subnormals flushed (speed); code after it must see them again.
    run_trial({"task": "spirals", "activation": "relu", "task_params": SMALL["spirals"], "epochs": 1})
    assert torch.tensor([1e-40]).mul(1.0).item() != 0.0


@pytest.mark.parametrize("model", [m for m in model_names() if "sequence" in model_spec(m).inputs])
def test_each_sequence_model_trains_on_copy_memory(model):
    params = SMALL["copy_memory"]
    result = run_trial(
        {"task": "copy_memory", "model": model, "activation": "tanh", "task_params": params, "epochs": 1}
    )
    assert result["status"] == "ok" and 0.0 <= result["final_metric"] <= 1.0


def test_spirals_default_trains_to_a_meaningful_accuracy():
    result = run_trial({"task": "spirals", "activation": "relu", "seed": 0})
    assert result["final_metric"] > 0.9 and result["best_metric"] >= result["final_metric"]
    assert result["epochs_to_target"] is not None and result["best_epoch"] >= result["epochs_to_target"]
    assert result["dead_fraction"] is None or 0.0 <= result["dead_fraction"] <= 1.0


def test_huge_learning_rate_diverges_without_raising():
    seen = []
    result = run_trial(
        {"task": "spirals", "activation": "relu", "lr": 1e6, "optimizer": "sgd", "epochs": 5}, on_epoch=seen.append
    )
    assert result["status"] == "diverged"
    assert result["final_metric"] is None and result["diverged_at_epoch"] is not None
    assert result["epochs_run"] == len(result["curve"]) == result["diverged_at_epoch"] - 1 == len(seen)
    assert result["epochs_run"] < 5
    json.dumps(result, allow_nan=False)


def test_same_config_gives_the_same_result():
    config = {"task": "spirals", "activation": "rrelu", "task_params": {"n_samples": 200}, "epochs": 3}
    config["model_params"] = {"dropout": 0.2}  # dropout and rrelu draw random numbers too
    first, second = run_trial(config), run_trial(config)
    assert without_measurements(first) == without_measurements(second)
    other_seed = run_trial({**config, "seed": 1})
    assert without_measurements(other_seed)["curve"] != without_measurements(first)["curve"]


def test_global_rng_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run_trial({"task": "sine", "activation": "tanh", "task_params": {"n_samples": 100}, "epochs": 1})
    torch.testing.assert_close(torch.rand(3), expected)


def test_auto_init_records_the_activation_gain_per_layer():
    result = run_trial({"task": "spirals", "activation": "relu", "task_params": {"n_samples": 100}, "epochs": 1})
    init = result["init"]
    assert init["scheme"] == "auto"
    by_name = {row["name"]: row for row in init["layers"]}
    assert by_name["1.weight"]["gain"] == pytest.approx(math.sqrt(2), rel=1e-3)  # He init for relu
    assert by_name["1.weight"]["activation"] == "relu"
    head = by_name[max(by_name, key=lambda n: int(n.split(".")[0]))]
    assert head["gain"] == 1.0  # the output layer feeds no activation
    assert isinstance(result["dead_fraction"], float) and 0.0 <= result["dead_fraction"] < 1.0  # measured
    tanh = run_trial({"task": "spirals", "activation": "tanh", "task_params": {"n_samples": 100}, "epochs": 1})
    tanh_gain = {r["name"]: r for r in tanh["init"]["layers"]}["1.weight"]["gain"]
    assert tanh_gain == pytest.approx(gain("tanh").computed) and tanh_gain > 1.5  # 1/sqrt(E[tanh(z)^2])


@pytest.mark.parametrize("scheme", ["he", "lecun", "torch"])
def test_fixed_init_schemes_are_control_arms(scheme):
    result = run_trial(
        {"task": "spirals", "activation": "gelu", "init": scheme, "task_params": {"n_samples": 100}, "epochs": 1}
    )
    rows = result["init"]["layers"]
    assert result["init"]["scheme"] == scheme and len(rows) == 3
    expected = {"he": math.sqrt(2), "lecun": 1.0, "torch": 1 / math.sqrt(3)}[scheme]  # torch: kaiming_uniform(a=√5)
    assert rows[0]["gain"] == pytest.approx(expected, rel=0.25 if scheme == "torch" else 1e-6)


def test_learning_rate_search_chooses_by_a_holdout_and_reports_every_candidate():
    config = {"task": "spirals", "activation": "tanh", "task_params": {"n_samples": 300}, "epochs": 4}
    result = run_trial({**config, "lr": [1e-5, 3e-2]})
    search = result["lr_search"]
    assert [row["lr"] for row in search] == [1e-5, 3e-2]
    assert all(set(row) == {"lr", "status", "final_metric", "best_metric", "epochs_run"} for row in search)
    assert result["lr"] == 3e-2  # a tiny learning rate barely moves in 4 epochs
    assert search[1]["final_metric"] > search[0]["final_metric"]
    # the final training uses the full training split, so it is the same as a plain run with that lr
    plain = run_trial({**config, "lr": 3e-2})
    assert plain["lr_search"] is None
    assert without_measurements({**result, "lr_search": None}) == without_measurements(plain)


def test_clipping_norm_and_placement_options_train():
    base = {"task": "digits", "activation": "elu", "epochs": 1, "clip_grad_norm": 0.5}
    for norm, placement in (("batch", "before"), ("layer", "after")):
        result = run_trial({**base, "model_params": {"norm": norm, "norm_placement": placement, "dropout": 0.1}})
        assert result["status"] == "ok" and result["final_metric"] > 0.5


def test_callbacks_time_budget_and_stop():
    seen = []
    result = run_trial(
        {"task": "sine", "activation": "tanh", "task_params": {"n_samples": 100}, "epochs": 50, "time_budget_s": 1e-9},
        on_epoch=seen.append,
    )
    assert result["epochs_run"] == 1 and seen[0]["epoch"] == 1 and seen[0]["phase"] == "train"
    assert set(result["curve"][0]) == {"epoch", "train_loss", "val_loss", "val_metric", "seconds"}
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(TrialInterrupted):
        run_trial({"task": "sine", "activation": "tanh", "epochs": 5}, should_stop=stop)
    assert len(calls) == 4


def test_trainable_activation_trains():
    result = run_trial(
        {"task": "spirals", "activation": "prelu", "task_params": {"n_samples": 100}, "epochs": 2, "lr": 0.01}
    )
    assert result["status"] == "ok"


# ----------------------------------------------------------------------------- user tasks
USER_MODULE = textwrap.dedent(
    """
    import numpy as np
    import torch

    import actlab.nn


    def blobs(seed, n=60):
        rng = np.random.default_rng(seed)
        y = (np.arange(n) % 2).astype(np.int64)
        x = (rng.standard_normal((n, 3)) + 2.0 * y[:, None]).astype(np.float32)
        return {
            "data": (x[:40], y[:40], x[40:], y[40:]),
            "model": lambda act: torch.nn.Sequential(
                torch.nn.Linear(3, 16), actlab.nn.Activation(act), torch.nn.Linear(16, 2)
            ),
        }


    def blobs_without_model(seed):
        out = blobs(seed)
        del out["model"]
        return out
    """
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "arena_trial_user_mod.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "arena_trial_user_mod"


def test_user_task_trial(user_module):
    task = f"{user_module}:blobs"
    cfg = normalize_trial({"task": task, "activation": "elu", "task_params": {"n": 60}})
    assert cfg["model"] == "task" and cfg["model_params"] == {} and cfg["task_params"] == {"n": 60}
    result = run_trial({**cfg, "epochs": 5, "lr": 0.05})
    assert result["status"] == "ok" and result["final_metric"] > 0.7
    gains = {row["name"]: row["gain"] for row in result["init"]["layers"]}
    assert gains["0.weight"] == pytest.approx(gain("elu").computed)  # found from the model's structure
    # a built-in model on the user's data
    mlp = run_trial({"task": f"{user_module}:blobs_without_model", "activation": "relu", "model": "mlp", "epochs": 1})
    assert mlp["status"] == "ok"
    with pytest.raises(ValueError, match="returned no 'model' factory"):
        run_trial({"task": f"{user_module}:blobs_without_model", "activation": "relu", "epochs": 1})


def test_user_task_problems_are_reported_by_validate(user_module):
    problems = validate_trial({"task": f"{user_module}:nothing", "activation": "relu"})
    assert problems == [f"task: user task '{user_module}:nothing': module '{user_module}' has no attribute 'nothing'"]
    assert "task: " in validate_trial({"task": "no_such_module_q:f", "activation": "relu"})[0]
    odd = validate_trial({"task": f"{user_module}:blobs", "activation": "relu", "task_params": {"n": object()}})
    assert len(odd) == 1 and odd[0].startswith("task_params: must be JSON values")


def test_every_builtin_name_is_listed():
    assert {"spirals", "checkerboard", "sine", "digits", "digits_image", "deep_mlp", "adding", "copy_memory"} <= set(
        task_names()
    )
    assert {"mnist_idx", "cifar10", "arrays"} <= set(task_names())
    assert model_names() == ["mlp", "residual_mlp", "cnn", "lstm", "gru", "attention"]


def test_dead_unit_fraction_of_a_constructed_model():
    """Biases of +-100 decide each ReLU unit's sign on every input: 5 of 8 units dead in the first layer,
    2 of 6 in the second, so 7 of 14 in all, whatever the input."""
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)
    )
    with torch.no_grad():
        for layer, signs in ((model[0], [1, 1, 1, -1, -1, -1, -1, -1]), (model[2], [-1, 1, 1, 1, -1, 1])):
            layer.weight.uniform_(-0.5, 0.5, generator=gen)
            layer.bias.copy_(100.0 * torch.tensor(signs, dtype=torch.float32))
    x = torch.randn(300, 4, generator=gen)
    assert dead_unit_fraction(model, x) == pytest.approx(7 / 14)
    with torch.no_grad():
        model[0].bias.fill_(100.0)
        model[2].bias.fill_(100.0)
    assert dead_unit_fraction(model, x) == 0.0
