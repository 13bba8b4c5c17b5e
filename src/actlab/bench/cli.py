"""``actlab bench TOPIC``: one subcommand per benchmark module in this package.

Each topic module provides ``add_arguments(parser)`` (no heavy imports) and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

# topic -> (module, help)
TOPICS = {
    "lstm": ("actlab.bench.recurrent", "actlab LSTM/GRU variants against torch.nn.LSTM/GRU, forward+backward"),
    "watch": ("actlab.bench.watch", "training-step overhead of actlab.watch on an MLP and a small CNN"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    topics = parser.add_subparsers(dest="topic", required=True, metavar="TOPIC")
    for topic, (module, help_text) in TOPICS.items():
        p = topics.add_parser(topic, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(bench_module=module)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args.bench_module).run(args) or 0)
