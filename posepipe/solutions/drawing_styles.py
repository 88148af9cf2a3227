"""``mediapipe.solutions.drawing_styles`` for pose: MediaPipe's default landmark colours."""

from __future__ import annotations

from typing import Mapping

from ..topology import LEFT_LANDMARKS, RIGHT_LANDMARKS
from .drawing_utils import DrawingSpec
from .pose import PoseLandmark

__all__ = ["get_default_pose_landmarks_style"]

# BGR, MediaPipe's: left side orange, right side cyan-blue, the nose light gray.
_POSE_LEFT_COLOR = (0, 138, 255)
_POSE_RIGHT_COLOR = (231, 217, 0)
_WHITE = (224, 224, 224)
_THICKNESS_POSE_LANDMARKS = 2

_POSE_LANDMARKS_LEFT = frozenset(map(PoseLandmark, LEFT_LANDMARKS))
_POSE_LANDMARKS_RIGHT = frozenset(map(PoseLandmark, RIGHT_LANDMARKS))


def get_default_pose_landmarks_style() -> Mapping[int, DrawingSpec]:
    """One :class:`DrawingSpec` per pose landmark (keys are ``PoseLandmark`` members): left
    side, right side and nose, each set sharing one spec, as MediaPipe's style does."""
    left = DrawingSpec(color=_POSE_LEFT_COLOR, thickness=_THICKNESS_POSE_LANDMARKS)
    right = DrawingSpec(color=_POSE_RIGHT_COLOR, thickness=_THICKNESS_POSE_LANDMARKS)
    style: dict[int, DrawingSpec] = {}
    for landmark in _POSE_LANDMARKS_LEFT:
        style[landmark] = left
    for landmark in _POSE_LANDMARKS_RIGHT:
        style[landmark] = right
    style[PoseLandmark.NOSE] = DrawingSpec(color=_WHITE, thickness=_THICKNESS_POSE_LANDMARKS)
    return style
