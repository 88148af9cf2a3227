"""A whole video through the tracker into its outputs, with decoding, inference and writing
overlapped; the zero-lag filter's two passes.

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
from typing import Callable

import numpy as np

from ..results import Poses
from .outputs import Sink, VideoOutputs, close_all
from .smoothing import zero_lag_filter
from .sources import Frame, FrameSource, open_source
from .tracking import CorePlan, ModelTurns, PoseTracker

_END = object()


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


class _DecodeAhead:
    """How far the decoder may run ahead: ``frames`` frames past the last one whose model run
    has ended.

    A frame's slot is freed as its last model run ends (``ModelTurns.after_frame_runs``), not when
    the loop takes the frame from the queue, after the landmarks' decoding: so the decoder's
    next piece starts at once, beside the landmarks' decoding and the next crop. Started when
    the frame was taken it ended after the next crop was cut, and the next run waited for it
    (about 1.3 ms a frame, against about 0.6 now, on the street video on 2 cores).
    """

    def __init__(self, frames: int):
        self._slots = threading.Semaphore(frames)
        self._held = False

    def take_slot(self) -> bool:
        """The decoder's: wait for a slot, at most a tenth of a second (it checks for a stop)."""
        return self._slots.acquire(timeout=0.1)

    def frame_taken(self) -> None:
        self._held = True

    def free_slot(self) -> None:
        """The taken frame's slot, once."""
        if self._held:
            self._held = False
            self._slots.release()


def run_video(source: FrameSource, tracker: PoseTracker, sinks: list[Sink],
              on_frame: Callable[[Frame, Poses], None] | None = None, prefetch: int = 4) -> RunStats:
    """Track every frame of ``source`` and hand (frame, poses) to each sink, in order.

    ``on_frame`` runs on the calling thread after each frame (progress, a live window).
    """
    stats = RunStats()
    frames: queue.Queue = queue.Queue()  # bounded by ``ahead``
    ahead = _DecodeAhead(prefetch)
    results: queue.Queue = queue.Queue(prefetch * 2)
    stop = threading.Event()
    # Not for live sources: there a piece of the decoder's work waits for the next frame to
    # be captured, and a run waiting for it would add a frame of delay.
    wants_turns = tracker.uses_every_core() and not source.live
    turns = ModelTurns(active=wants_turns)
    # Files only, as the turns: a live source's frame times are its camera's.
    plan = CorePlan(adaptive=tracker.may_run_on_one_thread() and not source.live)

    def decode() -> None:
        try:
            it = iter(source)
            while not stop.is_set():
                if not ahead.take_slot():
                    continue
                with turns.helper_work():
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
    turns.after_frame_runs = ahead.free_slot
    kept_turns, tracker.turns = tracker.turns, turns
    kept_plan, tracker.core_plan = tracker.core_plan, None  # this loop's plan decides, timing whole frames
    start = time.perf_counter()
    decoder.start()
    writer.start()
    frame = None
    try:
        last = time.perf_counter()
        while (frame := frames.get()) is not _END:
            if writer.error is not None:
                break
            ahead.frame_taken()
            if frame.image is None:
                poses = Poses.empty(0, 0)
                stats.failed_frames += 1
            else:
                poses = tracker.process(frame.image, frame.timestamp_ms)
                for name in ("detector", "landmark_preprocess", "landmark_model", "postprocess"):
                    stats.stages[name] += getattr(tracker.times, name)
            ahead.free_slot()  # where no landmark model ran (nobody found, or an unreadable frame)
            results.put((frame, poses))
            stats.frames += 1
            if on_frame:
                on_frame(frame, poses)
            now = time.perf_counter()
            plan.frame_done(now - last)  # from one frame's taking to the next's: the decoder's waits count
            last = now
            tracker.one_thread = plan.one_thread
            turns.active = wants_turns and not plan.one_thread
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
            tracker.turns, tracker.core_plan, tracker.one_thread = kept_turns, kept_plan, False
    return stats


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


def track_video(source: FrameSource, tracker: PoseTracker, outputs: VideoOutputs, zero_lag_hz: float | None = None,
                on_frame: Callable[[Frame, Poses], None] | None = None) -> RunStats:
    """Track ``source`` into ``outputs``, checked before anything is opened (see ``track_into``)."""
    outputs.check(source.name, source.fps, zero_lag_hz)
    return track_into(source, tracker, lambda: outputs.open(source), zero_lag_hz, on_frame)


def track_into(source: FrameSource, tracker: PoseTracker, open_sinks: Callable[[], list[Sink]],
               zero_lag_hz: float | None = None, on_frame: Callable[[Frame, Poses], None] | None = None) -> RunStats:
    """Track ``source`` into the sinks ``open_sinks()`` makes, closing them at the end.

    With ``zero_lag_hz`` (the tracker should then not smooth) it is two passes: track every
    frame keeping only the poses, filter each track both ways, then write; sinks that need
    the pictures (JSON lines hold each frame's size, the overlay draws on it) get them by
    decoding the file again, so memory does not grow with the video's length. An
    interrupted first pass still writes the frames it tracked.
    """
    if zero_lag_hz is None:
        sinks = open_sinks()
        try:
            return run_video(source, tracker, sinks, on_frame)
        finally:
            close_all(sinks)
    tracked = _PosesOnly()
    stats = run_video(source, tracker, [tracked], on_frame)
    source.close()  # its decoder's buffers go before the second decoder's come
    smooth_offline(tracked.items, zero_lag_hz)
    sinks = open_sinks()
    try:
        if any(sink.needs_pixels for sink in sinks):
            _write_decoding_again(source, tracked.items, sinks)
        else:
            for frame, poses in tracked.items:
                for sink in sinks:
                    sink.write(frame, poses)
    finally:
        close_all(sinks)
    return stats


class _PosesOnly:
    """The first zero-lag pass's sink: each frame's place and poses, not its pixels."""

    needs_pixels = False

    def __init__(self):
        self.items: list[tuple[Frame, Poses]] = []

    def write(self, frame: Frame, poses: Poses) -> None:
        self.items.append((frame.without_pixels(), poses))

    def close(self) -> None:
        pass


def _write_decoding_again(source: FrameSource, items: list[tuple[Frame, Poses]], sinks: list[Sink]) -> None:
    if not items:
        return
    poses_at = {frame.index: poses for frame, poses in items}
    last = items[-1][0].index
    with open_source(source.name, source.fps) as again:
        for frame in again:
            if frame.index > last:
                break
            poses = poses_at.get(frame.index)
            if poses is None:  # decoded now but not in the first pass: nothing was tracked on it
                poses = Poses.empty(0, 0)
            for sink in sinks:
                sink.write(frame, poses)
