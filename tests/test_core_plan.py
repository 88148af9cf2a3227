"""``CorePlan``: video tracking moves its models to one thread each while other processes keep
a core busy, and back when they stop. The one-thread twins compute the very same outputs, so
the choice changes how fast, never what: checked here on both runtimes and across a switch
on every frame; the plan's rule is checked on made-up window times."""

import math

import numpy as np
import pytest

from posepipe.models.assets import cache_dir
from posepipe.models.cpu import cpu_info
from posepipe.models.runtime import litert_available, load_model
from posepipe.video.runner import run_video
from posepipe.video.sources import Frame, FrameSource
from posepipe.video.tracking import CorePlan, PoseTracker
from tests.conftest import sample_image

BACKENDS = ["onnxruntime"] + (["litert"] if litert_available() else [])
MS = 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_thread_twins_compute_the_same_outputs(model_paths, backend):
    detector, landmark = model_paths
    rng = np.random.default_rng(7)
    for path, drop, size in ((detector, (), 224), (landmark, (2,), 256), (landmark, (), 256)):
        model = load_model(path, backend, cache_dir(), threads=2, drop_outputs=drop)
        twin = model.with_threads(1)
        batch = rng.random((1, 3, size, size), dtype=np.float32)
        for ours, theirs in zip(model.run(batch), twin.run(batch), strict=True):
            assert (ours is None and theirs is None) or np.array_equal(ours, theirs), (path.name, drop)


def _frames(count: int) -> list[np.ndarray]:
    """A photo of a person drifting a few pixels a frame, as a video would have her."""
    photo = sample_image("grace_hopper.jpg")
    return [np.ascontiguousarray(np.roll(photo, (2 * k, 3 * k), axis=(0, 1))) for k in range(count)]


def test_switching_threads_between_frames_changes_no_landmark(landmarker):
    frames = _frames(8)
    fixed, switching = PoseTracker(landmarker=landmarker), PoseTracker(landmarker=landmarker)
    for k, image in enumerate(frames):
        switching.one_thread = k % 2 == 1
        ours, theirs = switching.process(image, k * 33.3), fixed.process(image, k * 33.3)
        assert len(ours) == len(theirs) == 1
        assert np.array_equal(ours.landmarks, theirs.landmarks) and np.array_equal(ours.rois, theirs.rois)
        assert np.array_equal(ours.world_landmarks, theirs.world_landmarks)
    assert switching._one_thread_models is not None  # the twins did run


def test_a_tracker_fed_frame_by_frame_follows_its_own_plan(landmarker, monkeypatch):
    """As the MediaPipe APIs feed it: each process() call is timed for the tracker's plan,
    whose choice the next call runs on, with the same landmarks."""
    monkeypatch.setattr(CorePlan, "WINDOW", 1)
    timed = []

    def flip(plan, median, others):
        timed.append(median)
        plan.one_thread = not plan.one_thread

    monkeypatch.setattr(CorePlan, "window_done", flip)
    fixed, planned = PoseTracker(landmarker=landmarker), PoseTracker(landmarker=landmarker)
    planned.core_plan = CorePlan(adaptive=True)
    for k, image in enumerate(_frames(5)):
        assert planned.one_thread == (k % 2 == 1)
        ours, theirs = planned.process(image, k * 33.3), fixed.process(image, k * 33.3)
        assert np.array_equal(ours.landmarks, theirs.landmarks)
    assert len(timed) == 5 and all(0 < t < 60 for t in timed)


def test_the_mediapipe_apis_track_with_a_plan():
    import posepipe as mp
    from posepipe.tasks import python as tasks
    from posepipe.tasks.python import vision

    adaptive = cpu_info().usable_cores > 1
    with mp.solutions.pose.Pose() as pose:
        assert pose._tracker.core_plan.adaptive == adaptive
    with mp.solutions.pose.Pose(static_image_mode=True) as still:
        assert still._tracker is None
    options = vision.PoseLandmarkerOptions(base_options=tasks.BaseOptions(), running_mode=vision.RunningMode.VIDEO)
    with vision.PoseLandmarker.create_from_options(options) as landmarker:
        assert landmarker._tracker.core_plan.adaptive == adaptive


def test_twins_that_cannot_open_leave_the_models_as_opened(landmarker, monkeypatch):
    def fail(self, threads):
        raise MemoryError("no room for a second copy")

    tracker = PoseTracker(landmarker=landmarker)
    monkeypatch.setattr(type(landmarker.landmark_model.model), "with_threads", fail)
    tracker.one_thread = True
    poses = tracker.process(_frames(1)[0], 0.0)
    assert len(poses) == 1 and tracker._models() == (landmarker.detector, landmarker.landmark_model)


class _Photos(FrameSource):
    name, fps, live = "drifting photo", 30.0, False

    def __init__(self, images):
        self.images = images

    def __iter__(self):
        for index, image in enumerate(self.images):
            yield Frame(index, index * 33.3, image)


class _Poses:
    needs_pixels = False

    def __init__(self):
        self.items = []

    def write(self, frame, poses):
        self.items.append(poses)

    def close(self):
        pass


