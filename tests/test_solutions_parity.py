"""Parity with MediaPipe Pose 0.10.21 through the compatibility API: ``import posepipe as mp``
and MediaPipe's own calls, against MediaPipe's reference outputs, with the thresholds of
test_parity.py (photos) and test_video_parity.py (street video, tracking)."""

import json

import numpy as np
import pytest

import posepipe as mp
from tests.conftest import needs_shared
from tests.test_parity import (Agreement, assert_world_and_mask_match, load, masked_record, photo_records,
                               reference_world)
from tests.test_video_parity import REFERENCE as VIDEO_REFERENCE
from tests.test_video_parity import street_frames  # noqa: F401 (a fixture)


def pixels(landmark_list, width: int, height: int) -> np.ndarray:
    """Back to the reference's pixels: x · width, y · height, z · width."""
    return np.array([(p.x * width, p.y * height, p.z * width) for p in landmark_list.landmark], np.float32)


def world(landmark_list) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in landmark_list.landmark])


def found(results, image: np.ndarray) -> np.ndarray | None:
    """What ``Pose.process`` found on ``image``, in the reference's pixels; None for no pose."""
    height, width = image.shape[:2]
    return None if results.pose_landmarks is None else pixels(results.pose_landmarks, width, height)


@needs_shared
def test_photos_match_mediapipe_through_solutions_pose(model_paths):
    agreement, world_errors = Agreement(), []
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        for rec in photo_records():
            image = load(rec["source"])
            results = pose.process(image)
            if agreement.add(found(results, image), rec):
                world_errors.append(np.linalg.norm(world(results.pose_world_landmarks) - reference_world(rec), axis=1))
    world_errors = np.concatenate(world_errors)
    agreement.assert_photo_thresholds("solutions.pose static", f"; world landmarks median "
                                      f"{np.median(world_errors) * 1000:.2f} mm, p95 "
                                      f"{np.percentile(world_errors, 95) * 1000:.1f} mm")


@needs_shared
def test_world_landmarks_and_mask_match_mediapipe_through_solutions_pose(model_paths):
    rec = masked_record()
    with mp.solutions.pose.Pose(static_image_mode=True, enable_segmentation=True) as pose:
        results = pose.process(load(rec["source"]))
    assert_world_and_mask_match(rec, world(results.pose_world_landmarks), results.segmentation_mask)


@needs_shared
@pytest.mark.parametrize("smooth", [True, False], ids=["smoothed", "raw"])
def test_tracking_matches_mediapipe_through_solutions_pose(model_paths, street_frames, smooth):  # noqa: F811
    name = "video_street_smoothed.jsonl" if smooth else "video_street_raw.jsonl"
    records = [json.loads(line) for line in (VIDEO_REFERENCE / name).read_text().splitlines()]
    assert len(records) == len(street_frames) == 205
    agreement, detector_runs = Agreement(), 0
    # As MediaPipe's solution is used on a video: one process() call a frame, no timestamps given.
    with mp.solutions.pose.Pose(static_image_mode=False, smooth_landmarks=smooth) as pose:
        for image, rec in zip(street_frames, records):
            detector_runs += not pose._tracker.tracks
            agreement.add(found(pose.process(image), image), rec)
    agree, errors = agreement.agree, agreement.errors
    print(f"solutions.pose {name}: pose on the same frames {agree}/205, detector ran on {detector_runs} frames, "
          f"median {np.median(errors):.3%}, p95 {np.percentile(errors, 95):.3%} of person size")
    assert agree >= 200
    assert detector_runs < 10
    assert np.median(errors) <= 0.015
