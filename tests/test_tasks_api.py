"""``posepipe.tasks``: MediaPipe's Tasks API for pose on posepipe, in the manner of MediaPipe's own
pose_landmarker_test.py (modes, wrong calls, timestamps, model assets) plus equality with
posepipe's own pipeline and tracker, and parity with MediaPipe 0.10.21 on the shared photos."""

import dataclasses
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

import posepipe as mp
from posepipe.models.assets import cache_dir
from posepipe.tasks import python
from posepipe.tasks.python import vision
from posepipe.video.tracking import PoseTracker
from tests.conftest import SHARED, needs_shared, sample_image
from tests.test_parity import Agreement, assert_world_and_mask_match, photo_records

RunningMode = vision.RunningMode
META = json.loads((Path(__file__).parent / "data" / "drawing" / "cases.json").read_text())
CLIP = SHARED / "data" / "video" / "demo_540p_5f.mp4"


def srgb(array: np.ndarray) -> mp.Image:
    return mp.Image(image_format=mp.ImageFormat.SRGB, data=array)


def pixels_of(landmarks, image_size) -> np.ndarray:
    """(33, 3) pixels from a pose's NormalizedLandmark list (z on x's scale)."""
    width, height = image_size
    return np.array([(p.x * width, p.y * height, p.z * width) for p in landmarks])


def options(**fields) -> vision.PoseLandmarkerOptions:
    return vision.PoseLandmarkerOptions(base_options=python.BaseOptions(), **fields)


def assert_same_poses(result: vision.PoseLandmarkerResult, poses, with_masks: bool = False) -> None:
    """The result holds exactly posepipe's poses: landmarks to float32 precision, scores as given."""
    assert len(result.pose_landmarks) == len(result.pose_world_landmarks) == len(poses)
    width, height = poses.image_size
    scale = max(width, height)
    for i, (landmarks, world) in enumerate(zip(result.pose_landmarks, result.pose_world_landmarks)):
        assert len(landmarks) == len(world) == 33
        assert np.allclose(pixels_of(landmarks, poses.image_size), poses.landmarks[i], rtol=0, atol=1e-6 * scale)
        assert np.allclose([(p.x, p.y, p.z) for p in world], poses.world_landmarks[i], rtol=0, atol=1e-7)
        for points in (landmarks, world):
            assert np.allclose([p.visibility for p in points], poses.visibility[i], rtol=0, atol=1e-7)
            assert np.allclose([p.presence for p in points], poses.presence[i], rtol=0, atol=1e-7)
    if not with_masks or len(poses) == 0:
        assert result.segmentation_masks is None
        return
    assert len(result.segmentation_masks) == len(poses)
    for mask, expected in zip(result.segmentation_masks, poses.masks):
        assert mask.image_format is mp.ImageFormat.VEC32F1 and (mask.width, mask.height) == (width, height)
        view = mask.numpy_view()
        assert view.dtype == np.float32 and view.min() >= 0 and view.max() <= 1
        assert np.array_equal(view, expected)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return sample_image("grace_hopper.jpg")


@pytest.fixture(scope="module")
def clip_frames():
    """The 5-frame clip as (timestamp in ms, RGB frame), timestamps from its frame rate."""
    capture = cv2.VideoCapture(str(CLIP))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while (read := capture.read())[0]:
        frames.append((round(len(frames) * 1000 / fps), cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB)))
    capture.release()
    assert len(frames) == 5
    return frames


# --------------------------------------------------------------------------- names and paths

