"""Identifiers that cannot hurt (issue #10, item 7): bounded parsing and suggestions, the registry's
own errors for every malformed identifier, one Unicode normalisation, anonymous specs, bounded
analysis, ``actlab show`` for any identifier, and rich tables that print their text literally."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import tracemalloc

import numpy as np
import pytest

import actlab
from actlab import registry
from actlab.catalog import ParameterError
from actlab.registry import BoundActivation, IdentifierError, UnknownActivationError

MB = 1_000_000


# ----------------------------------------------------------------------------- unknown names
@pytest.mark.parametrize("length", [10_000, MB])
def test_unknown_long_name_message_is_bounded(length):
    name = "gelu" + "q" * (length - 4)
    with pytest.raises(UnknownActivationError) as info:
        actlab.get(name)
    text = str(info.value)
    assert len(text) < 200, text
    assert repr(name[:80]) in text and name[:81] not in text and f"{length} characters" in text


def test_suggestions_look_at_a_bounded_prefix(monkeypatch):
    """The work is on at most the first 128 characters, whatever the name's length."""
    seen = []
    edit, key, close = registry._edit_distance, registry._key, registry.difflib.get_close_matches
    monkeypatch.setattr(registry, "_edit_distance", lambda a, b: seen.append(len(a)) or edit(a, b))
    monkeypatch.setattr(registry, "_key", lambda s: seen.append(len(s)) or key(s))

    def recording_close(word, *args, **kwargs):
        seen.append(len(word))
        return close(word, *args, **kwargs)

    monkeypatch.setattr(registry.difflib, "get_close_matches", recording_close)
    with pytest.raises(UnknownActivationError):
        actlab.get_spec("q" * MB)
    assert seen and max(seen) <= 128
    # ...and the prefix still finds typos: the comparison itself works on it.
    assert registry.suggestions("gleu")[0] == "gelu"
    assert registry.suggestions("leaky_rleu" + "x" * MB) == []  # nothing is 1 MB long
    assert "relu" in registry.suggestions("RELU6 ")


def test_unknown_name_is_key_error_value_error_and_identifier_error():
    with pytest.raises(UnknownActivationError) as info:
        actlab.get("gleu")
    err = info.value
    assert isinstance(err, KeyError) and isinstance(err, ValueError) and isinstance(err, IdentifierError)
    assert str(err).startswith("unknown activation 'gleu'") and not str(err).startswith('"')
    for caught in (KeyError, ValueError, LookupError):  # the call sites that existed and Keras' expectation
        try:
            actlab.get_spec("no_such_activation")
        except caught:
            pass


