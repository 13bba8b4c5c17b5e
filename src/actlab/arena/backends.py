"""Where arena trials run: in this process, in a process pool, or as Ray tasks on a cluster.

A backend takes jobs (key + normalised config) and reports events to the driver: a trial started,
finished an epoch, finished. Workers only *return* results; the driver alone writes the store.
``request_stop()`` (Ctrl-C) stops handing out trials and asks the running ones to stop at the next
batch; their partial results come back marked ``interrupted`` and are not saved. The job iterator may
yield ``None``: nothing to hand out now (the driver waits for trials another runner holds), ask again
shortly.

A trial that raises, calls ``sys.exit()`` or kills its worker process (``os.abort()``, a segfault, the
out-of-memory killer) is a *failed* trial; the arena goes on (a fresh pool replaces a broken one, and
the trials that were running beside the dead one run again). Pool workers die with the driver: on
Linux the kernel kills them when it dies (``PR_SET_PDEATHSIG``), and everywhere a watchdog thread
ends a worker whose parent is gone, so a ``kill -9`` of the arena leaves no orphans.

- :class:`LocalBackend` (``workers=1``): trials one after another in this process.
- :class:`LocalBackend` (``workers=N``): a pool of N fresh processes (``spawn``: no state inherited
  from the driver, the same on every OS); each sets ``torch.set_num_threads(threads)``.
- :class:`RayBackend`: one Ray task per trial on whatever ``ray.init(address=...)`` reaches, reserving
  ``threads`` CPUs each; the workers need actlab importable (install it on every node).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Job",
    "TrialStarted",
    "TrialEpoch",
    "TrialDone",
    "Backend",
    "LocalBackend",
    "RayBackend",
    "WorkerLost",
    "execute_trial",
    "make_backend",
    "available_cpus",
    "ray_address_problem",
]

TrialFn = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class Job:
    key: str
    config: dict[str, Any]


@dataclass(frozen=True)
class TrialStarted:
    key: str
    worker: str


@dataclass(frozen=True)
class TrialEpoch:
    key: str
    record: dict[str, Any]


@dataclass(frozen=True)
class TrialDone:
    key: str
    result: dict[str, Any]
    worker: str
    interrupted: bool = False  # stopped early on request: partial, not to be saved


Event = TrialStarted | TrialEpoch | TrialDone


class WorkerLost(RuntimeError):
    """A worker process died (killed, out of memory): its trials are lost, not failed."""

    def __init__(self, message: str, keys: Iterable[str] = ()):
        super().__init__(message)
        self.keys = list(keys)
        self.outcome: Any = None  # run_arena attaches what it did before


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _default_trial_fn() -> TrialFn:
    from actlab.arena.trial import run_trial

    return run_trial


def execute_trial(
    config: Mapping[str, Any],
    trial_fn: TrialFn | None = None,
    *,
    threads: int | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Run one trial where this is called; returns (result, interrupted).

    An exception becomes a ``"failed"`` result with the error and traceback (it is recorded, and
    retried on resume); it never escapes into the pool or the driver.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    stop_seen = False

    def stop() -> bool:
        nonlocal stop_seen
        if should_stop is not None and should_stop():
            stop_seen = True
        return stop_seen

    from actlab.arena._memory import TrialMemory

    meter = TrialMemory()
    try:
        fn = trial_fn or _default_trial_fn()
        result = dict(fn(dict(config), on_epoch=on_epoch, should_stop=stop))
    except KeyboardInterrupt:  # run_trial's TrialInterrupted: it saw our stop request
        if not stop_seen:
            raise
        result = {"status": "interrupted"}
    except SystemExit as err:  # sys.exit() in a user task ends the trial, never the arena
        result = {
            "status": "failed",
            "error": f"the trial called sys.exit({err.code!r}); a task must return its data or raise an exception",
            "traceback": traceback.format_exc(limit=20),
        }
    except Exception as err:  # a bug in a user task, an OOM in torch: a recorded failure
        result = {
            "status": "failed",
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(limit=20),
        }
    if result.get("status") in ("ok", "diverged"):
        for name, value in meter.fields().items():  # run_trial measures itself; a stand-in trial does not
            result.setdefault(name, value)
    return result, stop_seen  # a trial that saw the stop request may have been cut short


class Backend:
    """Runs jobs and calls ``emit(event)`` in the driver's thread for every event."""

    name = "backend"

    def __init__(self) -> None:
        self._stop = threading.Event()

    def request_stop(self) -> None:
        """Hand out no more trials; ask running ones to stop at the next batch (safe in a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, jobs: Iterable[Job], emit: Callable[[Event], None]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


# ----------------------------------------------------------------------------- local
_WORKER_STATE: dict[str, Any] = {}


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """End this worker when the driver ``parent`` dies, even by SIGKILL (no orphans holding memory)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the driver died before the line above took effect
        os._exit(1)

    def watch() -> None:  # other systems (and a belt to the braces above): poll for the parent
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="actlab-parent-watchdog", daemon=True).start()