def test_module_paths_and_names_are_mediapipes():
    import posepipe.tasks.python.components.containers.landmark as landmark_module
    from posepipe.tasks.python.core.base_options import BaseOptions
    from posepipe.tasks.python.vision.core.vision_task_running_mode import VisionTaskRunningMode

    assert mp.tasks.vision is vision and mp.tasks.python is python
    assert mp.tasks.BaseOptions is python.BaseOptions is BaseOptions
    assert vision.RunningMode is VisionTaskRunningMode
    assert [m.name for m in RunningMode] == ["IMAGE", "VIDEO", "LIVE_STREAM"]
    assert python.components.containers.NormalizedLandmark is landmark_module.NormalizedLandmark
    for cls in (landmark_module.Landmark, landmark_module.NormalizedLandmark):
        assert [f.name for f in dataclasses.fields(cls)] == ["x", "y", "z", "visibility", "presence"]
        assert dataclasses.astuple(cls()) == (None,) * 5
    assert [f.name for f in dataclasses.fields(vision.PoseLandmarkerOptions)] == [
        "base_options", "running_mode", "num_poses", "min_pose_detection_confidence",
        "min_pose_presence_confidence", "min_tracking_confidence", "output_segmentation_masks", "result_callback",
        "accurate"]  # MediaPipe's fields in its order, then posepipe's extension
    defaults = vision.PoseLandmarkerOptions(base_options=BaseOptions())
    assert defaults.accurate is False
    assert (defaults.running_mode, defaults.num_poses, defaults.min_pose_detection_confidence,
            defaults.min_pose_presence_confidence, defaults.min_tracking_confidence,
            defaults.output_segmentation_masks, defaults.result_callback) == (RunningMode.IMAGE, 1, 0.5, 0.5, 0.5,
                                                                              False, None)
    assert [f.name for f in dataclasses.fields(BaseOptions)] == ["model_asset_path", "model_asset_buffer", "delegate"]
    assert [f.name for f in dataclasses.fields(vision.PoseLandmarkerResult)] == [
        "pose_landmarks", "pose_world_landmarks", "segmentation_masks"]
    pairs = sorted([c.start, c.end] for c in vision.PoseLandmarksConnections.POSE_LANDMARKS)
    assert pairs == META["pose_connections"]


def test_landmarks_convert_to_and_from_the_messages():
    landmark = python.components.containers.NormalizedLandmark(x=0.25, y=0.5, z=-0.125, visibility=0.75)
    message = landmark.to_pb2()
    assert message.HasField("visibility") and not message.HasField("presence")
    again = type(landmark).create_from_pb2(message)
    assert (again.x, again.y, again.z, again.visibility, again.presence) == (0.25, 0.5, -0.125, 0.75, 0.0)


def test_tasks_resolves_lazily_and_apart_from_solutions():
    code = ("import sys, posepipe as mp; assert 'posepipe.tasks' not in sys.modules; "
            "assert mp.tasks.vision.PoseLandmarker and mp.tasks.BaseOptions; "
            "assert not any(m.startswith('posepipe.solutions') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# --------------------------------------------------------------------------- IMAGE mode

def test_options_reach_posepipes_pipeline(model_paths):
    chosen = options(num_poses=2, min_pose_detection_confidence=0.3, min_pose_presence_confidence=0.7,
                     output_segmentation_masks=True)
    with vision.PoseLandmarker.create_from_options(chosen) as detector:
        still = detector._landmarker.options
        assert (still.num_poses, still.min_pose_detection_confidence, still.min_pose_presence_confidence,
                still.output_segmentation_masks) == (2, 0.3, 0.7, True)
        assert detector._tracker is None  # IMAGE mode: no tracking
    with vision.PoseLandmarker.create_from_options(options(running_mode=RunningMode.VIDEO)) as detector:
        assert (detector._tracker.smooth, detector._tracker.smooth_masks) == (True, False)
        assert detector._tracker.landmarker is detector._landmarker


def test_image_mode_is_posepipes_still_pipeline(model_paths, photo):
    """Compared with posepipe's pipeline on the same loaded models: the layer changes nothing
    (a second landmarker could run another runtime, which ``auto`` picks per model)."""
    with vision.PoseLandmarker.create_from_options(options(output_segmentation_masks=True)) as detector:
        expected = detector._landmarker.detect(photo)
        for _ in range(2):  # no state between images
            assert_same_poses(detector.detect(srgb(photo)), expected, with_masks=True)
        assert detector.detect(srgb(np.full((64, 64, 3), 255, np.uint8))) == vision.PoseLandmarkerResult([], [])
    with vision.PoseLandmarker.create_from_options(options()) as detector:
        assert detector.detect(srgb(photo)).segmentation_masks is None


def test_gray_and_rgba_images_are_read(model_paths, photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    with vision.PoseLandmarker.create_from_options(options()) as detector:
        assert_same_poses(detector.detect(mp.Image(mp.ImageFormat.SRGBA, rgba)), detector._landmarker.detect(photo))
        assert_same_poses(detector.detect(mp.Image(mp.ImageFormat.GRAY8, gray)), detector._landmarker.detect(gray))


@needs_shared
def test_image_mode_on_the_shared_photos_matches_posepipe_and_mediapipe(model_paths):
    """Each photo read with mp.Image.create_from_file: the result is posepipe's own to float32
    precision, and so within test_parity's tolerances of MediaPipe 0.10.21's."""
    agreement = Agreement()
    with vision.PoseLandmarker.create_from_options(options(output_segmentation_masks=True)) as detector:
        for rec in photo_records():
            if "/" in rec["source"]:
                image = mp.Image.create_from_file(str(SHARED / rec["source"]))
            else:
                image = srgb(sample_image(rec["source"]))
            result = detector.detect(image)
            poses = detector._landmarker.detect(image.numpy_view())
            assert_same_poses(result, poses, with_masks=True)
            size = (image.width, image.height)
            agreement.add(pixels_of(result.pose_landmarks[0], size) if result.pose_landmarks else None, rec)
            if rec["source"].endswith("mpii_004645041.jpg"):  # the photo with a reference mask
                world = np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks[0]])
                assert_world_and_mask_match(rec, world, result.segmentation_masks[0].numpy_view())
    agreement.assert_photo_thresholds("tasks IMAGE mode")


