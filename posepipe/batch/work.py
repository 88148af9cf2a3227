"""One unit of work in a worker: photos through the still pipeline as ``posepipe image`` runs
them, a video through tracking as ``posepipe video`` does, into a staged part file.

A worker process holds one set of models, made on its first unit and kept for the next
(a local worker process, a Ray actor or a reused Ray worker process alike).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import PosepipeError
from ..io import read_image
from ..pipeline import PoseLandmarker
from .dataset import BatchDir, OutputError, PartWriter, status_row
from .options import BatchOptions
from .plan import Source, Unit

_models: dict = {}  # this process's landmarker, per (options, threads)


@dataclass
class Outcome:
    """A finished unit, for the committer: its staged part and its sources' status rows."""

    key: str
    staged: str
    statuses: list[dict]

    @property
    def frames(self) -> int:
        return sum(s["frames"] for s in self.statuses)

    @property
    def failures(self) -> int:
        return sum(s["status"] == "error" for s in self.statuses)


def start_worker(devices=None, options: BatchOptions | None = None, threads: int = 0) -> None:
    """A local worker's start: Ctrl-C is the parent's to handle (it stops the workers itself).
    ``devices``: a queue of GPUs, one of which becomes this worker's only visible GPU. With
    ``options``, the models are opened now, while the parent still walks the inputs; one that
    fails to load is left for the first unit, whose error stops the run in one sentence (an
    error here would break the pool instead)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices.get()
    if options is not None:
        try:
            landmarker(options, threads)
        except Exception:  # noqa: BLE001 - met again, and told, by the first unit
            pass


def landmarker(options: BatchOptions, threads: int) -> PoseLandmarker:
    """This process's models, OpenCV's threads matched to the runtimes'."""
    key = (options, threads)
    if key not in _models:
        import cv2

        cv2.setNumThreads(threads)
        _models.clear()
        try:
            _models[key] = PoseLandmarker(options.landmarker_options(threads))
        except PosepipeError:
            raise
        except Exception as exc:  # noqa: BLE001 - a runtime's own words for a corrupt model file
            raise PosepipeError(f"cannot load the models: {_sentence(exc)}") from None
    return _models[key]


def lost(unit: Unit, dataset: BatchDir) -> Outcome:
    """The outcome of a unit whose worker died every time it ran (written by the committer)."""
    staged = dataset.staging_file(unit.key)
    message = "the worker process died while processing it (out of memory?)"
    statuses = [status_row(s.name, s.kind, 0, 0, 0.0, message) for s in unit.sources]
    PartWriter(staged).close(statuses)
    return Outcome(unit.key, str(staged), statuses)


def _sentence(exc: BaseException) -> str:
    if isinstance(exc, PosepipeError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory (is the input too large?)"
    first_line = (str(exc).splitlines() or [""])[0]
    return f"unexpected error ({type(exc).__name__}: {first_line})"


def _strip_name(message: str, path: str) -> str:
    """Video errors start with the path; the status row names the source already."""
    return message.removeprefix(f"{path}: ")


def run_unit(unit: Unit, staged: str, options: BatchOptions, threads: int) -> Outcome:
    """Process ``unit`` into the part file ``staged``. Each source's failure is its status row's
    sentence; only failing to write the part raises."""
    writer = PartWriter(Path(staged))
    model = landmarker(options, threads)
    try:
        if unit.kind == "video":
            statuses = [_video(unit.sources[0], writer, model, options)]
        else:
            statuses = pose_photos(unit.sources, writer, model)
    except BaseException:
        writer.abandon()
        raise
    writer.close(statuses)
    return Outcome(unit.key, staged, statuses)


def pose_photo(source: Source, writer, model: PoseLandmarker) -> dict:
    """One photo's rows into ``writer`` (anything with PartWriter's ``write``); its status row."""
    start = time.perf_counter()
    try:
        poses = model.detect(read_image(source.path))
    except Exception as exc:  # noqa: BLE001 - an input's failure is its status, never the run's
        return status_row(source.name, "image", 0, 0, time.perf_counter() - start, _sentence(exc))
    writer.write(source.name, 0, 0.0, poses)
    return status_row(source.name, "image", 1, len(poses), time.perf_counter() - start)


def pose_photos(sources: tuple[Source, ...] | list[Source], writer, model: PoseLandmarker) -> list[dict]:
    """A chunk's photos, the landmark model run once on all their crops (``detect_many``: what a
    GPU needs; on CPUs as fast as photo by photo, or faster); their status rows. Each photo's
    seconds are its share of the chunk's time. Should the chunk fail as a whole (a photo too large
    for memory), it runs again photo by photo, so each failure is its own photo's."""
    start = time.perf_counter()
    unreadable: dict[int, str] = {}

    def readable():
        for index, source in enumerate(sources):
            try:
                yield read_image(source.path)
            except Exception as exc:  # noqa: BLE001 - an input's failure is its status, never the run's
                unreadable[index] = _sentence(exc)

    try:
        found = iter(model.detect_many(readable()))
    except Exception:  # noqa: BLE001 - one photo's failure must stay that photo's
        return [pose_photo(source, writer, model) for source in sources]
    seconds = (time.perf_counter() - start) / max(1, len(sources))
    statuses = []
    for index, source in enumerate(sources):
        if index in unreadable:
            statuses.append(status_row(source.name, "image", 0, 0, seconds, unreadable[index]))
            continue
        poses = next(found)
        writer.write(source.name, 0, 0.0, poses)
        statuses.append(status_row(source.name, "image", 1, len(poses), seconds))
    return statuses


class _Counted:
    """The tracker's sink: rows into the part, frames and poses counted."""

    needs_pixels = False

    def __init__(self, writer: PartWriter, name: str):
        self.writer, self.name, self.frames, self.poses = writer, name, 0, 0

    def write(self, frame, poses) -> None:
        self.writer.write(self.name, frame.index, frame.timestamp_ms, poses)
        self.frames += 1
        self.poses += len(poses)

    def close(self) -> None:
        pass  # the part stays open for the status rows


def _video(source: Source, writer: PartWriter, model: PoseLandmarker, options: BatchOptions) -> dict:
    from ..video.outputs import VideoOutputs
    from ..video.runner import track_into
    from ..video.sources import PyAVSource
    from ..video.tracking import PoseTracker

    start = time.perf_counter()
    counted = _Counted(writer, source.name)
    try:
        with PyAVSource(source.path) as frames:
            VideoOutputs().check(source.path, frames.fps, options.zero_lag)  # the cutoff against this frame rate
            # The tracker borrows the process's landmarker; closing it would close the models.
            tracker = PoseTracker(smooth=options.smooth and options.zero_lag is None, landmarker=model)
            track_into(frames, tracker, lambda: [counted], options.zero_lag)
    except OutputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the frames before a failure keep their rows
        error = _strip_name(_sentence(exc), source.path)
        return status_row(source.name, "video", counted.frames, counted.poses, time.perf_counter() - start, error)
    return status_row(source.name, "video", counted.frames, counted.poses, time.perf_counter() - start)