# ----------------------------------------------------------------------------- malformed literals
MALFORMED = {
    "100k unary minus": "elu(alpha=" + "-" * 100_000 + "1)",
    "3000 tilde": "elu(alpha=" + "~" * 3000 + "1)",
    "4300-digit int": "elu(alpha=" + "9" * 4300 + ")",
    "1000 nested parens": "elu(alpha=" + "(" * 1000 + "1" + ")" * 1000 + ")",
    "1 MB call": "elu(" * (MB // 4),
    # within the length bound: the depth and size bounds decide
    "985 unary minus": "elu(alpha=" + "-" * 985 + "1)",
    "985 tilde": "elu(alpha=" + "~" * 985 + "1)",
    "400-digit int": "elu(alpha=" + "9" * 400 + ")",
    "490 nested lists": "elu(alpha=" + "[" * 490 + "1" + "]" * 490 + ")",
    "9 nested tuples": "elu(alpha=" + "(" * 9 + "1" + ",)" * 9 + ")",
    "199 nested calls": "elu(" * 199 + ")" * 199,
    "duplicate keyword": "elu(alpha=1, alpha=2)",
    "complex": "elu(alpha=1j)",
    "bytes": "elu(alpha=b'1')",
    "expression": "elu(alpha=1+1)",
}


@pytest.mark.parametrize("text", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_identifiers_raise_identifier_error(text):
    with pytest.raises(IdentifierError) as info:
        actlab.get(text)
    message = str(info.value)
    assert "activation identifier" in message and len(message) < 300, message


def test_duplicate_keyword_is_named():
    with pytest.raises(IdentifierError, match=r"\['alpha'\] given more than once"):
        actlab.get("elu(alpha=1, alpha=2)")
    with pytest.raises(TypeError, match="given twice"):
        actlab.get("elu(1, alpha=2)")


def test_literals_that_are_accepted():
    assert actlab.get("elu(alpha=--1)") == actlab.get("elu")
    assert actlab.get("elu(alpha=+1e2)").params["alpha"] == 100.0
    assert actlab.get("elu(alpha=" + "9" * 38 + ")").params["alpha"] == float("9" * 38)
    # a long literal parses; a value beyond float32's range is then the parameter's own error
    with pytest.raises(ParameterError, match="float32"):
        actlab.get("elu(alpha=" + "9" * 300 + ")")
    assert registry._parse_call_string("softmax(axis=(1, -2))") == ("softmax", (), {"axis": (1, -2)})
    assert actlab.get("swish(beta='learnable(0.5)')").learnable == {"beta"}


def test_integer_beyond_float_range_is_a_parameter_error():
    with pytest.raises(ParameterError, match="too large"):
        actlab.get("elu", alpha=10**400)


# ----------------------------------------------------------------------------- normalisation, dicts
def test_nfkc_for_strings_dicts_and_keywords():
    relu, elu2 = actlab.get("relu"), actlab.get("elu(alpha=2)")
    assert actlab.get("ｒｅｌｕ") == relu
    assert actlab.get({"name": "ｒｅｌｕ"}) == relu
    assert actlab.get_spec("ＲＥＬＵ") is relu.spec
    assert actlab.get("ｅｌｕ(ａｌｐｈａ=2)") == elu2
    assert actlab.get({"name": "ｅｌｕ", "config": {"ａｌｐｈａ": 2}}) == elu2


@pytest.mark.parametrize("config", [[], (), "alpha=2", 3, [("alpha", 2)]])
def test_config_that_is_not_a_mapping_is_refused(config):
    with pytest.raises(IdentifierError, match="'config' of an activation dict must be a dict"):
        actlab.get({"name": "elu", "config": config})


def test_config_none_or_empty_means_defaults():
    assert actlab.get({"name": "elu", "config": None}) == actlab.get("elu") == actlab.get({"name": "elu", "config": {}})
    with pytest.raises(IdentifierError, match="keys must be parameter names"):
        actlab.get({"name": "elu", "config": {1: 2.0}})


# ----------------------------------------------------------------------------- anonymous specs
def test_unregistered_spec_copy_is_anonymous():
    registered = actlab.get_spec("elu")
    twin = dataclasses.replace(registered)
    anon = actlab.get(twin, alpha=2.0)
    assert anon.spec is twin and registered == twin  # the dataclasses compare equal; the activations do not
    assert anon != actlab.get("elu(alpha=2)") and actlab.get("elu(alpha=2)") != anon
    assert "unregistered" in repr(anon)
    with pytest.raises(IdentifierError, match="register it under a name of its own"):
        actlab.serialize(anon)
    x = np.array([-1.0, 0.5])
    np.testing.assert_array_equal(anon(x), actlab.get("elu(alpha=2)")(x))  # usable as is
    assert copy.deepcopy(anon) == anon  # two copies of the same anonymous spec are equal
    assert actlab.get(registered, alpha=2.0) == actlab.get("elu(alpha=2)")
    assert actlab.get_spec("elu") is registered  # nothing was registered or replaced


def test_unregistered_new_spec_is_not_registered_by_get():
    spec = dataclasses.replace(actlab.get_spec("elu"), name="test_anonymous_elu", aliases=())
    act = actlab.get(spec)
    assert act.name == "test_anonymous_elu" and not registry.is_registered(spec)
    assert "test_anonymous_elu" not in actlab.list_activations()
    with pytest.raises(IdentifierError):
        actlab.serialize(act)


# ----------------------------------------------------------------------------- bounded analysis
def _elu_gain(alpha: float) -> float:
    """1/sqrt(E[elu(z)²]), z ~ N(0,1), from E[e^{tz}; z<0] = e^{t²/2} Φ(-t) (independent of the quadrature)."""
    phi = lambda t: 0.5 * math.erfc(t / math.sqrt(2.0))  # noqa: E731  Φ(-t)
    negative = math.exp(2.0) * phi(2.0) - 2.0 * math.exp(0.5) * phi(1.0) + 0.5  # E[(e^z - 1)²; z < 0]
    return 1.0 / (alpha * math.sqrt(0.5 / alpha / alpha + negative))


@pytest.mark.parametrize("alpha", [1.0, 1e10, 1e30, 3.4028234663852886e38])  # up to float32's largest
def test_gain_of_huge_parameters_is_exact_and_lean(alpha):
    import actlab.analysis as aa

    tracemalloc.start()
    try:
        report = aa.gain("elu", alpha=alpha)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.computed == pytest.approx(_elu_gain(alpha), rel=1e-12)
    assert peak < 50 * MB, f"{peak / MB:.0f} MB"


def test_quadrature_work_is_bounded():
    from actlab.analysis._common import gaussian_expectation, power_of_two_scale

    calls = []

    def overflowing(t):  # inf on the right half: refining cannot make it finite
        calls.append(t.size)
        return np.atleast_2d(np.where(t > 0, np.inf, 1.0))

    values, err = gaussian_expectation(overflowing)
    assert values[0] == math.inf and err == math.inf and sum(calls) < 10_000

    rng = np.random.default_rng(0)
    calls.clear()

    def noise(t):  # never converges: the panel bound stops it
        calls.append(t.size)
        return np.atleast_2d(rng.standard_normal(t.size))

    values, err = gaussian_expectation(noise, max_panels=256)
    assert err == math.inf and math.isfinite(values[0]) and max(calls) <= 256 * 16
    assert power_of_two_scale(np.array([1e300, -3.0])) == 2.0**996
    assert power_of_two_scale(np.array([1.7e308])) == 2.0**1023
    assert power_of_two_scale(np.array([1e-300])) == 2.0**-997
    assert power_of_two_scale(np.array([0.5, 1e100, np.inf, np.nan])) == 1.0


# ----------------------------------------------------------------------------- actlab show
def _show(capsys, *argv):
    from actlab.cli import main

    code = main(["show", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_show_accepts_call_strings(capsys):
    code, out, err = _show(capsys, "gelu(approximate='tanh')")
    assert code == 0, err
    assert out.startswith("gelu(approximate='tanh')") and "approximate = 'tanh' (default 'none')" in out
    code, out, _ = _show(capsys, "gelu(approximate='tanh')", "--format", "json")
    info = json.loads(out)
    assert info["identifier"] == "gelu(approximate='tanh')"
    assert [p["value"] for p in info["parameters"] if p["name"] == "approximate"] == ["tanh"]
    tanh_gelu_1 = 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * (1 + 0.044715)))  # Hendrycks & Gimpel, eq. at x=1
    assert next(v["f"] for v in info["values"] if v["x"] == 1.0) == pytest.approx(tanh_gelu_1, rel=1e-14)
    code, out, _ = _show(capsys, "elu(alpha=2)", "--format", "json")
    info = json.loads(out)
    assert info["properties"]["range"][0] == -2.0 and next(v["f"] for v in info["values"] if v["x"] == -1) == (
        pytest.approx(2 * math.expm1(-1), rel=1e-15)
    )


@pytest.mark.parametrize(
    "text, words",
    [
        ("elu(alpha=1, alpha=2)", "given more than once"),
        ("elu(alpha=-1)", "'alpha'"),
        ("elu(beta=1)", "unexpected parameter"),
        ("q" * 10_000, "(10000 characters)"),
    ],
)
def test_show_refuses_bad_identifiers_plainly(capsys, text, words):
    code, out, err = _show(capsys, text)
    assert code == 2 and out == "" and err.startswith("actlab: ") and "Traceback" not in err
    assert words in err and len(err) < 400, err


# ----------------------------------------------------------------------------- rich escaping
def test_rich_tables_print_their_text_literally():
    from actlab.cli import _render

    rows = [
        {"name": "relu [init=he]", "summary": "[bold]x[/bold] and [red]y"},
        {"name": "[link=file:///etc]z[/link]", "summary": r"a \[b] [/]"},
    ]
    title, headers = "[b]ranking[/b]", {"name": "[i]activation[/i]"}
    out = _render(rows, ["name", "summary"], "table", title=title, headers=headers)
    for text in ("relu [init=he]", "[bold]x[/bold] and [red]y", "[link=file:///etc]z[/link]", r"a \[b] [/]"):
        assert text in out, out
    assert "[b]ranking[/b]" in out and "[i]activation[/i]" in out


def test_every_bracketed_summary_survives_the_table():
    """The summaries rich dropped as markup (glu, geglu, crelu ...): every '[' of every summary is
    printed (a table wraps long cells, so the brackets are counted, not searched as one string)."""
    from actlab.cli import _render

    specs = [s for s in registry.all_specs("all") if re.search(r"\[[^\]]*\]", s.summary)]
    assert specs  # the catalog has some today; the check is generic
    rows = [{"name": s.name, "summary": s.summary} for s in specs]
    out = _render(rows, ["name", "summary"], "table")
    assert out.count("[") == sum(s.summary.count("[") for s in specs)


def test_arena_progress_labels_are_not_markup():
    import io

    from actlab.arena.runner import _RichProgress

    progress = _RichProgress(1, io.StringIO())
    try:
        task = progress.bars.add_task("relu [init=he] [bold]x[/bold]", total=1)
        column = progress.bars.columns[0]
        shown = column.render(next(t for t in progress.bars.tasks if t.id == task))
        assert shown.plain == "relu [init=he] [bold]x[/bold]"
    finally:
        progress.close()


def test_bound_activation_equality_is_by_registered_spec():
    a, b = actlab.get("elu(alpha=2)"), actlab.get({"name": "elu", "config": {"alpha": 2}})
    assert a == b and hash(a) == hash(b) and isinstance(a, BoundActivation)


def test_identifier_length_is_bounded():
    """A well-formed but over-long call string is refused before parsing (no parser work on 1 MB)."""
    limit = registry.MAX_IDENTIFIER_LENGTH
    padded = "elu(alpha=2" + " " * (limit - 12) + ")"
    assert len(padded) == limit and actlab.get(padded) == actlab.get("elu(alpha=2)")
    with pytest.raises(IdentifierError, match=f"longer than {limit} characters"):
        actlab.get(padded[:-1] + " )")


@pytest.mark.parametrize(
    "identifier",
    [b"x" * MB, {"class_name": 5, "config": "x" * MB}, {"name": "elu", "config": "x" * MB}, 3.5],
    ids=["bytes", "keras-like dict", "config string", "float"],
)
def test_messages_about_other_objects_are_bounded(identifier):
    with pytest.raises(IdentifierError) as info:
        actlab.get(identifier)
    assert len(str(info.value)) < 200, str(info.value)[:300]
