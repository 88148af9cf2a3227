"""``posepipe.solutions.pose``: MediaPipe's legacy ``Pose`` on posepipe, in the manner of
MediaPipe's own pose_test.py (blank image, bad shape, three frames of a photo in each mode)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import posepipe as mp
from posepipe.errors import ModelError
from posepipe.pipeline import PoseLandmarker
from posepipe.video.smoothing import blend_masks
from posepipe.video.tracking import PoseTracker
from tests.conftest import SHARED, needs_shared, sample_image

mp_pose = mp.solutions.pose
META = json.loads((Path(__file__).parent / "data" / "drawing" / "cases.json").read_text())
DIFF_THRESHOLD = 15  # pixels, as MediaPipe's pose_test.py
WORLD_DIFF_THRESHOLD = 0.2  # metres, as MediaPipe's pose_test.py
STEP_MS = 33.333  # MediaPipe's solution clock: 33 333 µs a call


def pixels(results, image) -> np.ndarray:
    """(33, 3) pixels from a NormalizedLandmarkList, as pose_test.py converts them (z on x's scale)."""
    rows, cols = image.shape[:2]
    return np.array([(p.x * cols, p.y * rows, p.z * cols) for p in results.pose_landmarks.landmark])


def world(results) -> np.ndarray:
    return np.array([(p.x, p.y, p.z) for p in results.pose_world_landmarks.landmark])


@pytest.fixture(scope="module")
def photo():
    return sample_image("grace_hopper.jpg")


@pytest.fixture(scope="module")
def moving(photo):
    """Three frames of the photo with the person moving sideways, 12 pixels a frame."""
    return [np.ascontiguousarray(np.roll(photo, 12 * i, axis=1)) for i in range(3)]


def test_names_and_connections_are_mediapipes():
    assert {m.name: int(m) for m in mp_pose.PoseLandmark} == META["pose_landmarks"]
    assert isinstance(mp_pose.POSE_CONNECTIONS, frozenset)
    assert sorted(list(c) for c in mp_pose.POSE_CONNECTIONS) == META["pose_connections"]
    assert mp.solutions.pose_connections.POSE_CONNECTIONS == mp_pose.POSE_CONNECTIONS


def test_import_posepipe_stays_cheap_and_solutions_resolve():
    code = ("import sys, posepipe as mp; assert 'posepipe.solutions' not in sys.modules; "
            "assert 'cv2' not in sys.modules and 'numpy' not in sys.modules; "
            "p = mp.solutions.pose.Pose; import posepipe.solutions.pose as m; assert p is m.Pose; "
            "assert mp.solutions.drawing_utils.DrawingSpec and mp.solutions.drawing_styles; "
            "assert mp.framework.formats.landmark_pb2.NormalizedLandmarkList")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_parameters_in_mediapipes_order(model_paths):
    import inspect

    parameters = inspect.signature(mp_pose.Pose).parameters
    assert list(parameters) == ["static_image_mode", "model_complexity", "smooth_landmarks", "enable_segmentation",
                                "smooth_segmentation", "min_detection_confidence", "min_tracking_confidence",
                                "accurate"]
    # posepipe's extension comes after MediaPipe's seven, by keyword only, off by default.
    assert parameters["accurate"].kind is inspect.Parameter.KEYWORD_ONLY and parameters["accurate"].default is False
    with mp_pose.Pose(True, 1, True, False, True, 0.3, 0.7) as pose:
        options = pose._landmarker.options
        assert (options.min_pose_detection_confidence, options.min_pose_presence_confidence) == (0.3, 0.7)
        assert options.num_poses == 1 and not options.output_segmentation_masks


def test_invalid_image_shape(model_paths):
    with mp_pose.Pose() as pose:
        with pytest.raises(ValueError, match=r"^Input image must contain three channel rgb data\.$"):
            pose.process(np.arange(36, dtype=np.uint8).reshape(3, 3, 4))
        for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 1), np.uint8),
                    [[0, 0, 0]]):
            with pytest.raises(ValueError, match="Input image must contain three channel rgb data"):
                pose.process(bad)


@pytest.mark.parametrize("static_image_mode", [True, False], ids=["static", "video"])
def test_blank_image(model_paths, static_image_mode):
    with mp_pose.Pose(static_image_mode=static_image_mode, enable_segmentation=True) as pose:
        results = pose.process(np.full((100, 100, 3), 255, np.uint8))
    assert results.pose_landmarks is None
    assert results.pose_world_landmarks is None
    assert results.segmentation_mask is None


