"""The arena runner: plan a suite's trials, run the missing ones through a backend, store each result.

:func:`plan_trials` expands a :class:`~actlab.arena.config.Suite` into normalised trials and checks all
of them before anything trains (every problem at once). :func:`run_arena` runs the trials the store
does not hold yet; the driver writes each finished trial in its own transaction, so a killed run
(even SIGKILL) loses only the trials that were running, and running the same plan again continues it
without repeating a finished one (ok, diverged and failed trials are final results). A stored plan
is immutable: another plan on the same store is refused with the differences named
(:class:`PlanMismatch`), or, with ``extend=True``, added beside it under the same budget. Runners
sharing a store claim each trial before running it, so they split the work and each waits for the
trials the others hold. Ctrl-C (SIGINT) or SIGTERM stops cleanly: running trials are abandoned at
their next batch, everything finished is kept; a second Ctrl-C quits at once.

    >>> from actlab.arena.config import load_suite
    >>> from actlab.arena.runner import plan_trials, run_arena
    >>> plan = plan_trials(load_suite("default"))  # doctest: +SKIP
    >>> outcome = run_arena(plan, "arena-runs/default", workers=2, threads=1)  # doctest: +SKIP
    >>> outcome.ran, outcome.remaining  # doctest: +SKIP
    (54, 0)
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from actlab.arena.backends import (
    Backend,
    Job,
    LocalBackend,
    TrialDone,
    TrialEpoch,
    TrialStarted,
    WorkerLost,
    available_cpus,
    make_backend,
)
from actlab.arena.config import Suite, SuiteError, expand_trials
from actlab.arena.store import (
    CLAIM_TTL_S,
    FINISHED_STATUSES,
    ArenaStore,
    StoreError,
    StoreWriteError,
    canonical_json,
    trial_key,
)

__all__ = [
    "Trial",
    "Plan",
    "RunOutcome",
    "RunExistsError",
    "PlanMismatch",
    "plan_trials",
    "run_arena",
    "plan_summary",
    "default_threads",
]


class RunExistsError(StoreError):
    """The run directory holds trials without a stored plan and ``resume`` was not asked for."""


class PlanMismatch(StoreError):
    """The run directory holds another plan: a stored plan is never changed (``extend`` adds beside it)."""


@dataclass(frozen=True)
class Trial:
    key: str
    config: dict[str, Any]
    label: str


@dataclass(frozen=True)
class Plan:
    """The trials of a suite, normalised, in run order, without duplicates."""

    suite: Suite
    trials: list[Trial]
    baseline: str
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Short hash of the set of trial keys (names a run directory for a modified suite)."""
        return trial_key({"keys": sorted(t.key for t in self.trials)})[:8]


def _trial_api() -> tuple[Callable[[Mapping[str, Any]], list[str]], Callable[[Mapping[str, Any]], dict[str, Any]]]:
    from actlab.arena.trial import normalize_trial, validate_trial

    return validate_trial, normalize_trial


def _canonical_activation(name: str) -> str:
    try:
        import actlab

        return repr(actlab.get(name))
    except Exception:  # unknown names are reported by validation; compare as written
        return name


