"""``actlab arena``: train one model with many activations and seeds, store every trial, rank them.

With no arguments it runs the embedded ``default`` suite (9 activations x 3 tasks x 3 seeds, at most
5 minutes on 2 CPU cores), prints the ranking table and writes the report to
``arena-runs/default/report/``. The run directory is ``--out DIR``, by default ``arena-runs/NAME``
for a suite as written and ``arena-runs/NAME-<hash of the trials>`` when flags change its grid, so
the same command always finds its own run again: run a second time, it reuses the finished trials
(ok, diverged and failed ones are final results) and prints the same ranking. A run directory's plan
never changes: other flags on it are refused with the differences named (``--extend`` adds arms to it
under the same budget; ``--retry-failed`` runs its failed trials again).

    actlab arena                                   # the default suite
    actlab arena --activations relu gelu silu --tasks spirals --seeds 5 --budget 30s
    actlab arena --suite my_suite.toml --workers 4 --threads 1
    actlab arena --backend ray --address head-node:6379
    actlab arena --resume --out arena-runs/default # after Ctrl-C or a crash: only missing trials run

Exit status: 0 done, 1 some trials failed or a worker died, 2 bad input (nothing ran),
130 interrupted (finished trials saved; the message says how to resume).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
from pathlib import Path
from typing import IO, Any

from actlab.arena.config import (
    Suite,
    SuiteError,
    load_suite,
    suite_from_mapping,
    suite_names,
    with_overrides,
)

DEFAULT_ROOT = Path("arena-runs")
_GRID_FLAGS = ("activations", "seeds", "tasks", "budget", "lr", "lr_search", "init", "settings")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``arena`` subcommand's flags (imports nothing heavy)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  actlab arena\n"
        "  actlab arena --activations relu gelu 'leaky_relu(negative_slope=0.2)' --tasks spirals --seeds 5\n"
        "  actlab arena --suite my_suite.toml --budget 30s --workers 4 --threads 1\n"
        "  actlab arena --resume --out arena-runs/default\n"
        "exit status: 0 done, 1 trials failed, 2 bad input (nothing ran), 130 interrupted (resume with --resume)"
    )
    what = parser.add_argument_group("what to train (each flag replaces the suite's value)")
    what.add_argument(
        "--suite",
        default=None,
        metavar="NAME|FILE.toml",
        help=f"an embedded suite ({', '.join(suite_names())}) or a TOML file (default: default)",
    )
    what.add_argument("--activations", nargs="+", metavar="ACT", help="activation names or call strings")
    what.add_argument("--tasks", nargs="+", metavar="TASK", help="task names, or package.module:function")
    what.add_argument("--seeds", metavar="N|LIST", help="N seeds (0..N-1) or a comma list like 0,7,42")
    what.add_argument("--budget", metavar="EPOCHS|TIME", help="per trial: epochs (20) or wall time (30s, 2m)")
    what.add_argument("--lr", nargs="+", type=float, metavar="LR", help="learning rate; several = one arm each")
    what.add_argument(
        "--lr-search",
        nargs="+",
        type=float,
        metavar="LR",
        help="choose each trial's learning rate among these on held-out training data",
    )
    what.add_argument("--init", nargs="+", metavar="SCHEME", help="initialisation: auto (default), he, lecun, ...")
    what.add_argument(
        "--set",
        action="append",
        dest="settings",
        metavar="KEY=VALUE",
        help='any trial setting, VALUE as JSON (batch_size=64, model_params={"width": 32}); repeatable',
    )
    how = parser.add_argument_group("how to run")
    how.add_argument("--workers", type=int, metavar="N", help="trials at once (default: the suite's, else 1)")
    how.add_argument("--threads", type=int, metavar="N", help="torch threads per trial (default: cores / workers)")
    how.add_argument("--backend", choices=("local", "ray"), default="local", help="local processes or a Ray cluster")
    how.add_argument("--address", metavar="HOST:PORT", help="Ray cluster to join (default: start a local one)")
    how.add_argument("--out", metavar="DIR", help=f"run directory (default: {DEFAULT_ROOT}/SUITE[-HASH])")
    how.add_argument("--resume", action="store_true", help="continue the run in the run directory")
    how.add_argument(
        "--extend", action="store_true", help="add these trials to the run in --out DIR (same budget and settings)"
    )
    how.add_argument("--retry-failed", action="store_true", help="run the failed trials of the run again")
    how.add_argument("--dry-run", action="store_true", help="check everything and show the plan; train nothing")
    how.add_argument(
        "--trust-code",
        action="store_true",
        help="import the user tasks (package.module:function) that a suite file or a stored run names; "
        "tasks given with --tasks are trusted already",
    )
    how.add_argument(
        "--force",
        action="store_true",
        help="start more workers than cores, more than 10,000 trials, or trials whose memory estimate "
        "exceeds this machine's available memory",
    )
    show = parser.add_argument_group("output")
    show.add_argument("--format", choices=("table", "json", "csv", "md"), default="table", help="ranking format")
    show.add_argument("--wide", action="store_true", help="ranking table at its natural width (default: at most 100)")
    show.add_argument("--no-report", action="store_true", help="do not write RUN_DIR/report/")
    show.add_argument("--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    return execute(args)


# ----------------------------------------------------------------------------- building the plan
def _parse_settings(items: list[str] | None, problems: list[str]) -> dict[str, list[Any]]:
    settings: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            problems.append(f"--set takes KEY=VALUE, got {item!r}")
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a bare word: a string (optimizer=sgd)
        settings[key] = [value]
    return settings


def _overrides(args: argparse.Namespace, problems: list[str]) -> dict[str, Any]:
    settings = _parse_settings(args.settings, problems)
    if args.lr is not None:
        settings["lr"] = list(args.lr)
    if args.lr_search is not None:
        if args.lr is not None:
            problems.append("--lr and --lr-search both set the learning rate; give one of them")
        settings["lr"] = [list(args.lr_search)]  # one value, a list: the trial searches it
    if args.init is not None:
        settings["init"] = list(args.init)
    return {
        "activations": args.activations,
        "tasks": args.tasks,
        "seeds": args.seeds,
        "budget": args.budget,
        "settings": settings or None,
        "workers": args.workers,
        "threads": args.threads,
    }


def _grid_changed(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) is not None for name in _GRID_FLAGS)


def _stored_suite(run_dir: Path) -> Suite | None:
    """The suite a run directory was started with (for ``--resume`` without grid flags)."""
    from actlab.arena.store import ArenaStore, store_path

    if not store_path(run_dir).exists():
        return None
    with ArenaStore(run_dir, create=False) as store:
        plan = store.get_meta("plan")
    if not plan:
        return None
    return suite_from_mapping(plan["suite"], source=f"the run in {run_dir}")


def _ray_client_problem(address: str | None, timeout: float = 3.0) -> str | None:
    """Why a ``ray://HOST[:PORT]`` address cannot work (nothing listens, no Ray Client), or None; Ray
    itself retries an unreachable client address and then raises a traceback."""
    if not address or not address.startswith("ray://"):
        return None
    import socket

    host, sep, port = address[len("ray://") :].partition("/")[0].rpartition(":")
    if not sep:
        host, port = port, "10001"  # Ray Client's default port
    if not host or not port.isdigit():
        return f"--address must be ray://HOST:PORT (the Ray Client port, usually 10001), got {address!r}"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        return (
            f"--address {address}: no Ray Client answers there ({err.strerror or err}); check the address, "
            "or start the cluster with `ray start --head` (its client server listens on port 10001)"
        )
    if importlib.util.find_spec("grpc") is None:
        return f"--address {address} needs the Ray Client: pip install 'ray[client]'"
    return None


def _build(args: argparse.Namespace) -> tuple[Any, Path]:
    """(plan, run_dir); raises SuiteError with every problem found in the flags, suite and trials."""
    from actlab.arena.store import StoreError

    problems: list[str] = []
    overrides = _overrides(args, problems)
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        problems.append(f"--out {args.out} is a file; give a directory for the run (it is created if missing)")
    if args.backend != "ray" and args.address:
        problems.append("--address names a Ray cluster: use it with --backend ray")
    if args.backend == "ray" and importlib.util.find_spec("ray") is None:
        problems.append("--backend ray needs Ray: pip install 'actlab[distributed]'")
    elif args.backend == "ray" and not args.dry_run:
        from actlab.arena.backends import ray_address_problem

        problem = ray_address_problem(args.address) or _ray_client_problem(args.address)
        if problem:
            problems.append(problem)

    suite: Suite | None = None
    from_store = False
    if getattr(args, "extend", False) and not args.out:
        problems.append("--extend adds trials to an existing run: name its directory with --out DIR")
    # continuing or extending a run: the flags change the stored suite, so a difference is named exactly
    if (args.resume or getattr(args, "extend", False)) and args.out and args.suite is None:
        try:
            suite = _stored_suite(Path(args.out))
            from_store = suite is not None
        except (StoreError, SuiteError) as err:
            problems.append(str(err))
    if suite is None:
        try:
            suite = load_suite(args.suite or "default")
        except SuiteError as err:
            problems += err.problems
    # Each flag on its own, so that one bad flag does not hide the problems of the others or of the trials.
    # When the suite is unreadable, a stand-in still lets the flags' trials be checked.
    target = suite or Suite(name="flags", activations=("relu",), seeds=(0,), tasks=("spirals",))
    for name, value in overrides.items():
        if value is not None:
            try:
                target = with_overrides(target, **{name: value})
            except SuiteError as err:
                problems += err.problems
    problems += _untrusted_tasks(target, args)
    capped = _cap_workers(target, args)
    bounds = _bounds_before_planning(target, args)
    if bounds:  # expanding or validating such a plan is itself what exhausts the machine
        raise SuiteError(problems + bounds)
    from actlab.arena.runner import plan_trials

    try:
        plan = plan_trials(target)  # every trial's problems, before anything trains (imports no user code)
    except SuiteError as err:
        problems += err.problems
    if problems or suite is None:
        raise SuiteError(problems)
    if capped:
        plan.notes.append(capped)
    if args.backend == "local":  # a Ray cluster's nodes have their own memory
        from actlab.arena.limits import memory_problems

        workers = min(args.workers or target.workers or 1, len(plan.trials))
        found = memory_problems(((t.label, t.config) for t in plan.trials), workers=workers, force=args.force)
        if found:
            raise SuiteError(found)
    suite = target
    if args.out:
        run_dir = Path(args.out)
    elif _grid_changed(args) and not from_store:
        run_dir = DEFAULT_ROOT / f"{suite.name}-{plan.fingerprint()}"
    else:
        run_dir = DEFAULT_ROOT / suite.name
    return plan, run_dir


def _named_tasks(args: argparse.Namespace) -> set[str]:
    from actlab.arena.config import split_list

    return set(split_list(args.tasks)) if args.tasks else set()


def _untrusted_tasks(suite: Suite, args: argparse.Namespace) -> list[str]:
    """A user task runs code: it is imported only when the command line names it (--tasks) or
    trusts it (--trust-code), never because a suite file or a stored run's plan mentions it."""
    from actlab.arena.tasks import is_user_task

    if getattr(args, "trust_code", False):
        return []
    named = _named_tasks(args)
    problems = []
    for task in suite.tasks:
        if not is_user_task(task) or task in named:
            continue
        module, _, function = task.partition(":")
        source = suite.source or "the suite"
        problems.append(
            f"{source} names the user task {task!r}: running it would import module {module!r} (running its "
            f"top-level code) and call {function}(**task_params). A suite file or a stored run is data and "
            f"does not run code on its own; if you trust that code, add --trust-code (or name it: --tasks {task})"
        )
    return problems


