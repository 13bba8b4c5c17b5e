"""Placeholder CLI module, replaced by its subsystem (contract: add_arguments(parser), run(args) -> int)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's arguments; imports nothing heavy."""


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("not built yet")