def plan_trials(
    suite: Suite,
    *,
    validate: Callable[[Mapping[str, Any]], list[str]] | None = None,
    normalize: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
) -> Plan:
    """Every trial of ``suite``, normalised (defaults filled in) and keyed; nothing trains.

    Raises :class:`~actlab.arena.config.SuiteError` listing every problem of every trial (unknown
    activations and tasks with suggestions, hyper-parameters out of range) when there is any.
    """
    if validate is None or normalize is None:
        default_validate, default_normalize = _trial_api()
        validate, normalize = validate or default_validate, normalize or default_normalize
    raw = expand_trials(suite)
    problems: list[str] = []
    checked: set[str] = set()
    for config in raw:  # a seed never makes a config invalid: check each config once
        probe = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)
        if probe not in checked:
            checked.add(probe)
            problems += validate(config)
    if problems:
        raise SuiteError(problems)

    trials: list[Trial] = []
    seen: set[str] = set()
    duplicates = 0
    axes = [a for a in suite.grid]
    for config in raw:
        try:
            normal = normalize(config)
        except ValueError as err:
            problems += str(err).splitlines()
            continue
        key = trial_key(normal)
        if key in seen:  # e.g. "leaky_relu" and "leaky_relu(negative_slope=0.01)"
            duplicates += 1
            continue
        seen.add(key)
        extra = "".join(f" {a}={_short(config.get(a))}" for a in axes)
        trials.append(Trial(key, normal, f"{config['task']} {config['activation']}{extra} seed {config['seed']}"))
    if problems:
        raise SuiteError(problems)

    notes = []
    baseline = suite.baseline
    wanted = _canonical_activation(baseline)
    present = [a for a in suite.activations if _canonical_activation(a) == wanted]
    if present:
        baseline = present[0]
    else:
        baseline = suite.activations[0]
        notes.append(f"baseline {suite.baseline!r} is not among the activations; comparing against {baseline!r}")
    if duplicates:
        notes.append(f"{duplicates} trial(s) were the same configuration written twice; each runs once")
    return Plan(suite=suite, trials=trials, baseline=baseline, duplicates=duplicates, notes=notes)


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def default_threads(workers: int) -> int:
    """Torch threads per worker so that workers x threads fills this machine's cores (at least 1)."""
    return max(1, available_cpus() // max(1, workers))


@dataclass
class RunOutcome:
    """What :func:`run_arena` did. ``remaining`` trials still need running (``resume=True``)."""

    run_dir: Path
    planned: int
    already_finished: int = 0
    ran: int = 0
    ok: int = 0
    diverged: int = 0
    failed: int = 0
    discarded: int = 0  # running when stopped: partial work thrown away
    lost: int = 0  # a worker process died under them
    remaining: int = 0
    interrupted: bool = False
    error: str | None = None
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    by_others: int = 0  # finished by another runner sharing the store while this one ran
    keys: list[str] = field(default_factory=list)  # the trials to rank together (one budget)
    baseline: str | None = None

    @property
    def store_path(self) -> Path:
        return self.run_dir / "arena.sqlite"

    @property
    def complete(self) -> bool:
        return self.remaining == 0


# ----------------------------------------------------------------------------- progress
def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _fmt_metric(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


def result_line(label: str, result: Mapping[str, Any]) -> str:
    """One finished trial in words: status, final and best metric, speed."""
    status = result.get("status", "?")
    if status == "failed":
        return f"{label}: FAILED {result.get('error', '')}"
    metric = result.get("metric", "metric")
    text = f"{label}: {status} {metric} {_fmt_metric(result.get('final_metric'))}"
    if result.get("best_metric") is not None:
        text += f" (best {_fmt_metric(result.get('best_metric'))} at epoch {result.get('best_epoch')})"
    if status == "diverged":
        text += f", non-finite loss at epoch {result.get('diverged_at_epoch')}"
    spe = result.get("seconds_per_epoch")
    if isinstance(spe, (int, float)):
        text += f", {result.get('epochs_run', '?')} epochs x {spe:.2g} s"
    return text


class _Progress:
    """Plain lines, one per finished trial, with the overall count and an ETA (for logs and pipes).

    The ETA comes from measured trial times (start to end of each trial, as its worker reports them):
    their mean x the trials left / the trials seen running at once. Time since the start would count the
    workers' start-up (importing torch, building kernels) as trial time: the first ETA was 20x too long.
    No ETA until a trial has finished.
    """

    def __init__(self, total: int, stream: IO[str]):
        self.total, self.stream, self.done = total, stream, 0
        self.t0 = time.monotonic()
        self.began: dict[str, float] = {}  # running trials: key -> when it started
        self.durations: list[float] = []
        self.parallel = 1  # the most trials seen running at once

    def _track_start(self, trial: Trial) -> None:
        self.began.setdefault(trial.key, time.monotonic())
        self.parallel = max(self.parallel, len(self.began))

    def _track_end(self, trial: Trial, counted: bool) -> None:
        began = self.began.pop(trial.key, None)
        if began is not None and counted:
            self.durations.append(time.monotonic() - began)

    def seconds_left(self) -> float | None:
        """Estimated seconds until every trial has finished; None before the first measured trial."""
        if not self.durations:
            return None
        left = self.total - self.done
        return sum(self.durations) / len(self.durations) * left / max(1, min(self.parallel, left or 1))

    def _eta(self) -> str:
        elapsed = time.monotonic() - self.t0
        left = self.seconds_left()
        return f"{_fmt_duration(elapsed)} elapsed" + ("" if left is None else f", about {_fmt_duration(left)} left")

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def started(self, trial: Trial, worker: str) -> None:
        self._track_start(trial)

    def epoch(self, trial: Trial, record: Mapping[str, Any]) -> None:
        pass

    def abandoned(self, trial: Trial) -> None:
        self._track_end(trial, counted=False)
        self.message(f"{trial.label}: stopped before the end; not saved")

    def finished(self, trial: Trial, result: Mapping[str, Any] | None, note: str = "") -> None:
        self._track_end(trial, counted=result is not None)
        self.done += 1
        width = len(str(self.total))
        line = result_line(trial.label, result) if result is not None else f"{trial.label}: {note}"
        self.message(f"[{self.done:>{width}}/{self.total}] {line}  ({self._eta()})")

    def close(self) -> None:
        pass


class _Silent(_Progress):
    def message(self, text: str) -> None:
        pass


class _RichProgress(_Progress):
    """rich bars: all trials (count, elapsed, ETA from measured trial times) and one per running trial (epochs)."""

    def __init__(self, total: int, stream: IO[str]):
        super().__init__(total, stream)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        owner = self

        class _Eta(ProgressColumn):  # counts down to the estimate made at the last finished trial
            def render(self, task: Any) -> Text:
                if task.id != owner.overall or owner.deadline is None:
                    return Text("")
                return Text(f"ETA {_fmt_duration(max(0.0, owner.deadline - time.monotonic()))}")

        self.deadline: float | None = None
        self.console = Console(file=stream)
        self.bars = Progress(
            TextColumn("{task.description}", markup=False),  # a trial label is data, not rich markup
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            _Eta(),
            console=self.console,
        )
        self.overall = self.bars.add_task("all trials", total=total)
        self.running: dict[str, Any] = {}
        self.bars.start()

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def started(self, trial: Trial, worker: str) -> None:
        self._track_start(trial)
        if trial.key not in self.running:
            self.running[trial.key] = self.bars.add_task(f"  {trial.label}", total=_epochs_total(trial.config))

    def epoch(self, trial: Trial, record: Mapping[str, Any]) -> None:
        task = self.running.get(trial.key)
        if task is not None:
            self.bars.advance(task)

    def abandoned(self, trial: Trial) -> None:
        task = self.running.pop(trial.key, None)
        if task is not None:
            self.bars.remove_task(task)
        super().abandoned(trial)

    def finished(self, trial: Trial, result: Mapping[str, Any] | None, note: str = "") -> None:
        self._track_end(trial, counted=result is not None)
        task = self.running.pop(trial.key, None)
        if task is not None:
            self.bars.remove_task(task)
        self.done += 1
        left = self.seconds_left()
        self.deadline = None if left is None else time.monotonic() + left
        self.bars.advance(self.overall)
        self.message(result_line(trial.label, result) if result is not None else f"{trial.label}: {note}")

    def close(self) -> None:
        self.bars.stop()


def _epochs_total(config: Mapping[str, Any]) -> int | None:
    """Epochs a trial will train (every learning-rate candidate, then the final fit); None when timed."""
    epochs = config.get("epochs")
    if config.get("time_budget_s") is not None or not isinstance(epochs, int):
        return None
    lr = config.get("lr")
    return epochs * (len(lr) + 1 if isinstance(lr, list) else 1)


def _make_progress(kind: str, total: int, stream: IO[str]) -> _Progress:
    if kind == "auto":
        kind = "rich" if getattr(stream, "isatty", lambda: False)() else "plain"
    if kind == "rich":
        return _RichProgress(total, stream)
    if kind == "plain":
        return _Progress(total, stream)
    if kind == "none":
        return _Silent(total, stream)
    raise ValueError(f"progress must be 'auto', 'rich', 'plain' or 'none', got {kind!r}")


# ----------------------------------------------------------------------------- running
class _StopOnSignal:
    """First SIGINT/SIGTERM: stop handing out trials, let running ones stop at a batch. Second: quit now."""

    def __init__(self, backend: Backend, say: Callable[[str], None]):
        self.backend, self.say, self.previous = backend, say, {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.backend.stopping:
            raise KeyboardInterrupt
        self.backend.request_stop()
        self.say("stopping: finished trials are saved; running ones are abandoned (Ctrl-C again to quit at once)")

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


_RUN_SETTINGS = ("name", "description", "workers", "threads")  # how or where to run, not what
_EXTENSION_MAY_CHANGE = ("activations", "seeds", "tasks", "grid", "baseline")


def _show(value: Any) -> str:
    if value is None:
        return "task defaults"
    if isinstance(value, list):
        return ", ".join(_short(v) for v in value) or "none"
    return _short(value)


def plan_differences(stored: Mapping[str, Any], asked: Mapping[str, Any]) -> list[str]:
    """What differs between two suites' dict forms, in words (``budget: stored 30, asked 2``)."""
    names = sorted((set(stored) | set(asked)) - set(_RUN_SETTINGS))
    return [
        f"{name}: stored {_show(stored.get(name))}; asked {_show(asked.get(name))}"
        for name in names
        if stored.get(name) != asked.get(name)
    ]


def _adopt_plan(store: ArenaStore, plan: Plan, run_dir: Path, *, resume: bool, extend: bool) -> list[str]:
    """Check ``plan`` against the store's and record it; the keys to rank together. Never replaces a plan."""
    keys = [t.key for t in plan.trials]
    entry = {"suite": plan.suite.to_dict(), "keys": keys}
    if store.get_meta("plan") is None:
        recorded = store.count()
        if recorded and not resume:
            raise RunExistsError(
                f"{run_dir} already holds {recorded} recorded trial(s) but no plan. Continue that run with --resume "
                "(finished trials are kept and not run again), or choose another directory with --out."
            )
    stored = store.setdefault_meta("plan", entry)
    if stored == entry:
        store.setdefault_meta("baseline", plan.baseline)
    extensions = store.get_meta("extensions", [])
    for known in (stored, *extensions):
        if set(known["keys"]) == set(keys):  # the same trials: continue (or just reuse) that run
            return sorted(set(known["keys"]) | (set().union(*(e["keys"] for e in extensions)) if extend else set()))
    differences = plan_differences(stored["suite"], entry["suite"])
    common = len(set(keys) & set(stored["keys"]))
    counts = f"{len(stored['keys'])} trials stored, {len(keys)} asked, {common} in common"
    if extend:
        fixed = [d for d in differences if d.split(":")[0] not in _EXTENSION_MAY_CHANGE]
        if fixed:
            raise PlanMismatch(
                f"--extend adds arms under the stored run's budget and settings, but these differ: "
                f"{'; '.join(fixed)}. Trials with different budgets are never ranked together: use another "
                "directory (--out) for them."
            )
        store.set_meta("extensions", [*extensions, entry])
        return sorted(set(stored["keys"]).union(keys, *(e["keys"] for e in extensions)))
    what = "; ".join(differences) if differences else "the trials differ"
    raise PlanMismatch(
        f"{run_dir} holds another plan ({what}; {counts}). A stored plan is never changed: run the same command "
        f"(or --resume --out {run_dir} without other flags) to continue it, choose another directory with --out, "
        "or add arms to it with --extend (same budget and settings)."
    )


def run_arena(
    plan: Plan,
    run_dir: str | Path,
    *,
    backend: str | Backend = "local",
    workers: int | None = None,
    threads: int | None = None,
    address: str | None = None,
    resume: bool = False,
    extend: bool = False,
    retry_failed: bool = False,
    trial_fn: Callable[..., Mapping[str, Any]] | None = None,
    progress: str = "auto",
    stream: IO[str] | None = None,
    claim_ttl: float = CLAIM_TTL_S,
) -> RunOutcome:
    """Run the plan's trials that ``RUN_DIR/arena.sqlite`` does not hold yet; store each as it finishes.

    ``backend``: "local" (``workers`` processes; 1 = in this process) or "ray" (``address``), or a
    :class:`~actlab.arena.backends.Backend`. ``threads``: torch threads per trial (default: the cores
    divided among the workers). Running a plan on a store that holds the same plan continues it (the
    finished trials are reused, ``resume`` or not); another plan raises :class:`PlanMismatch` naming
    the differences, unless ``extend=True`` adds its trials beside the stored ones (same budget). A
    store with trials but no plan needs ``resume=True`` (:class:`RunExistsError`); a foreign or newer
    store raises :class:`~actlab.arena.store.StoreError`, a write that fails mid-run (full disk)
    :class:`~actlab.arena.store.StoreWriteError`. Failed trials are final; ``retry_failed=True`` runs
    them again. ``trial_fn`` replaces :func:`actlab.arena.trial.run_trial` (tests). Progress goes to
    ``stream`` (stderr): rich bars on a terminal, plain lines otherwise.

    Each trial is claimed in the store before it runs (renewed every ``claim_ttl / 4`` seconds), so
    runners sharing a store split the trials; each waits for the ones the others hold, and takes over
    a claim whose runner died. Raises :class:`~actlab.arena.backends.WorkerLost` (with ``.outcome``)
    when a Ray worker dies; a local worker process that dies fails only its trial (a user task's trials
    always run in a worker process, even with ``workers=1``, so that its crash cannot end the arena). With
    ``workers > 1`` the worker processes are spawned, so a script needs ``if __name__ == "__main__":``.
    """
    stream = stream or sys.stderr
    run_dir = Path(run_dir)
    started = time.monotonic()
    workers = workers or plan.suite.workers or 1
    if threads is None:
        threads = plan.suite.threads or (
            default_threads(workers) if isinstance(backend, str) and backend == "local" else 1
        )
    if isinstance(backend, str):
        backend = make_backend(backend, workers=workers, threads=threads, address=address, trial_fn=trial_fn)
        if (
            isinstance(backend, LocalBackend)
            and trial_fn is None
            and any(":" in str(t.config.get("task")) for t in plan.trials)
        ):
            # a user task may sys.exit(), abort or crash in native code: never in the process that keeps the store
            backend.isolate = True
    outcome = RunOutcome(run_dir=run_dir, planned=len(plan.trials))
    final = ("ok", "diverged") if retry_failed else FINISHED_STATUSES

    with ArenaStore(run_dir) as store:
        outcome.keys = _adopt_plan(store, plan, run_dir, resume=resume, extend=extend)
        outcome.baseline = store.get_meta("baseline") or plan.baseline
        finished = store.finished_keys(final)
        todo = [t for t in plan.trials if t.key not in finished]
        outcome.already_finished = len(plan.trials) - len(todo)
        by_key = {t.key: t for t in todo}
        reporter = _make_progress(progress, len(todo), stream)
        for note in plan.notes:
            reporter.message(f"note: {note}")
        reporter.message(
            f"{len(plan.trials)} trials planned, {outcome.already_finished} already finished, {len(todo)} to run "
            f"({backend.describe()}); store: {store.path}"
        )

        def offer(trial: Trial, waiting: list[Trial]) -> Job | None:
            """Claim the trial: a job to run, or None (finished meanwhile, or held by another runner)."""
            held = store.claim(trial.key, final=final, ttl=claim_ttl)
            if held is None:
                return Job(trial.key, trial.config)
            if held == "finished":  # another runner sharing this store finished it
                outcome.already_finished += 1
                outcome.by_others += 1
                reporter.finished(trial, None, "finished by another process sharing this store")
            else:
                waiting.append(trial)
            return None

        def jobs() -> Iterator[Job | None]:
            waiting: list[Trial] = []
            for trial in todo:
                job = offer(trial, waiting)
                if job is not None:
                    yield job
            if waiting:
                reporter.message(
                    f"{len(waiting)} trial(s) are being run by another process sharing this store; waiting for them"
                )
            checked = 0.0
            while waiting and not backend.stopping:
                if time.monotonic() - checked < 0.5:
                    yield None  # nothing to hand out now: the backend asks again shortly
                    continue
                checked = time.monotonic()
                still: list[Trial] = []
                for trial in waiting:  # finished by now, or its runner died (the claim is free): take it
                    job = offer(trial, still)
                    if job is not None:
                        yield job
                waiting = still

        done: set[str] = set()

        def emit(event: Any) -> None:
            trial = by_key.get(event.key)
            if trial is None or event.key in done:  # a worker's last progress message may arrive after its result
                return
            if isinstance(event, TrialStarted):
                reporter.started(trial, event.worker)
            elif isinstance(event, TrialEpoch):
                reporter.epoch(trial, event.record)
            elif isinstance(event, TrialDone):
                done.add(event.key)
                if event.interrupted:
                    outcome.discarded += 1
                    store.release(trial.key)
                    reporter.abandoned(trial)
                    return
                store.put(trial.config, event.result, worker=event.worker, key=trial.key)
                outcome.ran += 1
                status = event.result.get("status")
                if status == "failed":
                    outcome.failed += 1
                    outcome.failures.append(f"{trial.label}: {event.result.get('error')}")
                elif status == "diverged":
                    outcome.diverged += 1
                else:
                    outcome.ok += 1
                reporter.finished(trial, event.result)

        heartbeat = _Heartbeat(run_dir, store.owner, claim_ttl)
        try:
            with _StopOnSignal(backend, reporter.message), heartbeat:
                backend.run(jobs(), emit)
        except (WorkerLost, StoreWriteError) as err:
            outcome.lost = len(getattr(err, "keys", ()))
            outcome.error = str(err)
            err.outcome = outcome  # type: ignore[union-attr]
            raise
        finally:
            reporter.close()
            store.release()
            outcome.interrupted = backend.stopping
            outcome.remaining = sum(not store.is_finished(t.key) for t in plan.trials)
            outcome.seconds = time.monotonic() - started
    return outcome


class _Heartbeat:
    """Renews this runner's claims from a thread (its own connection) while trials run."""

    def __init__(self, run_dir: Path, owner: str, ttl: float):
        self.run_dir, self.owner, self.ttl = run_dir, owner, ttl
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        try:
            with ArenaStore(self.run_dir, create=False, owner=self.owner) as store:
                while not self._stop.wait(self.ttl / 4):
                    store.renew_claims(ttl=self.ttl)
        except (StoreError, OSError, Exception):  # noqa: BLE001 - a claim not renewed only expires
            pass

    def __enter__(self) -> _Heartbeat:
        self._thread = threading.Thread(target=self._beat, name="actlab-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def plan_summary(plan: Plan) -> dict[str, Any]:
    """The plan in numbers (``actlab arena --dry-run``)."""
    suite = plan.suite
    return {
        "suite": suite.name,
        "trials": len(plan.trials),
        "activations": list(suite.activations),
        "tasks": list(suite.tasks),
        "seeds": list(suite.seeds),
        "grid": {k: list(v) for k, v in suite.grid.items()},
        "budget": str(suite.budget) if suite.budget else "task defaults",
        "baseline": plan.baseline,
        "fingerprint": plan.fingerprint(),
        "example": json.loads(canonical_json(plan.trials[0].config)) if plan.trials else None,
    }