def _cap_workers(suite: Suite, args: argparse.Namespace) -> str | None:
    """Local workers beyond the cores only slow every trial down (and each holds a model and its
    data): cap them at the cores, unless --force; returns the note saying so. Sets ``args.workers``."""
    from actlab.arena.limits import worker_cap

    requested = args.workers or suite.workers
    cores = worker_cap(requested, force=args.force) if args.backend == "local" else None
    if cores is None:
        return None
    source = "--workers" if args.workers is not None else f"workers = {suite.workers} in {suite.source}"
    args.workers = cores
    return (
        f"{source} asks for {requested:,} workers; this machine has {cores} CPU core{'s' if cores != 1 else ''}, "
        f"so {cores} run at once (add --force to start more)"
    )


def _bounds_before_planning(suite: Suite, args: argparse.Namespace) -> list[str]:
    """Trial count and activation weights, from the suite's lists alone (nothing expanded or built)."""
    from actlab.arena.limits import activation_problems, trial_count_problems

    problems = trial_count_problems(suite.n_trials, len(suite.seeds), force=args.force)
    workers = (args.workers or suite.workers or 1) if args.backend == "local" else 1
    return problems + activation_problems(suite.activations, workers=workers, force=args.force)


def _user_task_lines(plan: Any) -> list[str]:
    """What a dry run can say about the plan's user tasks without running any of their code."""
    from actlab.arena.tasks import is_user_task, locate_user_task

    lines = []
    for task in dict.fromkeys(t.config["task"] for t in plan.trials):
        if is_user_task(task):
            lines.append(f"user task {locate_user_task(task).describe()}")
    if lines:
        lines.append(
            "a dry run calls no task function: what a user task returns (its data, its model factory) "
            "is checked when the run starts, before any trial trains"
        )
    return lines


