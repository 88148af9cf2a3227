"""The Ray engine: the same units on a Ray cluster, into a dataset folder every node sees.

* Photos go through Ray Data: ``map_batches`` over the photo list with an actor pool, each
  actor holding one set of models. Each output row is one photo, complete with its pose
  rows (Arrow IPC bytes) and its status, so however Ray Data batches, retries or reorders,
  the driver can commit whatever arrives as whole sources.
* Videos are Ray tasks (``max_retries``): a video is one long, stateful run of the tracker,
  which is a task, not a dataset of rows. The task writes its part under ``DIR/.staging`` on
  the shared storage, under a name of its own per attempt, and returns the name.
* The driver alone commits, by the same rename as the local engine's, to a name made from
  the sources: a worker lost mid-run is retried by Ray, its attempt's file is debris, and
  a source can never be committed twice.

With ``device="cuda"`` every actor and video task asks Ray for a GPU of its own.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path
from typing import Callable

from ..errors import PosepipeError
from .dataset import BatchDir, PartWriter, pose_schema, status_schema
from .options import BatchOptions
from .plan import Source, Unit, unit_key
from .work import Outcome, landmarker, lost, pose_photos, run_unit

VIDEO_RETRIES = 3  # attempts after a lost worker (killed, out of memory, node gone)
VIDEOS_IN_FLIGHT_PER_WORKER = 2


def _ray(address: str | None):
    if address and address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost"):
        # Ray swaps a loopback address for this machine's network address before connecting,
        # where a cluster started on the loopback does not listen, unless told (before it is
        # imported) that this machine is not part of a wider cluster.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
        import ray.data  # noqa: F401 - the photos' pipeline
    except ImportError:
        raise PosepipeError("the ray engine needs Ray: pip install 'posepipe[ray]'") from None
    return ray


def _connect(ray, address: str | None) -> None:
    """Join the cluster at ``address``, or start Ray here, on the loopback only."""
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and timings, a line each run
    if address:
        try:
            ray.init(address=address, **quiet)
        except Exception as exc:  # noqa: BLE001 - ConnectionError and Ray's own kinds
            raise PosepipeError(f"cannot join the Ray cluster at {address} ({str(exc).splitlines()[0]})") from None
        return
    # "local": a new Ray of its own, even where another is running here or RAY_ADDRESS names one
    ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)


class PhotoPoser:
    """A Ray Data actor: one set of models, a batch of photos in, one row per photo out."""

    def __init__(self, options: BatchOptions, threads: int):
        self.model = landmarker(options, threads)

    def __call__(self, batch):
        import pyarrow as pa

        sources = [Source(name, path, "image") for name, path in
                   zip(batch.column("name").to_pylist(), batch.column("path").to_pylist())]
        collected = {source.name: _Collected() for source in sources}
        statuses = pose_photos(sources, _ByPhoto(collected), self.model)
        rows = [status | {"rows": collected[status["source"]].ipc()} for status in statuses]
        # Typed, so that a batch whose errors or rows are all empty has the columns of any other.
        return pa.Table.from_pylist(rows, schema=status_schema().append(pa.field("rows", pa.binary())))


class _ByPhoto:
    """A writer that keeps each photo's rows apart."""

    def __init__(self, collected: dict[str, "_Collected"]):
        self.collected = collected

    def write(self, source: str, frame: int, timestamp_ms: float, poses) -> None:
        self.collected[source].write(source, frame, timestamp_ms, poses)


class _Collected:
    """A photo's pose rows, kept to travel back to the driver (a few kB each)."""

    def __init__(self):
        self.table = None

    def write(self, source: str, frame: int, timestamp_ms: float, poses) -> None:
        import numpy as np

        from ..video.exports import long_rows, long_table

        rows = long_rows(frame, timestamp_ms, poses)
        if rows is not None:
            rows["source"] = np.full(len(rows["frame"]), source, dtype=object)
            self.table = long_table([rows], pose_schema())

    def ipc(self) -> bytes | None:
        if self.table is None:
            return None
        import pyarrow as pa

        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, self.table.schema) as writer:
            writer.write_table(self.table)
        return sink.getvalue().to_pybytes()


