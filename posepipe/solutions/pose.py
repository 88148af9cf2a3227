"""``mediapipe.solutions.pose`` on posepipe: the ``Pose`` solution, ``PoseLandmark`` and
``POSE_CONNECTIONS``, so that code written for MediaPipe's legacy Python API runs as is.

``Pose(static_image_mode=True)`` runs posepipe's still pipeline (:class:`~posepipe.PoseLandmarker`)
on every call; otherwise posepipe's :class:`~posepipe.PoseTracker` follows the person from
call to call with MediaPipe's smoothing, on MediaPipe's clock: its solution stamps the n-th
call n × 33 333 µs whatever the real frame rate, and its filters adapt to that interval.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..framework.formats.landmark_pb2 import LandmarkList, NormalizedLandmarkList
from ..models.registry import COMPLEXITY, landmark_model_path
from ..pipeline import PoseLandmarker, PoseLandmarkerOptions
from ..results import Poses
from ..topology import LANDMARK_NAMES
from ..video.tracking import PoseTracker
from .pose_connections import POSE_CONNECTIONS

__all__ = ["Pose", "PoseLandmark", "POSE_CONNECTIONS", "SolutionOutputs"]

# MediaPipe's solution advances its clock by this much per process() call (a simulated 30 fps).
FRAME_STEP_US = 33_333

# The landmark model variant of each model_complexity; 1 is the default model posepipe fetches itself.
LANDMARK_VARIANTS = {complexity: variant for variant, complexity in COMPLEXITY.items()}


# The 33 pose landmarks as MediaPipe names and numbers them: its names are topology's, upper case.
PoseLandmark = enum.IntEnum("PoseLandmark", [(name.upper(), i) for i, name in enumerate(LANDMARK_NAMES)],
                            module=__name__)


class SolutionOutputs(NamedTuple):
    """What ``Pose.process`` returns; each field is None when there is nothing to give."""

    pose_landmarks: NormalizedLandmarkList | None  # 33: x / width, y / height, z on x's scale; visibility set
    pose_world_landmarks: LandmarkList | None  # 33, metres, origin between the hips; visibility set
    segmentation_mask: np.ndarray | None  # float32 (height, width) in [0, 1], with enable_segmentation


def landmark_model_for(model_complexity: int) -> Path | None:
    """The landmark model file for ``model_complexity``; None means posepipe's usual choice
    (``POSEPIPE_LANDMARK_MODEL`` where set, else the full model it fetches). The lite and heavy
    models are the ones added with ``posepipe models add`` (:func:`~posepipe.models.registry.landmark_model_path`)."""
    if model_complexity not in LANDMARK_VARIANTS:
        raise ValueError(f"model_complexity must be 0, 1 or 2, not {model_complexity!r}")
    if model_complexity == 1 or os.environ.get("POSEPIPE_LANDMARK_MODEL"):
        return None
    return landmark_model_path(LANDMARK_VARIANTS[model_complexity])


_FIELDS = ("x", "y", "z", "visibility")  # MediaPipe's legacy solution leaves presence unset


def _as_solution_outputs(poses: Poses, with_mask: bool) -> SolutionOutputs:
    """The first (most prominent) person as MediaPipe's messages."""
    if len(poses) == 0:
        return SolutionOutputs(None, None, None)
    width, height = poses.image_size
    visibility = poses.visibility[0][:, None]
    # z on x's scale; a float32 division, MediaPipe's LandmarksToNormalizedLandmarks
    normalized = poses.landmarks[0].astype(np.float32) / np.array([width, height, width], np.float32)
    landmarks, world = NormalizedLandmarkList(), LandmarkList()
    landmarks.landmark._extend_float32_rows(
        _FIELDS, np.hstack([normalized, visibility]).astype(np.float32).tolist())
    world.landmark._extend_float32_rows(
        _FIELDS, np.hstack([poses.world_landmarks[0], visibility]).astype(np.float32).tolist())
    mask = poses.masks[0] if with_mask and poses.masks is not None else None
    return SolutionOutputs(landmarks, world, mask)


class Pose:
    """MediaPipe Pose's legacy solution: landmarks of the most prominent person in RGB images.

    >>> import posepipe as mp                                         # doctest: +SKIP
    >>> with mp.solutions.pose.Pose(static_image_mode=True) as pose:
    ...     results = pose.process(rgb_image)
    >>> results.pose_landmarks.landmark[mp.solutions.pose.PoseLandmark.NOSE].x

    The parameters are MediaPipe's, in its order. ``min_tracking_confidence`` is posepipe's
    ``min_pose_presence_confidence``: below it a pose counts as lost (and, in video, the
    detector runs again on the next frame). ``model_complexity`` 0 and 2 need MediaPipe's lite
    and heavy landmark models, which posepipe cannot download: ``posepipe models add`` the files
    (see :func:`landmark_model_for`). ``accurate``, after MediaPipe's seven, is posepipe's
    accurate mode (:mod:`posepipe.accurate`): fewer misses at about 2-3x the time.
    """

    def __init__(self, static_image_mode: bool = False, model_complexity: int = 1, smooth_landmarks: bool = True,
                 enable_segmentation: bool = False, smooth_segmentation: bool = True,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5, *,
                 accurate: bool = False):
        options = PoseLandmarkerOptions(num_poses=1, min_pose_detection_confidence=min_detection_confidence,
                                        min_pose_presence_confidence=min_tracking_confidence,
                                        output_segmentation_masks=bool(enable_segmentation),
                                        landmark_model=landmark_model_for(model_complexity),
                                        accurate=bool(accurate))
        self.static_image_mode = bool(static_image_mode)
        self.enable_segmentation = bool(enable_segmentation)
        self._landmarker: PoseLandmarker | None = PoseLandmarker(options)
        self._tracker = None if self.static_image_mode else PoseTracker(
            smooth=bool(smooth_landmarks), smooth_masks=bool(smooth_segmentation), landmarker=self._landmarker,
            plan_cores=True)
        self._calls = 0

    def __enter__(self) -> "Pose":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Free the models. Closing twice is harmless (MediaPipe raises ValueError instead)."""
        if self._landmarker is not None:
            self._landmarker.close()
        self._landmarker = self._tracker = None

    def reset(self) -> None:
        """Forget the person being tracked, as before the first frame (for an unrelated video)."""
        if self._tracker is not None:
            self._tracker.reset()

    def process(self, image: np.ndarray) -> SolutionOutputs:
        """Landmarks of the most prominent person in ``image``, an RGB uint8 (H, W, 3) array.

        Raises ValueError when the image is anything else, or when this Pose is closed.
        """
        _check_rgb(image)
        if self._landmarker is None:
            raise ValueError("this Pose is closed")
        self._calls += 1
        if self._tracker is None:
            poses = self._landmarker.detect(image)
        else:
            poses = self._tracker.process(image, self._calls * FRAME_STEP_US / 1000.0)
        return _as_solution_outputs(poses, self.enable_segmentation)


def _check_rgb(image) -> None:
    message = "Input image must contain three channel rgb data."
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{message} Got {type(image).__name__}, expected a numpy array.")
    if image.ndim != 3:
        raise ValueError(f"{message} Got an array of shape {image.shape}.")
    if image.shape[2] != 3:
        raise ValueError(message)  # MediaPipe's words exactly
    if image.dtype != np.uint8:
        raise ValueError(f"{message} Got {image.dtype} pixels, expected uint8.")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{message} Got an empty array of shape {image.shape}.")