@pytest.fixture(scope="module")
def group_frames():
    """A photo of several people, then the same shifted by 8 and 16 pixels: a short video."""
    group = cv2.cvtColor(cv2.imread(str(SHARED / "data" / "images" / "COCO_val2014_000000000241.jpg")),
                         cv2.COLOR_BGR2RGB)
    return [(40 * i, np.ascontiguousarray(np.roll(group, 8 * i, axis=1))) for i in range(3)]


@needs_shared
def test_several_poses(model_paths, group_frames):
    image = srgb(group_frames[0][1])
    with vision.PoseLandmarker.create_from_options(options(num_poses=3, output_segmentation_masks=True)) as detector:
        expected = detector._landmarker.detect(image.numpy_view())
        assert len(expected) >= 2  # the photo shows several people
        assert_same_poses(detector.detect(image), expected, with_masks=True)


# --------------------------------------------------------------------------- VIDEO and LIVE_STREAM modes

@needs_shared
def test_video_mode_is_posepipes_tracker_with_smoothing(model_paths, clip_frames):
    with vision.PoseLandmarker.create_from_options(options(running_mode=RunningMode.VIDEO)) as detector:
        got = [detector.detect_for_video(srgb(frame), t) for t, frame in clip_frames]
        smoothed = PoseTracker(smooth=True, smooth_masks=False, landmarker=detector._landmarker)
        expected = [smoothed.process(frame, t) for t, frame in clip_frames]
        unsmoothed = PoseTracker(smooth=False, landmarker=detector._landmarker)
        raw = [unsmoothed.process(frame, t) for t, frame in clip_frames]
    assert all(len(poses) == 1 for poses in expected)
    for result, poses in zip(got, expected):
        assert_same_poses(result, poses)
    # Smoothing is on: after the first frame the landmarks are not the raw ones.
    size = raw[-1].image_size
    assert np.abs(pixels_of(got[-1].pose_landmarks[0], size) - raw[-1].landmarks[0]).max() > 0.5  # pixels


@needs_shared
def test_video_mode_leaves_several_poses_unsmoothed(model_paths, group_frames):
    """As MediaPipe's task graph: landmark smoothing only when num_poses is 1."""
    with vision.PoseLandmarker.create_from_options(options(running_mode=RunningMode.VIDEO, num_poses=2)) as detector:
        got = [detector.detect_for_video(srgb(frame), t) for t, frame in group_frames]
        tracker = PoseTracker(smooth=False, smooth_masks=False, landmarker=detector._landmarker)
        expected = [tracker.process(frame, t) for t, frame in group_frames]
    assert [len(poses) for poses in expected] == [2, 2, 2]
    for result, poses in zip(got, expected):
        assert_same_poses(result, poses)


