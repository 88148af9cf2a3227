"""Shared fixtures. The models come through posepipe's own fetch (pip download of the
mediapipe wheel) into the user cache, once; ``../shared`` is optional."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from posepipe import PoseLandmarker
from posepipe.models.assets import resolve_models

SHARED = Path(__file__).resolve().parents[2] / "shared"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared (images and MediaPipe reference) is absent")


def relative_errors(landmarks: np.ndarray, reference_pose: dict) -> np.ndarray:
    """Per-landmark distances to a reference record's pose, as shares of the person's size
    (the longer side of the reference landmarks' box)."""
    ref = np.array([[p["x"], p["y"]] for p in reference_pose["landmarks"]])
    return np.linalg.norm(landmarks[:, :2] - ref, axis=1) / np.ptp(ref, axis=0).max()


def sample_image(name: str) -> np.ndarray:
    """The two dependency-shipped photos, as RGB uint8."""
    if name == "grace_hopper.jpg":
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    if name == "astronaut.png":
        import skimage.data

        return skimage.data.astronaut()
    raise KeyError(name)


@pytest.fixture(scope="session")
def model_paths() -> tuple[Path, Path]:
    return resolve_models()


@pytest.fixture(scope="session")
def landmarker(model_paths):
    with PoseLandmarker(num_poses=1, output_segmentation_masks=True) as lm:
        yield lm


@pytest.fixture(scope="session")
def grace_path() -> Path:
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
