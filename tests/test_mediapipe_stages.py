"""posepipe's stages against MediaPipe 0.10.21's own calculators, bit for bit, on the same
inputs (``tests/data/mediapipe_stages.npz``, made by ``bench/make_stage_reference.py`` in
MediaPipe's environment). The model outputs are MediaPipe's stored ones, so these hold on
any CPU: they test the arithmetic before and after the networks, which is what decides
whether a tracked video follows MediaPipe's crops exactly or drifts away from them."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from posepipe.detector import PoseDetector
from posepipe.landmarks import decode_landmarks, project_to_image, project_world, refine_with_heatmap
from posepipe.roi import roi_from_alignment_points, roi_from_normalized_rect, warp_crop
from posepipe.video.smoothing import PoseSmoother

REFERENCE = Path(__file__).parent / "data" / "mediapipe_stages.npz"
f32 = np.float32


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(REFERENCE))


@pytest.fixture(scope="module")
def photo(reference):
    import skimage.data

    image = np.ascontiguousarray(skimage.data.astronaut()[:448])
    assert digest(image) == str(reference["image_sha256"]), "the test photo decodes otherwise here"
    return image


def pixels(normalized: np.ndarray, width: int, height: int) -> np.ndarray:
    """MediaPipe's normalised (x, y, z) × the image size, in float32, as its calculators compute it."""
    return normalized.astype(f32) * np.array([width, height, width][: normalized.shape[-1]], f32)


def test_crops_are_mediapipes_pixel_for_pixel(reference, photo):
    """Crops at any place, size and angle, through GetRoi/PadRoi, boxPoints, the perspective
    matrix and OpenCV's fixed-point sampling."""
    height, width = photo.shape[:2]
    differing = [i for i, (rect, want) in enumerate(zip(reference["rects"], reference["crop_sha256"]))
                 if digest(warp_crop(photo, roi_from_normalized_rect(rect, width, height), 256)) != str(want)]
    assert differing == []


def test_detector_input_is_mediapipes(reference, photo):
    """The letterboxed 224 × 224 input in [-1, 1] (OpenCV's fused multiply-add)."""
    tensor = PoseDetector(model=None).preprocess(photo).tensor
    assert digest(tensor.transpose(1, 2, 0)) == str(reference["detector_tensor_sha256"])


def test_detections_and_their_crop_from_mediapipes_raw_outputs(reference, photo):
    """Scores (the sigmoid on glibc's expf), boxes, weighted non-max suppression, letterbox
    removal, then PoseDetectionToRoi's crop: all MediaPipe's, to the bit."""
    height, width = photo.shape[:2]
    detector = PoseDetector(model=None)
    detections = detector.postprocess(reference["detector_boxes_raw"], reference["detector_scores_raw"],
                                      detector.preprocess(photo))
    assert len(detections) == len(reference["detection_scores"]) > 0
    assert np.array_equal(detections.scores, reference["detection_scores"])
    assert np.array_equal(detections.keypoints, pixels(reference["detection_keypoints"], width, height))
    roi = roi_from_alignment_points(*detections.keypoints[0][:2], image_size=(width, height))
    assert np.array_equal(np.array(roi.rect[:5], f32), reference["detection_rect"])


@pytest.mark.parametrize("index", [0, 1])
def test_landmarks_from_mediapipes_raw_outputs(reference, photo, index):
    """TensorsToLandmarks, RefineLandmarksFromHeatmap (the 7 × 7 window MediaPipe's own graph
    runs), LandmarkLetterboxRemoval, LandmarkProjection and WorldLandmarkProjection."""
    height, width = photo.shape[:2]
    roi = roi_from_normalized_rect(reference["rects"][index], width, height)
    heatmaps = reference["heatmap_raw"][index].reshape(1, 64, 64, 39).transpose(0, 3, 1, 2)
    decoded = refine_with_heatmap(decode_landmarks(reference["landmark_raw"][index][None]), heatmaps, kernel=7)[0]
    assert np.array_equal(project_to_image(decoded, roi, (width, height))[:35],
                          pixels(reference["landmarks"][index], width, height))
    assert np.array_equal(decoded[:33, 3:5], reference["landmark_visibility"][index])
    world = reference["world_raw"][index].reshape(39, 3)[:33]
    assert np.array_equal(project_world(world, roi), reference["world"][index])


def test_filters_are_mediapipes(reference, photo):
    """PoseLandmarkFiltering over 12 frames on mp.solutions' clock: the one-euro filters of the
    landmarks (speed in person sizes), of the auxiliary points (which place the next crop) and
    of the world landmarks, and the visibility low-pass."""
    height, width = photo.shape[:2]
    smoother = PoseSmoother(enabled=True)
    for t, (frame, want) in enumerate(zip(reference["moving"], reference["filtered"])):
        got = smoother((t + 1) * 33.333 / 1000, pixels(frame[:33, :3], width, height), frame[:33, 3],
                       frame[35:, :3], pixels(frame[33:35, :3], width, height), image_size=(width, height))
        size = np.array([width, height, width], f32)
        assert np.array_equal(got.landmarks / size, want[:33]), t
        assert np.array_equal(got.auxiliary_landmarks, pixels(want[33:35], width, height)), t
        assert np.array_equal(got.world_landmarks, want[35:]), t
        assert np.array_equal(got.visibility, reference["filtered_visibility"][t]), t
