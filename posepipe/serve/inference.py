"""The models of one server process: loaded on first use, each instance used by one request
at a time (a LiteRT interpreter is not safe to share between threads), and the bound on how
many requests are in flight.

Photo requests are admitted by a :class:`Gate` (one past its limit gets 503) and run on a
thread pool; a request that runs out of time gets its answer, while its thread finishes the
inference it started and only then gives its place back, so timeouts cannot pile work up.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ..pipeline import PoseLandmarker, PoseLandmarkerOptions
from .errors import ApiError


@dataclass(frozen=True)
class Thresholds:
    """What a request may choose without loading other models."""

    num_poses: int = 1
    min_detection_confidence: float = 0.5
    min_presence_confidence: float = 0.5
    accurate: bool = False  # posepipe's accurate mode: more model runs on the same models


class _Slot:
    """One place to run: a landmarker without and one with segmentation masks, each loaded on
    first use (masks change which model outputs are kept, so they are separate models)."""

    def __init__(self, threads: int):
        self.threads = threads
        self.landmarkers: dict[bool, PoseLandmarker] = {}

    def get(self, masks: bool, thresholds: Thresholds) -> PoseLandmarker:
        landmarker = self.landmarkers.get(masks)
        if landmarker is None:
            landmarker = self.landmarkers[masks] = PoseLandmarker(PoseLandmarkerOptions(
                output_segmentation_masks=masks, threads=self.threads))
        options = landmarker.options
        options.num_poses = thresholds.num_poses
        options.min_pose_detection_confidence = thresholds.min_detection_confidence
        options.min_pose_presence_confidence = thresholds.min_presence_confidence
        options.accurate = thresholds.accurate
        options.validate()
        landmarker.detector.min_score = thresholds.min_detection_confidence
        return landmarker


class ModelPool:
    """Model instances handed to one user at a time: one per CPU core (at most ``limit``),
    each running its models on one thread. Concurrent requests then run side by side: these
    networks are too small for a run to keep several cores busy (on 2 cores, two one-thread
    instances serve 1.5x the photos one two-thread instance does, as in ``posepipe batch``)."""

    def __init__(self, limit: int):
        cores = os.cpu_count() or 1
        self.instances = max(1, min(limit, cores))
        threads = max(1, cores // self.instances)
        self._free: queue.Queue[_Slot] = queue.Queue()
        for _ in range(self.instances):
            self._free.put(_Slot(threads))

    @contextmanager
    def landmarker(self, thresholds: Thresholds = Thresholds(), masks: bool = False,
                   timeout_s: float | None = None) -> Iterator[PoseLandmarker]:
        """A landmarker for this thread alone until the block ends; waits for a free one, at
        most ``timeout_s`` (then :class:`ApiError` 504)."""
        try:
            slot = self._free.get(timeout=None if timeout_s is None else max(timeout_s, 0.001))
        except queue.Empty:
            raise ApiError(504, "the request ran out of time waiting for a free model") from None
        try:
            yield slot.get(masks, thresholds)
        finally:
            self._free.put(slot)


class Gate:
    """Counts requests in flight; :meth:`enter` refuses one past the limit."""

    def __init__(self, limit: int):
        self.limit, self.active = limit, 0
        self._lock = threading.Lock()

    def enter(self) -> "Ticket | None":
        with self._lock:
            if self.active >= self.limit:
                return None
            self.active += 1
        return Ticket(self)

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1


class Ticket:
    """A request's place behind the gate, held by the request and by the thread working
    for it; given back when both are done."""

    def __init__(self, gate: Gate):
        self.gate, self.holders = gate, 1
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            self.holders += 1

    def drop(self) -> None:
        with self._lock:
            self.holders -= 1
            done = self.holders == 0
        if done:
            self.gate._leave()


class Inference:
    """What the routes share: the pool of models, the gate, and the threads that run them."""

    def __init__(self, max_concurrent: int):
        self.pool = ModelPool(max_concurrent)
        self.gate = Gate(max_concurrent)
        # Photo requests (at most max_concurrent) plus live streams' frames.
        self.executor = ThreadPoolExecutor(max_workers=2 * max_concurrent, thread_name_prefix="posepipe-infer")

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