def test_live_stream_calls_back_once_per_frame_as_video_mode(model_paths, photo):
    """Three frames of the photo moving sideways, then a blank one: the callback runs before
    detect_async returns, with the input image and its timestamp, also when nobody is there."""
    frames = [np.ascontiguousarray(np.roll(photo, 12 * i, axis=1)) for i in range(3)]
    frames.append(np.zeros_like(photo))
    stamps = [0, 40, 80, 120]
    calls = []
    live = options(running_mode=RunningMode.LIVE_STREAM,
                   result_callback=lambda result, image, t: calls.append((result, image, t)))
    with vision.PoseLandmarker.create_from_options(live) as detector:
        for i, (t, frame) in enumerate(zip(stamps, frames)):
            image = srgb(frame)
            assert detector.detect_async(image, t) is None
            assert len(calls) == i + 1 and calls[-1][1] is image and calls[-1][2] == t
    with vision.PoseLandmarker.create_from_options(options(running_mode=RunningMode.VIDEO)) as detector:
        video = [detector.detect_for_video(srgb(frame), t) for t, frame in zip(stamps, frames)]
    assert [result for result, _, _ in calls] == video
    assert len(video[0].pose_landmarks) == 1 and video[-1] == vision.PoseLandmarkerResult([], [])


# --------------------------------------------------------------------------- errors, MediaPipe's

def test_result_callback_must_suit_the_mode(model_paths):
    with pytest.raises(ValueError, match=r"^The vision task is in live stream mode, a user-defined result "
                                         r"callback must be provided\.$"):
        vision.PoseLandmarker.create_from_options(options(running_mode=RunningMode.LIVE_STREAM))
    for mode in (RunningMode.IMAGE, RunningMode.VIDEO):
        with pytest.raises(ValueError, match=r"^The vision task is in image or video mode, a user-defined result "
                                             r"callback should not be provided\.$"):
            vision.PoseLandmarker.create_from_options(options(running_mode=mode, result_callback=print))


def test_wrong_method_for_the_mode(model_paths, photo):
    image = srgb(photo)
    creations = {RunningMode.IMAGE: options(), RunningMode.VIDEO: options(running_mode=RunningMode.VIDEO),
                 RunningMode.LIVE_STREAM: options(running_mode=RunningMode.LIVE_STREAM, result_callback=print)}
    calls = {"image": lambda d: d.detect(image), "video": lambda d: d.detect_for_video(image, 0),
             "live stream": lambda d: d.detect_async(image, 0)}
    for mode, opts in creations.items():
        with vision.PoseLandmarker.create_from_options(opts) as detector:
            for words, call in calls.items():
                if words == mode.name.lower().replace("_", " "):
                    continue
                with pytest.raises(ValueError, match=rf"^Task is not initialized with the {words} mode\. "
                                                     rf"Current running mode:{mode.name}$"):
                    call(detector)


def test_timestamps_must_increase(model_paths, photo):
    image = srgb(photo)
    message = r"^Input timestamp must be monotonically increasing\.$"
    with vision.PoseLandmarker.create_from_options(options(running_mode=RunningMode.VIDEO)) as detector:
        detector.detect_for_video(image, 10)
        for stale in (10, 5):
            with pytest.raises(ValueError, match=message):
                detector.detect_for_video(image, stale)
        assert len(detector.detect_for_video(image, 11).pose_landmarks) == 1  # a refused frame leaves no trace
        with pytest.raises(TypeError, match="whole number of milliseconds"):
            detector.detect_for_video(image, 20.5)
    calls = []
    live = options(running_mode=RunningMode.LIVE_STREAM, result_callback=lambda *args: calls.append(args))
    with vision.PoseLandmarker.create_from_options(live) as detector:
        detector.detect_async(image, 0)
        with pytest.raises(ValueError, match=message):
            detector.detect_async(image, 0)
    assert len(calls) == 1


