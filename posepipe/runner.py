"""A whole video through the tracker, with decoding, inference and writing overlapped.

Three threads joined by short queues: the decoder fills frames ahead, the caller's thread
runs the models, a writer draws, encodes and writes. PyAV, OpenCV, LiteRT and ONNX
Runtime release the GIL while they work, so the stages run side by side on separate
cores. Ctrl-C stops the decoder; every frame already inferred is still written, and every
output is closed properly (whole JSON lines and CSV rows, a playable video, a Parquet
footer).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .results import Poses
from .smoothing import zero_lag_filter
from .tracking import PoseTracker
from .video import Frame, FrameSource

_END = object()


class Sink(Protocol):
    def write(self, frame: Frame, poses: Poses) -> None: ...
    def close(self) -> None: ...


@dataclass
class RunStats:
    """Frames done and seconds spent per stage (decode and write on their own threads)."""

    frames: int = 0
    failed_frames: int = 0
    wall: float = 0.0
    stages: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("decode", "detector", "landmark_preprocess", "landmark_model", "postprocess", "write"), 0.0))
    interrupted: bool = False

    def per_frame_ms(self) -> dict[str, float]:
        return {k: 1000 * v / max(1, self.frames) for k, v in self.stages.items()}


class _Worker(threading.Thread):
    """A thread whose exception is re-raised where it is joined."""

    def __init__(self, target: Callable[[], None]):
        super().__init__(daemon=True)
        self.work, self.error = target, None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc

    def join_and_raise(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def run_video(source: FrameSource, tracker: PoseTracker, sinks: list[Sink],
              on_frame: Callable[[Frame, Poses], None] | None = None, prefetch: int = 4) -> RunStats:
    """Track every frame of ``source`` and hand (frame, poses) to each sink, in order.

    ``on_frame`` runs on the calling thread after each frame (progress, a live window).
    """
    stats = RunStats()
    frames: queue.Queue = queue.Queue(prefetch)
    results: queue.Queue = queue.Queue(prefetch * 2)
    stop = threading.Event()

    def decode() -> None:
        try:
            it = iter(source)
            while not stop.is_set():
                t = time.perf_counter()
                frame = next(it, None)
                stats.stages["decode"] += time.perf_counter() - t
                if frame is None:
                    break
                frames.put(frame)
        finally:
            frames.put(_END)

    def write() -> None:
        while (item := results.get()) is not _END:
            t = time.perf_counter()
            for sink in sinks:
                sink.write(*item)
            stats.stages["write"] += time.perf_counter() - t

    decoder, writer = _Worker(decode), _Worker(write)
    start = time.perf_counter()
    decoder.start()
    writer.start()
    frame = None
    try:
        while (frame := frames.get()) is not _END:
            if writer.error is not None:
                break
            if frame.image is None:
                poses = Poses.empty(0, 0)
                stats.failed_frames += 1
            else:
                poses = tracker.process(frame.image, frame.timestamp_ms)
                for name in ("detector", "landmark_preprocess", "landmark_model", "postprocess"):
                    stats.stages[name] += getattr(tracker.times, name)
            results.put((frame, poses))
            stats.frames += 1
            if on_frame:
                on_frame(frame, poses)
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        stop.set()
        while frame is not _END:  # let a blocked decoder finish
            frame = frames.get()
        results.put(_END)
        try:
            writer.join_and_raise()
            if not stats.interrupted:
                decoder.join_and_raise()
        finally:
            stats.wall = time.perf_counter() - start
    return stats


class JsonLinesSink:
    """The contract's records, one per frame; a frame that could not be read gets an error record."""

    def __init__(self, writer, source: str):
        self.writer, self.source = writer, source

    def write(self, frame: Frame, poses: Poses) -> None:
        from .io import image_record

        if frame.image is None:
            self.writer.write({"source": self.source, "frame": frame.index, "error": frame.error})
        else:
            self.writer.write(image_record(self.source, frame.image, poses, frame.index, frame.timestamp_ms))

    def close(self) -> None:
        self.writer.close()


class TableSink:
    """A CSV or Parquet writer from :mod:`posepipe.exports`."""

    def __init__(self, table):
        self.table = table

    def write(self, frame: Frame, poses: Poses) -> None:
        if frame.image is not None:
            self.table.write(frame.index, frame.timestamp_ms, poses)

    def close(self) -> None:
        self.table.close()


class OverlaySink:
    """The drawn video (see :class:`posepipe.video.VideoWriter`)."""

    def __init__(self, video_writer, annotator=None):
        from .drawing import PoseAnnotator

        self.video, self.annotator = video_writer, annotator or PoseAnnotator()

    def write(self, frame: Frame, poses: Poses) -> None:
        if frame.image is not None:
            self.video.write(self.annotator.annotate(frame.image, poses), frame.timestamp_ms)

    def close(self) -> None:
        self.video.close()


def smooth_offline(series: list[tuple[Frame, Poses]], cutoff_hz: float) -> None:
    """Replace each person's landmarks by their zero-lag filtered track, in place.

    A track is filtered over each run of consecutive frames it appears in; gaps are not
    bridged (the person may have moved anywhere while unseen).
    """
    runs: dict[int, list[list[tuple[int, int]]]] = {}
    last_seen: dict[int, int] = {}
    for k, (_, poses) in enumerate(series):
        for j, track in enumerate(poses.track_ids if poses.track_ids is not None else []):
            track = int(track)
            if last_seen.get(track) != k - 1:
                runs.setdefault(track, []).append([])
            runs[track][-1].append((k, j))
            last_seen[track] = k
    for track_runs in runs.values():
        for run in track_runs:
            times = np.array([series[k][0].timestamp_ms / 1000.0 for k, _ in run])
            for name in ("landmarks", "world_landmarks"):
                values = np.stack([getattr(series[k][1], name)[j] for k, j in run])
                filtered = zero_lag_filter(values, times, cutoff_hz).astype(np.float32)
                for (k, j), value in zip(run, filtered):
                    getattr(series[k][1], name)[j] = value