def _init_pool_worker(threads: int | None, events: Any, stop: Any, parent: int | None = None) -> None:
    if parent is not None:
        _die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the driver decides, workers keep going until told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_STATE.update(threads=threads, events=events, stop=stop)
    if threads:
        import torch

        torch.set_num_threads(threads)


def _pool_trial(trial_fn: TrialFn | None, key: str, config: dict[str, Any]) -> tuple[dict[str, Any], bool, str]:
    events, stop = _WORKER_STATE["events"], _WORKER_STATE["stop"]
    me = worker_name()
    events.put(("start", key, me))  # a SimpleQueue: written before the trial runs, so a death names its trial
    result, interrupted = execute_trial(
        config,
        trial_fn,
        threads=_WORKER_STATE["threads"],
        on_epoch=lambda record: events.put(("epoch", key, dict(record))),
        should_stop=stop.is_set,
    )
    return result, interrupted, me


@dataclass
class LocalBackend(Backend):
    """In-process (``workers=1``) or a pool of ``workers`` spawned processes on this machine.

    >>> LocalBackend(workers=2, threads=1).run(jobs, print)  # doctest: +SKIP
    """

    workers: int = 1
    threads: int | None = None
    trial_fn: TrialFn | None = None
    start_method: str = "spawn"
    isolate: bool = False  # workers=1 in a worker process, not in this one (user code that may abort)
    name: str = field(default="local", init=False)

    def __post_init__(self) -> None:
        super().__init__()
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def describe(self) -> str:
        threads = f", {self.threads} thread{'s' if self.threads != 1 else ''} each" if self.threads else ""
        if self.workers == 1:
            where = "1 worker process" if self.isolate else "in this process"
        else:
            where = f"{self.workers} worker processes"
        return f"local, {where}{threads}"

    def run(self, jobs: Iterable[Job], emit: Callable[[Event], None]) -> None:
        if self.workers == 1 and not self.isolate:
            self._run_inline(jobs, emit)
        else:
            self._run_pool(jobs, emit)

    def _run_inline(self, jobs: Iterable[Job], emit: Callable[[Event], None]) -> None:
        me = worker_name()
        previous_threads = None
        if self.threads:
            import torch

            previous_threads = torch.get_num_threads()
        try:
            for job in jobs:
                if self.stopping:
                    break
                if job is None:  # another runner holds the next trials: ask again shortly
                    time.sleep(0.2)
                    continue
                emit(TrialStarted(job.key, me))
                result, interrupted = execute_trial(
                    job.config,
                    self.trial_fn,
                    threads=self.threads,
                    on_epoch=lambda record, key=job.key: emit(TrialEpoch(key, dict(record))),
                    should_stop=self._stop.is_set,
                )
                emit(TrialDone(job.key, result, me, interrupted))
        finally:
            if previous_threads is not None:
                import torch

                torch.set_num_threads(previous_threads)

    def _run_pool(self, jobs: Iterable[Job | None], emit: Callable[[Event], None]) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        ctx = multiprocessing.get_context(self.start_method)
        pending = iter(jobs)
        again: list[Job] = []  # trials that were running beside a worker that died: run them again
        deaths: dict[str, int] = {}  # key -> pool breakages it was running in
        in_flight: dict[Any, Job] = {}
        running_on: dict[str, int] = {}  # key -> pid of the worker that reported starting it
        exhausted = False
        clean = False

        def new_pool() -> tuple[ProcessPoolExecutor, Any, Any]:
            # A fresh queue and stop flag per pool: a worker killed inside put() or is_set() may hold their
            # locks for good. SimpleQueue: put() writes through at once (a Queue's feeder thread could lose
            # the "start" of a worker that dies right after), so a dead worker's trial is known.
            events, stop = ctx.SimpleQueue(), ctx.Event()
            executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=ctx,
                initializer=_init_pool_worker,
                initargs=(self.threads, events, stop, os.getpid()),
            )
            return executor, events, stop

        pool, events, stop = new_pool()
        processes: dict[int, Any] = {}  # every worker process this pool started (the pool forgets dead ones)

        def drain() -> None:
            while not events.empty():
                kind, key, payload = events.get()
                if kind == "start":
                    running_on[key] = int(payload.rsplit(":", 1)[1])
                    emit(TrialStarted(key, payload))
                else:
                    emit(TrialEpoch(key, payload))

        def fill() -> bool:
            """Submit jobs while workers are free; False when the pool broke under a submission."""
            nonlocal exhausted
            while len(in_flight) < self.workers and not self.stopping:
                if again:
                    job = again.pop(0)
                elif exhausted:
                    return True
                else:
                    job = next(pending, _END)
                    if job is _END:
                        exhausted = True
                        return True
                    if job is None:  # nothing to hand out at this moment
                        return True
                try:
                    in_flight[pool.submit(_pool_trial, self.trial_fn, job.key, job.config)] = job
                except BrokenProcessPool:  # it broke after the last wait(): this job never started
                    again.insert(0, job)
                    return False
                processes.update(getattr(pool, "_processes", None) or {})
            return True

        def recover() -> None:
            """The pool broke: a worker died. Its trial failed; the others running beside it run again."""
            nonlocal pool, events, stop
            wait(list(in_flight), timeout=60)  # the pool marks every running future broken
            drain()
            codes = _exit_codes(processes)
            dead = {pid for pid, code in codes.items() if _died_by_itself(code)}
            victims: list[Job] = []
            for future, job in list(in_flight.items()):
                try:
                    if not future.done():
                        raise BrokenProcessPool("not answered after the pool broke")
                    result, interrupted, who = future.result()
                except BrokenProcessPool:
                    victims.append(job)
                else:  # finished just before the death
                    emit(TrialDone(job.key, result, who, interrupted))
            in_flight.clear()
            guilty = [job for job in victims if running_on.get(job.key) in dead]
            for job in victims:
                deaths[job.key] = deaths.get(job.key, 0) + 1
                # unknown culprit: a trial that was running at two deaths is taken for the cause
                if job in guilty or (not guilty and deaths[job.key] >= 2):
                    code = codes.get(running_on.get(job.key, -1))
                    emit(TrialDone(job.key, _worker_death_result(code), f"pid {running_on.get(job.key, '?')}"))
                else:
                    again.append(job)
            pool.shutdown(wait=False, cancel_futures=True)
            events.close()
            processes.clear()
            pool, events, stop = new_pool()

        try:
            broken = not fill()
            while in_flight or again or not exhausted:
                if self.stopping:
                    stop.set()
                    if not in_flight:
                        break
                if broken:
                    recover()
                elif in_flight:
                    done, _ = wait(in_flight, timeout=0.1, return_when=FIRST_COMPLETED)
                    drain()
                    for future in done:
                        try:
                            result, interrupted, who = future.result()
                        except BrokenProcessPool:
                            broken = True
                            break
                        job = in_flight.pop(future)
                        emit(TrialDone(job.key, result, who, interrupted))
                    if broken:
                        recover()
                else:
                    time.sleep(0.1)  # waiting for trials another runner holds
                broken = not fill()
            drain()
            clean = True
        finally:
            if clean:
                pool.shutdown(wait=True)
            else:  # Ctrl-C twice, an error in the driver: don't wait for trials nobody will save
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
            events.close()


