"""``actlab bench TOPIC``: one subcommand per benchmark module in this package.

Each topic module provides ``add_arguments(parser)`` (no heavy imports) and ``run(args) -> int``.
``activations`` is the default topic: ``actlab bench gelu silu`` is ``actlab bench activations gelu
silu``, and ``actlab bench`` alone benchmarks every elementwise activation (:func:`with_default_topic`).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# topic -> (module, help)
TOPICS = {
    "activations": (
        "actlab.bench.activations",
        "activations against clone(), PyTorch's op, the naive SymPy composition and actlab's eager and fast "
        "paths (the default topic)",
    ),
    "lstm": ("actlab.bench.recurrent", "actlab LSTM/GRU variants against torch.nn.LSTM/GRU, forward+backward"),
    "fewbit": (
        "actlab.bench.fewbit",
        "gradient cosine similarity of the few-bit backward (memory='fewbit') per code width, fit and measured",
    ),
    "gated": (
        "actlab.bench.gated",
        "a LLaMA-style gated MLP training step: the composed form against actlab.nn.GatedMLP (memory, time)",
    ),
    "watch": ("actlab.bench.watch", "training-step overhead of actlab.watch on an MLP and a small CNN"),
    "memory": ("actlab.bench.memory", "memory modes (exact, mask, fewbit): saved bytes, forward peak, time, block"),
}
DEFAULT_TOPIC = "activations"

DESCRIPTION = (
    "Benchmarks: speed and memory as ratios to a reference measured in the same run.\n\n"
    "A first argument that is not a topic starts the activation benchmark: `actlab bench gelu silu "
    "--size 1e6` is `actlab bench activations gelu silu --size 1e6`, and `actlab bench` alone measures "
    "every elementwise activation (see `actlab bench activations --help`); `actlab bench --memory NAMES` "
    "is `actlab bench memory NAMES`."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    topics = parser.add_subparsers(dest="topic", required=True, metavar="TOPIC")
    for topic, (module, help_text) in TOPICS.items():
        p = topics.add_parser(topic, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(bench_module=module)


def with_default_topic(argv: Sequence[str]) -> list[str]:
    """The arguments after ``bench`` with the default topic inserted where no topic is named.

    ``--help`` alone keeps the topic list; an activation named like a topic is reached through
    ``actlab bench activations NAME``.
    """
    argv = list(argv)
    if argv and (argv[0] in TOPICS or argv[0] in ("-h", "--help")):
        return argv
    if "--memory" in argv:  # issue #12's spelling: `actlab bench --memory NAMES` is the memory topic
        return ["memory", *(a for a in argv if a != "--memory")]
    return [DEFAULT_TOPIC, *argv]


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args.bench_module).run(args) or 0)