def test_bad_inputs_and_a_closed_landmarker(model_paths, photo):
    detector = vision.PoseLandmarker.create_from_model_path(None)  # None: posepipe's default models
    with pytest.raises(TypeError, match="expected an mp.Image, got ndarray"):
        detector.detect(photo)
    with pytest.raises(ValueError, match="reads SRGB, SRGBA and GRAY8 images, not VEC32F1"):
        detector.detect(mp.Image(mp.ImageFormat.VEC32F1, np.zeros((8, 8), np.float32)))
    detector.close()
    detector.close()  # harmless
    with pytest.raises(ValueError, match=r"^Task runner is currently not running\.$"):
        detector.detect(srgb(photo))


def test_bad_options(model_paths):
    with pytest.raises(ValueError, match="min_tracking_confidence must be between 0 and 1"):
        vision.PoseLandmarker.create_from_options(options(min_tracking_confidence=1.5))
    with pytest.raises(ValueError, match="num_poses must be at least 1"):
        vision.PoseLandmarker.create_from_options(options(num_poses=0))
    with pytest.raises(ValueError, match="running_mode must be a RunningMode"):
        vision.PoseLandmarker.create_from_options(options(running_mode="VIDEO"))


# --------------------------------------------------------------------------- model assets

def build_bundle(path: Path, members: dict[str, Path]) -> Path:
    """A .task bundle as MediaPipe packs them: members stored uncompressed."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as bundle:
        for name, source in members.items():
            bundle.write(source, name)
    return path


def test_a_task_bundle_gives_the_default_models_results(model_paths, photo, tmp_path):
    import tflite

    detector_path, landmark_path = model_paths
    # Real bundles carry TFLite metadata; the shipped detector does too, so the importer reads it here.
    detector_model = tflite.Model.GetRootAsModel(detector_path.read_bytes(), 0)
    names = [detector_model.Metadata(i).Name() for i in range(detector_model.MetadataLength())]
    assert b"TFLITE_METADATA" in names
    bundle = build_bundle(tmp_path / "pose_landmarker_full.task", {"pose_detector.tflite": detector_path,
                                                                   "pose_landmarks_detector.tflite": landmark_path})
    with vision.PoseLandmarker.create_from_options(options()) as default:
        expected = default.detect(srgb(photo))
    assert len(expected.pose_landmarks) == 1

    from posepipe.models.assets import sha256_of
    from posepipe.models.bundles import unpack_task_bundle

    unpacked = unpack_task_bundle(bundle)
    assert unpacked[0].parent == cache_dir() / "bundles" / sha256_of(bundle)[:16]
    assert [p.read_bytes() for p in unpacked] == [detector_path.read_bytes(), landmark_path.read_bytes()]
    buffer = python.BaseOptions(model_asset_buffer=bundle.read_bytes())
    for creation, models in ((lambda: vision.PoseLandmarker.create_from_model_path(str(bundle)), unpacked),
                             (lambda: vision.PoseLandmarker.create_from_options(
                                 vision.PoseLandmarkerOptions(base_options=buffer)), unpacked),
                             (lambda: vision.PoseLandmarker.create_from_model_path(str(landmark_path)),
                              (None, landmark_path))):  # a lone landmark model, after the default detector
        with creation() as detector:
            used = detector._landmarker.options
            assert (used.detector_model, used.landmark_model) == models
            assert_close_results(detector.detect(srgb(photo)), expected, (photo.shape[1], photo.shape[0]))


def assert_close_results(a: vision.PoseLandmarkerResult, b: vision.PoseLandmarkerResult, size) -> None:
    """The same poses from the same model bytes, to runtime precision: ``auto`` chooses the
    runtime per model file, so a bundle's members may run on another one than the defaults."""
    assert len(a.pose_landmarks) == len(b.pose_landmarks)
    for pa, pb in zip(a.pose_landmarks, b.pose_landmarks):
        assert np.allclose(pixels_of(pa, size), pixels_of(pb, size), rtol=0, atol=1e-4 * max(size))
        assert np.allclose([p.visibility for p in pa], [p.visibility for p in pb], rtol=0, atol=1e-4)
    for wa, wb in zip(a.pose_world_landmarks, b.pose_world_landmarks):
        assert np.allclose([(p.x, p.y, p.z) for p in wa], [(p.x, p.y, p.z) for p in wb], rtol=0, atol=1e-4)