def _check_user_tasks(plan: Any, args: argparse.Namespace) -> list[str]:
    """Call each user task once (its first trial's seed and task_params) and check what it returns,
    so that a task without a model factory fails here and not in every trial; then the memory of
    the trials that train a built-in model on its data."""
    from actlab.arena.tasks import check_user_task, is_user_task

    problems: list[str] = []
    footprints: dict[str, Any] = {}
    seen: set[str] = set()
    for trial in plan.trials:
        cfg = trial.config
        if not is_user_task(cfg["task"]):
            continue
        probe = json.dumps([cfg["task"], cfg["task_params"], cfg["model"]], sort_keys=True)
        if probe not in seen:
            seen.add(probe)
            found, footprint = check_user_task(cfg["task"], cfg["task_params"], cfg["seed"], cfg["model"])
            problems += found
            if footprint is not None:  # task_params may change the data: keep the largest
                old = footprints.get(cfg["task"])
                footprints[cfg["task"]] = footprint if old is None or footprint.data_bytes > old.data_bytes else old
    if not problems and footprints and args.backend == "local":
        from actlab.arena.limits import memory_problems

        trials = [(t.label, t.config) for t in plan.trials if t.config["task"] in footprints]
        workers = min(args.workers or plan.suite.workers or 1, len(plan.trials))
        problems += memory_problems(trials, workers=workers, force=args.force, footprints=footprints)
    return list(dict.fromkeys(problems))