def _track_video(unit: Unit, staging: str, options: BatchOptions, threads: int) -> Outcome:
    return run_unit(unit, f"{staging}/{unit.key}-{uuid.uuid4().hex[:8]}.parquet", options, threads)


def _commit_photos(batch, dataset: BatchDir, committed: set[str]) -> Outcome | None:
    """Whole photos from Ray Data into one part; any already committed in this run are dropped."""
    import pyarrow as pa

    fresh = [row for row in batch.to_pylist() if row["source"] not in committed]
    if not fresh:
        return None
    key = unit_key("image", [row["source"] for row in fresh])
    staged = dataset.staging_file(key)
    writer = PartWriter(staged)
    for row in fresh:
        if row["rows"] is not None:
            writer.write_table(pa.ipc.open_stream(row["rows"]).read_all())
    statuses = [{k: v for k, v in row.items() if k != "rows"} for row in fresh]
    writer.close(statuses)
    dataset.commit(key, staged)
    committed.update(row["source"] for row in fresh)
    return Outcome(key, str(staged), statuses)


def _result(ray, ref, unit: Unit, dataset: BatchDir) -> Outcome:
    """A video task's outcome; a dataset that cannot be written stops the run in one sentence."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, PosepipeError):
            raise PosepipeError(str(exc.cause)) from None
        raise
    except ray.exceptions.WorkerCrashedError:  # lost on every attempt
        return lost(unit, dataset)


def worker_resources(options: BatchOptions, threads: int) -> dict:
    """What each photo actor and video task asks Ray for: its CPUs, and with cuda a GPU of its
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
    running: dict = {}  # video task → its unit
    try:
        threads = options.threads or 1  # a Ray worker is one CPU; more workers fit that way
        resources = worker_resources(options, threads)
        slots = worker_slots(ray.cluster_resources(), resources)
        workers = min(workers or slots, slots)
        staging = str(dataset.staging.resolve())
        track = ray.remote(max_retries=VIDEO_RETRIES, **resources)(_track_video)
        videos = iter([u for u in units if u.kind == "video"])

        def submit_videos() -> None:
            while len(running) < VIDEOS_IN_FLIGHT_PER_WORKER * workers and (unit := next(videos, None)):
                running[track.remote(unit, staging, options, threads)] = unit

        def commit_videos(timeout: float | None) -> None:
            if running:
                ready, _ = ray.wait(list(running), num_returns=len(running), timeout=timeout)
                for ref in ready:
                    outcome = _result(ray, ref, running.pop(ref), dataset)
                    dataset.commit(outcome.key, Path(outcome.staged))
                    on_done(outcome)
            submit_videos()

        submit_videos()
        photos = [{"name": s.name, "path": s.path} for u in units if u.kind == "image" for s in u.sources]
        if photos:
            ray.data.DataContext.get_current().enable_progress_bars = False
            chunks = sum(u.kind == "image" for u in units)  # a block per chunk: a chunk is one actor call
            poses = ray.data.from_items(photos, override_num_blocks=chunks).map_batches(
                PhotoPoser, fn_constructor_kwargs={"options": options, "threads": threads}, batch_size=None,
                batch_format="pyarrow", **resources,
                # Ray Data restarts a lost actor and runs its batch again (max_restarts=-1 by default).
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=workers))
            committed: set[str] = set()
            for batch in poses.iter_batches(batch_size=None, batch_format="pyarrow"):
                outcome = _commit_photos(batch, dataset, committed)
                if outcome:
                    on_done(outcome)
                commit_videos(timeout=0)
        while running:
            commit_videos(timeout=1.0)
    except BaseException as exc:
        for ref in running:
            ray.cancel(ref, force=True)
        if isinstance(exc, ray.exceptions.RayError):  # e.g. the photo actors could not load the models
            cause = getattr(exc, "cause", None)
            message = str(cause) if isinstance(cause, PosepipeError) else (str(exc).splitlines() or [""])[0]
            raise PosepipeError(f"the Ray run failed: {message}") from None
        raise
    finally:
        ray.shutdown()  # a cluster joined by address goes on; Ray started here stops
