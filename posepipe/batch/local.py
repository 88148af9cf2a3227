"""The local engine: worker processes on this machine, each holding one set of models.

The parent plans, hands out units a few at a time (so memory does not grow with the number
of inputs) and alone commits what comes back. Workers ignore Ctrl-C: the parent stops them.

On CPUs a worker runs per core. With ``device="cuda"`` a worker runs per GPU, each worker
seeing only its own GPU (``CUDA_VISIBLE_DEVICES``), with the cores shared out among them for
decoding and cropping.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterable

from .dataset import BatchDir
from .options import BatchOptions
from .plan import Unit
from .work import Outcome, lost, run_unit, start_worker

UNITS_IN_FLIGHT_PER_WORKER = 2  # one running, one queued so no worker waits for the parent
MAX_ATTEMPTS = 3  # a unit that was in flight when a worker died this often is recorded as failed


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def gpus() -> list[str]:
    """The GPUs this process may use, as CUDA names them: ``CUDA_VISIBLE_DEVICES`` where set,
    else those ``nvidia-smi -L`` lists; none where neither says."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [name.strip() for name in visible.split(",") if name.strip() and name.strip() != "-1"]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in listing.splitlines() if line.startswith("GPU "))]


def default_workers(device: str) -> int:
    """A worker per core, or with cuda a worker per GPU (one where none is found: ONNX Runtime
    then says what is missing)."""
    return max(1, len(gpus())) if device == "cuda" else cores()


def threads_per_worker(workers: int, threads: int = 0) -> int:
    """The runtimes' threads in each worker, so that workers × threads ≈ cores."""
    return threads or max(1, cores() // workers)


def start_workers(workers: int, options: BatchOptions) -> ProcessPoolExecutor:
    """The worker processes, started now: each imports and opens its models (about 0.4 s)
    while the parent walks the inputs and reads the videos' headers."""
    pool = _start(workers, options, threads_per_worker(workers, options.threads))
    for _ in range(workers):  # a task that does nothing: the pool starts a process per task while none is idle
        pool.submit(int)
    return pool


def _start(workers: int, options: BatchOptions, threads: int) -> ProcessPoolExecutor:
    # spawn: a fresh interpreter per worker, never a fork of a parent holding threads (progress bar)
    context = multiprocessing.get_context("spawn")
    devices, names = None, gpus() if options.device == "cuda" else []
    if names:
        # Each worker takes one GPU from the queue as it starts, before CUDA is loaded; more
        # workers than GPUs (--workers) share them in turn.
        devices = context.Queue()
        for index in range(workers):
            devices.put(names[index % len(names)])
    return ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker,
                               initargs=(devices, options, threads))


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel what waits and end the workers now, mid-unit: their staged files are debris the
    next run clears. Python before 3.14 has no public way to end an executor's running tasks."""
    if hasattr(pool, "terminate_workers"):
        pool.terminate_workers()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)


def run_local(units: Iterable[Unit], dataset: BatchDir, options: BatchOptions, workers: int,
              on_done: Callable[[Outcome], None], pool: ProcessPoolExecutor | None = None) -> None:
    """The units on ``workers`` processes: ``pool`` (from :func:`start_workers`, with the same
    workers and options), or a pool started here."""
    threads = threads_per_worker(workers, options.threads)
    todo = iter(units)
    retry: deque[Unit] = deque()
    attempts: dict[str, int] = {}
    pending: dict[Future, Unit] = {}
    pool = pool or start_workers(workers, options)
    try:
        while True:
            while len(pending) < UNITS_IN_FLIGHT_PER_WORKER * workers:
                unit = retry.popleft() if retry else next(todo, None)
                if unit is None:
                    break
                staged = str(dataset.staging_file(unit.key))
                pending[pool.submit(run_unit, unit, staged, options, threads)] = unit
            if not pending:
                break
            done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                unit = pending.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    broken = True
                    retry.append(unit)
                    continue
                dataset.commit(outcome.key, Path(outcome.staged))
                on_done(outcome)
            if broken:  # a worker died (killed, out of memory): every unit in flight goes again
                retry.extend(pending.values())
                pending.clear()
                stop_workers(pool)
                for unit in list(retry):
                    attempts[unit.key] = attempts.get(unit.key, 0) + 1
                    if attempts[unit.key] >= MAX_ATTEMPTS:
                        retry.remove(unit)
                        outcome = lost(unit, dataset)
                        dataset.commit(outcome.key, Path(outcome.staged))
                        on_done(outcome)
                pool = start_workers(workers, options)
    except BaseException:
        stop_workers(pool)
        raise
    pool.shutdown(wait=True)
