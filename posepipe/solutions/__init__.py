"""MediaPipe's legacy solutions API for pose: ``import posepipe as mp`` and then
``mp.solutions.pose.Pose``, ``mp.solutions.drawing_utils``, ``mp.solutions.drawing_styles``,
as code written for ``mediapipe.solutions`` expects them."""

from . import drawing_styles, drawing_utils, pose, pose_connections

__all__ = ["drawing_styles", "drawing_utils", "pose", "pose_connections"]