def test_model_asset_errors(model_paths, tmp_path):
    missing = tmp_path / "invalid" / "model.task"
    with pytest.raises(RuntimeError, match=rf"^Unable to open file at {missing}$"):
        vision.PoseLandmarker.create_from_model_path(str(missing))
    half = build_bundle(tmp_path / "half.task", {"pose_detector.tflite": model_paths[0], "labels.txt": model_paths[0]})
    with pytest.raises(RuntimeError, match=r"^No file with name: pose_landmarks_detector\.tflite\. All files in "
                                           r"the model asset bundle are: pose_detector\.tflite, labels\.txt\.$"):
        vision.PoseLandmarker.create_from_model_path(str(half))
    with pytest.raises(RuntimeError, match="the model asset buffer is not a .task bundle"):
        vision.PoseLandmarker.create_from_options(vision.PoseLandmarkerOptions(
            base_options=python.BaseOptions(model_asset_buffer=b"not a zip")))
    notes = tmp_path / "notes.task"
    notes.write_text("not a model")
    with pytest.raises(RuntimeError, match=r"notes\.task is neither a \.task bundle nor a \.tflite model$"):
        vision.PoseLandmarker.create_from_model_path(str(notes))


# --------------------------------------------------------------------------- MediaPipe's example

def test_mediapipes_example_drawing_runs_as_written(model_paths, grace_path, tmp_path):
    """The flow of MediaPipe's pose landmarker example, only the imports changed: detect on a
    file, turn each pose into a NormalizedLandmarkList, draw it with the legacy drawing
    helpers, and show the first segmentation mask."""
    import posepipe as mp
    from posepipe import solutions
    from posepipe.framework.formats import landmark_pb2
    from posepipe.tasks import python
    from posepipe.tasks.python import vision

    def draw_landmarks_on_image(rgb_image, detection_result):
        annotated_image = np.copy(rgb_image)
        for pose_landmarks in detection_result.pose_landmarks:
            pose_landmarks_proto = landmark_pb2.NormalizedLandmarkList()
            pose_landmarks_proto.landmark.extend([
                landmark_pb2.NormalizedLandmark(x=landmark.x, y=landmark.y, z=landmark.z)
                for landmark in pose_landmarks])
            solutions.drawing_utils.draw_landmarks(
                annotated_image, pose_landmarks_proto, solutions.pose.POSE_CONNECTIONS,
                solutions.drawing_styles.get_default_pose_landmarks_style())
        return annotated_image

    base_options = python.BaseOptions(model_asset_path=None)  # the example names a .task file here
    example_options = vision.PoseLandmarkerOptions(base_options=base_options, output_segmentation_masks=True)
    detector = vision.PoseLandmarker.create_from_options(example_options)
    image = mp.Image.create_from_file(str(grace_path))
    detection_result = detector.detect(image)
    annotated_image = draw_landmarks_on_image(image.numpy_view(), detection_result)
    segmentation_mask = detection_result.segmentation_masks[0].numpy_view()
    visualized_mask = np.repeat(segmentation_mask[:, :, np.newaxis], 3, axis=2) * 255

    assert annotated_image.shape == image.numpy_view().shape
    changed = np.any(annotated_image != image.numpy_view(), axis=2)
    nose = detection_result.pose_landmarks[0][0]
    row, col = int(nose.y * image.height), int(nose.x * image.width)
    assert changed[row - 3:row + 4, col - 3:col + 4].any()  # a landmark dot where the nose is
    assert 0.001 < changed.mean() < 0.2  # a skeleton, not a repainted image
    assert visualized_mask.shape == image.numpy_view().shape and visualized_mask.max() > 200
    detector.close()
