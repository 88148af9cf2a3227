"""The Ray engine: the same units on a Ray cluster, into a dataset folder every node sees.

* Every unit, a video or a chunk of photos, is a Ray task (``max_retries``) running the local
  engine's ``run_unit``. It writes its part under ``DIR/.staging`` on the shared storage,
  under a name of its own per attempt, and returns that name with the sources' statuses.
* Ray keeps its worker processes from one task to the next, and each keeps its models
  (``work.landmarker``): the models load once per worker, as in an actor pool, without Ray
  Data's streaming executor, which cost 2–3 s a run on a laptop's workload
  (``bench/batch.py``).
* The driver alone commits, by the same rename as the local engine's, to a name made from
  the sources: a worker lost mid-run is retried by Ray, its attempt's file is debris, and
  a source can never be committed twice. No pose rows pass through the driver.

With ``device="cuda"`` every task asks Ray for a GPU of its own.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Callable

from ..errors import PosepipeError
from .dataset import BatchDir
from .options import BatchOptions
from .plan import Unit
from .work import Outcome, lost, run_unit

RETRIES = 3  # attempts after a lost worker (killed, out of memory, node gone)
UNITS_IN_FLIGHT_PER_WORKER = 2  # one running, one queued in Ray, so no worker waits for the driver


def _ray(address: str | None):
    if address and address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost"):
        # Ray swaps a loopback address for this machine's network address before connecting,
        # where a cluster started on the loopback does not listen, unless told (before it is
        # imported) that this machine is not part of a wider cluster.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise PosepipeError("the ray engine needs Ray: pip install 'posepipe[ray]'") from None
    return ray


def _connect(ray, address: str | None) -> None:
    """Join the cluster at ``address``, or start Ray here, on the loopback only."""
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        try:
            ray.init(address=address, **quiet)
        except Exception as exc:  # noqa: BLE001 - ConnectionError and Ray's own kinds
            raise PosepipeError(f"cannot join the Ray cluster at {address} ({str(exc).splitlines()[0]})") from None
        return
    # "local": a new Ray of its own, even where another is running here or RAY_ADDRESS names one
    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)


def _run_unit(unit: Unit, staging: str, options: BatchOptions, threads: int) -> Outcome:
    return run_unit(unit, f"{staging}/{unit.key}-{uuid.uuid4().hex[:8]}.parquet", options, threads)


def _result(ray, ref, unit: Unit, dataset: BatchDir) -> Outcome:
    """A task's outcome; a dataset that cannot be written stops the run in one sentence."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, PosepipeError):
            raise PosepipeError(str(exc.cause)) from None
        raise
    except ray.exceptions.WorkerCrashedError:  # lost on every attempt
        return lost(unit, dataset)


def worker_resources(options: BatchOptions, threads: int) -> dict:
    """What each task asks Ray for: its CPUs, and with cuda a GPU of its
    own (Ray then shows it that GPU only)."""
    return {"num_cpus": threads, "num_gpus": 1} if options.device == "cuda" else {"num_cpus": threads}


def worker_slots(cluster: dict, resources: dict) -> int:
    """How many workers asking for ``resources`` the cluster (``ray.cluster_resources()``) holds."""
    if resources.get("num_gpus"):
        if not cluster.get("GPU"):
            raise PosepipeError("device cuda: the Ray cluster has no GPUs")
        return max(1, int(cluster["GPU"] // resources["num_gpus"]))
    return max(1, int(cluster.get("CPU", 1)) // resources["num_cpus"])


def run_ray(units: list[Unit], dataset: BatchDir, options: BatchOptions, workers: int | None, address: str | None,
            on_done: Callable[[Outcome], None]) -> None:
    ray = _ray(address)
    _connect(ray, address)
    running: dict = {}  # task → its unit
    try:
        threads = options.threads or 1  # a Ray worker is one CPU; more workers fit that way
        resources = worker_resources(options, threads)
        slots = worker_slots(ray.cluster_resources(), resources)
        workers = min(workers or slots, slots)
        staging = str(dataset.staging.resolve())
        task = ray.remote(max_retries=RETRIES, **resources)(_run_unit)
        todo = iter(units)  # the plan's order: videos longest first, then chunks of photos
        while True:
            while len(running) < UNITS_IN_FLIGHT_PER_WORKER * workers and (unit := next(todo, None)):
                running[task.remote(unit, staging, options, threads)] = unit
            if not running:
                break
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in ready:
                outcome = _result(ray, ref, running.pop(ref), dataset)
                dataset.commit(outcome.key, Path(outcome.staged))
                on_done(outcome)
    except BaseException as exc:
        for ref in running:
            ray.cancel(ref, force=True)
        if isinstance(exc, ray.exceptions.RayError):  # e.g. the workers could not load the models
            cause = getattr(exc, "cause", None)
            message = str(cause) if isinstance(cause, PosepipeError) else (str(exc).splitlines() or [""])[0]
            raise PosepipeError(f"the Ray run failed: {message}") from None
        raise
    finally:
        ray.shutdown()  # a cluster joined by address goes on; Ray started here stops
