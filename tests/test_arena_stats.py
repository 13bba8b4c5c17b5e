"""Arena statistics: mean ± t CI, ranks, paired Wilcoxon / t tests and Holm's correction, checked
against SciPy and a published example, on records fabricated by a seeded helper (the record format
of ``actlab.arena.store.read_records``)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from scipy import stats

from actlab.arena.stats import ArenaSummary, holm, mean_ci, min_wilcoxon_p, paired_test, summarize

ACCURACY_ARMS = {"relu": 0.90, "gelu": 0.92, "tanh": 0.86, "sigmoid": 0.70}


def fake_records(
    arms: Mapping[str, float] = ACCURACY_ARMS,
    seeds: Sequence[int] = (0, 1, 2),
    *,
    task: str = "spirals",
    task_params: Mapping | None = None,
    metric: str = "accuracy",
    higher_is_better: bool = True,
    noise: float = 0.01,
    seed_spread: float = 0.02,
    diverged: Mapping[str, Sequence[int]] | None = None,
    failed: Mapping[str, Sequence[int]] | None = None,
    epochs: int = 8,
    extra: Mapping | None = None,
    rng_seed: int = 0,
) -> list[dict]:
    """Records as the store returns them. Final metric = arm mean + a per-seed offset shared by all
    arms (a harder or easier data split) + independent noise; curves approach it over ``epochs``."""
    rng = np.random.default_rng(rng_seed)
    seed_offset = {s: float(rng.normal(0, seed_spread)) for s in seeds}
    out = []
    for activation, centre in arms.items():
        for s in seeds:
            config = {
                "task": task,
                "task_params": dict(task_params or {}),
                "model": "mlp",
                "model_params": {},
                "activation": activation,
                "seed": s,
                "epochs": epochs,
                "time_budget_s": None,
                "optimizer": "adam",
                "lr": 0.01,
                "momentum": 0.9,
                "weight_decay": 0.0,
                "batch_size": 64,
                "init": "auto",
                "clip_grad_norm": None,
                "target": None,
                **dict(extra or {}),
            }
            final = centre + seed_offset[s] + float(rng.normal(0, noise))
            status = "ok"
            if s in (diverged or {}).get(activation, ()):
                status = "diverged"
            if s in (failed or {}).get(activation, ()):
                status = "failed"
            n_ep = epochs if status == "ok" else (epochs // 2 if status == "diverged" else 0)
            start = 0.5 if higher_is_better else 2.0 * final
            curve = []
            for e in range(1, n_ep + 1):
                w = 1 - math.exp(-e / 2.5)
                curve.append(
                    {
                        "epoch": e,
                        "train_loss": float((1.2 - w) * (1 + 0.05 * rng.normal())),
                        "val_loss": float((1.3 - w) * (1 + 0.05 * rng.normal())),
                        "val_metric": float(start + (final - start) * w + 0.005 * rng.normal()),
                        "seconds": 0.1,
                    }
                )
            if status == "diverged" and curve:
                curve[-1]["train_loss"] = math.nan
            result = {
                "status": status,
                "metric": metric,
                "higher_is_better": higher_is_better,
                "final_metric": final if status == "ok" else None,
                "best_metric": final if status == "ok" else None,
                "best_epoch": n_ep if status == "ok" else None,
                "epochs_to_target": None,
                "epochs_run": n_ep,
                "curve": curve,
                "seconds_per_epoch": float(0.05 + 0.01 * len(activation) + 0.002 * rng.random()),
                "peak_memory_bytes": int(2**20 * (20 + rng.integers(0, 3))),
                "dead_fraction": float(0.3 + 0.05 * rng.random()) if "relu" in activation else 0.0,
                "init": {"scheme": "auto"},
                "lr": 0.01,
                "lr_search": None,
                "diverged_at_epoch": n_ep if status == "diverged" else None,
                "n_parameters": 1234,
            }
            if status == "failed":
                result = {"status": "failed", "error": "RuntimeError: out of memory", "curve": []}
            canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            key = hashlib.sha256(canonical.encode()).hexdigest()  # the store's trial key
            out.append(
                {"key": key, "config": config, "result": result, "finished_at": "2026-01-01T00:00:00Z", "worker": "w0"}
            )
    return out


# ----------------------------------------------------------------------------- building blocks
def test_mean_ci_matches_scipy_t_interval():
    x = np.random.default_rng(1).normal(0.8, 0.05, size=7)
    mean, std, lo, hi = mean_ci(x)
    ref = stats.t.interval(0.95, df=len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert mean == pytest.approx(x.mean())
    assert std == pytest.approx(x.std(ddof=1))
    assert (lo, hi) == pytest.approx(ref)
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(0.95)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))


def test_mean_ci_single_value_has_no_interval():
    mean, std, lo, hi = mean_ci([0.5])
    assert mean == 0.5 and math.isnan(std) and math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError, match="non-empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=1.5)


# Student's t quantiles t(0.975, df) from the printed tables (e.g. NIST/SEMATECH e-Handbook, table 1.4.2.3)
T975 = {1: 12.7062047362, 2: 4.30265272975, 3: 3.18244630528}


def _t_interval_by_hand(values: Sequence[float]) -> tuple[float, float, float]:
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    return mean, mean - half, mean + half


@pytest.mark.parametrize(
    "values",
    [[1.0, 1.0, 0.94], [1.0, 0.9], [0.995, 1.0, 0.99, 1.0], [0.05, 0.9, 0.1], [1.0, 1.0], [0.0, 0.02, 0.0]],
)
def test_accuracy_intervals_stay_in_0_1_near_the_bounds_with_few_seeds(values):
    mean, low, high = _t_interval_by_hand(values)
    m, _, lo, hi = mean_ci(values, bounds=(0.0, 1.0))
    assert m == pytest.approx(mean)
    assert 0.0 <= lo <= m <= hi <= 1.0
    assert (lo, hi) == pytest.approx((max(low, 0.0), min(high, 1.0)), abs=1e-9)


def test_interval_cut_at_a_bound_known_answer():
    # [1, 1, 0.94]: mean 0.98, s = 0.0346410, s/√3 = 0.02; t interval 0.98 ± 4.3027 · 0.02 = [0.89395, 1.06605]
    _, _, lo, hi = mean_ci([1.0, 1.0, 0.94], bounds=(0.0, 1.0))
    assert (lo, hi) == pytest.approx((0.98 - 0.0860530546, 1.0), abs=1e-9)
    _, _, lo, hi = mean_ci([0.001, 0.05, 0.002], bounds=(0.0, math.inf))  # an mse: never below 0
    assert lo == 0.0 and hi == pytest.approx(_t_interval_by_hand([0.001, 0.05, 0.002])[2])
    with pytest.raises(ValueError, match="bounds"):
        mean_ci([0.1, 0.2], bounds=(1.0, 0.0))


def _with_finals(records: list[dict], finals: Mapping[str, Sequence[float]]) -> list[dict]:
    seen: dict[str, int] = {}
    for r in records:
        a = r["config"]["activation"]
        i = seen.get(a, 0)
        seen[a] = i + 1
        r["result"]["final_metric"] = finals[a][i]
    return records


def test_summary_intervals_stay_within_the_metric_range():
    acc = {"relu": [1.0, 1.0, 0.94], "gelu": [0.9983, 1.0, 0.995], "sigmoid": [0.05, 0.9, 0.1]}
    recs = _with_finals(fake_records(dict.fromkeys(acc, 0.5), seeds=range(3)), acc)
    mse = {"relu": [0.001, 0.05, 0.002], "gelu": [0.01, 0.011, 0.012]}
    recs += _with_finals(
        fake_records(dict.fromkeys(mse, 0.5), seeds=range(3), task="sine", metric="mse", higher_is_better=False), mse
    )
    s = summarize(recs)
    for task, finals, (low, high) in (("spirals", acc, (0.0, 1.0)), ("sine", mse, (0.0, math.inf))):
        for act, values in finals.items():
            arm = s.task(task).arm(act)
            _, lo, hi = _t_interval_by_hand(values)
            assert low <= arm.ci_low <= arm.mean <= arm.ci_high <= high, (task, act)
            assert (arm.ci_low, arm.ci_high) == pytest.approx((max(lo, low), min(hi, high)), abs=1e-9)
    assert s.task("spirals").arm("relu").ci_high == 1.0 and s.task("spirals").arm("sigmoid").ci_low == 0.0
    assert s.task("sine").arm("relu").ci_low == 0.0


def test_a_metric_of_unknown_range_is_not_cut():
    # a user's callable metric (any range), and one named "accuracy" whose values leave [0, 1]
    values = [0.05, 0.9, 0.1]
    _, lo, hi = _t_interval_by_hand(values)
    own = _with_finals(fake_records({"relu": 0, "gelu": 0}, metric="my_score"), {"relu": values, "gelu": values})
    arm = summarize(own).task("spirals").arm("relu")
    assert (arm.ci_low, arm.ci_high) == pytest.approx((lo, hi)) and lo < 0
    odd = _with_finals(fake_records({"relu": 0, "gelu": 0}), {"relu": [1.5, 1.7, 1.6], "gelu": values})
    task = summarize(odd).task("spirals")
    assert task.arm("gelu").ci_low == pytest.approx(lo)
    assert any("outside [0, 1]" in n and "not cut" in n for n in task.notes)


def test_paired_t_below_six_pairs_matches_scipy():
    rng = np.random.default_rng(2)
    b = rng.normal(0.9, 0.02, 5)
    a = b + rng.normal(0.01, 0.01, 5)
    r = paired_test(a, b)
    ref = stats.ttest_rel(a, b)
    assert r.test == "paired_t" and r.n_pairs == 5
    assert r.statistic == pytest.approx(ref.statistic) and r.p_value == pytest.approx(ref.pvalue)
    assert r.mean_difference == pytest.approx(np.mean(a - b))


def test_wilcoxon_from_six_pairs_matches_scipy_exact():
    rng = np.random.default_rng(3)
    b = rng.normal(0.9, 0.02, 8)
    a = b + rng.normal(0.01, 0.01, 8)
    r = paired_test(a, b)
    ref = stats.wilcoxon(a, b, method="exact")
    assert r.test == "wilcoxon" and r.n_pairs == 8
    assert r.statistic == pytest.approx(ref.statistic) and r.p_value == pytest.approx(ref.pvalue)


def test_wilcoxon_threshold_is_where_p_can_fall_below_alpha():
    # all differences positive: the exact two-sided p is 2/2^n; with 5 pairs it cannot reach 0.05
    assert stats.wilcoxon(np.arange(1.0, 6.0), np.zeros(5)).pvalue == pytest.approx(min_wilcoxon_p(5)) == 0.0625
    assert stats.wilcoxon(np.arange(1.0, 7.0), np.zeros(6)).pvalue == pytest.approx(min_wilcoxon_p(6)) == 0.03125
    assert paired_test(np.arange(1.0, 6.0), np.zeros(5)).test == "paired_t"
    assert paired_test(np.arange(1.0, 7.0), np.zeros(6)).test == "wilcoxon"
    assert paired_test(np.arange(1.0, 6.0), np.zeros(5), alpha=0.1).test == "wilcoxon"  # 0.0625 < 0.1
    # zero differences do not count towards n (Wilcoxon's zero_method="wilcox" drops them)
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.0])
    assert paired_test(a, np.zeros(7)).test == "paired_t"


def test_degenerate_pairs():
    same = paired_test([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert same.test == "none" and same.p_value == 1.0 and same.mean_difference == 0.0
    const = paired_test([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])  # t would be infinite, p = 0
    assert const.test == "wilcoxon" and const.p_value == pytest.approx(0.25) and "constant" in const.note
    one = paired_test([1.0], [0.0])
    assert one.test == "none" and one.p_value is None
    with pytest.raises(ValueError, match="same length"):
        paired_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        paired_test([1.0, math.nan], [1.0, 2.0])


def test_holm_on_the_published_example():
    # Holm-Bonferroni's textbook example (four hypotheses, alpha 0.05; e.g. Wikipedia,
    # "Holm-Bonferroni method"): sorted p 0.005, 0.01, 0.03, 0.04 are compared with
    # 0.05/4, 0.05/3, 0.05/2: H4 and H1 are rejected, H3 is not (0.03 > 0.025), so H2 neither.
    # Adjusted by hand: 4*0.005 = 0.02, 3*0.01 = 0.03, max(0.03, 2*0.03) = 0.06, max(0.06, 1*0.04) = 0.06.
    p = [0.01, 0.04, 0.03, 0.005]
    adj = holm(p)
    assert adj == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [q < 0.05 for q in adj] == [True, False, False, True]


def test_holm_properties():
    rng = np.random.default_rng(4)
    for _ in range(50):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 9)).tolist()
        adj = holm(p)
        order = np.argsort(p)
        assert all(a >= q for a, q in zip(adj, p))  # never smaller than the raw p
        assert all(a <= min(1.0, len(p) * q) + 1e-15 for a, q in zip(adj, p))  # never above Bonferroni
        sorted_adj = np.asarray(adj)[order]
        assert np.all(np.diff(sorted_adj) >= 0)  # monotone in the raw p
    assert holm([None, 0.02, math.nan]) == [None, 0.02, None]
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"p_values\[1\]"):
        holm([0.1, 1.5])


# ----------------------------------------------------------------------------- summarize
def test_summary_numbers_match_scipy_per_arm():
    recs = fake_records(seeds=range(4))
    s = summarize(recs)
    assert isinstance(s, ArenaSummary) and s.n_records == 16
    (task,) = s.tasks
    assert task.task == "spirals" and task.metric == "accuracy" and task.higher_is_better
    assert task.varying == []
    for arm in task.arms:
        vals = [r["result"]["final_metric"] for r in recs if r["config"]["activation"] == arm.label]
        m, sd, lo, hi = mean_ci(vals)
        assert (arm.mean, arm.std, arm.ci_low, arm.ci_high) == pytest.approx((m, sd, lo, hi))
        assert arm.n == arm.n_ok == 4 and arm.n_diverged == arm.n_failed == 0
    # p-values: paired t against relu (4 seeds), then Holm over the three comparisons
    base = [r["result"]["final_metric"] for r in recs if r["config"]["activation"] == "relu"]
    raw = {}
    for act in ("gelu", "tanh", "sigmoid"):
        vals = [r["result"]["final_metric"] for r in recs if r["config"]["activation"] == act]
        raw[act] = stats.ttest_rel(vals, base).pvalue
        assert task.arm(act).vs_baseline.p_value == pytest.approx(raw[act])
        assert task.arm(act).vs_baseline.test == "paired_t"
    adj = dict(zip(raw, holm(list(raw.values()))))
    for act in raw:
        assert task.arm(act).vs_baseline.p_holm == pytest.approx(adj[act])
    assert task.arm("relu").is_baseline and task.arm("relu").vs_baseline is None


def test_ranks_follow_the_metric_direction():
    recs = fake_records({"a": 0.9, "b": 0.8, "c": 0.7}, seeds=range(3), noise=0.001)
    task = summarize(recs, baseline="a").tasks[0]
    assert [a.label for a in task.arms] == ["a", "b", "c"]
    assert [a.mean_rank for a in task.arms] == [1.0, 2.0, 3.0]
    low = fake_records(
        {"a": 0.9, "b": 0.8, "c": 0.7}, seeds=range(3), noise=0.001, metric="mse", higher_is_better=False
    )
    task = summarize(low, baseline="a").tasks[0]
    assert [a.label for a in task.arms] == ["c", "b", "a"]
    assert task.arms[0].mean_rank == 1.0


def test_mean_rank_averages_ties_like_scipy():
    recs = fake_records({"a": 0.5, "b": 0.5, "c": 0.9}, seeds=(0, 1), noise=0.0)
    task = summarize(recs, baseline=None).tasks[0]
    assert task.arm("c").mean_rank == 1.0
    assert task.arm("a").mean_rank == task.arm("b").mean_rank == 2.5  # scipy rankdata "average"
    assert stats.rankdata([-0.9, -0.5, -0.5], method="average").tolist() == [1.0, 2.5, 2.5]
    assert task.headline.startswith("No baseline chosen")


def test_two_identical_activations_are_not_significantly_different():
    # Same distribution, different labels: "relu" and its double "leaky_relu(negative_slope=0.0)":
    # the same per-seed offsets, independent noise; 10 seeds, so Wilcoxon is the test used.
    recs = fake_records({"relu": 0.9, "leaky_relu(negative_slope=0.0)": 0.9}, seeds=range(10), rng_seed=5)
    task = summarize(recs).tasks[0]
    twin = task.arm("leaky_relu(negative_slope=0.0)")
    assert twin.vs_baseline.test == "wilcoxon" and twin.vs_baseline.n_pairs == 10
    assert twin.significant is False and twin.direction is None
    assert twin.verdict.startswith("no significant difference from relu")
    assert task.headline == "No activation differs significantly from relu (Holm-corrected, α = 0.05)."


def test_identical_results_are_not_different():
    one = fake_records({"relu": 0.9}, seeds=range(3))
    twin = [{**r, "key": r["key"] + "-twin", "config": {**r["config"], "activation": "relu6"}} for r in one]
    task = summarize(one + twin).tasks[0]
    arm = task.arm("relu6")
    assert arm.vs_baseline.p_value == 1.0 and arm.vs_baseline.p_holm == 1.0 and arm.significant is False
    assert "no significant difference" in arm.verdict and "identical" in arm.verdict


def test_rounding_differences_are_no_evidence():
    b = np.linspace(0.8, 0.9, 8)
    r = paired_test(b * (1 + 1e-13), b)  # the same result up to the last bits, 8 times in one direction
    assert r.test == "none" and r.p_value == 1.0


def test_two_identical_activations_trained_for_real_are_not_different():
    trial = pytest.importorskip("actlab.arena.trial", reason="the arena's trials need torch")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recs = []
        for activation in ("relu", "leaky_relu(negative_slope=0.0)"):  # the same function
            for seed in range(3):
                config = trial.normalize_trial({"task": "spirals", "activation": activation, "seed": seed, "epochs": 2})
                recs.append({"key": f"{activation}-{seed}", "config": config, "result": trial.run_trial(config)})
    finally:
        torch.set_num_threads(threads)
    task = summarize(recs).tasks[0]
    twin = task.arm("leaky_relu(negative_slope=0.0)")
    assert twin.n_ok == 3 and twin.significant is False and twin.direction is None
    assert twin.verdict.startswith("no significant difference from relu")
    assert task.headline.startswith("No activation differs significantly from relu")


def test_false_positive_rate_is_near_alpha_and_a_real_difference_is_found():
    # 300 simulated runs of two arms from one distribution: Holm with one comparison = the raw test,
    # so about 5 % are significant; a clear difference (2 sd of the noise) is found almost always.
    rng = np.random.default_rng(6)
    hits = {5: 0, 8: 0}
    for n in hits:
        for _ in range(150):
            b = rng.normal(0.9, 0.01, n)
            a = rng.normal(0.9, 0.01, n)
            hits[n] += paired_test(a, b).p_value < 0.05
    assert hits[5] / 150 < 0.12 and hits[8] / 150 < 0.12
    found = sum(paired_test(rng.normal(0.92, 0.01, 8), rng.normal(0.90, 0.01, 8)).p_value < 0.05 for _ in range(100))
    assert found > 80


def test_clear_winner_and_loser_are_named():
    recs = fake_records(seeds=range(8), noise=0.003)
    task = summarize(recs).tasks[0]
    assert task.arm("gelu").direction == "better" and task.arm("gelu").vs_baseline.test == "wilcoxon"
    assert task.arm("sigmoid").direction == "worse" and task.arm("tanh").direction == "worse"
    assert task.arm("gelu").verdict.startswith("better than relu (p = ")
    assert "significantly better than relu: gelu" in task.headline.lower()
    assert "significantly worse than relu: tanh, sigmoid" in task.headline


def test_diverged_trials_rank_last_and_are_left_out_of_the_mean():
    recs = fake_records(seeds=range(4), diverged={"gelu": [0, 1]}, failed={"tanh": [3]})
    task = summarize(recs).tasks[0]
    gelu = task.arm("gelu")
    assert gelu.n == 4 and gelu.n_ok == 2 and gelu.n_diverged == 2
    ok_vals = [
        r["result"]["final_metric"]
        for r in recs
        if r["config"]["activation"] == "gelu" and r["config"]["seed"] in (2, 3)
    ]
    assert gelu.mean == pytest.approx(np.mean(ok_vals))
    assert gelu.vs_baseline.n_pairs == 2
    assert "diverged in 2 of 4 seeds" in gelu.verdict
    # at seeds 0 and 1 gelu is ranked last (4 arms): rank 4; at 2, 3 it is best
    assert gelu.mean_rank == pytest.approx((4 + 4 + 1 + 1) / 4)
    tanh = task.arm("tanh")
    assert tanh.n_failed == 1 and tanh.n_ok == 3 and tanh.n_ranked == 3
    # a finished trial whose metric is NaN counts as diverged
    nan = fake_records({"relu": 0.9, "elu": 0.9}, seeds=range(2))
    nan[-1]["result"]["final_metric"] = math.nan
    assert summarize(nan).tasks[0].arm("elu").n_diverged == 1


def test_arms_differing_in_other_keys_get_labels_and_their_own_baseline():
    recs = fake_records({"relu": 0.9, "gelu": 0.91}, seeds=range(3), extra={"init": "auto"}) + fake_records(
        {"relu": 0.8, "gelu": 0.95}, seeds=range(3), extra={"init": "lecun"}, rng_seed=1
    )
    task = summarize(recs).tasks[0]
    assert task.varying == ["init"]
    labels = sorted(a.label for a in task.arms)
    assert labels == ["gelu [init=auto]", "gelu [init=lecun]", "relu [init=auto]", "relu [init=lecun]"]
    assert task.arm("gelu [init=lecun]").baseline_label == "relu [init=lecun]"
    assert task.arm("relu [init=auto]").is_baseline and task.arm("relu [init=lecun]").is_baseline


def test_tasks_are_split_by_name_and_params():
    recs = (
        fake_records(seeds=range(2))
        + fake_records(seeds=range(2), task="digits")
        + fake_records(seeds=range(2), task="digits", task_params={"n": 500})
    )
    s = summarize(recs)
    assert [t.task for t in s.tasks] == ["digits ()", "digits (n=500)", "spirals"]
    assert s.task("spirals").arms and s.task("digits (n=500)").task_params == {"n": 500}


def test_baseline_is_matched_through_the_registry_and_missing_baseline_is_said():
    recs = fake_records(seeds=range(3))
    assert summarize(recs, baseline="ReLU").tasks[0].arm("relu").is_baseline
    task = summarize(recs, baseline="elu").tasks[0]
    assert "No elu arm" in task.headline
    assert all(a.vs_baseline is None for a in task.arms)
    assert "no elu arm" in task.arm("gelu").verdict


def test_to_dict_is_json_and_bad_arguments_are_named():
    s = summarize(fake_records(seeds=range(1)))
    text = json.dumps(s.to_dict(), allow_nan=False)
    assert json.loads(text)["tasks"][0]["arms"][0]["std"] is None  # one seed: no spread
    with pytest.raises(ValueError, match=r"alpha must be a number in \(0, 1\), got 1.5"):
        summarize([], alpha=1.5)
    with pytest.raises(ValueError, match="baseline"):
        summarize([], baseline="")
    with pytest.raises(ValueError, match=r"records\[0\]\['config'\] has no 'seed'"):
        summarize([{"config": {"task": "x", "activation": "relu"}, "result": {"status": "ok"}}])
    with pytest.raises(ValueError, match=r"records\[0\]\['result'\] must be a mapping"):
        summarize([{"config": {"task": "x", "activation": "relu", "seed": 0}}])
