"""Parity with MediaPipe Pose 0.10.21 (static images) on the shared photos and the two samples."""

import json

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED, needs_shared, relative_errors, sample_image

REFERENCE = SHARED / "reference" / "mediapipe-0.10.21" / "images.jsonl"
MASKED = "mpii_004645041"  # the photo whose reference has a segmentation mask


def load(source: str) -> np.ndarray:
    if "/" not in source:
        return sample_image(source)
    return cv2.cvtColor(cv2.imread(str(SHARED / source)), cv2.COLOR_BGR2RGB)


def photo_records() -> list[dict]:
    """MediaPipe's outputs on the 34 photos, one record each."""
    records = [json.loads(line) for line in REFERENCE.read_text().splitlines()]
    assert len(records) == 34
    return records


class Agreement:
    """Poses against MediaPipe's, record by record: ``agree`` counts the records where a pose
    was found where MediaPipe found one, or none where it found none; ``errors`` are the
    relative errors where both found one."""

    def __init__(self):
        self.agree, self._errors = 0, []

    def add(self, landmarks: np.ndarray | None, rec: dict) -> bool:
        """One record, ``landmarks`` in pixels (None where no pose was found); True where both found one."""
        ours, theirs = landmarks is not None, len(rec["poses"]) > 0
        self.agree += ours == theirs
        if ours and theirs:
            self._errors.append(relative_errors(landmarks, rec["poses"][0]))
        return ours and theirs

    @property
    def errors(self) -> np.ndarray:
        return np.concatenate(self._errors)

    def assert_photo_thresholds(self, label: str, more: str = "") -> None:
        """The photos' thresholds: found or not as MediaPipe on 33 of the 34, median error within
        1 % of the person's size, p95 within 3 % (printed first, with ``more`` after)."""
        errors = self.errors
        print(f"{label}: found/not found as MediaPipe: {self.agree}/34; median {np.median(errors):.4%}, "
              f"p95 {np.percentile(errors, 95):.4%} of person size{more}")
        assert self.agree >= 33
        assert np.median(errors) <= 0.01
        assert np.percentile(errors, 95) <= 0.03


def reference_world(rec: dict) -> np.ndarray:
    """MediaPipe's world landmarks of a record's first pose, 33 × (x, y, z) in metres."""
    return np.array([[p["x"], p["y"], p["z"]] for p in rec["poses"][0]["world_landmarks"]])


def masked_record() -> dict:
    return next(json.loads(line) for line in REFERENCE.read_text().splitlines() if MASKED in line)


def assert_world_and_mask_match(rec: dict, world: np.ndarray, mask: np.ndarray) -> None:
    """World landmarks within 2 cm of MediaPipe's and the person mask over 0.95 IoU with its
    reference (skipped where the reference mask is absent)."""
    assert np.abs(world - reference_world(rec)).max() < 0.02  # metres
    ref_mask = cv2.imread(str(REFERENCE.parent / "masks" / f"{MASKED}.png"), cv2.IMREAD_GRAYSCALE)
    if ref_mask is None:
        pytest.skip("no reference mask for this image")
    ours, theirs = mask > 0.5, ref_mask > 127
    iou = (ours & theirs).sum() / max(1, (ours | theirs).sum())
    assert iou > 0.95


@needs_shared
@pytest.mark.parametrize("backend", ["onnxruntime", "litert"])
def test_landmarks_match_mediapipe(model_paths, backend):
    from posepipe import PoseLandmarker

    landmarker = PoseLandmarker(backend=backend)
    agreement = Agreement()
    for rec in photo_records():
        poses = landmarker.detect(load(rec["source"]))
        agreement.add(poses.landmarks[0] if len(poses) else None, rec)
    agreement.assert_photo_thresholds(backend)


@needs_shared
def test_world_landmarks_and_mask_match_mediapipe(landmarker):
    rec = masked_record()
    poses = landmarker.detect(load(rec["source"]))
    assert_world_and_mask_match(rec, poses.world_landmarks[0], poses.masks[0])


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
