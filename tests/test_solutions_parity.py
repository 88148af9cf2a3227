"""Parity with MediaPipe Pose 0.10.21 through the compatibility API: ``import posepipe as mp``
and MediaPipe's own calls, against MediaPipe's reference outputs, with the thresholds of
test_parity.py (photos) and test_video_parity.py (street video, tracking)."""

import json

import cv2
import numpy as np
import pytest

import posepipe as mp
from tests.conftest import needs_shared, relative_errors
from tests.test_parity import REFERENCE as IMAGES_REFERENCE
from tests.test_parity import load
from tests.test_video_parity import REFERENCE as VIDEO_REFERENCE
from tests.test_video_parity import street_frames  # noqa: F401 (a fixture)


def pixels(landmark_list, width: int, height: int) -> np.ndarray:
    """Back to the reference's pixels: x · width, y · height, z · width."""
    return np.array([(p.x * width, p.y * height, p.z * width) for p in landmark_list.landmark], np.float32)


@needs_shared
def test_photos_match_mediapipe_through_solutions_pose(model_paths):
    records = [json.loads(line) for line in IMAGES_REFERENCE.read_text().splitlines()]
    assert len(records) == 34
    agree, errors, world_errors = 0, [], []
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        for rec in records:
            image = load(rec["source"])
            results = pose.process(image)
            ours, theirs = results.pose_landmarks is not None, len(rec["poses"]) > 0
            agree += ours == theirs
            if ours and theirs:
                height, width = image.shape[:2]
                errors.append(relative_errors(pixels(results.pose_landmarks, width, height), rec["poses"][0]))
                world = np.array([[p.x, p.y, p.z] for p in results.pose_world_landmarks.landmark])
                ref = np.array([[p["x"], p["y"], p["z"]] for p in rec["poses"][0]["world_landmarks"]])
                world_errors.append(np.linalg.norm(world - ref, axis=1))
    errors, world_errors = np.concatenate(errors), np.concatenate(world_errors)
    print(f"solutions.pose static: found/not found as MediaPipe: {agree}/34; median {np.median(errors):.4%}, "
          f"p95 {np.percentile(errors, 95):.4%} of person size; world landmarks median "
          f"{np.median(world_errors) * 1000:.2f} mm, p95 {np.percentile(world_errors, 95) * 1000:.1f} mm")
    assert agree >= 33
    assert np.median(errors) <= 0.01
    assert np.percentile(errors, 95) <= 0.03


@needs_shared
def test_world_landmarks_and_mask_match_mediapipe_through_solutions_pose(model_paths):
    rec = next(json.loads(line) for line in IMAGES_REFERENCE.read_text().splitlines() if "mpii_004645041" in line)
    image = load(rec["source"])
    with mp.solutions.pose.Pose(static_image_mode=True, enable_segmentation=True) as pose:
        results = pose.process(image)
    world = np.array([[p.x, p.y, p.z] for p in results.pose_world_landmarks.landmark])
    ref = np.array([[p["x"], p["y"], p["z"]] for p in rec["poses"][0]["world_landmarks"]])
    assert np.abs(world - ref).max() < 0.02  # metres
    ref_mask = cv2.imread(str(IMAGES_REFERENCE.parent / "masks" / "mpii_004645041.png"), cv2.IMREAD_GRAYSCALE)
    if ref_mask is None:
        pytest.skip("no reference mask for this image")
    ours, theirs = results.segmentation_mask > 0.5, ref_mask > 127
    iou = (ours & theirs).sum() / max(1, (ours | theirs).sum())
    assert iou > 0.95


@needs_shared
@pytest.mark.parametrize("smooth", [True, False], ids=["smoothed", "raw"])
def test_tracking_matches_mediapipe_through_solutions_pose(model_paths, street_frames, smooth):  # noqa: F811
    name = "video_street_smoothed.jsonl" if smooth else "video_street_raw.jsonl"
    records = [json.loads(line) for line in (VIDEO_REFERENCE / name).read_text().splitlines()]
    assert len(records) == len(street_frames) == 205
    agree, errors, detector_runs = 0, [], 0
    # As MediaPipe's solution is used on a video: one process() call a frame, no timestamps given.
    with mp.solutions.pose.Pose(static_image_mode=False, smooth_landmarks=smooth) as pose:
        for image, rec in zip(street_frames, records):
            detector_runs += not pose._tracker.tracks
            results = pose.process(image)
            ours, theirs = results.pose_landmarks is not None, len(rec["poses"]) > 0
            agree += ours == theirs
            if ours and theirs:
                height, width = image.shape[:2]
                errors.append(relative_errors(pixels(results.pose_landmarks, width, height), rec["poses"][0]))
    errors = np.concatenate(errors)
    print(f"solutions.pose {name}: pose on the same frames {agree}/205, detector ran on {detector_runs} frames, "
          f"median {np.median(errors):.3%}, p95 {np.percentile(errors, 95):.3%} of person size")
    assert agree >= 200
    assert detector_runs < 10
    assert np.median(errors) <= 0.015