def test_static_mode_is_posepipes_still_pipeline(model_paths, photo, landmarker):
    expected = landmarker.detect(photo)  # the shared landmarker has masks on, as enable_segmentation
    with mp_pose.Pose(static_image_mode=True, enable_segmentation=True) as pose:
        for _ in range(3):
            results = pose.process(photo)
            ours = pixels(results, photo)
            assert np.abs(ours - expected.landmarks[0]).max() < DIFF_THRESHOLD
            assert np.abs(world(results) - expected.world_landmarks[0]).max() < WORLD_DIFF_THRESHOLD
            # The same computation, so much closer than that: only float32 normalisation between.
            assert np.abs(ours - expected.landmarks[0]).max() < 0.01
            assert len(results.pose_landmarks.landmark) == len(results.pose_world_landmarks.landmark) == 33
            first = results.pose_landmarks.landmark[mp_pose.PoseLandmark.NOSE]
            assert first.HasField("visibility") and not first.HasField("presence")  # MediaPipe clears presence
            assert first.visibility == pytest.approx(float(expected.visibility[0, 0]), abs=1e-6)
            assert results.pose_world_landmarks.landmark[0].HasField("visibility")
            mask = results.segmentation_mask
            assert mask.dtype == np.float32 and mask.shape == photo.shape[:2]
            assert np.array_equal(mask, expected.masks[0])


def test_tracking_mode_is_posepipes_tracker_on_mediapipes_clock(model_paths, moving):
    with mp_pose.Pose(enable_segmentation=True) as pose:
        got = [pose.process(frame) for frame in moving]
    with PoseTracker(output_segmentation_masks=True) as tracker:
        expected = [tracker.process(frame, (i + 1) * STEP_MS) for i, frame in enumerate(moving)]
    with PoseTracker() as tracker:
        other_clock = [tracker.process(frame, i * 20.0) for i, frame in enumerate(moving)]
    for frame, results, poses, wrong in zip(moving, got, expected, other_clock):
        ours = pixels(results, frame)
        assert np.abs(ours - poses.landmarks[0]).max() < DIFF_THRESHOLD
        assert np.abs(world(results) - poses.world_landmarks[0]).max() < WORLD_DIFF_THRESHOLD
        assert np.abs(ours - poses.landmarks[0]).max() < 0.01
        assert np.array_equal(results.segmentation_mask, poses.masks[0])
    # The filters adapt to the frame interval: MediaPipe's 33.333 ms, not any other.
    assert np.abs(pixels(got[2], moving[2]) - other_clock[2].landmarks[0]).max() > 0.01


def test_segmentation_smoothing_is_set_apart_from_landmark_smoothing(model_paths, moving, landmarker):
    raw_masks = [landmarker.detect(frame).masks[0] for frame in moving[:2]]

    def run(**flags):
        with mp_pose.Pose(enable_segmentation=True, **flags) as pose:
            return [pose.process(frame) for frame in moving[:2]]

    blended = run(smooth_landmarks=False, smooth_segmentation=True)
    plain = run(smooth_landmarks=True, smooth_segmentation=False)
    # Frame 0 comes from the detector's crop, as in the still pipeline; frame 1 from the tracked crop.
    assert np.array_equal(blended[0].segmentation_mask, raw_masks[0])
    with PoseTracker(smooth=False, output_segmentation_masks=True) as tracker:
        raw = [tracker.process(frame, (i + 1) * STEP_MS) for i, frame in enumerate(moving[:2])]
    tracked_raw = [poses.masks[0] for poses in raw]
    assert np.allclose(blended[1].segmentation_mask, blend_masks(tracked_raw[0], tracked_raw[1]), atol=1e-6)
    assert not np.allclose(blended[1].segmentation_mask, tracked_raw[1], atol=1e-3)
    with PoseTracker(smooth=True, smooth_masks=False, output_segmentation_masks=True) as tracker:
        smoothed_unblended = [tracker.process(frame, (i + 1) * STEP_MS) for i, frame in enumerate(moving[:2])]
    assert np.array_equal(plain[1].segmentation_mask, smoothed_unblended[1].masks[0])
    # And the landmarks follow smooth_landmarks alone: raw in one run, filtered in the other.
    assert np.abs(pixels(blended[1], moving[1]) - raw[1].landmarks[0]).max() < 0.01
    assert np.abs(pixels(plain[1], moving[1]) - smoothed_unblended[1].landmarks[0]).max() < 0.01
    assert np.abs(raw[1].landmarks[0] - smoothed_unblended[1].landmarks[0]).max() > 0.01


def test_static_mode_ignores_the_smoothing_flags(model_paths, photo):
    outputs = []
    for smooth in (True, False):
        with mp_pose.Pose(static_image_mode=True, smooth_landmarks=smooth, smooth_segmentation=smooth,
                          enable_segmentation=True) as pose:
            outputs.append([pose.process(photo) for _ in range(2)])
    assert np.array_equal(pixels(outputs[0][1], photo), pixels(outputs[1][1], photo))
    assert np.array_equal(outputs[0][1].segmentation_mask, outputs[1][1].segmentation_mask)


def test_min_tracking_confidence_is_the_presence_threshold(model_paths, photo):
    with mp_pose.Pose(static_image_mode=True, min_tracking_confidence=1.0) as pose:
        assert pose.process(photo).pose_landmarks is None  # no pose is present above certainty
    with mp_pose.Pose(min_tracking_confidence=0.0) as pose:
        assert pose.process(photo).pose_landmarks is not None


