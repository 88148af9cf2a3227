"""Video jobs: uploads tracked in the background, one at a time from a bounded queue, through
the CLI's own orchestration (:func:`posepipe.video.runner.track_video` into
:class:`~posepipe.video.outputs.VideoOutputs`), then joint angles.

Each job is a folder ``data_dir/jobs/<id>/`` holding ``status.json`` (replaced whole, never
half written) and its outputs. Ids are 32 random hex digits; anything else is no job. A
server that starts again serves the finished jobs it finds and marks the ones it was
running or had queued failed: their upload is gone with the process that held it, and a
half-written overlay cannot be continued.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import queue
import re
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import PosepipeError
from ..pipeline import PoseLandmarker
from ..video.exports import load_pose_table
from ..video.outputs import VideoOutputs
from ..video.runner import track_video
from ..video.sources import PyAVSource
from ..video.tracking import PoseTracker
from ..analysis.angles import angle_table, write_angles_csv
from .errors import ApiError, busy

log = logging.getLogger("posepipe.serve")

JOB_ID = re.compile(r"[0-9a-f]{32}")
# Every file a job can give, and its media type.
OUTPUTS = {"poses.jsonl": "application/x-ndjson", "poses.csv": "text/csv",
           "poses.parquet": "application/vnd.apache.parquet", "overlay.mp4": "video/mp4", "angles.csv": "text/csv"}
STATUS_FILE = "status.json"
INPUT_FILE = "input.video"
PROGRESS_EVERY_S = 0.5  # how often a running job's status.json is rewritten


@dataclass
class Job:
    id: str
    source: str  # the upload's file name
    status: str = "queued"  # queued, running, done, failed
    frames_done: int = 0
    frames_total: int | None = None
    error: str | None = None
    files: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def public(self) -> dict:
        return asdict(self)


class Cancelled(Exception):
    pass


class JobQueue:
    def __init__(self, data_dir: Path, queue_size: int, max_pixels: int):
        self.root = Path(data_dir) / "jobs"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PosepipeError(f"cannot create the job folder {self.root}: {exc.strerror or exc}") from None
        self.max_pixels = max_pixels
        self.waiting: queue.Queue[Job] = queue.Queue(queue_size)
        self.jobs: dict[str, Job] = {}
        self.cancelled: set[str] = set()
        self.lock = threading.Lock()
        self.landmarker: PoseLandmarker | None = None  # the jobs' own, loaded by the first job
        self._recover()
        self.worker = threading.Thread(target=self._work, name="posepipe-jobs", daemon=True)
        self.worker.start()

    # ------------------------------------------------------------------ the folder of each job

    def folder(self, job_id: str) -> Path:
        if not JOB_ID.fullmatch(job_id):
            raise ApiError(404, "no such job")
        return self.root / job_id

    def _save(self, job: Job) -> None:
        folder = self.root / job.id
        partial = folder / f".{STATUS_FILE}.partial"
        partial.write_text(json.dumps(job.public(), indent=1) + "\n")
        os.replace(partial, folder / STATUS_FILE)

    def _recover(self) -> None:
        for folder in sorted(self.root.iterdir()):
            status = folder / STATUS_FILE
            if not JOB_ID.fullmatch(folder.name) or not folder.is_dir():
                continue
            try:
                job = Job(**json.loads(status.read_text()))
            except (OSError, ValueError, TypeError):  # an upload cut off by the stop, before its first status
                shutil.rmtree(folder, ignore_errors=True)
                continue
            if job.status not in ("done", "failed"):
                job.status, job.error, job.finished = "failed", "the server stopped before this job finished", time.time()
                job.files = []
                (folder / INPUT_FILE).unlink(missing_ok=True)
                self._save(job)
            self.jobs[job.id] = job

    # ------------------------------------------------------------------ what the routes call

    def create(self) -> Job:
        if self.waiting.full():  # refused before the upload, not after it
            raise busy("video jobs")
        job = Job(secrets.token_hex(16), source="upload")
        (self.root / job.id).mkdir()
        return job

    def input_path(self, job: Job) -> Path:
        return self.root / job.id / INPUT_FILE

    def discard(self, job: Job) -> None:
        shutil.rmtree(self.root / job.id, ignore_errors=True)

    def probe(self, job: Job) -> None:
        """Refuse an upload that is not a video this server can track (415, 413 or 422)."""
        path = self.input_path(job)
        if path.stat().st_size == 0:
            raise ApiError(422, "the upload is empty")
        try:
            source = PyAVSource(str(path))
        except PosepipeError:
            raise ApiError(415, "the upload is not a readable video") from None
        with source:
            width, height = source.stream.codec_context.width, source.stream.codec_context.height
            job.frames_total = source.frame_count
        if width * height > self.max_pixels:
            raise ApiError(413, f"the video's frames are {width}×{height} pixels, more than this server's limit "
                                f"of {self.max_pixels / 1e6:.0f} MP")

    def submit(self, job: Job) -> None:
        with self.lock:
            try:
                self.waiting.put_nowait(job)
            except queue.Full:
                raise busy("video jobs") from None
            self.jobs[job.id] = job
            self._save(job)

    def get(self, job_id: str) -> Job:
        self.folder(job_id)
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "no such job")
        return job

    def delete(self, job_id: str) -> None:
        """Forget a job; a running one stops at its next frame and its folder goes then."""
        job = self.get(job_id)
        with self.lock:
            del self.jobs[job_id]
            if job.status == "running":
                self.cancelled.add(job_id)
                return
        self.discard(job)

    # ------------------------------------------------------------------ the worker thread

    def _work(self) -> None:
        while True:
            job = self.waiting.get()
            try:
                self._run(job)
            except Exception:  # noqa: BLE001 - say, a full disk for status.json: the next job may still run
                log.exception("job %s could not be recorded", job.id)

    def _run(self, job: Job) -> None:
        with self.lock:
            if job.id not in self.jobs:  # deleted while it waited
                return
            job.status = "running"
            self._save(job)
        status, error = "done", None
        try:
            self._track(job)
        except Cancelled:
            self.discard(job)
            with self.lock:
                self.cancelled.discard(job.id)
            return
        except PosepipeError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - the job fails, the server goes on
            log.exception("job %s failed", job.id)
            status, error = "failed", f"the server failed on this video ({type(exc).__name__})"
        self.input_path(job).unlink(missing_ok=True)
        # The routes read the job as it is, without the lock: its outcome goes last, so that
        # whoever reads "done" also reads the files (a GET between the two saw none).
        job.files = [name for name in OUTPUTS if (self.root / job.id / name).is_file()]
        job.finished, job.error = time.time(), error
        job.status = status
        with self.lock:
            if job.id in self.cancelled:  # deleted after its last frame
                self.cancelled.discard(job.id)
                self.discard(job)
            else:
                self._save(job)

    def _track(self, job: Job) -> None:
        folder = self.root / job.id
        parquet = importlib.util.find_spec("pyarrow") is not None
        outputs = VideoOutputs(jsonl=str(folder / "poses.jsonl"), csv=str(folder / "poses.csv"),
                               parquet=str(folder / "poses.parquet") if parquet else None,
                               overlay=str(folder / "overlay.mp4"))
        if self.landmarker is None:
            self.landmarker = PoseLandmarker()
        tracker = PoseTracker(smooth=True, landmarker=self.landmarker)  # not closed: the landmarker stays
        saved = time.monotonic()

        def on_frame(frame, _poses) -> None:
            nonlocal saved
            if job.id in self.cancelled:
                raise KeyboardInterrupt  # the runner's way to stop, closing every output
            job.frames_done = frame.index + 1
            if time.monotonic() - saved > PROGRESS_EVERY_S:
                saved = time.monotonic()
                with self.lock:
                    self._save(job)

        with PyAVSource(str(self.input_path(job))) as source:
            source.name = job.source  # what the records call it, not the upload's path
            stats = track_video(source, tracker, outputs, None, on_frame)
        if stats.interrupted:
            raise Cancelled
        job.frames_done = stats.frames
        try:
            series = load_pose_table(folder / "poses.csv")
        except PosepipeError:  # nobody was found: no angles to give
            return
        write_angles_csv([angle_table(s) for s in series.values()], folder / "angles.csv")
