"""Video mode: follow people from frame to frame as MediaPipe's ``pose_landmark_cpu.pbtxt`` does.

Each tracked person's next crop comes from this frame's (smoothed) auxiliary landmarks, so
the detector runs only while fewer than ``num_poses`` people are tracked: for one person,
on the first frame and after the pose is lost (presence at or below its threshold).
Every person keeps a track id, and their own filters, until lost.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..accurate import accurate_people
from ..detector import box_iou
from ..landmarks import select
from ..models.cpu import cpu_info, cpu_ticks, others_share
from ..pipeline import PoseLandmarker, PoseLandmarkerOptions, StageTimes, as_rgb_uint8
from ..results import Poses
from ..roi import RegionOfInterest, roi_from_alignment_points
from .smoothing import PoseSmoother

# A new detection whose box overlaps a tracked person's this much is that person again.
SAME_PERSON_IOU = 0.5


@dataclass
class Track:
    id: int
    roi: RegionOfInterest  # where to look in the next frame
    smoother: PoseSmoother = field(repr=False)


class ModelTurns:
    """Turns on the cores between the tracker's model runs and the threads around them.

    Where a model runs on every core, a decoder thread that works during a run takes a core
    from one of the run's threads, and the others wait for it at every operator: on 2 cores
    the landmark model took 6.7 ms a frame beside PyAV's decoding thread, 5.0 ms alone. So
    runs and the decoder's pieces of work (a frame each) take turns, runs first: no piece
    starts once a run is waiting, and a run waits for the piece under way to finish. The
    decoder works while the next crop is cut and the landmarks decoded. Inactive (models on
    fewer threads than cores) nobody waits.
    """

    def __init__(self, active: bool):
        self.active = active
        self._changed = threading.Condition()
        self._model_turn = False  # a run is waiting or under way
        self._pieces = 0  # helper pieces under way
        self.after_frame_runs: Callable[[], None] | None = None  # called as a frame's last run ends

    @contextmanager
    def model_run(self, last_of_frame: bool = True):
        """``with turns.model_run():`` around a model's run; ``last_of_frame``: no other run
        follows for this frame (the detector's is followed by the landmark model's)."""
        try:
            if not self.active:
                yield
                return
            with self._changed:
                self._model_turn = True
                self._changed.wait_for(lambda: self._pieces == 0)
            try:
                yield
            finally:
                with self._changed:
                    self._model_turn = False
                    self._changed.notify_all()
        finally:
            if last_of_frame and self.after_frame_runs is not None:
                self.after_frame_runs()

    @contextmanager
    def helper_work(self):
        """``with turns.helper_work():`` around a piece of a helper thread's work."""
        if not self.active:
            yield
            return
        with self._changed:
            self._changed.wait_for(lambda: not self._model_turn)
            self._pieces += 1
        try:
            yield
        finally:
            with self._changed:
                self._pieces -= 1
                self._changed.notify_all()


class CorePlan:
    """How the tracker uses the cores, chosen as it goes from the frames' own times
    (``run_video``'s, or ``PoseTracker.core_plan`` for frames handed one at a time).

    Both plans give the same landmarks: the models' one-thread twins compute the same outputs.

    - **Every core** (the start): each model run on all the cores, the decoder working between
      runs (``ModelTurns``). Fastest on a quiet machine: the street video (205 frames, 720p) in
      2.1-2.4 s on 2 cores of an AMD EPYC Zen 4, against 2.8-2.9 s on one thread.
    - **One thread**: the models on one thread each, the decoder beside them. Fastest when
      other processes keep a core busy: a run on every core then waits at each operator for
      its thread that is not running. The same video beside one busy process: 3.1-3.3 s, against
      4.1-4.2 s on every core.

    Frame times (the median of each window of ``WINDOW`` frames, so that a frame with a detector
    run does not count) decide. On every core, one thread is tried for a window when other
    processes took ``BUSY`` of the CPUs or more during a window, or it was ``SLOWER`` than the
    best window; a plan tried is kept while its window is faster than the other plan's last.
    On one thread, every core is tried again after ``RETRY_AFTER`` windows, or at once when
    the other processes have gone quiet.
    """

    WINDOW = 10  # frames
    BUSY = 0.25  # of all CPUs' time, taken by other processes
    QUIET = 0.1
    SLOWER = 1.25  # times the best window on every core
    RETRY_AFTER = 5  # windows on one thread; doubled after each retry that lost, up to 8 times that

    def __init__(self, adaptive: bool):
        self.adaptive = adaptive
        self.one_thread = False
        self._times: list[float] = []
        self._ticks = cpu_ticks() if adaptive else None
        self._last = {False: math.inf, True: math.inf}  # each plan's last window
        self._best_every_core = math.inf
        self._windows = 0
        self._trying = False
        self._windows_on_one = 0
        self._retry_after = self.RETRY_AFTER

    def frame_done(self, seconds: float) -> None:
        """Count one frame's time; at a window's end, choose the plan of the next."""
        if not self.adaptive:
            return
        self._times.append(seconds)
        if len(self._times) < self.WINDOW:
            return
        ticks = cpu_ticks()
        self.window_done(statistics.median(self._times), others_share(self._ticks, ticks))
        self._times, self._ticks = [], ticks

    def window_done(self, median: float, others: float | None) -> None:
        """A window's median frame time on the present plan, and the share of all CPUs' time
        other processes took meanwhile (None: unknown)."""
        self._windows += 1
        plan = self.one_thread
        busy = others is not None and others >= self.BUSY
        if self._windows == 1:
            # Opening the models' caches and the first detector run: not the plan's speed.
            if busy:
                self._try(True)
            return
        self._last[plan] = median
        if not plan:
            self._best_every_core = min(self._best_every_core, median)
        if self._trying:
            self._trying = False
            won = median < self._last[not plan]
            if not won:
                self.one_thread = not plan  # back to the plan before
            if plan is False:  # every core was retried
                self._retry_after = self.RETRY_AFTER if won else min(8 * self.RETRY_AFTER, 2 * self._retry_after)
            self._windows_on_one = 0
            return
        if not plan and (busy or median > self.SLOWER * self._best_every_core):
            self._try(True)
        elif plan:
            self._windows_on_one += 1
            quiet = others is not None and others < self.QUIET
            if quiet or self._windows_on_one >= self._retry_after:
                self._try(False)

    def _try(self, one_thread: bool) -> None:
        self.one_thread, self._trying = one_thread, True


