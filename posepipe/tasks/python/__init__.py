"""``mediapipe.tasks.python``, for pose; MediaPipe's package hands it out as ``mp.tasks``."""

from . import components, core, vision
from .core.base_options import BaseOptions

__all__ = ["BaseOptions", "components", "core", "vision"]