_END = object()


def _exit_codes(processes: dict[int, Any], timeout: float = 10.0) -> dict[int, int | None]:
    """pid -> exit code of a broken pool's workers, once they have ended (the pool terminates the others).

    The pool's own thread reaps them at the same time; a poll that loses that race reads None for a moment,
    so each code is read again until it is known.
    """
    deadline = time.monotonic() + timeout
    codes: dict[int, int | None] = {}
    for pid, proc in processes.items():
        proc.join(max(0.0, deadline - time.monotonic()))
        code = proc.exitcode
        while code is None and time.monotonic() < deadline:  # (is_alive() reads the same lost race as True)
            time.sleep(0.01)
            code = proc.exitcode
        codes[pid] = code
    return codes


def _died_by_itself(code: int | None) -> bool:
    """A worker that ended on its own (abort, segfault, OOM kill, os._exit), not one the pool terminated."""
    return code is not None and code != -signal.SIGTERM


def _worker_death_result(exitcode: int | None) -> dict[str, Any]:
    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    elif exitcode is not None:
        how = f"exit status {exitcode}"
    else:
        how = "cause unknown"
    return {
        "status": "failed",
        "error": (
            f"the worker process died while running this trial ({how}: os.abort(), a crash in native code, "
            "or the out-of-memory killer); the arena went on with a fresh worker"
        ),
        "traceback": "",
    }