def _report_problems(problems: list[str], err: IO[str], outcome: str = "nothing was run") -> int:
    n = len(problems)
    print(f"actlab arena: {n} problem{'s' if n != 1 else ''}, {outcome}:", file=err)
    for problem in problems:
        print(f"  - {problem}", file=err)
    return 2


# ----------------------------------------------------------------------------- running
def _resume_command(args: argparse.Namespace, run_dir: Path) -> str:
    words = ["actlab", "arena", "--resume", "--out", str(run_dir)]
    if args.backend != "local":
        words += ["--backend", args.backend]
    if args.address:
        words += ["--address", args.address]
    for flag in ("workers", "threads"):
        if getattr(args, flag) is not None:
            words += [f"--{flag}", str(getattr(args, flag))]
    return shlex.join(words)


def _print_ranking(
    plan: Any,
    run_dir: Path,
    args: argparse.Namespace,
    out: IO[str],
    err: IO[str],
    *,
    keys: Any = None,
    baseline: str | None = None,
) -> int:
    from actlab.arena.report import (
        RANKING_COLUMNS,
        RANKING_HEADERS,
        TERMINAL_RANKING_COLUMNS,
        ranking_rows,
        run_title,
        write_report,
    )
    from actlab.arena.stats import summarize
    from actlab.arena.store import read_records
    from actlab.render import render as _render

    records = read_records(run_dir)
    if keys:  # this plan's trials (with --extend: the whole run, one budget), never other budgets
        wanted = set(keys)
        records = [r for r in records if r["key"] in wanted]
    baseline = baseline or plan.baseline
    if not records:
        print(f"no finished trials in {run_dir} yet: nothing to rank", file=err)
        return 0
    summary = summarize(records, baseline=baseline)
    rows = ranking_rows(summary)
    wide = getattr(args, "wide", False)
    columns = list(rows[0]) if args.format == "csv" and rows else list(RANKING_COLUMNS)
    if args.format == "table" and not wide:
        columns = list(TERMINAL_RANKING_COLUMNS)
    what = run_title(plan.suite.to_dict())
    title = f"arena {what}: final validation metric, mean over seeds; baseline {baseline}"
    print(_render(rows, columns, args.format, title=title, headers=RANKING_HEADERS, wide=wide), file=out)
    where = out if args.format in ("table", "md") else err
    if args.format in ("table", "md"):
        for task in summary.tasks:
            if task.headline:
                print(f"{task.task}: {task.headline}", file=out)
    if not args.no_report:
        paths = write_report(run_dir, baseline=baseline, records=records, suite=plan.suite.to_dict())
        main = paths.get("html") or next(iter(paths.values()))
        others = ", ".join(p.name for k, p in paths.items() if p != main)
        print(f"report: {main}" + (f" (also {others})" if others else ""), file=where)
    return 0


