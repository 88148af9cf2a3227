"""Stage 4, visualization: landmarks and connections drawn over the original image."""

from __future__ import annotations

import cv2
import numpy as np

from .results import Poses
from .topology import LEFT_LANDMARKS, POSE_CONNECTIONS, RIGHT_LANDMARKS

# RGB. Left and right in MediaPipe's colours (orange / blue), the midline in white.
LEFT_COLOUR = (255, 138, 0)
RIGHT_COLOUR = (0, 160, 255)
MIDDLE_COLOUR = (235, 235, 235)


def _side_colour(index: int) -> tuple[int, int, int]:
    if index in LEFT_LANDMARKS:
        return LEFT_COLOUR
    if index in RIGHT_LANDMARKS:
        return RIGHT_COLOUR
    return MIDDLE_COLOUR


class PoseAnnotator:
    """Draws each person's skeleton. Landmarks below ``visibility_threshold`` (hidden or
    outside the picture) are left out, with the connections that touch them."""

    def __init__(self, visibility_threshold: float = 0.5):
        self.visibility_threshold = visibility_threshold

    def annotate(self, scene: np.ndarray, poses: Poses) -> np.ndarray:
        """A copy of the RGB ``scene`` with ``poses`` drawn on it."""
        out = np.ascontiguousarray(scene).copy()
        height, width = out.shape[:2]
        thickness = max(1, round(max(width, height) / 300))
        radius = thickness + 1
        for points, visibility in zip(poses.landmarks, poses.visibility):
            shown = visibility >= self.visibility_threshold
            xy = np.round(points[:, :2] * 16).astype(np.int64)  # 4 fractional bits for sub-pixel lines
            for a, b in POSE_CONNECTIONS:
                if shown[a] and shown[b]:
                    colour = _side_colour(a) if _side_colour(a) == _side_colour(b) else MIDDLE_COLOUR
                    cv2.line(out, tuple(map(int, xy[a])), tuple(map(int, xy[b])), colour, thickness, cv2.LINE_AA, 4)
            for i in np.flatnonzero(shown):
                cv2.circle(out, tuple(map(int, xy[i])), radius * 16, _side_colour(int(i)), -1, cv2.LINE_AA, 4)
                cv2.circle(out, tuple(map(int, xy[i])), radius * 16, (40, 40, 40), max(1, thickness // 2),
                           cv2.LINE_AA, 4)
        return out
