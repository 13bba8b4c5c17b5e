"""Where arena trials run: in this process, in a process pool, or as Ray tasks on a cluster.

A backend takes jobs (key + normalised config) and reports events to the driver: a trial started,
finished an epoch, finished. Workers only *return* results; the driver alone writes the store.
``request_stop()`` (Ctrl-C) stops handing out trials and asks the running ones to stop at the next
batch; their partial results come back marked ``interrupted`` and are not saved.

- :class:`LocalBackend` (``workers=1``): trials one after another in this process.
- :class:`LocalBackend` (``workers=N``): a pool of N fresh processes (``spawn``: no state inherited
  from the driver, the same on every OS); each sets ``torch.set_num_threads(threads)``.
- :class:`RayBackend`: one Ray task per trial on whatever ``ray.init(address=...)`` reaches, reserving
  ``threads`` CPUs each; the workers need actlab importable (install it on every node).
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import threading
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

    try:
        fn = trial_fn or _default_trial_fn()
        result = dict(fn(dict(config), on_epoch=on_epoch, should_stop=stop))
    except KeyboardInterrupt:  # run_trial's TrialInterrupted: it saw our stop request
        if not stop_seen:
            raise
        result = {"status": "interrupted"}
    except Exception as err:  # a bug in a user task, an OOM in torch: a recorded failure
        result = {
            "status": "failed",
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(limit=20),
        }
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


def _init_pool_worker(threads: int | None, events: Any, stop: Any) -> None:
    # Ctrl-C reaches the whole process group: the driver decides, workers keep going until told.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_STATE.update(threads=threads, events=events, stop=stop)
    if threads:
        import torch

        torch.set_num_threads(threads)


def _pool_trial(trial_fn: TrialFn | None, key: str, config: dict[str, Any]) -> tuple[dict[str, Any], bool, str]:
    events, stop = _WORKER_STATE["events"], _WORKER_STATE["stop"]
    me = worker_name()
    events.put(("start", key, me))
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
    name: str = field(default="local", init=False)

    def __post_init__(self) -> None:
        super().__init__()
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def describe(self) -> str:
        threads = f", {self.threads} thread{'s' if self.threads != 1 else ''} each" if self.threads else ""
        where = "in this process" if self.workers == 1 else f"{self.workers} worker processes"
        return f"local, {where}{threads}"

    def run(self, jobs: Iterable[Job], emit: Callable[[Event], None]) -> None:
        if self.workers == 1:
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

    def _run_pool(self, jobs: Iterable[Job], emit: Callable[[Event], None]) -> None:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        def worker_died(trials: int) -> str:
            return (
                f"a worker process died while running {trials} trial(s): killed, out of memory, or it could not "
                "start (a script that runs workers > 1 needs `if __name__ == '__main__':`)"
            )

        ctx = multiprocessing.get_context(self.start_method)
        events = ctx.Queue()
        stop = ctx.Event()
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=ctx,
            initializer=_init_pool_worker,
            initargs=(self.threads, events, stop),
        )
        pending = iter(jobs)
        in_flight: dict[Any, Job] = {}
        clean = False

        def drain() -> None:
            while True:
                try:
                    kind, key, payload = events.get_nowait()
                except queue.Empty:
                    return
                emit(TrialStarted(key, payload) if kind == "start" else TrialEpoch(key, payload))

        def fill() -> None:
            while len(in_flight) < self.workers and not self.stopping:
                job = next(pending, None)
                if job is None:
                    return
                try:
                    in_flight[pool.submit(_pool_trial, self.trial_fn, job.key, job.config)] = job
                except BrokenProcessPool as err:
                    # the pool broke after the last wait(): this job never started; running ones report
                    # the death through their futures, collected by the loop below
                    if not in_flight:
                        raise WorkerLost(worker_died(0), []) from err
                    return

        try:
            fill()
            while in_flight:
                if self.stopping:
                    stop.set()
                done, _ = wait(in_flight, timeout=0.1, return_when=FIRST_COMPLETED)
                drain()
                for future in done:
                    job = in_flight.pop(future)
                    try:
                        result, interrupted, who = future.result()
                    except BrokenProcessPool as err:
                        lost = [job.key, *(j.key for j in in_flight.values())]
                        raise WorkerLost(worker_died(len(lost)), lost) from err
                    emit(TrialDone(job.key, result, who, interrupted))
                fill()
            drain()
            clean = True
        finally:
            if clean:
                pool.shutdown(wait=True)
            else:  # Ctrl-C twice, a dead worker: don't wait for trials nobody will save
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
            events.close()
            events.join_thread()


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
        try:
            while True:
                while len(in_flight) < capacity and not self.stopping:
                    job = next(pending, None)
                    if job is None:
                        break
                    in_flight[remote.remote(self.trial_fn, job.config, self.threads)] = job
                    emit(TrialStarted(job.key, "ray"))
                if not in_flight or self.stopping:
                    break
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
