"""Parity with MediaPipe Pose 0.10.21 (static images) on the shared photos and the two samples."""

import json

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED, needs_shared, relative_errors, sample_image

REFERENCE = SHARED / "reference" / "mediapipe-0.10.21" / "images.jsonl"


def load(source: str) -> np.ndarray:
    if "/" not in source:
        return sample_image(source)
    return cv2.cvtColor(cv2.imread(str(SHARED / source)), cv2.COLOR_BGR2RGB)


@needs_shared
@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_landmarks_match_mediapipe(model_paths, backend):
    from posepipe import PoseLandmarker

    landmarker = PoseLandmarker(backend=backend)
    records = [json.loads(line) for line in REFERENCE.read_text().splitlines()]
    assert len(records) == 34
    agree, errors = 0, []
    for rec in records:
        poses = landmarker.detect(load(rec["source"]))
        ours, theirs = len(poses) > 0, len(rec["poses"]) > 0
        agree += ours == theirs
        if ours and theirs:
            errors.append(relative_errors(poses.landmarks[0], rec["poses"][0]))
    errors = np.concatenate(errors)
    print(f"{backend}: found/not found as MediaPipe: {agree}/34; median {np.median(errors):.4%}, "
          f"p95 {np.percentile(errors, 95):.4%} of person size")
    assert agree >= 33
    assert np.median(errors) <= 0.01
    assert np.percentile(errors, 95) <= 0.03


@needs_shared
def test_world_landmarks_and_mask_match_mediapipe(landmarker):
    rec = next(json.loads(line) for line in REFERENCE.read_text().splitlines() if "mpii_004645041" in line)
    image = load(rec["source"])
    poses = landmarker.detect(image)
    world = np.array([[p["x"], p["y"], p["z"]] for p in rec["poses"][0]["world_landmarks"]])
    assert np.abs(poses.world_landmarks[0] - world).max() < 0.02  # metres
    ref_mask = cv2.imread(str(REFERENCE.parent / "masks" / "mpii_004645041.png"), cv2.IMREAD_GRAYSCALE)
    if ref_mask is None:
        pytest.skip("no reference mask for this image")
    ours = poses.masks[0] > 0.5
    theirs = ref_mask > 127
    iou = (ours & theirs).sum() / max(1, (ours | theirs).sum())
    assert iou > 0.95


def test_samples_without_shared(landmarker):
    """The core suite's own check on the dependency-shipped photos: one person, sane landmarks."""
    for name in ("grace_hopper.jpg", "astronaut.png"):
        image = sample_image(name)
        poses = landmarker.detect(image)
        assert len(poses) == 1, name
        nose, left_eye, right_eye = poses.landmarks[0, 0], poses.landmarks[0, 2], poses.landmarks[0, 5]
        h, w = image.shape[:2]
        assert 0 < nose[0] < w and 0 < nose[1] < h
        assert abs(nose[1] - left_eye[1]) < 0.1 * h and right_eye[0] < left_eye[0]  # facing the camera
        assert poses.visibility[0, :11].min() > 0.9  # the face is in view
        assert poses.masks[0].shape == (h, w) and 0 <= poses.masks[0].min() and poses.masks[0].max() <= 1
