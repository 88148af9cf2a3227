"""``mediapipe.tasks.python.vision``, for pose: ``PoseLandmarker`` and what goes with it."""

from . import core, pose_landmarker
from .core.vision_task_running_mode import VisionTaskRunningMode as RunningMode
from .pose_landmarker import PoseLandmarker, PoseLandmarkerOptions, PoseLandmarkerResult, PoseLandmarksConnections

__all__ = ["PoseLandmarker", "PoseLandmarkerOptions", "PoseLandmarkerResult", "PoseLandmarksConnections",
           "RunningMode", "core", "pose_landmarker"]