def _square(roi: RegionOfInterest) -> np.ndarray:
    h = roi.size / 2
    return np.array([roi.x - h, roi.y - h, roi.x + h, roi.y + h])


class PoseTracker:
    """Landmarks for a sequence of frames (MediaPipe's ``static_image_mode=False``).

    >>> with PoseTracker(num_poses=2) as tracker:              # doctest: +SKIP
    ...     for t_ms, frame in frames:
    ...         poses = tracker.process(frame, t_ms)             # poses.track_ids is set

    ``smooth`` turns MediaPipe's landmark filtering on (default) or off; ``smooth_masks``
    (default: as ``smooth``) the blending of segmentation masks over frames. Timestamps must
    increase; the filters adapt to the actual frame intervals. ``plan_cores``, for callers that
    hand frames one at a time (the MediaPipe APIs): a :class:`CorePlan` times each ``process``
    call and moves the models to one thread while other processes keep a core busy.
    """

    def __init__(self, options: PoseLandmarkerOptions | None = None, smooth: bool = True,
                 landmarker: PoseLandmarker | None = None, smooth_masks: bool | None = None, *,
                 plan_cores: bool = False, **overrides):
        self.landmarker = landmarker or PoseLandmarker(options, **overrides)
        self.options = self.landmarker.options
        self.smooth = smooth
        self.smooth_masks = smooth_masks  # None: as smooth (PoseSmoother decides)
        self.tracks: list[Track] = []
        self.next_id = 0
        self.times = StageTimes()
        self.turns = ModelTurns(active=False)  # run_video makes it active where the models fill every core
        self.one_thread = False  # a CorePlan sets it: the models' one-thread twins run instead
        self._one_thread_models: tuple | None = None
        # ``plan_cores``: a plan timing each process() call. run_video keeps its own, timing
        # whole frames, decoder waits included.
        self.core_plan: CorePlan | None = CorePlan(adaptive=self.may_run_on_one_thread()) if plan_cores else None

    def uses_every_core(self) -> bool:
        """Whether the models run on as many threads as this process has cores."""
        threads = self.options.threads
        return not threads or threads >= cpu_info().usable_cores

    def may_run_on_one_thread(self) -> bool:
        """Whether a CorePlan may switch the models to one thread each: where they were opened on
        every core by default (no ``threads`` given) on a CPU with more than one."""
        return not self.options.threads and self.options.device == "cpu" and cpu_info().usable_cores > 1

    def _models(self):
        """The (detector, landmark model) this frame runs: as opened, or, with ``one_thread``,
        the same networks opened again on one thread (once, on first use). Both give the same
        outputs, so switching between frames changes no landmark."""
        lm = self.landmarker
        if not self.one_thread:
            return lm.detector, lm.landmark_model
        if self._one_thread_models is None:
            try:
                self._one_thread_models = (lm.detector.with_threads(1), lm.landmark_model.with_threads(1))
            except Exception:  # noqa: BLE001 - out of memory for a second copy, for one: the models as opened serve
                self._one_thread_models = (lm.detector, lm.landmark_model)
        return self._one_thread_models

    def __enter__(self) -> "PoseTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._one_thread_models = None
        self.landmarker.close()

    def reset(self) -> None:
        """Forget everyone (for a new, unrelated sequence)."""
        self.tracks = []

    def process(self, image: np.ndarray, timestamp_ms: float) -> Poses:
        if self.core_plan is None:
            return self._process(image, timestamp_ms)
        started = time.perf_counter()
        poses = self._process(image, timestamp_ms)
        self.core_plan.frame_done(time.perf_counter() - started)
        self.one_thread = self.core_plan.one_thread
        return poses

    def _process(self, image: np.ndarray, timestamp_ms: float) -> Poses:
        image = as_rgb_uint8(image)
        height, width = image.shape[:2]
        detector, landmark_model = self._models()
        t0 = time.perf_counter()
        rois = [t.roi for t in self.tracks]
        if len(self.tracks) < self.options.num_poses:
            rois += self._new_rois(image, rois, detector, landmark_model)
        t1 = time.perf_counter()
        self.times = StageTimes(detector=t1 - t0)
        if not rois:
            self.tracks = []
            return Poses.empty(width, height)

        batch = landmark_model.preprocess(image, rois)
        t2 = time.perf_counter()
        with self.turns.model_run():
            outputs = landmark_model.infer(batch)
        t3 = time.perf_counter()
        poses = self._update(outputs, rois, (width, height), timestamp_ms / 1000.0)
        t4 = time.perf_counter()
        self.times.landmark_preprocess, self.times.landmark_model, self.times.postprocess = t2 - t1, t3 - t2, t4 - t3
        return poses

    def _new_rois(self, image: np.ndarray, tracked: list[RegionOfInterest], detector, landmark_model
                  ) -> list[RegionOfInterest]:
        """Crops for detected people not already tracked, best first, up to ``num_poses`` in all.

        Accurate: the still pipeline's accurate search (refined crops, a fallback when the
        detector finds nobody) gives the crops, at the cost of its landmark passes on these frames.
        """
        if self.options.accurate:
            found = accurate_people(detector, landmark_model, image, self.options.num_poses,
                                    self.options.min_pose_presence_confidence, False, self.landmarker.recipe)
            candidates = [person.roi for person in found]
        else:
            with self.turns.model_run(last_of_frame=False):
                detections = detector.detect(image)
            size = (image.shape[1], image.shape[0])
            candidates = [roi_from_alignment_points(kp[0], kp[1], image_size=size) for kp in detections.keypoints]
        taken = [_square(r) for r in tracked]
        new = []
        for roi in candidates:
            if len(tracked) + len(new) >= self.options.num_poses:
                break
            if taken and box_iou(_square(roi), np.array(taken)).max() > SAME_PERSON_IOU:
                continue
            taken.append(_square(roi))
            new.append(roi)
        return new

    def _update(self, outputs: list[np.ndarray], rois: list[RegionOfInterest], image_size: tuple[int, int],
                time_s: float) -> Poses:
        """Decode, smooth per track, and move each surviving track's crop to its new place."""
        lm = self.landmarker
        n_tracked = len(self.tracks)
        present = [i for i in range(len(rois)) if outputs[1][i, 0] > self.options.min_pose_presence_confidence]
        decoded = lm.landmark_model.postprocess(select(outputs, present), [rois[i] for i in present],
                                                image_size, self.options.output_segmentation_masks)
        tracks, kept, boxes = [], [], []
        for i, out in zip(present, decoded):
            if i < n_tracked:
                track = self.tracks[i]
            else:
                track = Track(self.next_id, rois[i], PoseSmoother(self.smooth, self.smooth_masks))
                self.next_id += 1
            s = track.smoother(time_s, out.landmarks, out.visibility, out.world, out.auxiliary, out.mask, image_size)
            # Two crops that converged on one person: keep the older track.
            box = np.concatenate([s.landmarks[:, :2].min(0), s.landmarks[:, :2].max(0)])
            if boxes and box_iou(box, np.array(boxes)).max() > SAME_PERSON_IOU:
                continue
            boxes.append(box)
            track.roi = roi_from_alignment_points(s.auxiliary_landmarks[0, :2], s.auxiliary_landmarks[1, :2],
                                                  image_size=image_size)
            tracks.append(track)
            kept.append((i, out, s))
        self.tracks = tracks  # a person not present is lost: their filters go with them (MediaPipe resets)
        if not kept:
            return Poses.empty(*image_size)
        f32 = lambda xs: np.stack(xs).astype(np.float32)  # noqa: E731
        return Poses(
            landmarks=f32([s.landmarks for _, _, s in kept]), visibility=f32([s.visibility for _, _, s in kept]),
            presence=f32([o.presence for _, o, _ in kept]), world_landmarks=f32([s.world_landmarks for _, _, s in kept]),
            scores=np.array([o.score for _, o, _ in kept], np.float32),
            rois=np.stack([rois[i].as_array() for i, _, _ in kept]),
            auxiliary_landmarks=f32([s.auxiliary_landmarks for _, _, s in kept]), image_size=image_size,
            masks=f32([s.mask for _, _, s in kept]) if self.options.output_segmentation_masks else None,
            track_ids=np.array([t.id for t in tracks], np.int64))