def test_run_video_applies_the_plan_frame_by_frame(landmarker, monkeypatch):
    """A plan that changes its mind after every frame: run_video hands each choice to the
    tracker (one thread, no turns) and the landmarks are those of a run that never switches."""
    frames = _frames(6)
    steady = _Poses()
    run_video(_Photos(frames), PoseTracker(landmarker=landmarker), [steady])

    seen = []
    monkeypatch.setattr(CorePlan, "WINDOW", 1)

    def flip(plan, median, others):
        plan.one_thread = not plan.one_thread

    monkeypatch.setattr(CorePlan, "window_done", flip)
    tracker = PoseTracker(landmarker=landmarker)
    own_plan = tracker.core_plan = CorePlan(adaptive=False)  # set aside during the run: one plan decides
    monkeypatch.setattr(tracker, "may_run_on_one_thread", lambda: True)
    process = tracker.process

    def watched(image, timestamp_ms):
        assert tracker.core_plan is None
        seen.append((tracker.one_thread, tracker.turns.active))
        return process(image, timestamp_ms)

    monkeypatch.setattr(tracker, "process", watched)
    switching = _Poses()
    run_video(_Photos(frames), tracker, [switching])
    assert [one for one, _ in seen] == [k % 2 == 1 for k in range(len(frames))]
    assert not any(one and active for one, active in seen), "turns taken while the models ran on one thread"
    assert tracker.one_thread is False and tracker.core_plan is own_plan  # left as found
    for ours, theirs in zip(switching.items, steady.items, strict=True):
        assert np.array_equal(ours.landmarks, theirs.landmarks)


def _windows(plan: CorePlan, *windows: tuple[float, float | None]) -> list[bool]:
    """Feed (median ms, others' share) windows; the plan chosen after each."""
    chosen = []
    for median_ms, others in windows:
        plan.window_done(median_ms * MS, others)
        chosen.append(plan.one_thread)
    return chosen


def test_a_quiet_machine_stays_on_every_core():
    plan = CorePlan(adaptive=True)
    noisy = [9.0, 9.5, 8.8, 10.5, 9.1, 10.8, 8.9] * 3  # within 1.25x the best window
    assert _windows(plan, *((ms, 0.02) for ms in noisy)) == [False] * len(noisy)


def test_a_busy_machine_moves_to_one_thread_and_back_when_quiet():
    plan = CorePlan(adaptive=True)
    chosen = _windows(plan, (12.0, 0.0), (9.0, 0.0), (9.0, 0.05),
                      (20.0, 0.5),  # another process takes a core: one thread is tried
                      (13.0, 0.5),  # faster than every core's last window: kept
                      (13.5, 0.5), (13.2, 0.5),
                      (13.0, 0.05),  # the others have stopped: every core is tried
                      (9.2, 0.0))  # faster than one thread's last: kept
    assert chosen == [False, False, False, True, True, True, True, False, False]


def test_one_thread_is_left_when_it_is_not_faster():
    plan = CorePlan(adaptive=True)
    chosen = _windows(plan, (12.0, None), (9.0, None), (12.0, None),  # 1.33x the best: a try
                      (14.0, None))  # one thread slower than that: back to every core
    assert chosen == [False, False, True, False]


def test_while_busy_every_core_is_retried_less_and_less_often():
    plan = CorePlan(adaptive=True)
    assert _windows(plan, (20.0, 0.5)) == [True]  # busy from the first window: one thread at once
    assert _windows(plan, (13.0, 0.5)) == [True]
    retries = []
    for window in range(130):
        plan.window_done(20.0 * MS if not plan.one_thread else 13.0 * MS, 0.5)
        if not plan.one_thread:
            retries.append(window)
    gaps = np.diff(retries)
    assert len(retries) >= 3 and all(b >= a for a, b in zip(gaps, gaps[1:]))
    assert retries[0] == CorePlan.RETRY_AFTER - 1 and gaps[0] == 2 * CorePlan.RETRY_AFTER + 1
    assert gaps.max() == 8 * CorePlan.RETRY_AFTER + 1  # the longest wait, reached and kept


def test_without_adaptation_nothing_changes(monkeypatch):
    plan = CorePlan(adaptive=False)
    calls = []
    monkeypatch.setattr(plan, "window_done", lambda *a: calls.append(a))
    for _ in range(5 * CorePlan.WINDOW):
        plan.frame_done(1.0)
    assert calls == [] and plan.one_thread is False
    adaptive = CorePlan(adaptive=True)
    monkeypatch.setattr(adaptive, "window_done", lambda median, others: calls.append(median))
    for k in range(2 * CorePlan.WINDOW):
        adaptive.frame_done(k * MS)
    assert len(calls) == 2 and math.isclose(calls[0], np.median(np.arange(CorePlan.WINDOW)) * MS)


def test_only_default_threads_on_several_cores_may_switch(landmarker):
    tracker = PoseTracker(landmarker=landmarker)
    assert tracker.may_run_on_one_thread() == (cpu_info().usable_cores > 1)
    with PoseTracker(threads=1) as given:
        assert not given.may_run_on_one_thread()