def execute(
    args: argparse.Namespace,
    *,
    trial_fn: Any = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """``actlab arena`` with parsed ``args``; ``trial_fn`` replaces the real trial (tests)."""
    from actlab.arena.store import StoreError

    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        plan, run_dir = _build(args)
    except SuiteError as error:
        return _report_problems(error.problems, err)
    if args.dry_run:
        from actlab.arena.runner import plan_summary

        info = {**plan_summary(plan), "run_dir": str(run_dir)}
        user_tasks = _user_task_lines(plan)
        if user_tasks:
            info["user_tasks"] = user_tasks
        if plan.notes:
            info["notes"] = list(plan.notes)
        print(json.dumps(info, indent=2) if args.format == "json" else _plan_text(info), file=out)
        return 0
    problems = _check_user_tasks(plan, args)  # runs the (named or trusted) user tasks' code once
    if problems:  # the user tasks' code ran, no trial did
        return _report_problems(problems, err, "nothing was trained")

    from actlab.arena.backends import WorkerLost
    from actlab.arena.runner import run_arena
    from actlab.arena.store import StoreWriteError

    print(f"run directory: {run_dir}", file=err)
    try:
        outcome = run_arena(
            plan,
            run_dir,
            backend=args.backend,
            workers=args.workers,
            threads=args.threads,
            address=args.address,
            resume=args.resume,
            extend=getattr(args, "extend", False),
            retry_failed=getattr(args, "retry_failed", False),
            trial_fn=trial_fn,
            progress="none" if args.quiet else "auto",
            stream=err,
        )
    except StoreWriteError as error:  # a full disk mid-run: what finished is saved
        print(f"actlab arena: {error}\ncontinue with: {_resume_command(args, run_dir)}", file=err)
        return 1
    except (StoreError, ConnectionError) as error:  # a refused store; a Ray cluster that went away
        print(f"actlab arena: {error}", file=err)
        return 2
    except WorkerLost as error:
        print(
            f"actlab arena: {error}\nfinished trials are saved in {run_dir / 'arena.sqlite'}; "
            f"continue with: {_resume_command(args, run_dir)}",
            file=err,
        )
        return 1
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished trials are saved in {run_dir / 'arena.sqlite'}.\n"
            f"continue with: {_resume_command(args, run_dir)}",
            file=err,
        )
        return 130

    done = outcome.planned - outcome.remaining
    print(
        f"{done}/{outcome.planned} trials finished ({outcome.ran} now, {outcome.already_finished} before; "
        f"{outcome.diverged} diverged, {outcome.failed} failed) in {outcome.seconds:.0f} s",
        file=err,
    )
    for failure in outcome.failures[:10]:
        print(f"  failed: {failure}", file=err)
    if outcome.interrupted and outcome.remaining:
        print(
            f"interrupted: {outcome.remaining} trial(s) still to run; finished ones are saved in "
            f"{outcome.store_path}.\ncontinue with: {_resume_command(args, run_dir)}",
            file=err,
        )
        return 130
    status = _print_ranking(plan, run_dir, args, out, err, keys=outcome.keys, baseline=outcome.baseline)
    return status or (1 if outcome.failed else 0)


def _plan_text(info: dict[str, Any]) -> str:
    lines = [
        f"suite {info['suite']}: {info['trials']} trials -> {info['run_dir']}",
        f"  activations: {', '.join(info['activations'])}",
        f"  tasks: {', '.join(info['tasks'])}",
        f"  seeds: {', '.join(map(str, info['seeds']))}",
        f"  budget: {info['budget']}; baseline: {info['baseline']}",
    ]
    if info["grid"]:
        lines.append("  grid: " + "; ".join(f"{k} = {v}" for k, v in info["grid"].items()))
    if info["example"]:
        lines.append("  first trial: " + json.dumps(info["example"], sort_keys=True))
    lines += [f"  {line}" for line in info.get("user_tasks", ())]
    lines += [f"  note: {note}" for note in info.get("notes", ())]
    return "\n".join(lines)