def test_close_and_reset(model_paths, photo):
    pose = mp_pose.Pose()
    first = pose.process(photo)
    pose.reset()
    assert pose._tracker.tracks == []
    again = pose.process(photo)
    assert again.pose_landmarks is not None and first.pose_landmarks is not again.pose_landmarks
    pose.close()
    pose.close()  # harmless
    with pytest.raises(ValueError, match="closed"):
        pose.process(photo)


def test_model_complexity_needs_its_file(monkeypatch, tmp_path):
    monkeypatch.delenv("POSEPIPE_LANDMARK_MODEL", raising=False)
    monkeypatch.setenv("POSEPIPE_CACHE_DIR", str(tmp_path))
    for complexity, name in ((0, "pose_landmark_lite.tflite"), (2, "pose_landmark_heavy.tflite")):
        with pytest.raises(ModelError, match=name) as caught:
            mp_pose.Pose(model_complexity=complexity)
        assert f"`posepipe models add {name}`" in str(caught.value) and "POSEPIPE_LANDMARK_MODEL" in str(caught.value)
    with pytest.raises(ValueError, match="model_complexity must be 0, 1 or 2"):
        mp_pose.Pose(model_complexity=3)


LITE = SHARED / "models" / "pose_landmark_lite.tflite"


@needs_shared
@pytest.mark.skipif(not LITE.is_file(), reason="../shared/models has no pose_landmark_lite.tflite")
def test_model_complexity_zero_from_the_cache_or_the_environment(monkeypatch, tmp_path, model_paths, photo):
    models = tmp_path / "models"
    models.mkdir()
    for path in model_paths:  # the default models, so that nothing is fetched
        (models / path.name).symlink_to(path)
    (models / LITE.name).symlink_to(LITE)
    monkeypatch.delenv("POSEPIPE_LANDMARK_MODEL", raising=False)
    monkeypatch.setenv("POSEPIPE_CACHE_DIR", str(tmp_path))
    with mp_pose.Pose(static_image_mode=True, model_complexity=0) as pose:
        lite = pose.process(photo)
        assert Path(pose._landmarker.options.landmark_model) == models / LITE.name
    # The same cache again, less the lite model: a fresh cache would measure the auto backend
    # anew, and another runtime gives other (close) numbers, so the equality below would fail.
    (models / LITE.name).unlink()
    monkeypatch.setenv("POSEPIPE_LANDMARK_MODEL", str(LITE))
    monkeypatch.setenv("POSEPIPE_DETECTOR_MODEL", str(model_paths[0]))
    with mp_pose.Pose(static_image_mode=True, model_complexity=0) as pose:
        from_env = pose.process(photo)
    with PoseLandmarker(landmark_model=model_paths[1]) as full:  # named: the environment still says lite
        reference = full.detect(photo)
    assert np.array_equal(pixels(lite, photo), pixels(from_env, photo))
    # Another network: close to the full model's landmarks, but not the same.
    difference = np.abs(pixels(lite, photo)[:, :2] - reference.landmarks[0, :, :2])
    size = np.ptp(reference.landmarks[0, :, :2], axis=0).max()
    assert 0.0 < np.median(difference) < 0.05 * size


def test_code_written_for_mediapipe_runs(model_paths, photo, tmp_path):
    """The usual MediaPipe sample, with ``import posepipe as mp`` in place of ``import mediapipe as mp``:
    a BGR frame flipped to RGB by a view, landmarks drawn in the default style, the mask as a
    background cut-out, the world landmarks plotted (headless)."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    mp_drawing, mp_drawing_styles = mp.solutions.drawing_utils, mp.solutions.drawing_styles
    bgr = cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)
    with mp_pose.Pose(static_image_mode=True, model_complexity=1, enable_segmentation=True,
                      min_detection_confidence=0.5) as pose:
        results = pose.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        from_view = pose.process(bgr[:, :, ::-1])  # a non-contiguous view, as many scripts pass
    assert np.array_equal(pixels(results, photo), pixels(from_view, photo))
    nose = results.pose_landmarks.landmark[mp_pose.PoseLandmark.NOSE]
    assert 0 < nose.x < 1 and 0 < nose.y < 1
    annotated = bgr.copy()
    condition = np.stack((results.segmentation_mask,) * 3, axis=-1) > 0.1
    annotated = np.where(condition, annotated, np.full(bgr.shape, (192, 192, 192), np.uint8))
    mp_drawing.draw_landmarks(annotated, results.pose_landmarks, mp_pose.POSE_CONNECTIONS,
                              landmark_drawing_spec=mp_drawing_styles.get_default_pose_landmarks_style())
    assert cv2.imwrite(str(tmp_path / "annotated.png"), annotated)
    left_shoulder = results.pose_landmarks.landmark[mp_pose.PoseLandmark.LEFT_SHOULDER]
    x, y = int(left_shoulder.x * bgr.shape[1]), int(left_shoulder.y * bgr.shape[0])
    assert tuple(annotated[y, x]) in {(0, 138, 255), (224, 224, 224)}  # the left side's spec, or its white ring
    figure = mp_drawing.plot_landmarks(results.pose_world_landmarks, mp_pose.POSE_CONNECTIONS)
    import matplotlib.pyplot as plt

    plt.close(figure)