# ----------------------------------------------------------------------------- ray
def ray_address_problem(address: str | None, timeout: float = 3.0) -> str | None:
    """Why ``HOST:PORT`` cannot be a Ray cluster (nothing listens there), or None.

    ``ray.init`` retries an unreachable address for minutes; this answers in seconds. Other forms
    (``auto``, ``ray://...``, None = start a local instance) are left to Ray.
    """
    if not address or "://" in address or address in ("auto", "local"):
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        return (
            f"--address must be HOST:PORT (the Ray head's GCS port, usually 6379), 'auto' or ray://..., got {address!r}"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        return (
            f"--address {address}: no Ray cluster answers there ({err.strerror or err}); is `ray start --head` running?"
        )
    return None


def _ray_trial(trial_fn: TrialFn | None, config: dict[str, Any], threads: int | None) -> tuple[dict[str, Any], str]:
    result, _ = execute_trial(config, trial_fn, threads=threads)
    return result, worker_name()


@dataclass
class RayBackend(Backend):
    """Trials as Ray tasks: ``ray.init(address=address)`` unless Ray is already initialised.

    Each task reserves ``threads`` CPUs and runs ``torch.set_num_threads(threads)``; at most
    ``max_in_flight`` (default: the cluster's CPUs / threads) are submitted at once, so Ctrl-C
    has little to cancel. Results come back to the driver, which writes the store.
    """

    address: str | None = None
    threads: int | None = None
    trial_fn: TrialFn | None = None
    max_in_flight: int | None = None
    name: str = field(default="ray", init=False)

    def __post_init__(self) -> None:
        super().__init__()

    def describe(self) -> str:
        return f"ray ({self.address or 'local instance'}), {self.threads or 1} CPU(s) per trial"

    def run(self, jobs: Iterable[Job], emit: Callable[[Event], None]) -> None:
        from actlab.ops._lazy import require

        ray = require("ray", "the arena's ray backend")
        started_here = not ray.is_initialized()
        if started_here:
            problem = ray_address_problem(self.address)
            if problem:
                raise ConnectionError(problem)
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        try:
            self._run(ray, jobs, emit)
        finally:
            if started_here:
                ray.shutdown()

    def _run(self, ray: Any, jobs: Iterable[Job], emit: Callable[[Event], None]) -> None:
        cpus = max(1, self.threads or 1)
        remote = ray.remote(num_cpus=cpus)(_ray_trial)
        capacity = self.max_in_flight or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        pending = iter(jobs)
        in_flight: dict[Any, Job] = {}
        exhausted = False
        try:
            while True:
                while len(in_flight) < capacity and not self.stopping:
                    job = next(pending, _END)
                    if job is _END:
                        exhausted = True
                    if job is None or job is _END:  # None: nothing to hand out at this moment
                        break
                    in_flight[remote.remote(self.trial_fn, job.config, self.threads)] = job
                    emit(TrialStarted(job.key, "ray"))
                if self.stopping or (not in_flight and exhausted):
                    break
                if not in_flight:
                    time.sleep(0.2)  # waiting for trials another runner holds
                    continue
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.2)
                for ref in ready:
                    job = in_flight.pop(ref)
                    try:
                        result, who = ray.get(ref)
                    except ray.exceptions.RayError as err:  # the worker or its node died: lost, not failed
                        raise WorkerLost(f"a Ray worker died running a trial: {err}", [job.key]) from err
                    emit(TrialDone(job.key, result, who))
        finally:
            for ref in in_flight:  # stopped or failed: the running trials' partial work is discarded
                ray.cancel(ref, force=True)
            in_flight.clear()


def make_backend(
    kind: str = "local",
    *,
    workers: int | None = 1,
    threads: int | None = None,
    address: str | None = None,
    trial_fn: TrialFn | None = None,
) -> Backend:
    """A backend by name: ``"local"`` (``workers`` processes) or ``"ray"`` (``address``; ``workers``
    caps the trials in flight, None = as many as the cluster has CPUs for)."""
    if kind == "local":
        return LocalBackend(workers=workers or 1, threads=threads, trial_fn=trial_fn)
    if kind == "ray":
        return RayBackend(address=address, threads=threads, trial_fn=trial_fn, max_in_flight=workers)
    raise ValueError(f"backend must be 'local' or 'ray', got {kind!r}")
