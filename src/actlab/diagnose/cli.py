"""``actlab diagnose MODULE:FACTORY``: run a model a few steps under :func:`actlab.watch` and
print its activation health.

``MODULE`` is an importable module (the current directory is searched first) or a ``.py`` file;
``FACTORY`` a callable in it that returns the ``torch.nn.Module`` (or the module object itself).
Inputs come from ``--data MODULE:LOADER`` (a callable returning an iterable of batches ``x``,
``(x, y)`` or dicts of keyword arguments) or are random of ``--input-shape``: normal, or integer
token ids in [0, V) with ``--vocab-size V``. The output may be a tensor, a tuple, a dict or a
dataclass (transformers' ``ModelOutput``): with labels, a model that takes ``labels=`` gives its
own ``.loss``; otherwise the first tensor is compared with the targets (cross-entropy for integer
targets, else mean squared error) or, without targets, the probe loss mean(output²)/2 sends a
gradient through every site (:mod:`actlab.diagnose.running`). ``--lr`` > 0 takes SGD steps
(training); the default 0 only measures.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run", "load_object"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments; imports nothing heavy (the parser is built for every command)."""
    parser.add_argument("model", metavar="MODULE:FACTORY", help="callable returning the model, e.g. mypkg.nets:make")
    parser.add_argument(
        "--input-shape", metavar="D,D,...", help="shape of one input without the batch dimension, e.g. 3,32,32"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of random inputs (default 64)")
    parser.add_argument(
        "--vocab-size",
        type=int,
        metavar="V",
        help="random inputs are integer token ids in [0, V) of --input-shape (for embedding models)",
    )
    parser.add_argument("--data", metavar="MODULE:LOADER", help="callable returning an iterable of x or (x, y) batches")
    parser.add_argument("--steps", type=int, default=20, help="batches to run (default 20)")
    parser.add_argument(
        "--lr", type=float, default=0.0, help="SGD learning rate; 0 (default) measures without training"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of torch's generator (default 0)")
    parser.add_argument("--format", choices=("table", "json", "md"), default="table", help="output format")
    parser.add_argument("-o", "--output", metavar="DIR", help="write report.json and PNG plots into DIR")


class UsageError(ValueError):
    """A bad command-line value; the message names the argument."""


def load_object(text: str, argument: str) -> Any:
    """``module:attr.path`` -> the object, importing the module (or a ``.py`` file); never eval."""
    module_name, sep, attr_path = text.partition(":")
    if not sep or not module_name or not attr_path:
        raise UsageError(f"{argument} must look like MODULE:NAME (e.g. mypkg.nets:make), got {text!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise UsageError(f"{argument}: no file {module_name!r}")
        spec = importlib.util.spec_from_file_location(f"_actlab_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)  # as `python -m` does: the user's modules beside them
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and module_name.startswith(err.name):
                raise UsageError(f"{argument}: cannot import module {module_name!r} ({err})") from None
            raise
    obj: Any = module
    for part in attr_path.split("."):
        if not part.isidentifier():
            raise UsageError(f"{argument}: {attr_path!r} is not a dotted name")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{argument}: module {module_name!r} has no attribute {attr_path!r}") from None
    return obj


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in re.split(r"[,x]", text.strip()))
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise UsageError(f"--input-shape must be positive integers separated by commas (e.g. 3,32,32), got {text!r}")
    return dims


def _batches(args: argparse.Namespace) -> Any:
    """An endless iterator of (x, y or None) batches."""
    import torch

    if args.data:
        loader = load_object(args.data, "--data")
        source = loader() if callable(loader) else loader
        try:
            iter(source)
        except TypeError:
            raise UsageError(
                f"--data: {args.data} returned {type(source).__name__}, not an iterable of batches"
            ) from None

        def cycle() -> Any:
            while True:
                empty = True
                for batch in source:
                    empty = False
                    if isinstance(batch, torch.Tensor):
                        yield batch, None
                    elif isinstance(batch, dict):  # keyword arguments, as a tokenizer gives them
                        yield batch, None
                    elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
                        yield batch[0], (batch[1] if len(batch) > 1 else None)
                    else:
                        raise UsageError(
                            f"--data: batches must be tensors, (x, y) pairs or dicts, got {type(batch).__name__}"
                        )
                if empty:
                    raise UsageError(f"--data: {args.data} gave no batches")

        return cycle()
    if not args.input_shape:
        raise UsageError("give --input-shape (e.g. --input-shape 3,32,32) or --data MODULE:LOADER")
    shape = _shape(args.input_shape)

    def random() -> Any:
        while True:
            if args.vocab_size:
                yield torch.randint(0, args.vocab_size, (args.batch_size, *shape)), None
            else:
                yield torch.randn(args.batch_size, *shape), None

    return random()


def _check(args: argparse.Namespace) -> None:
    if args.steps < 1:
        raise UsageError(f"--steps must be an integer >= 1, got {args.steps}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be an integer >= 1, got {args.batch_size}")
    if not args.lr >= 0 or args.lr == float("inf"):
        raise UsageError(f"--lr must be a finite number >= 0, got {args.lr}")
    if args.input_shape:
        _shape(args.input_shape)
    if args.vocab_size is not None:
        if args.vocab_size < 1:
            raise UsageError(f"--vocab-size must be an integer >= 1, got {args.vocab_size}")
        if args.data:
            raise UsageError("--vocab-size makes random token ids; with --data the loader gives the inputs: drop one")


def run(args: argparse.Namespace) -> int:
    try:
        _check(args)
        return _run(args)
    except UsageError as err:
        print(f"actlab diagnose: {err}", file=sys.stderr)
        return 2


def _call_factory(factory: Any, text: str) -> Any:
    """The model a user's factory builds, called without arguments; a factory that needs some, or fails,
    is a sentence saying so (its own error included), not a traceback."""
    if not callable(factory):
        return None
    import inspect

    try:
        inspect.signature(factory).bind()
    except TypeError as err:
        raise UsageError(
            f"{text} needs arguments ({err}); point MODULE:FACTORY at a function that builds the model "
            "with none, e.g. def make(): return Net(width=64)"
        ) from None
    except ValueError:  # no signature to inspect (a builtin): just call it
        pass
    try:
        return factory()
    except Exception as err:
        raise UsageError(
            f"calling {text} raised {type(err).__name__}: {err}; fix the factory (it is called with no "
            "arguments) and run again"
        ) from None


def _run(args: argparse.Namespace) -> int:
    import torch

    from actlab.diagnose import watch
    from actlab.diagnose.render import save_plots, write_atomic
    from actlab.diagnose.running import OutputError, describe, run_steps

    torch.manual_seed(args.seed)
    factory = load_object(args.model, "MODULE:FACTORY")
    model = factory if isinstance(factory, torch.nn.Module) else _call_factory(factory, args.model)
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"{args.model} must be (or return) a torch.nn.Module, got {type(model).__name__}")
    batches = _batches(args)
    try:
        w = watch(model)
    except ValueError as err:
        raise UsageError(str(err)) from None

    def on_error(err: Exception, x: Any) -> Exception:
        hint = ""
        if args.input_shape and not args.data:
            hint = f" (--input-shape {args.input_shape} is one input without the batch dimension"
            embeds = any(isinstance(m, torch.nn.Embedding) for m in model.modules())
            hint += (
                "; the model has an embedding: give --vocab-size V for token ids)"
                if embeds and not args.vocab_size
                else ")"
            )
        return UsageError(f"{args.model} raised {type(err).__name__} on a batch {describe(x)}: {err}".rstrip() + hint)

    try:
        report = run_steps(model, batches, args.steps, args.lr, w, on_error)
    except OutputError as err:
        raise UsageError(f"{args.model}: {err}") from None
    except UsageError:
        raise
    except ValueError as err:  # the watch's own messages (e.g. no activation seen in any forward)
        raise UsageError(str(err)) from None
    print(report.render(args.format))
    if args.output:
        written = save_plots(report, args.output)
        path = write_atomic(Path(args.output) / "report.json", report.to_json().encode())
        names = ", ".join(str(p) for p in [path, *written.values()])
        print(f"wrote {names}", file=sys.stderr)
    return 0
