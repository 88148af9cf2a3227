"""``posepipe batch``: thousands of photos and hours of video into one Parquet dataset, on every
core of this machine or on a Ray cluster, resumable.

>>> from posepipe.batch import BatchOptions, run_batch          # doctest: +SKIP
>>> summary = run_batch(["photos/", "videos/*.mp4"], "out", BatchOptions(num_poses=2))

Modules: ``plan`` (inputs to units of work), ``dataset`` (the output folder and its atomic
commits), ``work`` (one unit in a worker), ``local`` and ``ray_engine`` (who runs the units),
``progress``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import PosepipeError
from .dataset import BatchDir
from .options import BatchOptions
from .plan import PHOTOS_PER_CHUNK, make_plan
from .progress import BatchProgress

__all__ = ["BatchOptions", "BatchSummary", "run_batch"]


@dataclass
class BatchSummary:
    sources: int  # every input
    finished_before: int  # of them, done by earlier runs and skipped
    done_now: int
    failed: int  # failed inputs in the whole dataset, earlier runs' included
    frames_now: int
    seconds: float


def run_batch(inputs: Iterable[str], out: str | Path, options: BatchOptions | None = None, *,
              workers: int | None = None, engine: str = "local", address: str | None = None,
              overwrite: bool = False, progress: bool = False,
              photos_per_chunk: int = PHOTOS_PER_CHUNK) -> BatchSummary:
    """Process every input not already in ``out`` into it; see ``posepipe batch --help``.

    Raises :class:`PosepipeError` when the run cannot start or the dataset cannot be written,
    and KeyboardInterrupt (after leaving ``out`` valid) when interrupted.
    """
    import time

    options = options or BatchOptions()
    if engine not in ("local", "ray"):
        raise PosepipeError(f"unknown engine {engine!r}; choose local or ray")
    if address and engine != "ray":
        raise PosepipeError("--address is the address of a Ray cluster: use it with --engine ray")
    if workers is not None and workers < 1:
        raise PosepipeError("--workers must be at least 1")
    options.landmarker_options(options.threads)  # refuse bad options before anything is written
    if options.zero_lag is not None:
        from ..video.outputs import VideoOutputs

        VideoOutputs().check(zero_lag_hz=options.zero_lag)  # SciPy there, a cutoff above 0
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise PosepipeError("posepipe batch writes Parquet, which needs pyarrow: pip install 'posepipe[analysis]'") \
            from None
    started = time.perf_counter()
    dataset = BatchDir(out, options.fingerprint(), overwrite)
    pool = None
    try:
        if engine == "local":
            from .local import default_workers, run_local, start_workers

            workers = workers or default_workers(options.device)
            pool = start_workers(workers, options)  # they open their models while the inputs are walked
        plan = make_plan(inputs, dataset.finished_sources(), photos_per_chunk)
        with BatchProgress(progress, plan.sources, plan.finished, plan.frames) as bar:
            if plan.units and engine == "local":
                run_local(plan.units, dataset, options, workers, bar.record, pool)
            elif plan.units:
                from .ray_engine import run_ray

                run_ray(plan.units, dataset, options, workers, address, bar.record)
    finally:
        try:
            if pool is not None:  # run_local shuts it down; this is for a plan that failed or had nothing to do
                pool.shutdown(wait=False, cancel_futures=True)
            dataset.write_sources_table()
        finally:
            dataset.close()
    failed = sum(s["status"] == "error" for s in dataset.statuses())
    return BatchSummary(plan.sources, plan.finished, bar.done - plan.finished, failed, bar.frames,
                        time.perf_counter() - started)
