"""posepipe: MediaPipe Pose's 33-landmark pipeline in Python, on the real BlazePose weights."""

from .drawing import PoseAnnotator
from .errors import ImageError, ModelError, PosepipeError
from .pipeline import PoseLandmarker, PoseLandmarkerOptions
from .results import Detections, Poses
from .roi import RegionOfInterest
from .topology import LANDMARK_NAMES, POSE_CONNECTIONS

__all__ = [
    "PoseLandmarker", "PoseLandmarkerOptions", "Poses", "Detections", "RegionOfInterest", "PoseAnnotator",
    "LANDMARK_NAMES", "POSE_CONNECTIONS", "PosepipeError", "ModelError", "ImageError",
]
