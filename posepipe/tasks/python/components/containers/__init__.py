"""``mediapipe.tasks.python.components.containers``, for pose: the landmark dataclasses."""

from . import landmark
from .landmark import Landmark, NormalizedLandmark

__all__ = ["Landmark", "NormalizedLandmark", "landmark"]
